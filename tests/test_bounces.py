"""SMTP bounces: reading the formats, tying reports to recipients, and the policy, with a
real Postfix producing a real DSN end to end."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import time_machine
from click.testing import CliRunner, Result

from digest.bounces import verp
from digest.bounces.mailboxes import fetch
from digest.bounces.parse import Category, read
from digest.bounces.process import Processor, Tally
from digest.cli import cli
from digest.config import load_config
from digest.send.unsubscribe import Purpose, make_token
from digest.state import Store
from tests.conftest import NOW, MakeProject

if TYPE_CHECKING:
    from tests.postfix import PostfixServer

pytest_plugins = ["tests.postfix"]
BOUNCE_DOMAIN = "bounces.example.org"  # the domain the test Postfix delivers to its Maildir

SECRET = "test-secret-for-unsubscribe-links-0123"
RETURN_PATH = f"bounces+{{token}}@{BOUNCE_DOMAIN}"
SAMPLES = Path(__file__).parent / "fixtures" / "bounces"


def sample(name: str, to: str = "digest@news.example.org") -> bytes:
    return (SAMPLES / name).read_text().replace("{to}", to).replace("\n", "\r\n").encode()


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.eml")))
def test_each_mta_format_is_read_as_its_file_says(name: str) -> None:
    raw = sample(name)
    expect = raw.split(b"\r\n", 1)[0].decode().removeprefix("X-Test-Expect: ").split()
    report = read(raw)
    assert report.category == expect[0].replace("_", " "), report
    if report.category == Category.BOUNCE:
        (failure,) = report.failures
        assert failure.email == expect[1]
        assert failure.hard is (expect[2] == "hard")
    if report.category == Category.COMPLAINT:
        assert report.complainant == expect[1]
        assert report.list_id == "daily <daily.news.example.org>"


def test_a_token_is_short_case_free_and_bound_to_its_row() -> None:
    key = SECRET.encode()
    token = verp.make_token(key, "daily", "daily-2026-12-01", "Anna@Example.org", 123_456_789)
    assert len(verp.address(RETURN_PATH, token).split("@")[0]) <= 64
    assert verp.token_ref(token.upper()) == 123_456_789
    assert verp.check_token(key, token.upper(), "daily", "daily-2026-12-01", "anna@example.org")
    assert not verp.check_token(key, token, "daily", "daily-2026-12-02", "anna@example.org")
    assert not verp.check_token(key, token, "daily", "daily-2026-12-01", "boris@example.org")
    with pytest.raises(ValueError, match="at most"):
        verp.check_template("b" * 40 + "{token}@x.example.org")
    with pytest.raises(ValueError, match="once"):
        verp.check_template("bounces@x.example.org")


# -- the policy, through a store with one sent edition ------------------------------------


@pytest.fixture
def sent(make_project: MakeProject, tmp_path: Path) -> Iterator[tuple[Processor, Store, dict[str, str]]]:
    """A store whose ledger sent daily-2026-12-01 to anna and boris; their VERP addresses."""
    project = make_project(extra=f'\n[transports.mail]\nbackend = "smtp"\nreturn_path = "{RETURN_PATH}"\n')
    config = load_config(project)
    store = Store(f"sqlite:///{tmp_path / 'state.sqlite3'}").migrate()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        db.execute(
            "INSERT INTO editions VALUES ('daily-2026-12-01', 'daily', '2026-12-01', "
            "'2026-11-30 07:00:00', '2026-12-01 07:00:00', 3, '2026-12-01 07:00:00', NULL)"
        )
        for row, address in ((1, "anna@example.org"), (2, "boris@example.org")):
            db.execute(
                "INSERT INTO send_ledger (id, edition_id, email, name, variant, status, attempts, "
                "sent_at, updated_at) VALUES (?, 'daily-2026-12-01', ?, '', '*', 'sent', 1, "
                "'2026-12-01 07:00:00', '2026-12-01 07:00:00')",
                (row, address),
            )
    paths = {
        address: verp.address(
            RETURN_PATH, verp.make_token(SECRET.encode(), "daily", "daily-2026-12-01", address, row)
        )
        for row, address in ((1, "anna@example.org"), (2, "boris@example.org"))
    }
    yield Processor(config, store, SECRET.encode(), now=NOW), store, paths
    store.close()


def suppressed(store: Store, address: str, list_name: str = "daily") -> bool:
    return store.suppressions.is_suppressed(address, list_name) is not None


def test_a_vague_bounce_to_a_verp_address_suppresses_its_recipient(
    sent: tuple[Processor, Store, dict[str, str]],
) -> None:
    processor, store, paths = sent
    tally = Tally()
    # The report names another address (a forward), the token names anna.
    assert (
        processor.handle(sample("exim.eml", paths["anna@example.org"]), "exim.eml", tally) == "hard bounces"
    )
    assert suppressed(store, "anna@example.org")
    assert processor.handle(sample("exim.eml", paths["anna@example.org"]), "again", tally) == "already read"
    assert tally.suppressed == {"anna@example.org"}


def test_an_arf_report_is_a_complaint(sent: tuple[Processor, Store, dict[str, str]]) -> None:
    processor, store, paths = sent
    tally = Tally()
    assert processor.handle(sample("arf.eml", paths["boris@example.org"]), "arf", tally) == "complaints"
    assert suppressed(store, "boris@example.org")
    with sqlite3.connect(store.path) as db:  # type: ignore[arg-type]
        assert db.execute("SELECT source, kind, email FROM delivery_events").fetchall() == [
            ("arf", "complaint", "boris@example.org")
        ]


def test_an_auto_reply_is_ignored_and_counted_nowhere(sent: tuple[Processor, Store, dict[str, str]]) -> None:
    processor, store, paths = sent
    tally = Tally()
    assert processor.handle(sample("out-of-office.eml", paths["anna@example.org"]), "ooo", tally) == (
        "ignored (auto-reply)"
    )
    assert not suppressed(store, "anna@example.org")
    assert store.unattributed.count() == 0


def test_soft_bounces_suppress_at_the_limit(sent: tuple[Processor, Store, dict[str, str]]) -> None:
    processor, store, paths = sent
    for attempt in range(3):
        raw = sample("exchange-full.eml", paths["anna@example.org"]).replace(
            b"0001", f"000{attempt + 2}".encode()
        )
        assert processor.handle(raw, f"full {attempt}", Tally()) == "soft bounces"
        assert suppressed(store, "anna@example.org") is (attempt == 2)


def test_what_cannot_be_tied_to_anyone_is_kept_and_reported(
    sent: tuple[Processor, Store, dict[str, str]],
) -> None:
    processor, store, paths = sent
    tally = Tally()
    forged = paths["anna@example.org"].replace("bounces+1-", "bounces+2-")  # boris's row, anna's MAC
    assert processor.handle(sample("qmail.eml", forged), "forged", tally) == "unattributed"
    assert processor.handle(sample("qmail.eml"), "stranger", tally) == "unattributed"  # lost@ never mailed
    assert processor.handle(b"Subject: hello\r\n\r\nhi\r\n", "chatter", tally) == "unattributed"
    assert not suppressed(store, "boris@example.org")
    assert [k.reason.split(" ")[0] for k in store.unattributed.listing()] == ["not", "a", "a"]


def test_a_mailed_unsubscribe_leaves_the_list(sent: tuple[Processor, Store, dict[str, str]]) -> None:
    processor, store, _paths = sent
    token = make_token(SECRET.encode(), "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    mail = f"From: anna@example.org\r\nTo: bounces+unsubscribe@{BOUNCE_DOMAIN}\r\nSubject: unsubscribe {token}\r\n\r\n"
    assert processor.handle(mail.encode(), "mailto", Tally()) == "unsubscribes"
    assert suppressed(store, "anna@example.org")
    assert not suppressed(store, "anna@example.org", "weekly")


class FakeImap:
    """The MailboxClient interface over a dict, standing in for imaplib (no IMAP server here)."""

    def __init__(self, messages: dict[str, bytes]) -> None:
        self.inbox = dict(messages)
        self.processed_folder: dict[str, bytes] = {}
        self.closed = False

    def messages(self) -> Iterator[tuple[str, bytes]]:
        yield from list(self.inbox.items())

    def processed(self, uid: str) -> None:
        self.processed_folder[uid] = self.inbox.pop(uid)

    def close(self) -> None:
        self.closed = True


def test_fetch_moves_each_handled_message_out(sent: tuple[Processor, Store, dict[str, str]]) -> None:
    processor, _store, paths = sent
    client = FakeImap(
        {"1": sample("gmail.eml", paths["boris@example.org"]), "2": sample("out-of-office.eml")}
    )
    tally = Tally()
    assert fetch(client, lambda raw, origin: processor.handle(raw, origin, tally)) == 2
    assert (client.inbox, sorted(client.processed_folder), client.closed) == ({}, ["1", "2"], True)
    assert tally.counts == {"hard bounces": 1, "ignored (auto-reply)": 1}


# -- end to end: digest → Postfix → a real DSN → digest bounces import ---------------------


def run(project: Path, *args: str, when: dt.datetime = NOW) -> Result:
    with time_machine.travel(when, tick=False):
        return CliRunner().invoke(cli, ["--config", str(project), *args], env={"DIGEST_SECRET": SECRET})


def test_postfix_bounces_an_unknown_user_and_the_import_suppresses_them(
    make_project: MakeProject,
    postfix: PostfixServer,
) -> None:
    project = make_project(
        replace={'transport = "outbox"': 'transport = "mail"'},
        extra=(
            f'\n[transports.mail]\nbackend = "smtp"\nhost = "127.0.0.1"\nport = {postfix.port}\n'
            f'return_path = "{RETURN_PATH}"\nretries = 0\n'
        ),
    )
    (project.parent / "subscribers" / "daily.csv").write_text("email,name\nghost@example.org,Ghost\n")
    before = len(list((postfix.maildir / "new").glob("*"))) if (postfix.maildir / "new").exists() else 0
    sent = run(project, "send", "--list", "daily")
    assert sent.exit_code == 0, sent.stderr
    assert "sent 1" in sent.output
    (dsn,) = postfix.wait_for_mail(before + 1)[before:]
    # The DSN went to the message's own VERP envelope sender, not to the From address.
    assert "Delivered-To: bounces+1-" in dsn.read_text()
    imported = run(project, "bounces", "import", str(postfix.maildir))
    assert imported.exit_code == 0, imported.stderr
    assert "hard bounces 1" in imported.output
    assert "suppressed 1: ghost@example.org" in imported.output
    again = run(project, "bounces", "import", str(postfix.maildir))
    assert "already read 1" in again.output and "suppressed" not in again.output
    resend = run(project, "send", "--list", "daily", "--resend", "ghost@example.org")
    assert resend.exit_code == 1
    assert "bounced" in resend.output + resend.stderr
    # The next day's edition leaves the bounced reader out.
    dry = run(project, "send", "--list", "daily", "--dry-run", when=NOW + dt.timedelta(days=1))
    assert "would send 0 messages" in dry.output, dry.output


def test_the_mailto_is_advertised_only_where_a_mailbox_reads_it(make_project: MakeProject) -> None:
    from digest.send.unsubscribe import Addresser

    env = {"DIGEST_SECRET": SECRET}
    plain = load_config(make_project())
    (daily,) = plain.settings.lists
    assert (
        "mailto:"
        not in Addresser(plain, daily, env=env, backend="smtp").recipient("a@example.org", "")[1][
            "List-Unsubscribe"
        ]
    )
    verp_config = load_config(
        make_project(
            replace={'transport = "outbox"': 'transport = "mail"'},
            extra=f'\n[transports.mail]\nbackend = "smtp"\nreturn_path = "{RETURN_PATH}"\n',
        )
    )
    (daily,) = verp_config.settings.lists
    addresser = Addresser(verp_config, daily, env=env, backend="smtp")
    _recipient, headers = addresser.recipient("a@example.org", "")
    assert (
        f"<mailto:bounces+unsubscribe@{BOUNCE_DOMAIN}?subject=unsubscribe%20" in headers["List-Unsubscribe"]
    )
    envelope = addresser.envelope("a@example.org", "", "<id@x>", bounce=("daily-2026-12-01", 7))
    assert envelope.return_path is not None and envelope.return_path.startswith("bounces+7-")
    assert addresser.envelope("a@example.org", "", "<id@x>").return_path is None  # no ledger row
