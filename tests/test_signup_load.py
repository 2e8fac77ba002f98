"""Sign-ups under load: a real `digest serve` (gunicorn, several workers) on SQLite and PostgreSQL.

500 sign-ups from 50 concurrent clients, some of them the same address twice at once. Every
address must end up pending exactly once, none lost, and get exactly one confirmation email
(counted by a real SMTP server, which keeps every message it accepts). The access log must
hold no token and no address. The rate-limit counter is checked on its own too: many threads
hitting one key in one window must each get their own count, on both databases.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from digest.state import Store
from digest.state.limits import Limits
from digest.state.readers import ReaderStatus
from tests.conftest import NOW, MakeProject
from tests.smtpd import SmtpServer
from tests.test_security_secrets import DIGEST_SECRET

pytest_plugins = ["tests.pgserver"]

CLIENTS = 50
DISTINCT = 450  # and 50 of them signed up twice, at the same moment: 500 sign-ups
OURS = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}


def _config(smtp_port: int) -> dict[str, str]:
    return {
        'transport = "outbox"': 'transport = "smtp"',
        "[transports.outbox]": (
            f'[transports.smtp]\nbackend = "smtp"\nhost = "127.0.0.1"\nport = {smtp_port}\n\n[transports.outbox]'
        ),
    }


SERVER = """
[server]
signups_per_minute = 10000
"""


def _addresses() -> list[str]:
    distinct = [f"reader{n:03d}@example.org" for n in range(DISTINCT)]
    return distinct + distinct[: 500 - DISTINCT]


@contextmanager
def serving(project: Path, *args: str) -> Iterator[tuple[str, Callable[[], str]]]:
    """`digest serve` as a process: its URL, and a call that stops it and returns its log.

    Its standard error is read all along (500 requests' access log would fill a pipe and
    block the server).
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digest",
            "--config",
            str(project),
            *args,
            "serve",
            "--port",
            "0",
            "--workers",
            "4",
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1", "DIGEST_SECRET": DIGEST_SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    errors: list[str] = []
    drain = threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    drain.start()

    def stop() -> str:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        drain.join(10)
        assert process.returncode == 0, "".join(errors)[-3000:]
        return "".join(errors)

    try:
        line = process.stdout.readline()
        assert "http://" in line, "".join(errors)
        yield line.split(" on ", 1)[1].split()[0].rstrip("/"), stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _run_load(make_project: MakeProject, state_url: str) -> None:
    with SmtpServer() as smtp:
        replace = {**_config(smtp.port), 'url = "sqlite:///state/digest.sqlite3"': f'url = "{state_url}"'}
        project = make_project(replace=replace, extra=SERVER)
        with serving(project, "--debug") as (base, stop):
            addresses = _addresses()
            # The repeated addresses go in right after their first sign-up, to race with it.
            order = sorted(range(len(addresses)), key=lambda i: (i % DISTINCT, i))
            with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=CLIENTS)) as client:

                def sign_up(index: int) -> int:
                    data = {"email": addresses[index], "name": f"Reader {index}"}
                    return client.post(f"{base}/subscribe/daily", data=data, headers=OURS).status_code

                with ThreadPoolExecutor(CLIENTS) as pool:
                    statuses = list(pool.map(sign_up, order))
            if Counter(statuses) != {200: 500}:
                err = stop()
                raise AssertionError(f"{Counter(statuses)}: {err[max(0, err.find('could not')) :][:5000]}")
            deadline = time.monotonic() + 60
            while len(smtp.messages) < DISTINCT and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # anything more than one each would have arrived by now
            err = stop()
        received = Counter(rcpt for message in smtp.messages for rcpt in message.rcpt_tos)
        assert received == dict.fromkeys(sorted(set(addresses)), 1)
    with Store(state_url) as store:
        store.migrate()
        readers = list(store.readers.of_list("daily"))
        assert sorted(r.email for r in readers) == sorted(set(addresses))
        assert {r.status for r in readers} == {ReaderStatus.PENDING}
    assert "/subscribe/daily" in err
    # The log (access log and digest's own lines, at --debug) masks every address, hides every token.
    assert not [address for address in set(addresses) if address in err]
    assert "/confirm/" not in err.replace("/confirm/…", "")


def test_500_sign_ups_from_50_clients_on_sqlite(make_project: MakeProject, tmp_path: Path) -> None:
    _run_load(make_project, f"sqlite:///{tmp_path}/load.sqlite3")


def test_500_sign_ups_from_50_clients_on_postgresql(make_project: MakeProject, postgres_url: str) -> None:
    _run_load(make_project, postgres_url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_rate_limit_counts_hold_under_concurrency(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/limits.sqlite3"
    else:
        url = request.getfixturevalue("postgres_url")
    stores = [Store(url).migrate() for _ in range(4)]  # as four workers would
    now = NOW.replace(second=30)
    counts: list[int] = []
    lock = threading.Lock()

    def hit(n: int) -> None:
        found = Limits(stores[n % 4].engine).hit("signup:one-client", now).count
        with lock:
            counts.append(found)

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(hit, range(200)))
    assert sorted(counts) == list(range(1, 201))  # no hit lost, none counted twice
    limits = Limits(stores[0].engine)
    assert limits.hit("signup:one-client", now + dt.timedelta(seconds=30)).count == 1  # the next minute
    assert limits.hit("signup:other", now).count == 1
    assert limits.prune(now + dt.timedelta(hours=1)) == 2
    assert limits.prune(now + dt.timedelta(hours=2)) == 1
    for store in stores:
        store.close()
