"""The sending-side commands as users run them: subscribers, suppressions sync, serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_config
from digest.errors import DigestError
from digest.send.sendgrid_sync import sync
from digest.send.unsubscribe import Purpose, make_token
from digest.state import Store
from tests.conftest import MakeProject
from tests.sendgrid_sink import Reply, SendGridSink
from tests.test_send import run

SECRET = "test-secret-for-unsubscribe-links-0123"


def test_subscribers_check_reports_counts_and_problems(make_project: MakeProject) -> None:
    project = make_project()
    (project.parent / "subscribers" / "daily.csv").write_text(
        "email,name,desks\nanna@example.org,Anna,\nbad-address,Bad,\nANNA@example.org,Anna again,\nbo@example.org,Bo,Sport\n"
    )
    result = CliRunner().invoke(cli, ["--config", str(project), "subscribers", "check"])
    assert result.exit_code == 1
    assert "daily (" in result.output and "5 rows" not in result.output
    assert "4 rows, 1 active, 0 unsubscribed, 2 invalid, 1 duplicates" in result.output
    assert "daily.csv:3:" in result.output and "daily.csv:4: duplicate of line 2" in result.output
    assert "daily.csv:5:" in result.output and "Sport" in result.output


def test_subscribers_check_passes_a_clean_list(project: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(project), "subscribers", "check", "--list", "daily"])
    assert result.exit_code == 0, result.output
    assert "1 rows, 1 active" in result.output


def test_unsubscribe_rejects_a_non_address_and_an_unknown_list(project: Path) -> None:
    bad = CliRunner().invoke(
        cli, ["--config", str(project), "subscribers", "unsubscribe", "nope", "--list", "daily"]
    )
    assert bad.exit_code == 1 and "not an email address" in bad.stderr
    unknown = CliRunner().invoke(
        cli, ["--config", str(project), "subscribers", "unsubscribe", "a@example.org", "--list", "weekly"]
    )
    assert unknown.exit_code == 1 and "no list named 'weekly'" in unknown.stderr


def test_suppressions_sync_pages_through_sendgrid_and_the_next_send_skips_them(
    make_project: MakeProject,
) -> None:
    def page(request) -> Reply:  # type: ignore[no-untyped-def]
        offset = int(request.query.get("offset", ["0"])[0])
        if request.path.endswith("/bounces"):
            rows = [
                {"email": f"bounced{n}@example.org", "created": 1}
                for n in range(offset, min(offset + 500, 620))
            ]
        elif request.path.endswith("/spam_reports") and offset == 0:
            rows = [{"email": "reader@example.org", "created": 1}]
        else:
            rows = []
        return Reply(200, rows)

    with SendGridSink(default=page) as sink:
        project = make_project(extra=f'\n[transports.sg]\nbackend = "sendgrid"\napi_url = "{sink.url}"\n')
        result = CliRunner().invoke(
            cli,
            ["--config", str(project), "suppressions", "sync"],
            env={"SENDGRID_API_KEY": "SG.sync-test-key"},
        )
        assert result.exit_code == 0, result.output + result.stderr
        assert "bounced 620" in result.output and "complained 1" in result.output
        offsets = [r.query.get("offset", ["0"])[0] for r in sink.requests if r.path.endswith("/bounces")]
        assert offsets == ["0", "500"]
        assert all(r.headers["authorization"] == "Bearer SG.sync-test-key" for r in sink.requests)
    sent = run(project, "send", "--list", "daily")
    assert sent.exit_code == 0
    assert "sent 0, skipped 0, suppressed 1" in sent.output  # the project's one reader complained


def test_suppressions_sync_needs_the_key(make_project: MakeProject) -> None:
    project = make_project(extra='\n[transports.sg]\nbackend = "sendgrid"\n')
    result = CliRunner().invoke(cli, ["--config", str(project), "suppressions", "sync"])
    assert result.exit_code == 1 and "SENDGRID_API_KEY is not set" in result.stderr


def test_the_library_syncs_without_the_cli_from_the_transport_named(make_project: MakeProject) -> None:
    def one_each(request) -> Reply:  # type: ignore[no-untyped-def]
        return Reply(200, [{"email": f"{request.path.rsplit('/', 1)[-1]}@example.org", "created": 1}])

    with SendGridSink(default=one_each) as sink:
        extra = "".join(
            f'\n[transports.{alias}]\nbackend = "sendgrid"\napi_url = "{sink.url}"\n'
            for alias in ("sg", "sg2")
        )
        config = load_config(make_project(extra=extra))
        with pytest.raises(DigestError, match="name one SendGrid transport"):
            sync(config, env={"SENDGRID_API_KEY": "SG.key"})
        with pytest.raises(DigestError, match="no SendGrid transport"):
            sync(config, "outbox", env={"SENDGRID_API_KEY": "SG.key"})
        with pytest.raises(DigestError, match="SENDGRID_API_KEY is not set"):
            sync(config, "sg", env={})
        counts = sync(config, "sg2", env={"SENDGRID_API_KEY": "SG.key"})
    assert counts == {"unsubscribed": 1, "bounced": 1, "complained": 1}


def test_unknown_transport_alias(project: Path) -> None:
    result = run(project, "send", "--list", "daily", "--transport", "pigeon")
    assert result.exit_code == 1 and "no transport named 'pigeon'" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_records_a_one_click_unsubscribe(project: Path) -> None:
    port = free_port()
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(project), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (
                    process.stderr.read() if process.poll() is not None else ""
                )
                time.sleep(0.05)
        token = make_token(SECRET.encode(), "daily", "reader@example.org", purpose=Purpose.UNSUBSCRIBE)
        page = httpx.get(f"{base}/unsubscribe/{token}")
        assert page.status_code == 200 and "<form" in page.text
        done = httpx.post(f"{base}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and "location" not in done.headers
        forged = httpx.post(f"{base}/unsubscribe/{token[:-3]}abc", data={"List-Unsubscribe": "One-Click"})
        assert forged.status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=10)
    with Store(f"sqlite:///{project.parent / 'state' / 'digest.sqlite3'}").migrate() as store:
        record = store.suppressions.is_suppressed("reader@example.org", "daily")
        assert record is not None and record.source == "one-click"
        assert store.suppressions.is_suppressed("reader@example.org", "weekly") is None


def test_serve_refuses_to_start_without_a_secret(project: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(project), "serve", "--port", "1"])
    assert result.exit_code == 1 and "DIGEST_SECRET is not set" in result.stderr
