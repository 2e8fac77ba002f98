"""Time SendGrid's Event Webhook answering a batch of 10,000 events through `digest serve` (`make bench`).

SendGrid waits only briefly for an answer and retries what times out, so a batch must be
verified, stored and answered within 3 seconds. This starts the real `digest serve`
(gunicorn, 2 workers) on a project in a temp folder whose state has ``--readers`` readers,
signs each batch with a key made here (as SendGrid signs), and times the POST from the first
byte sent to the answer: reading the body, the ECDSA check, parsing, storing every event
with its effects, committing. Signing, on SendGrid's side, is not counted. Batches:

- ``mix``: what an edition brings back: 40% delivered, 30% open, 15% click, 4% hard bounce,
  3% blocked, 2% deferred, 2% dropped (bounced address), 2% unsubscribe, 2% spam report;
- ``bounces``: the worst case for effects: every event a hard bounce of another reader;
- ``retry``: the ``mix`` batch delivered again (every event already stored: nothing new).

Each batch is sent ``--repeat`` times (new event ids and readers each time, but ``retry``).
Backends: SQLite (a file, WAL) and, with ``--postgresql``, a local PostgreSQL server syncing
to disk (Debian's, as in the tests).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.state import Store, schema  # noqa: E402
from tests.conftest import BASE_CONFIG, STORIES  # noqa: E402

SECRET = "bench-secret-for-the-webhook-0123456789"
MIX = [("delivered", 40), ("open", 30), ("click", 15), ("bounce", 4), ("blocked", 3), ("deferred", 2)]
MIX += [("dropped", 2), ("unsubscribe", 2), ("spamreport", 2)]


def reader(n: int) -> str:
    return f"reader.{n}@example.org"


def make_event(kind: str, n: int, serial: str, now: int) -> dict[str, Any]:
    """One event as SendGrid posts it, with digest's custom_args."""
    item: dict[str, Any] = {
        "email": reader(n),
        "timestamp": now - 300,
        "smtp-id": f"<14c5d75ce93.dfd.64b469.{n}@ismtpd-555>",
        "event": kind,
        "category": ["daily"],
        "sg_event_id": base64.urlsafe_b64encode(f"{serial}-{n}-{kind}".encode()).decode(),
        "sg_message_id": f"14c5d75ce93.dfd.64b469.filter0001.16648.{n}.0",
        "edition_id": "daily-2026-11-25",
        "list": "daily",
    }
    if kind in ("bounce", "blocked"):
        item.update(
            event="bounce", type=kind, status="5.1.1", reason="550 5.1.1 The email account does not exist"
        )
    elif kind == "deferred":
        item.update(response="400 Try again later", attempt="2")
    elif kind == "dropped":
        item.update(reason="Bounced Address", status="5.0.0")
    elif kind == "click":
        item.update(
            url=f"https://news.example.org/2026/11/25/story-{n % 40}", url_offset={"index": 0, "type": "html"}
        )
    elif kind in ("open", "delivered"):
        item.update(useragent="Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0", ip="192.0.2.20")
    return item


def batch(name: str, first: int, size: int, serial: str, now: int) -> list[dict[str, Any]]:
    if name == "bounces":
        return [make_event("bounce", first + i, serial, now) for i in range(size)]
    kinds = [kind for kind, share in MIX for _ in range(share)]
    return [make_event(kinds[i % len(kinds)], first + i, serial, now) for i in range(size)]


class Signer:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(der).decode()

    def headers(self, body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        signature = base64.b64encode(self.key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }


def project(root: Path, url: str) -> Path:
    (root / "feeds").mkdir(parents=True)
    (root / "subscribers").mkdir()
    for story in STORIES.iterdir():
        shutil.copy(story, root / "feeds" / story.name)
    (root / "subscribers" / "daily.csv").write_text("email,name\n")
    config = BASE_CONFIG.replace('url = "sqlite:///state/digest.sqlite3"', f'url = "{url}"')
    (root / "config.toml").write_text(config)
    return root / "config.toml"


def fill(url: str, readers: int) -> None:
    """``readers`` active readers of the list, written in one go."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        {"list_name": "daily", "email": reader(n), "name": "", "status": "active", "source": "file"}
        | {"created_at": now, "updated_at": now}
        for n in range(readers)
    ]
    with Store(url).migrate() as store, store.engine.begin() as conn:
        conn.execute(schema.subscribers.insert(), rows)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(config: Path, public_key: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "DIGEST_SECRET": SECRET, "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key}
    command = [sys.executable, "-m", "digest", "--config", str(config), "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=20)


def run(url: str, root: Path, args: argparse.Namespace, signer: Signer) -> dict[str, list[float]]:
    fill(url, args.readers)
    timings: dict[str, list[float]] = {"mix": [], "bounces": [], "retry": []}
    sizes: dict[str, int] = {}
    with serving(project(root, url), signer.public) as base, httpx.Client(timeout=60) as client:
        for repeat in range(args.repeat):
            for name in ("mix", "bounces", "retry"):
                first = (2 * repeat + (name == "bounces")) * args.events
                source = "mix" if name == "retry" else name
                events = batch(source, first, args.events, str(repeat), int(time.time()))
                body = json.dumps(events).encode()
                sizes[name] = len(body)
                headers = signer.headers(body)
                started = time.perf_counter()
                response = client.post(f"{base}/webhooks/sendgrid", content=body, headers=headers)
                timings[name].append(time.perf_counter() - started)
                assert response.status_code == 200, (response.status_code, response.text)
    for name, values in timings.items():
        print(
            f"| {name} | {sizes[name] / 1e6:.2f} MB | {statistics.median(values) * 1000:,.0f} | "
            f"{max(values) * 1000:,.0f} |",
            flush=True,
        )
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per batch (default 10000)")
    parser.add_argument("--readers", type=int, default=100_000, help="readers in the state (default 100000)")
    parser.add_argument("--repeat", type=int, default=5, help="batches of each kind (default 5)")
    parser.add_argument("--postgresql", action="store_true", help="also with the state on PostgreSQL")
    args = parser.parse_args(argv)
    args.readers = max(args.readers, 2 * args.repeat * args.events)
    print(f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {args.events:,} events per batch")
    signer = Signer()
    backends: list[tuple[str, Callable[[Path], str]]] = [
        ("SQLite", lambda root: f"sqlite:///{root}/state.db")
    ]
    server = None
    if args.postgresql:
        from tests.pgserver import PostgresServer

        server = PostgresServer(fsync=True).start()
        backends.append(("PostgreSQL", lambda root: server.create_database("webhook_bench")))
    try:
        for label, make_url in backends:
            with tempfile.TemporaryDirectory(prefix="digest-bench-webhook-") as name:
                print(f"\n{label}, {args.readers:,} readers, {args.repeat} runs\n")
                print("| batch | body | median (ms) | max (ms) |\n|---|---:|---:|---:|")
                run(make_url(Path(name)), Path(name) / "project", args, signer)
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
