"""`digest send --resend`: one edition once more to one reader, through the real CLI and transports."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from digest.state import Store
from digest.state.ledger_types import FAILED, SENT
from tests.conftest import MakeProject
from tests.smtpd import SmtpServer
from tests.test_send import SUBSCRIBERS, run, smtp_project


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as smtp:
        yield smtp


def store_of(project: Path) -> Store:
    return Store(f"sqlite:///{project.parent / 'state' / 'digest.sqlite3'}").migrate()


def outbox_project(make_project: MakeProject, csv: str = SUBSCRIBERS, desks: str = "") -> Path:
    order = '"Ukraine", "North America", "Business", "Europe", "Culture"'
    project = make_project(replace={order: order + desks})
    (project.parent / "subscribers" / "daily.csv").write_text(csv, encoding="utf-8")
    return project


def emls(project: Path) -> list[Path]:
    return sorted((project.parent / "outbox").glob("*/*.eml"))


def without_volatile(data: bytes) -> list[str]:
    """The message's lines, less those a resend may change: Date, Message-ID, MIME boundaries."""
    message = email.message_from_bytes(data, policy=policy.default)
    boundary = message.get_boundary() or "\x00"
    return [
        line
        for line in data.decode().splitlines()
        if boundary not in line and not line.startswith(("Date:", "Message-ID:"))
    ]


def test_resend_through_the_outbox_writes_one_message_for_that_reader_only(
    make_project: MakeProject,
) -> None:
    project = outbox_project(make_project)
    assert run(project, "send", "--list", "daily").exit_code == 0
    (original,) = [p for p in emls(project) if p.name.startswith("bob@")]
    original_bytes = original.read_bytes()
    with store_of(project) as store:
        before = store.ledger.row("daily-2026-11-25", "bob@example.org")
    for path in emls(project):
        path.unlink()

    result = run(project, "send", "--list", "daily", "--resend", "Bob@Example.org")

    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.startswith("daily-2026-11-25: resent to bob@example.org via outbox ")
    assert "  variant Business, Message-ID <daily-2026-11-25.resend1." in result.output
    assert "  originally sent 2026-11-25 04:30 UTC" in result.output
    (again,) = emls(project)
    assert again.name.startswith("bob@example.org.")
    resent = email.message_from_bytes(again.read_bytes(), policy=policy.default)
    assert resent["To"] == "Bob Marsh <bob@example.org>"
    assert (
        resent["Message-ID"] != email.message_from_bytes(original_bytes, policy=policy.default)["Message-ID"]
    )
    # The same message otherwise: variant, name, unsubscribe link and headers.
    assert without_volatile(again.read_bytes()) == without_volatile(original_bytes)
    with store_of(project) as store:
        assert store.ledger.row("daily-2026-11-25", "bob@example.org") == before
        assert store.resends.count("daily-2026-11-25", "bob@example.org") == 1
        assert store.ledger.counts("daily-2026-11-25")[SENT] == 4


def test_resend_through_smtp_reaches_that_address_once_and_is_recorded(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = smtp_project(make_project, server)
    assert run(project, "send", "--list", "daily").exit_code == 0
    sent_before = len(server.messages)
    assert sent_before == 4

    result = run(project, "send", "--list", "daily", "--resend", "carla@example.org")

    assert result.exit_code == 0, result.output + result.stderr
    assert "resent to carla@example.org via mail" in result.output
    assert len(server.messages) == sent_before + 1
    last = server.messages[-1]
    assert last.rcpt_tos == ("carla@example.org",)
    assert last.message_id and ".resend1." in last.message_id
    message = email.message_from_bytes(last.data, policy=policy.default)
    assert "Carla Ruiz" in str(message["To"]) and "/unsubscribe/" in str(message["List-Unsubscribe"])
    with store_of(project) as store:
        assert store.resends.count("daily-2026-11-25", "carla@example.org") == 1
        assert store.ledger.row("daily-2026-11-25", "carla@example.org").status == SENT  # type: ignore[union-attr]


def test_a_failed_original_resent_counts_as_sent_and_is_not_retried(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = smtp_project(make_project, server)
    server.reply("550 5.7.1 Refused by policy", to="erin@example.org")
    first = run(project, "send", "--list", "daily")
    assert first.exit_code == 1
    assert "sent 3, skipped 0, suppressed 1, failed 1" in first.output
    server.clear_faults()

    result = run(project, "send", "--list", "daily", "--resend", "erin@example.org")

    assert result.exit_code == 0, result.output + result.stderr
    assert "  originally failed: " in result.output and "550" in result.output
    assert len(server.received_by("erin@example.org")) == 1
    again = run(project, "send", "--list", "daily")
    assert again.exit_code == 0, again.output + again.stderr
    assert "sent 0 now (4 earlier), skipped 0, suppressed 1, failed 0" in again.output
    assert len(server.received_by("erin@example.org")) == 1
    with store_of(project) as store:
        row = store.ledger.row("daily-2026-11-25", "erin@example.org")
    assert row is not None and row.status == SENT and row.sent_at is not None
    assert row.error and row.error.startswith("resent as <daily-2026-11-25.resend1.") and "550" in row.error


def test_a_failed_resend_of_a_failed_original_leaves_it_to_the_next_send(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = smtp_project(make_project, server)
    server.reply("550 5.7.1 Refused by policy", to="erin@example.org")
    assert run(project, "send", "--list", "daily").exit_code == 1
    assert run(project, "send", "--list", "daily", "--resend", "erin@example.org").exit_code == 1
    with store_of(project) as store:
        assert store.ledger.row("daily-2026-11-25", "erin@example.org").status == FAILED  # type: ignore[union-attr]
    server.clear_faults()

    again = run(project, "send", "--list", "daily")

    assert again.exit_code == 0, again.output + again.stderr
    assert "sent 1 now (3 earlier)" in again.output
    assert len(server.received_by("erin@example.org")) == 1


def test_a_refused_resend_is_recorded_and_exits_1(make_project: MakeProject, server: SmtpServer) -> None:
    project = smtp_project(make_project, server)
    assert run(project, "send", "--list", "daily").exit_code == 0
    server.reply("550 5.7.1 no thanks", to="anna@example.org")

    result = run(project, "send", "--list", "daily", "--resend", "anna@example.org")

    assert result.exit_code == 1
    assert "daily-2026-11-25: resend to anna@example.org failed via mail: " in result.stderr
    assert "no thanks" in result.stderr
    with store_of(project) as store:
        assert store.resends.count("daily-2026-11-25", "anna@example.org") == 1
        assert store.ledger.row("daily-2026-11-25", "anna@example.org").status == SENT  # type: ignore[union-attr]


def test_a_reader_added_after_the_send_is_resent_once_and_not_sent_again(make_project: MakeProject) -> None:
    project = outbox_project(make_project)
    assert run(project, "send", "--list", "daily").exit_code == 0
    csv = project.parent / "subscribers" / "daily.csv"
    csv.write_text(csv.read_text() + "new@example.org,New Reader,Culture,\n")

    result = run(project, "send", "--list", "daily", "--resend", "new@example.org")

    assert result.exit_code == 0, result.output + result.stderr
    assert "originally not in the send (added to the list since)" in result.output
    (resent,) = [p for p in emls(project) if p.name.startswith("new@")]
    resent.unlink()
    later = run(project, "send", "--list", "daily")
    assert "sent 0 now (5 earlier)," in later.output  # four from the first send and the resent one
    assert not [p for p in emls(project) if p.name.startswith("new@")]  # not sent them again
    with store_of(project) as store:
        assert store.ledger.counts("daily-2026-11-25")[SENT] == 5


def test_dry_run_says_what_it_would_send_and_sends_nothing(make_project: MakeProject) -> None:
    project = outbox_project(make_project)
    assert run(project, "send", "--list", "daily").exit_code == 0
    for path in emls(project):
        path.unlink()

    result = run(project, "send", "--list", "daily", "--resend", "anna@example.org", "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert result.output.startswith(
        "daily-2026-11-25: dry run, nothing sent: would resend to anna@example.org via outbox "
    )
    assert emls(project) == []
    with store_of(project) as store:
        assert store.resends.count("daily-2026-11-25", "anna@example.org") == 0


def test_an_earlier_edition_by_id(make_project: MakeProject) -> None:
    project = outbox_project(make_project)
    assert run(project, "send", "--list", "daily").exit_code == 0
    for path in emls(project):
        path.unlink()
    result = run(
        project, "send", "--list", "daily", "--resend", "anna@example.org", "--edition", "daily-2026-11-25"
    )
    assert result.exit_code == 0, result.stderr
    assert [p.parent.name for p in emls(project)] == ["daily-2026-11-25"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--resend", "anna@example.org", "--edition", "daily-2026-11-24"),
            "error: daily-2026-11-24 was never sent: it is not frozen in the state database "
            "(sent editions of daily: daily-2026-11-25)",
        ),
        (
            ("--resend", "anna@example.org", "--edition", "weekly-2026-11-25"),
            "error: 'weekly-2026-11-25' is not an edition of daily (its editions are named "
            "daily-YYYY-MM-DD, e.g. daily-2026-11-25)",
        ),
        (
            ("--resend", "nobody@example.org"),
            "error: nobody@example.org is not a subscriber of daily: not in the ledger of daily-2026-11-25 "
            "nor among the list's readers",
        ),
        (
            ("--resend", "dave@example.org"),
            "error: dave@example.org is unsubscribed on daily (since 2026-",
        ),
        (
            ("--resend", "frank@example.org"),
            "error: frank@example.org's desks (Sport) had no stories in daily-2026-11-25: there is nothing "
            "to resend (originally skipped: no stories in the chosen desks today)",
        ),
        (("--resend", "not an address"), "error: 'not an address' is not an email address"),
    ],
    ids=["never sent", "another list", "not a subscriber", "unsubscribed in the file", "no stories", "bad"],
)
def test_refusals_send_nothing_and_say_why(
    make_project: MakeProject, args: tuple[str, ...], message: str
) -> None:
    csv = SUBSCRIBERS + "frank@example.org,Frank,Sport,\n"
    project = outbox_project(make_project, csv, desks=', "Sport"')
    assert run(project, "send", "--list", "daily").exit_code == 0
    for path in emls(project):
        path.unlink()

    result = run(project, "send", "--list", "daily", *args)

    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert emls(project) == []


def test_refuses_an_edition_of_today_not_yet_sent(make_project: MakeProject) -> None:
    project = outbox_project(make_project)
    result = run(project, "send", "--list", "daily", "--resend", "anna@example.org")
    assert result.exit_code == 1
    assert (
        "error: daily-2026-11-25 was never sent: it is not frozen in the state database (send it first "
        in (result.stderr)
    )


def test_refuses_unsubscribed_and_bounced_addresses_naming_which(make_project: MakeProject) -> None:
    project = outbox_project(make_project)
    assert run(project, "send", "--list", "daily").exit_code == 0
    assert run(project, "subscribers", "unsubscribe", "anna@example.org", "--list", "daily").exit_code == 0
    with store_of(project) as store:
        store.suppressions.add("bob@example.org", reason="bounced", source="sendgrid")

    unsubscribed = run(project, "send", "--list", "daily", "--resend", "anna@example.org")
    bounced = run(project, "send", "--list", "daily", "--resend", "bob@example.org")

    assert unsubscribed.exit_code == 1 and bounced.exit_code == 1
    assert "error: anna@example.org unsubscribed from daily on " in unsubscribed.stderr
    assert "(via editor)" in unsubscribed.stderr
    assert "error: bob@example.org is suppressed for every list: bounced (from sendgrid, " in bounced.stderr


def test_refuses_a_reader_the_send_has_not_reached_yet(make_project: MakeProject) -> None:
    project = outbox_project(make_project)
    assert run(project, "send", "--list", "daily").exit_code == 0
    with store_of(project) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE send_ledger SET status = 'pending' WHERE email = 'anna@example.org'")
    result = run(project, "send", "--list", "daily", "--resend", "anna@example.org")
    assert result.exit_code == 1
    assert "the send of daily-2026-11-25 has not reached anna@example.org yet (pending)" in result.stderr


def test_edition_needs_resend(project: Path) -> None:
    result = run(project, "send", "--list", "daily", "--edition", "daily-2026-11-25")
    assert result.exit_code == 2 and "--edition goes with --resend" in result.stderr


def test_real_transports_refuse_the_demo_secret(make_project: MakeProject, server: SmtpServer) -> None:
    project = smtp_project(make_project, server)
    result = run(project, "send", "--list", "daily", secret="digest-demo-secret-not-for-real-mail")
    assert result.exit_code == 1
    assert "DIGEST_SECRET is digest's public demo secret" in result.stderr
    assert server.messages == []
