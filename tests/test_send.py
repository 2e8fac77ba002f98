"""`digest send` end to end: real SQLite ledger, real SMTP server, real processes."""

from __future__ import annotations

import email
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from email import policy
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner, Result

import digest.send.run
from digest.cli import cli
from digest.render import render_greeting
from tests.conftest import NOW, REPO, MakeProject
from tests.smtpd import SmtpServer

SECRET = "test-secret-for-unsubscribe-links-0123"
SUBSCRIBERS = """\
email,name,desks,status
anna@example.org,Anna Koval,,
bob@example.org,Bob Marsh,Business,active
Carla@Example.org,Carla Ruiz,Culture;Ukraine,
dave@example.org,Dave Old,,unsubscribed
erin@example.org,,Europe,
not-an-address,Broken Row,,
anna@EXAMPLE.org,Anna Again,,
"""


def smtp_project(
    make_project: MakeProject, server: SmtpServer, csv: str = SUBSCRIBERS, **smtp: object
) -> Path:
    options = {
        "host": "127.0.0.1",
        "port": server.port,
        "connections": 2,
        "backoff": 0.01,
        "retries": 1,
        **smtp,
    }
    table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in options.items())
    path = make_project(
        replace={'transport = "outbox"': 'transport = "mail"'},
        extra=f'\n[transports.mail]\nbackend = "smtp"\n{table}\n\n[server]\nbase_url = "https://news.example.org"\n',
    )
    (path.parent / "subscribers" / "daily.csv").write_text(csv, encoding="utf-8")
    return path


def run(project: Path, *args: str, secret: str | None = SECRET) -> Result:
    env = {"DIGEST_SECRET": secret} if secret else {}
    with time_machine.travel(NOW, tick=False):
        return CliRunner().invoke(cli, ["--config", str(project), *args], env=env)


def received(server: SmtpServer) -> dict[str, list[email.message.EmailMessage]]:
    by_address: dict[str, list[email.message.EmailMessage]] = {}
    for message in server.messages:
        parsed = email.message_from_bytes(message.data, policy=policy.default)
        for address in message.rcpt_tos:
            by_address.setdefault(address, []).append(parsed)  # type: ignore[arg-type]
    return by_address


def text_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


@pytest.fixture
def server() -> SmtpServer:
    with SmtpServer() as smtp:
        yield smtp


def test_sends_each_subscriber_their_variant_once(make_project: MakeProject, server: SmtpServer) -> None:
    project = smtp_project(make_project, server)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    assert "daily-2026-11-25: sent 4, skipped 0, suppressed 1, failed 0" in result.output
    # The broken row is reported with its file and line; the duplicate row is not sent twice.
    assert "daily.csv:7:" in result.stderr
    inbox = received(server)
    assert sorted(inbox) == ["anna@example.org", "bob@example.org", "carla@example.org", "erin@example.org"]
    assert all(len(messages) == 1 for messages in inbox.values())
    bob = text_of(inbox["bob@example.org"][0])
    assert "\nBusiness\n========\n" in bob and "\nUkraine\n=======\n" not in bob
    carla = text_of(inbox["carla@example.org"][0])
    assert carla.index("\nUkraine\n") < carla.index("\nCulture\n")  # the newsroom's order
    assert "\nBusiness\n" not in carla
    anna = inbox["anna@example.org"][0]
    assert text_of(anna).startswith("The Morning Ledger\n")
    assert "Hello, Anna Koval," in text_of(anna)
    assert anna["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/")
    assert anna["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert anna["Message-ID"].startswith("<daily-2026-11-25.")

    again = run(project, "send", "--list", "daily")
    assert again.exit_code == 0
    assert len(server.messages) == 4  # a second run sends nobody anything


def test_the_frozen_edition_marks_its_stories_seen(
    make_project: MakeProject, server: SmtpServer, tmp_path: Path
) -> None:
    project = smtp_project(make_project, server)
    assert run(project, "send", "--list", "daily").exit_code == 0
    later = run(project, "build", "--out", str(tmp_path / "out"))
    assert "daily: empty edition" in later.output


def test_suppressed_and_unsubscribed_addresses_are_never_sent(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = smtp_project(make_project, server)
    result = run(project, "subscribers", "unsubscribe", "ANNA@example.org", "--list", "daily")
    assert result.exit_code == 0 and "anna@example.org unsubscribed from daily" in result.output
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0
    assert "suppressed 2" in result.output
    assert "anna@example.org" not in received(server)
    assert "dave@example.org" not in received(server)


def test_a_recipient_refused_for_good_is_suppressed_and_never_retried(
    make_project: MakeProject, server: SmtpServer
) -> None:
    # Retrying a "no such user" made every later run fail (exit 1) for ever. Now the refusal
    # is a hard bounce: recorded, the address suppressed for every list, the row not retried,
    # and, being handled, it does not make the send fail.
    project = smtp_project(make_project, server)
    server.reply("550 5.1.1 No such user", to="erin@example.org", times=1)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.stderr
    assert "failed 0, bounced 1 (refused for good, now suppressed)" in result.output
    again = run(project, "send", "--list", "daily")
    assert again.exit_code == 0, again.stderr
    assert "sent 0 now (3 earlier), skipped 0, suppressed 1, failed 0, bounced 1" in again.output
    assert Counter(a for m in server.messages for a in m.rcpt_tos)["erin@example.org"] == 0
    assert len(server.messages) == 3
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        rows = db.execute(
            "SELECT reason, list_name FROM suppressions WHERE email = 'erin@example.org'"
        ).fetchall()
        assert rows == [("bounced", "*")]
        events = db.execute("SELECT source, kind, edition_id FROM delivery_events").fetchall()
        assert [(source, kind) for source, kind, _ in events] == [("smtp", "hard_bounce")]


def test_a_refusal_about_the_sender_is_retried_and_suppresses_no_one(
    make_project: MakeProject, server: SmtpServer
) -> None:
    # 5.7.1 (relaying denied, policy) is about us, not the address: suppressing readers for
    # it could empty a list in one send.
    project = smtp_project(make_project, server)
    server.reply("554 5.7.1 Relay access denied", to="erin@example.org", times=1)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 1
    assert "failed erin@example.org: 554 5.7.1 Relay access denied" in result.stderr
    retry = run(project, "send", "--list", "daily")
    assert retry.exit_code == 0, retry.stderr
    assert "sent 1 now (3 earlier), skipped 0, suppressed 1, failed 0" in retry.output


def test_dry_run_changes_nothing(make_project: MakeProject, server: SmtpServer) -> None:
    project = smtp_project(make_project, server)
    result = run(project, "send", "--list", "daily", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "dry run, nothing sent: would send 4 messages" in result.output
    assert "variant Business: 1" in result.output
    assert server.messages == []
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM send_ledger").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM editions").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM seen_items").fetchone()[0] == 0


def test_real_transports_refuse_to_send_without_a_secret(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = smtp_project(make_project, server)
    result = run(project, "send", "--list", "daily", secret=None)
    assert result.exit_code == 1
    assert "DIGEST_SECRET is not set" in result.stderr
    assert server.messages == []


def test_the_greeting_is_worded_by_the_newsrooms_template(
    make_project: MakeProject, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = smtp_project(make_project, server)
    (project.parent / "templates" / "greeting.txt.j2").write_text(
        "{% if name %}Добрий ранок, {{ name }}{% else %}Добрий ранок{% endif %}\n", encoding="utf-8"
    )
    worded: list[object] = []
    monkeypatch.setattr(
        digest.send.run, "render_greeting", lambda env: worded.append(env) or render_greeting(env)
    )

    assert run(project, "send", "--list", "daily").exit_code == 0
    assert run(project, "build", "--out", str(project.parent / "build")).exit_code == 0

    by_address = received(server)
    bob, erin = by_address["bob@example.org"][0], by_address["erin@example.org"][0]  # erin has no name
    assert "\n\nДобрий ранок, Bob Marsh,\n\n" in text_of(bob) and "\n\nДобрий ранок,\n\n" in text_of(erin)
    html = bob.get_body(("html",))
    assert html is not None and ">Добрий ранок, Bob Marsh,</p>" in html.get_content()
    assert len(worded) == 1  # worded once for the whole send; each name put in its place
    built = (project.parent / "build" / "daily.txt").read_text(encoding="utf-8")
    assert "\n\nДобрий ранок,\n\n" in built and "Hello" not in built


def test_outbox_sends_without_a_secret_but_warns(project: Path) -> None:
    result = run(project, "send", "--list", "daily", secret=None)
    assert result.exit_code == 0, result.stderr
    assert "DIGEST_SECRET is not set" in result.stderr
    files = list((project.parent / "outbox" / "daily-2026-11-25").glob("*.eml"))
    assert len(files) == 1  # the project's one subscriber


def test_an_empty_edition_sends_nothing(make_project: MakeProject, server: SmtpServer) -> None:
    project = smtp_project(make_project, server)
    with time_machine.travel(NOW.replace(month=12), tick=False):
        result = CliRunner().invoke(
            cli, ["--config", str(project), "send", "--list", "daily"], env={"DIGEST_SECRET": SECRET}
        )
    assert result.exit_code == 0
    assert "empty edition" in result.output
    assert server.messages == []


# -- a real process, killed ------------------------------------------------------------------


def fresh_feeds(project: Path) -> None:
    """The example stories with today's dates: a subprocess runs on the real clock."""
    subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "freshen.py"),
            "--src",
            str(REPO / "examples" / "stories"),
            "--dest",
            str(project.parent / "feeds"),
        ],
        check=True,
        capture_output=True,
    )


def digest_process(project: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(project), "send", "--list", "daily"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


CROWD = "email,name\n" + "".join(f"reader{n:03d}@example.org,Reader {n}\n" for n in range(300))


def test_kill_9_mid_send_then_resume_sends_everyone_exactly_once(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = smtp_project(make_project, server, csv=CROWD, connections=2)
    fresh_feeds(project)
    server.slow(0.01)  # about 15 s for the list, so the kill lands mid-send
    first = digest_process(project)
    wait_for(lambda: len(server.messages) >= 60)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    before = len(server.messages)
    assert before < 300, "the send finished before it could be killed"
    server.clear_faults()
    second = digest_process(project)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, out + err
    counts = Counter(address for message in server.messages for address in message.rcpt_tos)
    assert sorted(counts) == [f"reader{n:03d}@example.org" for n in range(300)]  # nobody skipped
    twice = [address for address, count in counts.items() if count > 1]
    assert all(count <= 2 for count in counts.values())
    # The documented window: only messages of the batch in flight at the kill, resent
    # with the same Message-ID so the receiver can tell.
    assert len(twice) <= 40, twice
    for address in twice:
        ids = {m.message_id for m in server.messages if address in m.rcpt_tos}
        assert len(ids) == 1
    # The resumed run counts only what it sent itself; the killed run sent the rest.
    counted = re.search(r"sent (\d+) now \((\d+) earlier\)", out)
    assert counted and sum(map(int, counted.groups())) == 300, out


def test_sigterm_finishes_the_batch_in_flight_and_exits_cleanly(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = smtp_project(make_project, server, csv=CROWD, connections=1)
    fresh_feeds(project)
    server.slow(0.01)
    process = digest_process(project)
    wait_for(lambda: len(server.messages) >= 30)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "finishing the batch in flight" in err
    delivered = len(server.messages)
    assert delivered < 300
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        sent = db.execute("SELECT count(*) FROM send_ledger WHERE status = 'sent'").fetchone()[0]
        sending = db.execute("SELECT count(*) FROM send_ledger WHERE status = 'sending'").fetchone()[0]
    assert sent == delivered and sending == 0  # everything that went out is recorded
    server.clear_faults()
    rest = digest_process(project)
    rest.communicate(timeout=120)
    counts = Counter(address for message in server.messages for address in message.rcpt_tos)
    assert len(counts) == 300 and set(counts.values()) == {1}
