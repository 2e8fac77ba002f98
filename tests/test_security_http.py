"""The two servers as they run in production: `digest serve` and `digest preview`, real processes.

test_serve.py and test_preview_api.py check the WSGI apps on a thread; here the commands run with
a project whose links came out of a real `digest send`, started in the project's own folder next
to decoy files (a canary in the folder, in config.toml, in a static/ folder where a careless
server might look, and outside the project), and are attacked over raw sockets: unsubscribe
tokens that were forged, altered, moved to another list or cut short, and paths that try every
spelling of "..", backslashes, absolute paths and NUL bytes. No answer may carry a canary, and
no bad token may write a suppression.
"""

from __future__ import annotations

import base64
import email
import shutil
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from email import policy
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import time_machine
from click.testing import CliRunner

from digest.cli import cli
from digest.send.unsubscribe import DEMO_SECRET, Purpose, make_token
from tests.conftest import BASE_CONFIG, NOW, STORIES
from tests.test_security_secrets import DIGEST_SECRET, started

CANARY = "CANARY-5e1f-never-to-be-served"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
STATIC = ("index.html", "app.js", "style.css")  # the preview's own files, by name
WEEKLY = """
[[lists]]
name = "weekly"
title = "The Weekly Review"
subscribers = "subscribers/weekly.csv"
schedule = "0 7 * * 1"
transport = "outbox"
"""


@dataclass
class Running:
    root: Path
    outside: Path
    serve: int
    preview: int
    tokens: dict[str, str]
    """Anna's unsubscribe token per list, from the List-Unsubscribe header of her sent mail."""

    def suppressions(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.root / "state" / "digest.sqlite3") as db:
            return sorted(db.execute("SELECT email, list_name FROM suppressions").fetchall())


def project_with_decoys(base: Path) -> Path:
    root, outside = base / "project", base / "outside"
    for folder in (root / "feeds", root / "subscribers", root / "templates", root / "static", outside):
        folder.mkdir(parents=True)
    for story in STORIES.iterdir():
        shutil.copy(story, root / "feeds" / story.name)
    for csv in ("daily.csv", "weekly.csv"):
        (root / "subscribers" / csv).write_text("email,name\nanna@example.org,Anna\n")
    (root / "config.toml").write_text(f"# {CANARY}\n{BASE_CONFIG}{WEEKLY}")
    # Where a server that resolved paths against its working folder would find something.
    for decoy in (root / "canary.txt", outside / "canary.txt", *(root / "static" / n for n in STATIC)):
        decoy.write_text(f"{CANARY}\n")
    return root / "config.toml"


def sent_tokens(project: Path) -> dict[str, str]:
    """Send both lists (one reader each) to the outbox; the token in each message."""
    tokens = {}
    for name in ("daily", "weekly"):
        with time_machine.travel(NOW, tick=False):
            result = CliRunner().invoke(
                cli, ["--config", str(project), "send", "--list", name], env={"DIGEST_SECRET": DIGEST_SECRET}
            )
        assert result.exit_code == 0, result.output + result.stderr
        (path,) = (project.parent / "outbox").glob(f"{name}-*/*.eml")
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        tokens[name] = str(message["List-Unsubscribe"]).split("/unsubscribe/", 1)[1].split(">", 1)[0]
    return tokens


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    base = tmp_path_factory.mktemp("servers")
    project = project_with_decoys(base)
    tokens = sent_tokens(project)
    env = {"DIGEST_SECRET": DIGEST_SECRET}
    with ExitStack() as stack:
        ports = []
        for command in (["serve", "--port", "0"], ["preview", "--port", "0"]):
            _process, line = stack.enter_context(started(project, *command, env=env, cwd=project.parent))
            ports.append(int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0]))
        yield Running(project.parent, base / "outside", ports[0], ports[1], tokens)


def raw_get(port: int, target: bytes) -> tuple[int | None, bytes]:
    """A request line sent byte for byte (httpx would normalise the path); status None if none came."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET " + target + f" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    return status, answer


# -- unsubscribe tokens -------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bad_tokens(good: str) -> dict[str, str]:
    payload, mac = good.split(".")
    flipped = mac[:10] + ("B" if mac[10] == "A" else "A") + mac[11:]
    weekly, bob = b64(b"\x01weekly\nanna@example.org"), b64(b"\x01daily\nbob@example.org")
    return {
        "cut where a mail client wraps the line": good[:60],
        "cut by one character": good[:-1],
        "cut at the dot": payload + ".",
        "mac altered": f"{payload}.{flipped}",
        "case changed": good.swapcase(),
        # The payload rewritten to name another list or another reader, the MAC kept.
        "moved to the weekly list": f"{weekly}.{mac}",
        "moved to another reader": f"{bob}.{mac}",
        "signed with the demo secret": make_token(
            DEMO_SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE
        ),
        "signed with another secret": make_token(
            b"another-newsroom-secret-0123", "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE
        ),
        "for a list the newsroom does not have": make_token(
            DIGEST_SECRET.encode(), "monthly", "anna@example.org", purpose=Purpose.UNSUBSCRIBE
        ),
    }


def test_bad_tokens_are_all_refused_alike_and_write_nothing(running: Running) -> None:
    good = running.tokens["daily"]
    url = f"http://127.0.0.1:{running.serve}/unsubscribe/"
    answers: set[tuple[int, bytes]] = set()
    with httpx.Client(timeout=10) as client:
        for name, token in bad_tokens(good).items():
            assert token != good, name
            for response in (client.get(url + token), client.post(url + token, data=ONE_CLICK)):
                assert response.status_code == 400, (name, response.status_code)
                answers.add((response.status_code, response.content))
        reference = client.post(url + "not-a-token", data=ONE_CLICK)
        # The state file, as another process would read it: untouched.
        assert running.suppressions() == []

        # The list is inside the signed token, so nothing in the URL or the form can move it.
        hinted = client.post(url + good, params={"list": "weekly"}, data={**ONE_CLICK, "list": "weekly"})
        assert hinted.status_code == 200
        assert running.suppressions() == [("anna@example.org", "daily")]
        assert client.post(url + running.tokens["weekly"], data=ONE_CLICK).status_code == 200
    assert answers == {(400, reference.content)}  # one answer for every way of being wrong
    assert running.suppressions() == [("anna@example.org", "daily"), ("anna@example.org", "weekly")]


# -- path traversal -----------------------------------------------------------------------------


def traversals(outside: Path, root: Path) -> list[bytes]:
    canary, config = str(outside / "canary.txt"), str(root / "config.toml")
    targets = [
        "/../canary.txt",
        "/%2e%2e/canary.txt",
        "/%2E%2E%2Fcanary.txt",
        "/%252e%252e%252fcanary.txt",
        "/..%5ccanary.txt",
        "/..\\canary.txt",
        "/static/..\\..\\config.toml",
        "/static/..%5c..%5cconfig.toml",
        "/static/%2e%2e%2f%2e%2e%2fconfig.toml",
        "/static/%252e%252e%252fconfig.toml",
        "/static/%c0%ae%c0%ae%c0%afconfig.toml",
        "/static/%u002e%u002e%u2215config.toml",
        "/static/....//....//canary.txt",
        "/static/..;/canary.txt",
        "/static/canary.txt%00.css",
        "/static/..%00/config.toml",
        "/static/" + quote(config, safe=""),
        "/static/" + config,
        "/" + canary,
        "/static" + canary,
        "/unsubscribe/..%2f..%2fcanary.txt",
        "/unsubscribe/%2e%2e%5c%2e%2e%5cconfig.toml",
        "/unsubscribe/" + quote(canary, safe=""),
        "/unsubscribe/..;/..;/canary.txt",
        "http://127.0.0.1/../canary.txt",
        "file://" + canary,
    ]
    return [target.encode() for target in targets] + [b"/static/\x00../config.toml", b"/canary.txt\x00"]


def assert_serves_no_canary(answer: bytes) -> None:
    assert CANARY.encode() not in answer
    for leak in (b"[newsroom]", b"root:x:0:0", b"def make_app", b"class PreviewApp"):
        assert leak not in answer, leak


@pytest.mark.parametrize("server", ["serve", "preview"])
def test_no_spelling_of_a_path_reaches_a_file(running: Running, server: str) -> None:
    port = getattr(running, server)
    for target in traversals(running.outside, running.root):
        status, answer = raw_get(port, target)
        # Refused (or the connection closed on a request line that is not HTTP); never a file.
        assert status in (None, 400, 404), (target, answer[:300])
        assert_serves_no_canary(answer)


def test_the_preview_serves_its_own_files_not_the_working_folders(running: Running) -> None:
    """The project's static/ decoys sit where a server resolving against its folder would look."""
    for name in STATIC:
        status, answer = raw_get(running.preview, f"/static/{name}".encode())
        assert status == 200, name
        assert CANARY.encode() not in answer
    # Parameters name lists, dates and subscribers, never files.
    for query in (
        "list=../canary.txt",
        "date=../../canary.txt",
        "subscriber=../config.toml",
        "desks=..%2f..",
    ):
        for page in ("/api/preview", "/email", "/source"):
            _status, answer = raw_get(running.preview, f"{page}?{query}".encode())
            assert_serves_no_canary(answer)
