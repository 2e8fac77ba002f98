"""`digest bounces fetch` against a real IMAP server: a private Dovecot over TLS.

The server's certificate is self-signed and given to digest as ``[bounces] imap_ca_file``:
verification stays on, as in production. The messages are real MIME put in the INBOX with
IMAP APPEND; what digest did is checked both in the state database and over IMAP.
"""

from __future__ import annotations

import imaplib
import sqlite3
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import time_machine
from click.testing import CliRunner, Result

from digest.bounces import verp
from digest.cli import cli
from digest.state import Store
from tests.conftest import NOW, MakeProject

if TYPE_CHECKING:
    from tests.dovecot import DovecotServer

pytest_plugins = ["tests.dovecot"]

SECRET = "test-secret-for-unsubscribe-links-0123"
RETURN_PATH = "bounces+{token}@bounces.example.org"
SAMPLES = Path(__file__).parent / "fixtures" / "bounces"
EDITION = "daily-2026-12-01"


def sample(name: str, to: str) -> bytes:
    return (SAMPLES / name).read_text().replace("{to}", to).replace("\n", "\r\n").encode()


def project_for(make_project: MakeProject, tmp_path: Path, dovecot: DovecotServer, ca_file: Path) -> Path:
    """A project whose ledger sent daily-2026-12-01 to anna (row 1), reading Dovecot's INBOX."""
    database = tmp_path / "state.sqlite3"
    project = make_project(
        replace={'url = "sqlite:///state/digest.sqlite3"': f'url = "sqlite:///{database}"'},
        extra=(
            f'\n[transports.mail]\nbackend = "smtp"\nreturn_path = "{RETURN_PATH}"\n'
            f'\n[bounces]\nimap_host = "{dovecot.host}"\nimap_port = {dovecot.port}\n'
            f'imap_user = "{dovecot.user}"\nimap_ca_file = "{ca_file}"\n'
        ),
    )
    Store(f"sqlite:///{database}").migrate().close()
    with sqlite3.connect(database) as db:
        db.execute(
            f"INSERT INTO editions VALUES ('{EDITION}', 'daily', '2026-12-01', "
            "'2026-11-30 07:00:00', '2026-12-01 07:00:00', 3, '2026-12-01 07:00:00', NULL)"
        )
        db.execute(
            "INSERT INTO send_ledger (id, edition_id, email, name, variant, status, attempts, "
            f"sent_at, updated_at) VALUES (1, '{EDITION}', 'anna@example.org', '', '*', 'sent', 1, "
            "'2026-12-01 07:00:00', '2026-12-01 07:00:00')"
        )
    return project


def fetch(project: Path, password: str) -> Result:
    with time_machine.travel(NOW, tick=False):
        return CliRunner().invoke(
            cli,
            ["--config", str(project), "bounces", "fetch"],
            env={"DIGEST_SECRET": SECRET, "DIGEST_IMAP_PASSWORD": password},
        )


def suppressed(tmp_path: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        return db.execute("SELECT * FROM suppressions ORDER BY 1").fetchall()


def test_fetch_reads_a_real_imap_mailbox_and_moves_what_it_handled(
    make_project: MakeProject, tmp_path: Path, dovecot: DovecotServer
) -> None:
    project = project_for(make_project, tmp_path, dovecot, dovecot.cert)
    anna = verp.address(
        RETURN_PATH, verp.make_token(SECRET.encode(), "daily", EDITION, "anna@example.org", 1)
    )
    imap = dovecot.client()
    try:
        # A Gmail DSN to anna's VERP address (it names another address: the token decides),
        # and an out-of-office reply, the kind of chatter a bounce mailbox also gets.
        for name in ("gmail.eml", "out-of-office.eml"):
            typ, _ = imap.append("INBOX", None, None, sample(name, anna))
            assert typ == "OK"
    finally:
        imap.logout()
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (2, 0)

    first = fetch(project, dovecot.password)
    assert first.exit_code == 0, first.output + dovecot.log_text()
    assert "read 2 messages: hard bounces 1, ignored (auto-reply) 1" in first.output
    assert "suppressed 1: anna@example.org" in first.output
    after_first = suppressed(tmp_path)
    assert [row for row in after_first if "anna@example.org" in row]
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 2)

    second = fetch(project, dovecot.password)
    assert second.exit_code == 0, second.output
    assert "read 0 messages" in second.output and "suppressed" not in second.output
    assert suppressed(tmp_path) == after_first
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 2)


def test_an_untrusted_certificate_is_refused_not_ignored(
    make_project: MakeProject, tmp_path: Path, dovecot: DovecotServer
) -> None:
    # Without imap_ca_file the system's CAs decide, and they never signed the test certificate.
    project = project_for(make_project, tmp_path, dovecot, dovecot.cert)
    project.write_text(project.read_text().replace(f'imap_ca_file = "{dovecot.cert}"\n', ""))
    imap = dovecot.client()
    try:
        imap.append("INBOX", None, None, b"Subject: hello\r\n\r\nhi\r\n")
    finally:
        imap.logout()
    refused = fetch(project, dovecot.password)
    assert refused.exit_code != 0
    assert "cannot read the bounce mailbox" in refused.output + refused.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in refused.output + refused.stderr
    assert dovecot.count("INBOX") == 1


def test_a_wrong_password_is_a_clear_error(
    make_project: MakeProject, tmp_path: Path, dovecot: DovecotServer
) -> None:
    project = project_for(make_project, tmp_path, dovecot, dovecot.cert)
    refused = fetch(project, "not-the-password")
    assert refused.exit_code != 0
    assert "cannot read the bounce mailbox bounces@127.0.0.1" in refused.output + refused.stderr


def test_the_test_certificate_names_both_local_names(dovecot: DovecotServer) -> None:
    context = ssl.create_default_context(cafile=str(dovecot.cert))
    for host in ("127.0.0.1", "localhost"):
        imaplib.IMAP4_SSL(host, dovecot.port, ssl_context=context).logout()
