"""Faults of the mail provider, through `digest send` and the real ledger: nothing lost, nobody twice.

Each test runs the real command against a misbehaving server (tests/smtpd.py, tests/sendgrid_sink.py),
then checks what a person running it relies on: the exit code, the summary, one ledger row per
recipient saying sent (with the provider's id) or failed (with the provider's reply), and that
the next run sends exactly the failed ones. How a transport retries is tested on its own in
test_smtp_transport.py and test_sendgrid_transport.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import time_machine
from click.testing import CliRunner, Result

from digest.cli import cli
from tests.conftest import NOW, MakeProject
from tests.sendgrid_sink import Reply, Request, SendGridSink, errors
from tests.smtpd import SmtpServer, free_port
from tests.test_send import SECRET, run, server, smtp_project

__all__ = ["server"]

EDITION = "daily-2026-11-25"


@dataclass(frozen=True)
class Row:
    status: str
    error: str | None
    provider_id: str | None
    attempts: int


def ledger_rows(project: Path) -> dict[str, Row]:
    """The edition's ledger, one row per recipient."""
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        rows = db.execute(
            "SELECT email, status, error, provider_id, attempts FROM send_ledger WHERE edition_id = ?",
            (EDITION,),
        ).fetchall()
    return {email: Row(*rest) for email, *rest in rows}


def statuses(project: Path) -> dict[str, str]:
    return {email: row.status for email, row in ledger_rows(project).items()}


def csv_of(addresses: list[str]) -> str:
    return "email,name\n" + "".join(f"{address},{address.split('@')[0].title()}\n" for address in addresses)


# -- SMTP ------------------------------------------------------------------------------------

# Who meets which fault, and what the first run must make of it.
SMTP_CASES = {
    "plain@example.org": "sent",
    "busy@example.org": "sent",  # 451 once, then accepted
    "closing@example.org": "sent",  # 421 (the server hangs up), then accepted on a new connection
    "dropped@example.org": "sent",  # the connection drops at DATA, then accepted on a new one
    "late@example.org": "sent",  # accepted, then the server hangs up: sent once, never again
    "slow@example.org": "sent",  # answers after the timeout once, then in time
    # 550 5.7.1: permanent, not retried in this run; about the sender, not the address, so it
    # is no hard bounce (a 5.1.1 would be: see test_send's refused-for-good test).
    "nouser@example.org": "failed",
    "stuck@example.org": "failed",  # 451 every time: retries exhausted
    "gone@example.org": "failed",  # dropped on every attempt: retries exhausted
}


def test_smtp_faults_are_retried_as_configured_recorded_per_recipient_and_finished_by_the_next_run(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = smtp_project(
        make_project, server, csv=csv_of(list(SMTP_CASES)), connections=2, retries=2, timeout=0.5
    )
    server.reply("451 4.3.0 Try again later", to="busy@example.org", times=1)
    server.reply("421 4.7.0 Too busy, closing", to="closing@example.org", times=1)
    server.drop(to="dropped@example.org", times=1)
    server.drop(to="late@example.org", times=1, after_reply=True)
    server.slow(2.0, to="slow@example.org", times=1)
    server.reply("550 5.7.1 Refused by policy", to="nouser@example.org")
    server.reply("451 4.2.1 Mailbox busy", to="stuck@example.org")
    server.drop(to="gone@example.org", times=3)  # the first try and both retries

    first = run(project, "send", "--list", "daily")

    assert first.exit_code == 1, first.output + first.stderr
    assert f"{EDITION}: sent 6, skipped 0, suppressed 0, failed 3 (via mail)" in first.output
    assert "Traceback" not in first.stderr and "error:" not in first.stderr
    # The summary says why each one failed, in the provider's words.
    assert "  failed nouser@example.org: 550 5.7.1 Refused by policy\n" in first.stderr
    assert "  failed stuck@example.org: 451 4.2.1 Mailbox busy (gave up after 3 attempts)\n" in first.stderr
    assert "  failed gone@example.org: connection lost" in first.stderr
    rows = ledger_rows(project)
    assert {email: row.status for email, row in rows.items()} == SMTP_CASES
    assert rows["nouser@example.org"].error == "550 5.7.1 Refused by policy"
    assert rows["stuck@example.org"].error == "451 4.2.1 Mailbox busy (gave up after 3 attempts)"
    assert (rows["gone@example.org"].error or "").startswith("connection lost")
    # A sent row carries the Message-ID the server received, and nothing else went out.
    delivered = {m.rcpt_tos[0]: m.message_id for m in server.messages}
    assert sorted(delivered) == sorted(e for e, status in SMTP_CASES.items() if status == "sent")
    assert len(server.messages) == 6  # each once: "late" was accepted before the hang-up
    for email, message_id in delivered.items():
        assert rows[email] == Row("sent", None, message_id, 1)
    # Retried exactly as configured: temporary replies and drops up to 1 + 2 times, a 550 once.
    assert [a.reply for a in server.attempts_for("busy@example.org", "RCPT")] == [
        "451 4.3.0 Try again later",
        "250 OK",
    ]
    assert len(server.attempts_for("closing@example.org", "RCPT")) == 2
    assert len(server.attempts_for("nouser@example.org", "RCPT")) == 1
    assert len(server.attempts_for("stuck@example.org", "RCPT")) == 3
    assert [a.reply for a in server.attempts_for("gone@example.org", "DATA")] == ["dropped"] * 3

    # The mailbox was created, the server is itself again: the next run sends the failed three.
    server.clear_faults()
    second = run(project, "send", "--list", "daily")

    assert second.exit_code == 0, second.output + second.stderr
    assert f"{EDITION}: sent 3 now (6 earlier), skipped 0, suppressed 0, failed 0 (via mail)" in second.output
    assert sorted(m.rcpt_tos[0] for m in server.messages[6:]) == [
        "gone@example.org",
        "nouser@example.org",
        "stuck@example.org",
    ]
    counts = Counter(address for message in server.messages for address in message.rcpt_tos)
    assert counts == Counter(SMTP_CASES.keys())  # everyone, once
    rows = ledger_rows(project)
    assert {row.status for row in rows.values()} == {"sent"}
    assert all(row.error is None for row in rows.values())  # the old reply does not linger
    assert rows["nouser@example.org"].attempts == 2 and rows["plain@example.org"].attempts == 1


def test_the_summary_says_how_many_failures_it_does_not_list(
    make_project: MakeProject, server: SmtpServer
) -> None:
    refused = [f"gone{n:02d}@example.org" for n in range(25)]
    project = smtp_project(make_project, server, csv=csv_of(["kept@example.org", *refused]))
    server.reply("550 5.7.1 Refused by policy", to=refused)

    result = run(project, "send", "--list", "daily")

    assert result.exit_code == 1
    assert f"{EDITION}: sent 1, skipped 0, suppressed 0, failed 25 (via mail)" in result.output
    listed = [line for line in result.stderr.splitlines() if line.startswith("  failed ")]
    assert listed == [f"  failed {email}: 550 5.7.1 Refused by policy" for email in refused[:20]]
    assert "  … and 5 more failed (the next `digest send` tries them again)" in result.stderr
    assert statuses(project) == {"kept@example.org": "sent", **dict.fromkeys(refused, "failed")}


def test_an_smtp_server_that_is_down_stops_the_send_and_the_next_run_sends_everyone(
    make_project: MakeProject, server: SmtpServer
) -> None:
    addresses = [f"r{n}@example.org" for n in range(5)]
    project = smtp_project(make_project, server, csv=csv_of(addresses), port=free_port())

    down = run(project, "send", "--list", "daily")

    assert down.exit_code == 1
    assert down.stderr.count("error:") == 1 and "Traceback" not in down.stderr
    assert "error: cannot connect to the SMTP server 127.0.0.1:" in down.stderr
    # Nothing was claimed and left hanging: every recipient waits for the next run.
    assert statuses(project) == dict.fromkeys(addresses, "pending")

    config = project.read_text()
    port = next(line for line in config.splitlines() if line.startswith("port = "))
    project.write_text(config.replace(port, f"port = {server.port}"))
    up = run(project, "send", "--list", "daily")

    assert up.exit_code == 0, up.stderr
    assert f"{EDITION}: sent 5, skipped 0, suppressed 0, failed 0" in up.output
    assert Counter(m.rcpt_tos[0] for m in server.messages) == Counter(addresses)


# -- SendGrid --------------------------------------------------------------------------------

API_KEY = "SG.fault-test-key-0123456789"


class Script:
    """Answers the sink's requests from a list, then with 202; remembers when each came and what
    it was answered, so a test can tell which recipients SendGrid actually took."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.log: list[tuple[float, Request, int | None]] = []
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        with self._lock:
            reply = self.replies.pop(0) if self.replies else None
            if reply is None:
                reply = Reply(202, headers={"X-Message-Id": f"sg-{len(self.log) + 1}"})
            # A reply that hangs past the client's timeout is never received: not an answer.
            self.log.append((time.monotonic(), request, None if reply.delay else reply.status))
        return reply

    def recipients(self, number: int) -> list[str]:
        """The addresses in the ``number``-th request (1-based)."""
        return [p["to"][0]["email"] for p in self.log[number - 1][1].json["personalizations"]]

    def accepted(self) -> Counter[str]:
        """How many times SendGrid took each address (answered 202)."""
        return Counter(
            personalization["to"][0]["email"]
            for _, request, status in self.log
            if status == 202
            for personalization in request.json["personalizations"]
        )


def sendgrid_project(make_project: MakeProject, sink: SendGridSink, addresses: list[str]) -> Path:
    options = {"api_url": sink.url, "batch_size": 2, "retries": 2, "backoff": 0.01, "timeout": 0.5}
    table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in options.items())
    path = make_project(
        replace={'transport = "outbox"': 'transport = "sg"'},
        extra=f'\n[transports.sg]\nbackend = "sendgrid"\n{table}\n\n[server]\nbase_url = "https://news.example.org"\n',
    )
    (path.parent / "subscribers" / "daily.csv").write_text(csv_of(addresses), encoding="utf-8")
    return path


def send_via_sendgrid(project: Path) -> Result:
    with time_machine.travel(NOW, tick=False):
        return CliRunner().invoke(
            cli,
            ["--config", str(project), "send", "--list", "daily"],
            env={"DIGEST_SECRET": SECRET, "SENDGRID_API_KEY": API_KEY},
        )


READERS = [f"reader{n}@example.org" for n in range(8)]


def test_sendgrid_429_5xx_and_a_hang_are_retried_and_what_still_fails_is_sent_by_the_next_run(
    make_project: MakeProject,
) -> None:
    # The transport reads the reset against the clock, which the run freezes at NOW.
    reset = str(int(NOW.timestamp()) + 1)
    script = Script(
        Reply(429, errors("too many requests"), {"X-RateLimit-Reset": reset}),  # readers 0, 1
        Reply(202, headers={"X-Message-Id": "sg-batch-1"}),
        Reply(500, errors("internal error")),  # readers 2, 3
        Reply(503, errors("service unavailable")),
        Reply(202, headers={"X-Message-Id": "sg-batch-2"}),
        Reply(202, delay=3),  # readers 4, 5: hangs past the 0.5 s timeout
        Reply(202, headers={"X-Message-Id": "sg-batch-3"}),
        Reply(503, errors("service unavailable")),  # readers 6, 7: every attempt fails
        Reply(500, errors("internal error")),
        Reply(503, errors("service unavailable")),
    )
    with SendGridSink(default=script) as sink:
        project = sendgrid_project(make_project, sink, READERS)

        first = send_via_sendgrid(project)

        assert first.exit_code == 1, first.output + first.stderr
        assert f"{EDITION}: sent 6, skipped 0, suppressed 0, failed 2 (via sg)" in first.output
        assert "Traceback" not in first.stderr and "error:" not in first.stderr
        gave_up = "SendGrid answered 503: service unavailable (gave up after 3 attempts)"
        assert f"  failed reader6@example.org: {gave_up}\n" in first.stderr
        assert f"  failed reader7@example.org: {gave_up}\n" in first.stderr
        assert len(script.log) == 10  # every scripted answer was used: retries as configured
        assert [script.recipients(n) for n in (1, 2, 3, 6, 8, 10)] == [
            READERS[0:2],
            READERS[0:2],
            READERS[2:4],
            READERS[4:6],
            READERS[6:8],
            READERS[6:8],
        ]
        # The 429 was waited out until its reset (a second), not retried after the 10 ms backoff.
        assert script.log[1][0] - script.log[0][0] >= 0.9
        rows = ledger_rows(project)
        expected = ["sg-batch-1"] * 2 + ["sg-batch-2"] * 2 + ["sg-batch-3"] * 2
        for email, message_id in zip(READERS[:6], expected, strict=True):
            assert rows[email] == Row("sent", None, message_id, 1)
        for email in READERS[6:]:
            assert rows[email] == Row("failed", gave_up, None, 1)

        second = send_via_sendgrid(project)

        assert second.exit_code == 0, second.output + second.stderr
        assert (
            f"{EDITION}: sent 2 now (6 earlier), skipped 0, suppressed 0, failed 0 (via sg)" in second.output
        )
        assert len(script.log) == 11 and script.recipients(11) == READERS[6:8]
        assert script.accepted() == Counter(READERS)  # everyone taken once; the hung request was not
        assert statuses(project) == dict.fromkeys(READERS, "sent")


def test_sendgrid_refusing_the_key_mid_send_stops_and_leaves_the_rest_for_the_next_run(
    make_project: MakeProject,
) -> None:
    script = Script(Reply(202), Reply(401, errors("The provided authorization grant is invalid")))
    with SendGridSink(default=script) as sink:
        project = sendgrid_project(make_project, sink, READERS)

        stopped = send_via_sendgrid(project)

        assert stopped.exit_code == 1
        assert stopped.stderr.count("error:") == 1 and "Traceback" not in stopped.stderr
        assert "error: SendGrid answered 401: The provided authorization grant is invalid" in stopped.stderr
        assert f"{EDITION}: stopped by the error below: sent 2, 6 still to send" in stopped.stderr
        assert API_KEY not in stopped.output + stopped.stderr
        # The first batch was taken and is recorded; the rest are back to pending, none stuck
        # in "sending" and none marked failed for a fault that was the key's, not theirs.
        assert statuses(project) == {
            **dict.fromkeys(READERS[:2], "sent"),
            **dict.fromkeys(READERS[2:], "pending"),
        }

        resumed = send_via_sendgrid(project)

        assert resumed.exit_code == 0, resumed.stderr
        assert f"{EDITION}: sent 6 now (2 earlier), skipped 0, suppressed 0, failed 0" in resumed.output
        assert script.accepted() == Counter(READERS)
