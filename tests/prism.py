"""Prism serving SendGrid's official OpenAPI spec: a real peer that validates every request.

Prism checks each request against the schema (400 with an ``sl-violations`` header when the body
does not match, 401 without a Bearer Authorization header) and answers from the spec's examples.
It does not check SendGrid's business rules (1000 personalizations, unique addresses, sizes).

    from tests.prism import prism_url  # a session fixture: "http://127.0.0.1:<port>"

Prism comes from package.json (``npm install``, which ``make test`` runs). Without it the
fixtures fail rather than skip: a transport test that passes without its peer proves nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRISM = REPO / "node_modules" / ".bin" / "prism"
# A copy of twilio/sendgrid-oai's spec with its licence (tests/sendgrid-oai/README.md).
SPECS = REPO / "tests" / "sendgrid-oai"
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def run_prism(spec: Path, folder: Path) -> Iterator[str]:
    """Start ``prism mock <spec> --errors`` on a free port; yield its URL; stop it afterwards."""
    if not PRISM.exists():
        pytest.fail(
            f"{PRISM.relative_to(REPO)} is missing: run `make test` (it runs `npm install`, which "
            "installs Prism from package.json) before these tests",
            pytrace=False,
        )
    if not spec.exists():
        pytest.fail(f"SendGrid's spec {spec} is missing (see tests/sendgrid-oai/README.md)", pytrace=False)
    port = free_port()
    log = folder / f"prism-{spec.stem}.log"
    command = [str(PRISM), "mock", str(spec), "-h", "127.0.0.1", "-p", str(port), "--errors"]
    with log.open("wb") as output:
        # Its own process group, so stopping it also stops anything node started.
        process = subprocess.Popen(
            command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(port):
            if process.poll() is not None:
                pytest.fail(f"Prism exited with {process.returncode}:\n{_tail(log)}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Prism did not answer within {STARTUP_TIMEOUT:.0f} s:\n{_tail(log)}", pytrace=False
                )
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prism mocking ``/v3/mail/send`` (tsg_mail_v3.yaml)."""
    with run_prism(SPECS / "tsg_mail_v3.yaml", tmp_path_factory.mktemp("prism-mail")) as url:
        yield url


@pytest.fixture(scope="session")
def prism_suppressions_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prism mocking ``/v3/suppression/...`` (tsg_suppressions_v3.yaml)."""
    with run_prism(SPECS / "tsg_suppressions_v3.yaml", tmp_path_factory.mktemp("prism-suppressions")) as url:
        yield url
