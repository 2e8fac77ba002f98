"""The SendGrid key, the SMTP password and $DIGEST_SECRET never show, whatever goes wrong.

Each command runs as a real process (`python -m digest`), so what is checked is what an operator
or a log collector would see: stdout, stderr with the real logging setup (--debug tracebacks,
--log-format json), every HTTP answer the servers give, and every file the run leaves behind
(the outbox, the state database). All of it is grepped for each secret and for the encodings
it could hide in: base64 at any alignment (AUTH PLAIN and LOGIN, HTTP Basic), hex, URL quoting.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from digest.send.unsubscribe import Purpose, read_token
from tests.conftest import MakeProject
from tests.sendgrid_sink import Reply, SendGridSink, errors
from tests.smtpd import SmtpServer
from tests.test_send import fresh_feeds

SMTP_USER = "ledger-mailer"
SMTP_PASSWORD = "Smtp-Pw-7f3Q9zK-canary"
SENDGRID_KEY = "SG.LeakCanary-4tW8mXr2.bQ7vN1sE9kL3xP0a"
DIGEST_SECRET = "Digest-Secret-Zq81-canary-0123456789"
SECRETS = {"SMTP password": SMTP_PASSWORD, "SendGrid key": SENDGRID_KEY, "DIGEST_SECRET": DIGEST_SECRET}
ENV = {"SMTP_USER": SMTP_USER, "SMTP_PASSWORD": SMTP_PASSWORD, "SENDGRID_API_KEY": SENDGRID_KEY}
SUBSCRIBERS = "email,name\nanna@example.org,Anna\nbob@example.org,Bob\n"


def encodings(secret: str) -> set[bytes]:
    """Byte strings at least one of which any of these encodings of ``secret`` must contain."""
    raw = secret.encode()
    found = {raw, quote(secret, safe="").encode(), raw.hex().encode(), raw.hex().upper().encode()}
    # Base64 of a longer buffer (b"\0user\0password", b"user:password") contains the encoding of
    # the whole 3-byte groups of the secret; which groups depends on where in the buffer it starts.
    for shift in range(3):
        chunk = raw[shift:]
        chunk = chunk[: len(chunk) // 3 * 3]
        found |= {base64.b64encode(chunk), base64.urlsafe_b64encode(chunk)}
    return found


def leaks(haystack: bytes | str, secrets: dict[str, str] = SECRETS) -> list[str]:
    data = haystack.encode() if isinstance(haystack, str) else haystack
    return [
        f"{label} as {form!r}"
        for label, secret in secrets.items()
        for form in encodings(secret)
        if form in data
    ]


def left_behind(root: Path) -> dict[str, bytes]:
    """Every file under ``root``: the config, the outbox, the state database and its journals."""
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def assert_nothing_leaked(
    tmp_path: Path, *outputs: bytes | str, secrets: dict[str, str] = SECRETS, besides: str = ""
) -> None:
    """No secret in any of ``outputs`` nor in any file under ``tmp_path`` (but ``besides``)."""
    for number, output in enumerate(outputs):
        assert not leaks(output, secrets), (number, leaks(output, secrets), output)
    for name, data in left_behind(tmp_path).items():
        assert name == besides or not leaks(data, secrets), (name, leaks(data, secrets))


def digest(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m digest --config PROJECT ARGS`, as cron would run it, in a folder of its own."""
    cwd = project.parent.parent / "cwd"  # files a bug writes to the working folder get grepped too
    cwd.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(project), *args],
        cwd=cwd,
        env={**os.environ, "DIGEST_SECRET": DIGEST_SECRET, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def mail_project(make_project: MakeProject, alias: str, options: str) -> Path:
    """A project sending today's (freshened) stories to two readers through ``[transports.ALIAS]``."""
    project = make_project(
        replace={'transport = "outbox"': f'transport = "{alias}"'},
        extra=f'\n[transports.{alias}]\n{options}\n\n[server]\nbase_url = "https://news.example.org"\n',
    )
    (project.parent / "subscribers" / "daily.csv").write_text(SUBSCRIBERS)
    fresh_feeds(project)
    return project


def smtp_options(server: SmtpServer, **more: int) -> str:
    options = {"port": server.port, "username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD", **more}
    return "\n".join(f"{key} = {json.dumps(value)}" for key, value in {"backend": "smtp", **options}.items())


def test_the_grep_sees_through_the_encodings() -> None:
    """The check itself: it finds a secret however an SMTP or HTTP client would have encoded it."""
    pw = SMTP_PASSWORD.encode()
    for prefix in (b"", b"x", b"xy"):
        assert leaks(base64.b64encode(prefix + b"\0" + SMTP_USER.encode() + b"\0" + pw))  # AUTH PLAIN
        assert leaks(base64.b64encode(prefix + pw))  # AUTH LOGIN
        assert leaks(b"Basic " + base64.b64encode(prefix + SMTP_USER.encode() + b":" + pw))
    assert leaks(json.dumps({"url": f"https://x/?k={quote(SENDGRID_KEY)}"}))
    assert leaks(f"secret={DIGEST_SECRET.encode().hex()}")
    assert not leaks(f"{SMTP_PASSWORD[:-1]} {SENDGRID_KEY[1:]} {DIGEST_SECRET[:20]}")


LOGGING = [["--debug"], ["--log-format", "json"], ["--debug", "--log-format", "json"]]


def test_a_refused_smtp_login_never_shows_the_password(make_project: MakeProject, tmp_path: Path) -> None:
    with SmtpServer(auth=(SMTP_USER, "the-right-password-is-different")) as server:
        project = mail_project(make_project, "mail", smtp_options(server, connections=2, retries=0))
        runs = [digest(project, *flags, "send", "--list", "daily", env=ENV) for flags in LOGGING]
    assert server.messages == [] and server.logins == []
    for result in runs:
        assert result.returncode == 1, result.stderr
        assert "535" in result.stderr and "$SMTP_PASSWORD" in result.stderr  # the real error got out
        assert_nothing_leaked(tmp_path, result.stdout, result.stderr)
    assert "Traceback" in runs[0].stderr  # --debug did show the traceback: it was grepped too


def test_a_successful_smtp_send_leaves_no_secret_anywhere(make_project: MakeProject, tmp_path: Path) -> None:
    with SmtpServer(auth=(SMTP_USER, SMTP_PASSWORD)) as server:
        project = mail_project(make_project, "mail", smtp_options(server, connections=1))
        built = digest(project, "--debug", "build", "--out", str(project.parent / "build"), env=ENV)
        result = digest(project, "--debug", "--log-format", "json", "send", "--list", "daily", env=ENV)
        messages = server.messages
        logins = server.logins
    assert built.returncode == 0 and result.returncode == 0, built.stderr + result.stderr
    files = left_behind(tmp_path)
    assert {"project/build/daily.eml", "project/state/digest.sqlite3"} <= set(files)  # all grepped below
    assert logins == [SMTP_USER] and len(messages) == 2
    for message in messages:
        # The links are signed with the secret (so it was used), yet it is in no message.
        token = message.data.split(b"/unsubscribe/", 1)[1].split(b">", 1)[0].decode()
        assert read_token(DIGEST_SECRET.encode(), token, purpose=Purpose.UNSUBSCRIBE) == (
            "daily",
            message.rcpt_tos[0],
        )
    outputs = [built.stdout, built.stderr, result.stdout, result.stderr]
    assert_nothing_leaked(tmp_path, *outputs, *(m.data for m in messages))


def echo_key(status: int) -> Reply:
    # A gateway that echoes the Authorization header in its error: the key must not be logged
    # from the answer either.
    return Reply(status, errors(f"invalid credentials: Bearer {SENDGRID_KEY} ({SENDGRID_KEY})"))


@pytest.mark.parametrize(("status", "flags"), [(401, LOGGING[0]), (403, LOGGING[1]), (500, LOGGING[2])])
def test_a_failing_sendgrid_send_never_shows_the_key(
    make_project: MakeProject, tmp_path: Path, status: int, flags: list[str]
) -> None:
    with SendGridSink(default=echo_key(status)) as sink:
        options = f'backend = "sendgrid"\napi_url = "{sink.url}"\nretries = 1\nbackoff = 0'
        project = mail_project(make_project, "sg", options)
        result = digest(project, *flags, "send", "--list", "daily", env=ENV)
    assert sink.requests and sink.requests[0].headers["authorization"] == f"Bearer {SENDGRID_KEY}"
    assert result.returncode == 1, result.stderr
    assert f"SendGrid answered {status}" in result.stderr
    assert_nothing_leaked(tmp_path, result.stdout, result.stderr)


def test_suppressions_sync_never_shows_the_key(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project()
    rows = [{"email": "gone@example.org", "created": 1}]
    with SendGridSink(script=[echo_key(401), echo_key(401)], default=Reply(200, rows)) as sink:
        project.write_text(
            project.read_text() + f'\n[transports.sg]\nbackend = "sendgrid"\napi_url = "{sink.url}"\n'
        )
        failed = [digest(project, *flags, "suppressions", "sync", env=ENV) for flags in LOGGING[::2]]
        synced = digest(project, "--debug", "suppressions", "sync", env=ENV)
    assert all(r.headers["authorization"] == f"Bearer {SENDGRID_KEY}" for r in sink.requests)
    for result in failed:
        assert result.returncode == 1 and "SendGrid answered 401" in result.stderr
    assert synced.returncode == 0, synced.stderr
    assert "Bearer [redacted]" in synced.stderr  # the library's debug log of its headers was there
    outputs = [text for r in [*failed, synced] for text in (r.stdout, r.stderr)]
    assert_nothing_leaked(tmp_path, *outputs)


SHORT_SECRET = "ShortCanary-9"  # 13 bytes: refused, and the refusal must not quote it
PG_PASSWORD = "Pg-Pw-In-Url-5rT2-canary"
STATE = "sqlite:///state/digest.sqlite3"
# (config.toml changes, config.toml additions, environment): each fails before anything is sent.
MISPLACED = {
    "an API key in config.toml": (
        {},
        f'\n[transports.sg]\nbackend = "sendgrid"\napi_key = "{SENDGRID_KEY}"\n',
        {},
    ),
    "a password in config.toml": (
        {},
        f'\n[transports.mail]\nbackend = "smtp"\npassword = "{SMTP_PASSWORD}"\n',
        {},
    ),
    "a password in the state URL": ({STATE: f"postgresql://digest:{PG_PASSWORD}@db.invalid/digest"}, "", {}),
    "a secret too short": ({}, "", {"DIGEST_SECRET": SHORT_SECRET}),
}
SEND, SERVE = ["send", "--list", "daily"], ["serve", "--port", "0"]


# serve reads the secret on a path of its own, so it gets the short secret too.
@pytest.mark.parametrize(
    ("case", "command"), [*((case, SEND) for case in MISPLACED), ("a secret too short", SERVE)]
)
def test_a_refused_configuration_does_not_repeat_the_secret(
    make_project: MakeProject, tmp_path: Path, case: str, command: list[str]
) -> None:
    replace, extra, env = MISPLACED[case]
    project = make_project(replace=replace, extra=extra)
    result = digest(project, "--debug", "--log-format", "json", *command, env={**ENV, **env})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" in result.stderr  # --debug: the whole chain of exceptions is grepped
    secrets = {**SECRETS, "short secret": SHORT_SECRET, "state password": PG_PASSWORD}
    # Only the file the editor put it in still holds it.
    assert_nothing_leaked(
        tmp_path, result.stdout, result.stderr, secrets=secrets, besides="project/config.toml"
    )


# -- the servers --------------------------------------------------------------------------------


@contextmanager
def started(
    project: Path, *args: str, env: dict[str, str], cwd: Path | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A long-running `digest ... serve|preview --port 0` and the line announcing its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(project), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "DIGEST_SECRET": DIGEST_SECRET, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(30)
        assert line and "http://" in line[0], (line, process.poll())
        yield process, line[0]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()  # reaps it and closes the pipes


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    return out, err


def test_an_outbox_send_then_serve_show_no_secret_in_output_answers_or_files(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project()
    fresh_feeds(project)
    sent = digest(project, "--debug", "send", "--list", "daily", env=ENV)
    assert sent.returncode == 0, sent.stderr
    (eml,) = (project.parent / "outbox").rglob("*.eml")
    token = eml.read_text().split("/unsubscribe/", 1)[1].split(">", 1)[0]
    with started(project, "--debug", "serve", "--port", "0", env=ENV) as (process, line):
        url = "http://" + line.split("http://", 1)[1].split()[0].rstrip("/") + "/unsubscribe/"
        with httpx.Client(timeout=10) as client:
            answers = [
                client.get(url.replace("/unsubscribe/", "/healthz")),
                client.get(url + token),
                client.post(url + token, data={"List-Unsubscribe": "One-Click"}),
                client.post(url + token[:-4], data={"List-Unsubscribe": "One-Click"}),
            ]
        assert [a.status_code for a in answers] == [200, 200, 200, 400]
        out, err = stop(process)
    assert "unsubscribed re***@example.org from daily" in err  # the log was on, and grepped
    outputs = [sent.stdout, sent.stderr, line, out, err]
    assert_nothing_leaked(
        tmp_path, *outputs, *(a.content for a in answers), *(str(a.headers) for a in answers)
    )


def test_preview_shows_no_secret_even_when_a_test_send_is_refused(
    make_project: MakeProject, tmp_path: Path
) -> None:
    with SmtpServer(auth=(SMTP_USER, "the-right-password-is-different")) as server:
        project = mail_project(make_project, "mail", smtp_options(server, connections=1, retries=0))
        with started(project, "--debug", "preview", "--port", "0", env=ENV) as (process, line):
            url = line.split()[1].rstrip("/")
            with httpx.Client(base_url=url, timeout=20) as client:
                answers = [
                    client.get("/api/preview"),
                    client.get("/email", params={"subscriber": "anna@example.org"}),
                    client.get("/source"),
                    client.post("/api/send-test", json={"to": "editor@example.org", "transport": "mail"}),
                ]
            out, err = stop(process)
    preview, *_, refused = answers
    assert preview.json()["demo_secret"] is False  # the real secret signed the links
    assert refused.json()["ok"] is False and "535" in refused.json()["message"]  # the login was tried
    assert_nothing_leaked(tmp_path, line, out, err, *(a.content for a in answers))
