"""SpamAssassin's verdict on what a reader gets: the default edition and the confirmation email.

Issue 15: SpamAssassin with local rules (tests/spamassassin.py) scores each at 0.1 or less.
Both are made fresh by the real code and taken from the outbox, byte for byte as a transport
hands them over, not from tests/golden: the golden file is only as current as its last update.

Set up as in production: ``[server] base_url`` is the public https address of `digest serve`
(config.toml asks for https in production); the default, http://127.0.0.1:8080, is the local
preview's, and links to it in a reader's mail would be a test's invention.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NoReturn

import pytest
import time_machine
from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_config
from digest.send.confirmation import Confirmation, ConfirmationMailer, duration_words
from digest.send.unsubscribe import Purpose, make_token
from digest.web import confirm
from digest.web.app import Site
from tests.conftest import NOW, MakeProject
from tests.spamassassin import Verdict, score

LIMIT = 0.1
SECRET = "spam-score-test-secret-0123456789"
READER = "reader@example.org"
SITE = "https://news.example.org"
# Rules that hit only because the test scans the message straight from digest's outbox, before
# any MTA has handled it: every copy a reader gets carries the Received headers of the servers
# it passed through. Both score -0.001, so leaving them out can only make the total stricter.
# No Received header is made up instead: the rules that read one would judge the invented relay
# (its address, its reverse DNS), not the message. Nothing else is left out: Date, Message-ID,
# List-Unsubscribe and the rest are digest's own.
NOT_RELAYED = ("NO_RECEIVED", "NO_RELAYS")


@pytest.fixture
def production(make_project: MakeProject) -> Path:
    return make_project(extra=f'\n[server]\nbase_url = "{SITE}"\n')


def _verdict(message: Path) -> Verdict:
    return score(message.read_bytes()).without(*NOT_RELAYED)


def test_the_default_edition_scores_at_most_0_1(production: Path) -> None:
    with time_machine.travel(NOW, tick=False):
        result = CliRunner().invoke(
            cli, ["--config", str(production), "send", "--list", "daily"], env={"DIGEST_SECRET": SECRET}
        )
    assert result.exit_code == 0, result.output + result.stderr
    (message,) = (production.parent / "outbox").glob("daily-*/*.eml")
    verdict = _verdict(message)
    assert verdict.score <= LIMIT, f"SpamAssassin, local rules, on the daily edition: {verdict}"


def test_the_confirmation_email_scores_at_most_0_1(production: Path) -> None:
    config = load_config(production)
    mailing_list = config.mailing_list("daily")
    # The link the sign-up page mails (digest.web.signup), signed and expiring the same way.
    site = Site(config, SECRET.encode(), store_factory=_no_store)
    expiry = config.settings.server.confirm_expiry
    expires = NOW + dt.timedelta(seconds=expiry)
    token = make_token(site.secret, "daily", READER, purpose=Purpose.CONFIRM, expires=expires)
    confirmation = Confirmation(
        "daily", READER, "Reader", (), confirm.confirm_url(site, token), duration_words(expiry)
    )
    outcome = ConfirmationMailer(config, {"DIGEST_SECRET": SECRET}).send(mailing_list, confirmation, NOW)
    assert outcome.accepted, outcome.error
    (message,) = (production.parent / "outbox").glob("daily-confirm/*.eml")
    verdict = _verdict(message)
    assert verdict.score <= LIMIT, f"SpamAssassin, local rules, on the confirmation email: {verdict}"


def _no_store() -> NoReturn:
    raise AssertionError("mailing a confirmation needs no store")
