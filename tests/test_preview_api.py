"""`digest preview`'s server for real (no browser): werkzeug's threaded server, httpx, files on disk."""

from __future__ import annotations

import email
import html
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import httpx
import psycopg
import pytest
import time_machine
from werkzeug.serving import make_server

from digest.config import load_config
from digest.preview.app import PreviewApp, make_app
from digest.preview.checks import Check, is_web_link, link_check
from digest.preview.payload import (
    EditionInfo,
    ErrorInfo,
    Failed,
    Item,
    Problem,
    RecipientInfo,
    Shown,
    Size,
    SubscriberInfo,
    Window,
)
from digest.preview.watch import Watcher
from digest.render.templates import default_template_dir
from digest.send.run import Sender
from digest.send.unsubscribe import DEMO_SECRET, Purpose, read_token
from digest.statefile import open_store
from tests.conftest import NOW, REPO, MakeProject

SECRET = "preview-test-secret-0123456789"
TOP = "Overnight drone attack leaves parts of Kharkiv without power"
pytest_plugins = ["tests.pgserver"]

TABLES = ("editions", "edition_variants", "send_ledger", "seen_items", "feed_cache", "suppressions")


@dataclass
class Server:
    url: str
    port: int
    project: Path
    client: httpx.Client
    app: PreviewApp

    @property
    def root(self) -> Path:
        return self.project.parent

    def api(self, **params: str) -> httpx.Response:
        return self.client.get("/api/preview", params=params)

    def until(self, check: Callable[[], bool], seconds: float = 3.0) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            assert time.monotonic() < deadline, "the preview did not catch up"
            time.sleep(0.05)


@pytest.fixture
def start(make_project: MakeProject) -> Iterator[Callable[..., Server]]:
    """Start a preview server (on a free port) for a project; everything stops after the test."""
    stops: list[Callable[[], None]] = []

    def run(project: Path | None = None) -> Server:
        project = project or make_project()
        traveller = time_machine.travel(NOW, tick=True)
        traveller.start()
        watcher = Watcher(project)
        watcher.start()
        app = make_app(project, watcher)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}"
        client = httpx.Client(base_url=url, timeout=10)

        def stop() -> None:
            client.close()
            app.close()
            watcher.stop()
            server.shutdown()
            server.server_close()
            traveller.stop()

        stops.append(stop)
        return Server(url, server.server_port, project, client, app)

    yield run
    for stop in reversed(stops):
        stop()


def row_counts(project: Path) -> dict[str, int]:
    path = project.parent / "state" / "digest.sqlite3"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """A request line sent exactly as written (httpx would normalize the dots away)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def token_of(url: str) -> str:
    return url.rsplit("/unsubscribe/", 1)[1].split(">")[0]


def test_the_api_shows_the_next_edition_as_sent(start: Callable[..., Server]) -> None:
    server = start()
    data = server.api().json()
    assert data["error"] is None and isinstance(data["version"], int)
    assert data["lists"] == ["daily"] and data["list"] == "daily" and data["date"] == "2026-11-25"
    assert data["desks"] == ["Ukraine", "North America", "Business", "Europe", "Culture"]
    assert data["variant"] == "all" and not data["empty"]
    assert TOP in data["subject"] and data["preheader"].startswith("30 stories today")
    assert len(data["items"]) == 30 and data["new_count"] == 30 and all(i["new"] for i in data["items"])
    assert TOP in data["text"] and "Hello," in data["text"]
    headers = data["headers"]
    assert headers["Subject"] == data["subject"] and headers["To"] == "subscriber@example.invalid"
    assert headers["From"] == "The Morning Ledger <digest@news.example.org>"
    assert headers["Message-ID"].startswith("<daily-2026-11-25.") and headers["Date"]
    assert headers["List-Id"] == '"daily" <daily.news.example.org>'
    assert headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8080/unsubscribe/")
    assert "List-Unsubscribe-Post" not in headers  # base_url is http: no one-click claim
    page = server.client.get("/email")
    assert data["size"] == {"bytes": len(page.content), "limit": 102_000, "clipped": False}
    assert TOP in page.text and server.client.get("/source").text == page.text
    checks = {check["id"]: check for check in data["checks"]}
    assert set(checks) == {"links", "unsubscribe", "images", "preheader", "text", "size", "feeds", "spam"}
    assert all(check["ok"] for name, check in checks.items() if name != "spam"), checks
    assert all(check["name"] and check["detail"] for check in data["checks"])
    assert checks["spam"]["ok"] in (True, False, None)
    assert data["warnings"] == []


# What app.js calls each object of the answer, and the type that declares its keys.
SCRIPT_NAMES = {
    "data": Shown,
    "error": ErrorInfo,
    "problem": Problem,
    "size": Size,
    "item": Item,
    "check": Check,
    "who": SubscriberInfo,
}


def test_the_answers_have_the_keys_their_types_declare(start: Callable[..., Server]) -> None:
    server = start()
    data = server.api(subscriber="reader@example.org").json()
    assert set(data) == Shown.__required_keys__
    nested = {"size": Size, "edition": EditionInfo, "recipient": RecipientInfo, "subscriber": SubscriberInfo}
    for key, declared in nested.items():
        assert set(data[key]) == declared.__required_keys__, key
    assert set(data["edition"]["window"]) == Window.__required_keys__
    assert {frozenset(item) for item in data["items"]} == {Item.__required_keys__}
    assert {frozenset(check) for check in data["checks"]} == {Check.__required_keys__}
    for failed in (server.api(list="weekly"), server.api(subscriber="nobody@example.org")):
        assert set(failed.json()) == Failed.__required_keys__
        assert set(failed.json()["error"]) == ErrorInfo.__required_keys__
        assert [set(problem) for problem in failed.json()["error"]["problems"]] == [Problem.__required_keys__]


def test_the_page_script_reads_only_declared_keys() -> None:
    script = (REPO / "digest" / "preview" / "static" / "app.js").read_text(encoding="utf-8")
    read = set(re.findall(rf"\b({'|'.join(SCRIPT_NAMES)})\.([a-z_]+)", script))
    assert {name for name, _key in read} == set(SCRIPT_NAMES)  # the names still mean these objects
    unknown = sorted(f"{name}.{key}" for name, key in read if key not in SCRIPT_NAMES[name].__required_keys__)
    assert not unknown, f"app.js reads keys the API does not declare: {unknown}"


def test_an_https_base_url_adds_one_click(make_project: MakeProject, start: Callable[..., Server]) -> None:
    server = start(make_project(extra='\n[server]\nbase_url = "https://news.example.org/digest"\n'))
    headers = server.api().json()["headers"]
    assert headers["List-Unsubscribe"].startswith("<https://news.example.org/digest/unsubscribe/")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_desks_variant_shows_only_those_desks(start: Callable[..., Server]) -> None:
    server = start()
    data = server.api(desks="Culture;business").json()
    assert data["variant"] == "Business;Culture" and data["selected_desks"] == ["Business", "Culture"]
    assert {item["desk"] for item in data["items"]} == {"Business", "Culture"}
    email_html = server.client.get("/email", params={"desks": "Culture;business"}).text
    assert TOP not in email_html and data["items"][0]["title"] in email_html
    bad = server.api(desks="Sport")
    assert bad.status_code == 400 and "Sport" in bad.json()["error"]["message"]


def test_a_subscriber_variant_has_their_name_desks_and_own_link(
    make_project: MakeProject, start: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project()
    (project.parent / "subscribers" / "daily.csv").write_text(
        "email,name,desks\nreader@example.org,Reader,\nanna@example.org,Anna Kovalenko,Culture\n"
    )
    server = start(project)
    demo = server.api(subscriber="ANNA@example.org").json()
    assert read_token(
        DEMO_SECRET, token_of(demo["recipient"]["unsubscribe_url"]), purpose=Purpose.UNSUBSCRIBE
    ) == (
        "daily",
        "anna@example.org",
    )
    assert demo["demo_secret"] is True
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    data = server.api(subscriber="anna@example.org").json()
    assert data["headers"]["To"] == "Anna Kovalenko <anna@example.org>"
    assert data["variant"] == "Culture" and {i["desk"] for i in data["items"]} == {"Culture"}
    assert data["subscriber"]["name"] == "Anna Kovalenko" and data["demo_secret"] is False
    link = data["recipient"]["unsubscribe_url"]
    assert read_token(SECRET.encode(), token_of(link), purpose=Purpose.UNSUBSCRIBE) == (
        "daily",
        "anna@example.org",
    )
    assert f"<{link}>" in data["headers"]["List-Unsubscribe"]
    page = server.client.get("/email", params={"subscriber": "anna@example.org"}).text
    assert "Hello, Anna Kovalenko" in page and link in page and link in data["text"]
    unknown = server.api(subscriber="nobody@example.org")
    assert unknown.status_code == 400 and "nobody@example.org" in unknown.json()["error"]["message"]


def test_bad_parameters_are_400(start: Callable[..., Server]) -> None:
    server = start()
    for params in ({"list": "weekly"}, {"date": "2026-13-01"}, {"date": "yesterday"}):
        answer = server.api(**params)
        assert answer.status_code == 400 and answer.json()["error"]["message"], params
    assert server.client.get("/email", params={"list": "weekly"}).status_code == 400


def test_a_wrong_day_says_what_is_wrong_with_it(start: Callable[..., Server]) -> None:
    server = start()
    answer = server.api(date="2026-13-01")
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "2026-13-01 is not a date: month must be 1–12"


def test_checks_catch_a_bad_link_and_an_image_without_alt(start: Callable[..., Server]) -> None:
    server = start()
    (server.root / "templates" / "digest.mjml.j2").write_text(
        "<mjml><mj-body><mj-section><mj-column>\n"
        '<mj-image src="https://news.example.org/logo.png" alt=""/>\n'
        "<mj-text><p>{{ placeholders.greeting }}</p>"
        '<p><a href="javascript:alert(1)">win</a> <a href="{{ placeholders.unsubscribe_url }}">Unsubscribe</a></p>'
        "</mj-text>\n</mj-column></mj-section></mj-body></mjml>\n"
    )
    checks = {check["id"]: check for check in server.api().json()["checks"]}
    assert checks["links"]["ok"] is False and "javascript:alert(1)" in checks["links"]["detail"]
    assert checks["images"]["ok"] is False and "logo.png" in checks["images"]["detail"]
    assert checks["unsubscribe"]["ok"] is True


def test_editing_a_template_sends_a_new_version(start: Callable[..., Server]) -> None:
    server = start()
    with server.client.stream("GET", "/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-store"
        lines = stream.iter_lines()
        assert next(lines) == "event: version"
        first = int(next(lines).removeprefix("data: "))
        started = time.monotonic()
        (server.root / "templates" / "subject.txt.j2").write_text("Edited: {{ top_headline }}\n")
        assert [next(lines) for _ in range(3)] == ["", "event: version", f"data: {first + 1}"]
        assert time.monotonic() - started < 2.0
    data = server.api().json()
    assert data["subject"] == f"Edited: {TOP}" and data["version"] == first + 1


def test_a_broken_template_is_reported_and_then_recovers(start: Callable[..., Server]) -> None:
    server = start()
    broken = server.root / "templates" / "digest.txt.j2"
    broken.write_text("{{ newsroom.name }}\n{% if %}\n")
    answer = server.api()
    assert answer.status_code == 200
    error = answer.json()["error"]
    assert error["template"].endswith("templates/digest.txt.j2") and error["line"] == 2, error
    assert "subject" not in answer.json() or answer.json().get("subject") is None
    page = server.client.get("/email")
    assert page.status_code == 200 and "could not be rendered" in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]
    broken.write_text("{{ newsroom.name }}\n{{ placeholders.unsubscribe_url }}\n")
    fixed = server.api().json()
    assert fixed["error"] is None and fixed["text"].startswith("The Morning Ledger\n")


def test_an_mjml_typo_is_reported_with_its_template_line(start: Callable[..., Server]) -> None:
    server = start()
    template = server.root / "templates" / "digest.mjml.j2"
    packaged = (default_template_dir() / "digest.mjml.j2").read_text()
    template.write_text(packaged.replace("<mj-body ", "<mj-bdoy ", 1))
    line = packaged[: packaged.index("<mj-body ")].count("\n") + 1
    error = server.api().json()["error"]
    assert error["message"] == "unknown MJML tag <mj-bdoy> (did you mean <mj-body>?)", error
    assert error["template"] == str(template) and error["line"] == line
    page = server.client.get("/email").text
    assert "unknown MJML tag &lt;mj-bdoy&gt;" in page and f"digest.mjml.j2:{line}" in page


def test_a_broken_config_is_reported_and_the_last_good_one_kept(start: Callable[..., Server]) -> None:
    server = start()
    good = server.project.read_text()
    server.project.write_text(good.replace("max_items = 8", "max_items = 8\ncolour = 1"))
    server.until(lambda: server.api().json()["error"] is not None)
    error = server.api().json()["error"]
    line = good.splitlines().index("max_items = 8") + 2
    assert "colour" in error["message"] and error["line"] == line and error["path"] == str(server.project)
    assert server.api().json()["lists"] == ["daily"]
    server.project.write_text(good)
    server.until(lambda: server.api().json()["error"] is None)


def test_a_config_with_several_mistakes_shows_each_with_its_line(start: Callable[..., Server]) -> None:
    server = start()
    good = server.project.read_text()
    server.project.write_text(
        good.replace("max_items = 8", 'max_items = "8"').replace('desk = "Business"', 'desk = "Sport"')
    )
    server.until(lambda: server.api().json()["error"] is not None)

    error = server.api().json()["error"]

    lines = server.project.read_text().splitlines()
    expected = [
        ('desks.max_items: must be a whole number, not "8"', lines.index('max_items = "8"') + 1),
        ("feeds[1].desk: desk 'Sport' is not in [desks] order", lines.index('desk = "Sport"') + 1),
    ]
    assert [(problem["path"], problem["line"]) for problem in error["problems"]] == [
        (str(server.project), line) for _message, line in expected
    ]
    for problem, (message, _line) in zip(error["problems"], expected, strict=True):
        assert problem["message"].startswith(message), problem
    assert (error["message"], error["line"]) == (error["problems"][0]["message"], expected[0][1])
    page = server.client.get("/email").text
    source = server.client.get("/source").text
    for message, line in expected:
        assert html.escape(message) in page and f"{server.project}:{line}" in page
        assert f"error: {message}" in source and f"  at {server.project}:{line}\n" in source


def test_nothing_is_written_to_the_state_database(start: Callable[..., Server]) -> None:
    server = start()
    server.api()
    assert not (server.root / "state").exists()  # a preview does not even create the database
    config = load_config(server.project)
    with open_store(config).migrate() as store:
        Sender(config, "daily", store, now=NOW).send()
    before = row_counts(server.project)
    assert before["editions"] == 1 and before["send_ledger"] == 1 and before["seen_items"] > 30
    following = server.api().json()  # the next edition: everything was just sent
    assert following["empty"] and following["items"] == [] and following["new_count"] == 0
    today = server.api(date="2026-11-25").json()
    assert len(today["items"]) == 30 and not any(item["new"] for item in today["items"])
    for params in ({}, {"date": "2026-11-25"}, {"desks": "Culture"}, {"subscriber": "reader@example.org"}):
        for path in ("/api/preview", "/email", "/source"):
            assert server.client.get(path, params=params).status_code == 200
    sent = server.client.post("/api/send-test", json={"to": "ed@example.org", "date": "2026-11-25"})
    assert sent.status_code == 200, sent.text
    assert row_counts(server.project) == before


def test_an_older_state_database_is_refused_not_upgraded(start: Callable[..., Server]) -> None:
    """Upgrading it would lock out the older digest that may be sending from it."""
    server = start()
    config = load_config(server.project)
    with open_store(config).migrate():
        pass
    path = server.project.parent / "state" / "digest.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("UPDATE digest_meta SET value = '3' WHERE key = 'schema_version'")
        db.execute("DROP INDEX ix_send_ledger_run")
    db.close()
    before = path.read_bytes()
    error = server.api().json()["error"]
    assert "schema version 3, older than this digest's" in error["message"]
    assert "a preview does not upgrade it" in error["message"] and error["path"] == str(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM digest_meta WHERE key = 'schema_version'").fetchone() == ("3",)
        assert db.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'ix_send_ledger_run'"
        ).fetchone() == (0,)
    db.close()
    assert path.read_bytes() == before


def test_an_empty_postgresql_database_is_read_as_a_first_run_and_left_empty(
    make_project: MakeProject, start: Callable[..., Server], postgres_url: str
) -> None:
    project = make_project(replace={'url = "sqlite:///state/digest.sqlite3"': f'url = "{postgres_url}"'})
    server = start(project)
    shown = server.api().json()
    assert (
        shown["error"] is None and len(shown["items"]) == 30 and all(item["new"] for item in shown["items"])
    )
    with psycopg.connect(postgres_url) as db:
        assert db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone() == (0,)


def outbox_messages(root: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=default)  # type: ignore[misc]
        for path in sorted((root / "outbox").rglob("*.eml"))
    ]


def test_a_test_send_goes_to_one_address_only(start: Callable[..., Server]) -> None:
    server = start()
    answer = server.client.post(
        "/api/send-test",
        json={"to": "editor@example.org", "subscriber": "reader@example.org", "desks": None},
        headers={"Origin": server.url},
    )
    assert answer.status_code == 200 and answer.json()["ok"] is True, answer.text
    assert answer.json()["message"].startswith("sent to editor@example.org")
    (message,) = outbox_messages(server.root)
    assert message["To"] == "Reader <editor@example.org>"
    assert message["Subject"].startswith("[TEST] ") and TOP in message["Subject"]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Hello, Reader" in html
    # The link in a test is the test address's own, never a subscriber's.
    assert read_token(DEMO_SECRET, token_of(message["List-Unsubscribe"]), purpose=Purpose.UNSUBSCRIBE) == (
        "daily",
        "editor@example.org",
    )
    assert row_counts(server.project).get("send_ledger", 0) == 0


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"to": "a@example.org,b@example.org"}, {}, 400),
        ({"to": "a@example.org; b@example.org"}, {}, 400),
        ({"to": "a@example.org b@example.org"}, {}, 400),
        ({"to": "not-an-address"}, {}, 400),
        ({"to": ["a@example.org"]}, {}, 400),
        ({"to": "a@example.org"}, {"Origin": "http://evil.example"}, 403),
        ({"to": "a@example.org"}, {"Origin": "null"}, 403),
        ({"to": "a@example.org", "transport": "sendgrid"}, {}, 400),
    ],
)
def test_a_test_send_refuses(
    start: Callable[..., Server], body: dict[str, object], headers: dict[str, str], status: int
) -> None:
    server = start()
    answer = server.client.post("/api/send-test", json=body, headers=headers)
    assert answer.status_code == status and answer.json()["ok"] is False and answer.json()["message"]
    assert outbox_messages(server.root) == []


def test_a_test_send_needs_json_and_a_secret_for_real_transports(
    make_project: MakeProject, start: Callable[..., Server]
) -> None:
    server = start(make_project(extra='\n[transports.smtp]\nbackend = "smtp"\nport = 9\n'))
    form = server.client.post("/api/send-test", data={"to": "a@example.org"})
    assert form.status_code == 403
    plain = server.client.post(
        "/api/send-test", content=b'{"to": "a@example.org"}', headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 403
    smtp = server.client.post("/api/send-test", json={"to": "a@example.org", "transport": "smtp"})
    assert smtp.status_code == 400 and "DIGEST_SECRET" in smtp.json()["message"]


@pytest.mark.parametrize(
    "target",
    [
        "/static/../config.toml",
        "/static/%2e%2e/config.toml",
        "/static/..%2fconfig.toml",
        "/static/..%2f..%2fconfig.toml",
        "//etc/passwd",
        "/..%2f..%2fetc/passwd",
        "/static/config.toml",
        "/static/",
        "/static/.%2findex.html",
        "/config.toml",
        "/feeds/world.xml",
    ],
)
def test_nothing_outside_the_page_is_served(start: Callable[..., Server], target: str) -> None:
    server = start()
    status, data = raw_get(server.port, target)
    assert status == 404, data[:200]
    assert b"[newsroom]" not in data and b"root:" not in data and b"<rss" not in data


def test_security_headers_and_methods(start: Callable[..., Server]) -> None:
    server = start()
    page = server.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == (
        "default-src 'self'; frame-src 'self'; img-src * data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'"
    )
    assert page.headers["x-content-type-options"] == "nosniff"
    assert server.client.get("/static/index.html").content == page.content
    mail = server.client.get("/email")
    assert mail.headers["content-type"] == "text/html; charset=utf-8"
    assert mail.headers["content-security-policy"] == (
        "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; script-src 'none'; "
        "frame-ancestors 'self'"
    )
    assert mail.headers["x-content-type-options"] == "nosniff" and mail.headers["cache-control"] == "no-store"
    assert server.client.get("/source").headers["content-type"] == "text/plain; charset=utf-8"
    assert server.client.request("PUT", "/").status_code == 405
    assert server.client.request("DELETE", "/api/preview").status_code == 405
    assert server.client.get("/api/send-test").status_code == 405
    # A site that rebinds its DNS name to 127.0.0.1 arrives with its own Host.
    assert server.client.get("/api/preview", headers={"Host": "evil.example"}).status_code == 400


def test_the_command_serves_until_sigterm(project: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "digest", "--config", str(project), "preview", "--port", "0"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Preview: http://127.0.0.1:"), line
        url = line.split()[1]
        assert httpx.get(url, timeout=10).status_code == 200
        assert httpx.get(f"{url}api/preview", timeout=10).json()["lists"] == ["daily"]
        assert httpx.head(f"{url}events", timeout=10).status_code == 200
        with httpx.stream("GET", f"{url}events", timeout=10) as events:
            lines = events.iter_lines()
            assert next(lines) == "event: version"
            process.send_signal(signal.SIGTERM)
            assert list(lines) == ["data: 1", ""]  # the stream ends with the server
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("href", "ok"),
    [
        ("https://news.example.org/a?b=c#d", True),
        ("http://127.0.0.1:8080/unsubscribe/x.y", True),
        ("mailto:desk@news.example.org", True),
        ("javascript:alert(1)", False),
        ("//news.example.org/a", False),
        ("/relative", False),
        ("https://", False),
        ("https://news.example.org/a b", False),
        ("https://news.example.org:port/", False),
        ("https://[::1/", False),
        ("", False),
    ],
)
def test_link_check(href: str, ok: bool) -> None:
    assert is_web_link(href) is ok
    assert link_check([href])["ok"] is ok


def test_an_oversized_test_send_is_refused(start: Callable[..., Server]) -> None:
    server = start()
    answer = server.client.post(
        "/api/send-test",
        content=b'{"to": "' + b"a" * 70_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413 and outbox_messages(server.root) == []
