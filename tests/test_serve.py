"""The unsubscribe server, for real: werkzeug's threaded server, httpx, a SQLite store on disk."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.test import Client

from digest.config import Config, load_config
from digest.errors import DigestError
from digest.send.unsubscribe import Purpose, make_token
from digest.state import Store
from digest.web import create_app, make_app
from digest.web.app import MAX_BODY
from digest.web.server import GRACEFUL_TIMEOUT
from tests.conftest import MakeProject

SECRET = b"0123456789abcdef-test-secret"
EMAIL = "anna.kovalenko@example.org"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
REPO = Path(__file__).resolve().parent.parent
SAFE = {"cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


@dataclass
class Server:
    url: str
    port: int
    store: Store
    client: httpx.Client

    def path(self, token: str) -> str:
        return f"{self.url}/unsubscribe/{token}"

    def rows(self) -> dict[str, int]:
        return self.store.suppressions.count()


def _run(app: Callable[..., object]) -> Iterator[tuple[str, int]]:
    server = make_server("127.0.0.1", 0, app, threaded=True)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server.server_port
    finally:
        server.shutdown()
        server.server_close()


# Two lists with titles of their own, as readers see them.
TITLED = {
    'name = "daily"\n': 'name = "daily"\ntitle = "The Daily Ledger"\n',
}
WEEKLY = """
[[lists]]
name = "weekly"
title = "The Weekly Review"
subscribers = "subscribers/daily.csv"
"""


@pytest.fixture
def titled(make_project: MakeProject) -> Config:
    return load_config(make_project(replace=TITLED, extra=WEEKLY))


@pytest.fixture
def server(tmp_path: Path, titled: Config) -> Iterator[Server]:
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    app = make_app(titled, lambda: store, SECRET)
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        for url, port in _run(app):
            yield Server(url, port, store, client)
    store.close()


def _token(list_name: str = "daily", email: str = EMAIL, secret: bytes = SECRET) -> str:
    return make_token(secret, list_name, email, purpose=Purpose.UNSUBSCRIBE)


def _raw(port: int, request: bytes) -> bytes:
    """Send bytes exactly as written (httpx would tidy up dot segments in the path)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_get_shows_a_button_and_changes_nothing(server: Server) -> None:
    for method in ("GET", "HEAD", "GET"):
        response = server.client.request(method, server.path(_token()))
        assert response.status_code == 200
    page = server.client.get(server.path(_token())).text
    assert '<form method="post">' in page and "<button" in page
    assert "The Daily Ledger" in page and "The Morning Ledger" in page
    assert "an***@example.org" in page and EMAIL not in page
    assert "<script" not in page.lower() and "http" not in page.split("</head>")[1]
    assert server.rows() == {}


# What Gmail sends: RFC 8058 allows multipart/form-data as well as urlencoded.
MULTIPART = b'--b0undary\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b0undary--\r\n'
MULTIPART_TYPE = "multipart/form-data; boundary=b0undary"
POSTS = {
    "urlencoded one-click": ("one-click", {"data": ONE_CLICK}),
    "multipart one-click": ("one-click", {"content": MULTIPART, "headers": {"Content-Type": MULTIPART_TYPE}}),
    "browser form": ("web", {"data": {"confirm": "yes"}}),
}


@pytest.mark.parametrize("kind", POSTS)
def test_post_records_one_suppression_and_answers_200(server: Server, kind: str) -> None:
    source, options = POSTS[kind]
    first = server.client.post(server.path(_token()), **options)  # type: ignore[arg-type]
    assert first.status_code == 200 and "location" not in first.headers
    assert "You are unsubscribed" in first.text and EMAIL not in first.text
    found = server.store.suppressions.is_suppressed(EMAIL, "daily")
    assert found is not None
    assert (found.reason, found.source, found.list_name) == ("unsubscribed", source, "daily")
    assert server.store.suppressions.is_suppressed(EMAIL, "weekly") is None

    again = server.client.post(server.path(_token()), **options)  # type: ignore[arg-type]
    assert again.status_code == 200 and "location" not in again.headers
    assert again.text == first.text
    assert server.rows() == {"unsubscribed": 1}


def test_each_list_is_its_own_unsubscribe(server: Server) -> None:
    server.client.post(server.path(_token("weekly")), data=ONE_CLICK)
    assert server.store.suppressions.is_suppressed(EMAIL, "weekly") is not None
    assert server.store.suppressions.is_suppressed(EMAIL, "daily") is None


def _bad_tokens() -> dict[str, str]:
    good = _token()
    payload, mac = good.split(".")
    flip = lambda text, i: text[:i] + ("B" if text[i] == "A" else "A") + text[i + 1 :]  # noqa: E731
    return {
        "forged": _token(secret=b"another-secret-of-16-bytes"),
        "payload altered": f"{flip(payload, 3)}.{mac}",
        "mac altered": f"{payload}.{flip(mac, 10)}",
        "truncated": good[:-5],
        "payload only": payload,
        "unknown list": _token("monthly"),
        "garbage": "hello",
        "three parts": "a.b.c",
        "empty": "",
        "very long": "A" * 1500,
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_bad_token_gets_the_same_400(server: Server, method: str) -> None:
    seen: set[tuple[int, bytes, tuple[tuple[str, str], ...]]] = set()
    for name, token in _bad_tokens().items():
        response = server.client.request(
            method, server.path(token), data=ONE_CLICK if method == "POST" else None
        )
        assert response.status_code == 400, name
        headers = tuple(sorted((k, v) for k, v in response.headers.items() if k not in ("date",)))
        seen.add((response.status_code, response.content, headers))
    assert len(seen) == 1
    assert server.rows() == {}


TRAVERSALS = """/unsubscribe/../../etc/passwd /unsubscribe/..%2f..%2fetc%2fpasswd /%2e%2e/%2e%2e/etc/passwd
    /%2e%2e%2f%2e%2e%2fetc%2fpasswd //etc/passwd /../../../../etc/passwd /unsubscribe/%2e%2e
    /static/../digest/web/app.py /digest/web/app.py /pyproject.toml""".split()


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_only_reaches_404_or_400(server: Server, path: str) -> None:
    answer = _raw(
        server.port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    )
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 404), answer[:200]
    assert b"root:" not in answer and b"werkzeug" not in answer.split(b"\r\n\r\n", 1)[1]
    assert b"[build-system]" not in answer and b"def make_app" not in answer


def test_healthz_and_unknown_paths(server: Server) -> None:
    health = server.client.get(f"{server.url}/healthz")
    assert (health.status_code, health.text.strip()) == (200, "ok")
    for path in ("/", "/nope", "/favicon.ico", "/healthz/extra", "/unsubscribe/a/b", "/robots.txt"):
        assert server.client.get(server.url + path).status_code == 404, path


def test_only_get_head_and_post(server: Server) -> None:
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        response = server.client.request(method, server.path(_token()))
        assert response.status_code == 405, method
        assert response.headers["allow"]
    assert server.client.post(f"{server.url}/healthz").status_code == 405
    assert server.rows() == {}


def test_oversized_bodies_are_refused(server: Server) -> None:
    url = server.path(_token())
    big = server.client.post(url, content=b"List-Unsubscribe=One-Click&x=" + b"a" * MAX_BODY)
    assert big.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b"List-Unsubscribe=One-Click&x="
        for _ in range(MAX_BODY // 1024 + 2):
            yield b"a" * 1024

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    chunked = server.client.post(url, content=chunks(), headers=headers)
    assert chunked.status_code == 413
    assert server.rows() == {}


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_exactly_the_cap_is_fine(server: Server, chunked: bool) -> None:
    body = b"List-Unsubscribe=One-Click&x="
    body += b"a" * (MAX_BODY - len(body))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    content = iter([body[:1000], body[1000:]]) if chunked else body
    assert server.client.post(server.path(_token()), content=content, headers=headers).status_code == 200
    assert server.rows() == {"unsubscribed": 1}


def test_security_headers_on_every_page(server: Server) -> None:
    for response in (
        server.client.get(server.path(_token())),
        server.client.post(server.path(_token()), data=ONE_CLICK),
        server.client.get(server.path("bad")),
        server.client.get(f"{server.url}/nope"),
        server.client.put(f"{server.url}/nope"),
    ):
        csp = response.headers["content-security-policy"]
        assert csp.startswith("default-src 'none'; style-src 'unsafe-inline';") and "script-src" not in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert {k: response.headers[k] for k in SAFE} == SAFE


def test_a_store_failure_is_a_503_and_the_next_try_works(tmp_path: Path, titled: Config) -> None:
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    calls: list[int] = []

    def flaky() -> Store:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is down")
        return store

    app = make_app(titled, flaky, SECRET)
    with httpx.Client(timeout=10) as client:
        for url, _port in _run(app):
            target = f"{url}/unsubscribe/{_token()}"
            assert client.post(target, data=ONE_CLICK).status_code == 503
            assert client.post(target, data=ONE_CLICK).status_code == 200
            assert client.post(target, data=ONE_CLICK).status_code == 200
    assert len(calls) == 2
    assert store.suppressions.count() == {"unsubscribed": 1}
    store.close()


def test_log_line_masks_the_address_and_omits_the_token(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    token = _token()
    with caplog.at_level(logging.INFO, logger="digest.serve"):
        server.client.post(server.path(token), data=ONE_CLICK)
    lines = [r.getMessage() for r in caplog.records if r.name == "digest.serve"]
    assert lines == ["unsubscribed an***@example.org from daily via one-click"]
    assert not any(token.split(".")[1] in line or EMAIL in line for line in lines)


def test_short_secret_is_refused(titled: Config) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        make_app(titled, lambda: None, b"short")  # type: ignore[arg-type,return-value]


SERVE_SCRIPT = """
import sys
from digest.config import load_config
from digest.web import make_app
from digest.web.server import serve
from digest.state import Store
# The store is opened in each worker, after gunicorn forked it.
app = make_app(load_config(sys.argv[2]), lambda: Store(sys.argv[1]).migrate(), b"0123456789abcdef-test-secret")
serve(lambda: app, port=0, workers=int(sys.argv[3]))
print("stopped", flush=True)
"""


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_url_stops_on_a_signal_and_keeps_tokens_out_of_the_access_log(
    tmp_path: Path, project: Path, stop_with: signal.Signals
) -> None:
    command = [sys.executable, "-c", SERVE_SCRIPT, f"sqlite:///{tmp_path}/s.db", str(project), "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("digest: public pages on http://127.0.0.1:")
        base = line.split(" on ")[1].split()[0].rstrip("/")
        token = _token("daily")
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        assert httpx.post(f"{base}/unsubscribe/{token}", data=ONE_CLICK, timeout=10).status_code == 200
        assert httpx.get(f"{base}/unsubscribe/{token}?email={EMAIL}", timeout=10).status_code == 200
        assert httpx.get(f"{base}/{EMAIL}", timeout=10).status_code == 404
        process.send_signal(stop_with)
        # A worker that does not stop at once is killed after gunicorn's graceful timeout; the
        # server must be gone by then (rarely, a gthread worker needs that long on SIGINT).
        out, err = process.communicate(timeout=GRACEFUL_TIMEOUT + 10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert out.strip() == "stopped"
    assert "/unsubscribe/…" in err and token not in err and token.split(".")[1] not in err
    assert '"GET /… HTTP/1.1" 404' in err and EMAIL not in err and "email=" not in err
    assert "unsubscribed an***@example.org from daily via one-click" in err


def test_create_app_is_the_app_of_digest_serve_and_of_wsgi_servers(project: Path) -> None:
    config = load_config(project)
    with pytest.raises(DigestError, match="DIGEST_SECRET is not set"):
        create_app(config, env={})
    app = create_app(config, env={"DIGEST_SECRET": SECRET.decode()})
    page = Client(app).get(
        f"/unsubscribe/{make_token(SECRET, 'daily', 'reader@example.org', purpose=Purpose.UNSUBSCRIBE)}"
    )
    assert page.status_code == 200 and "The Morning Ledger" in page.text
    # Nothing is opened before the first unsubscribe: a WSGI server's workers each open their own.
    assert not (project.parent / "state").exists()
