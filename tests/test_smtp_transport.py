"""The SMTP transport against a real SMTP server (aiosmtpd in a thread): no mocks."""

from __future__ import annotations

import datetime as dt
import email
import logging
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Sequence
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pydantic
import pytest

from digest.config import SmtpOptions
from digest.errors import TransportError
from digest.render import Rendered
from digest.render.message import make_message_id
from digest.send.transports import create_transport
from digest.send.transports.base import Batch, Envelope, Outcome
from digest.send.transports.smtp import SmtpTransport, create
from tests import smtpd
from tests.conftest import greeted
from tests.smtpd import SmtpServer, free_port

SENDER = "The Morning Ledger <digest@news.example.org>"
EDITION = "daily-2026-11-25"
DATE = dt.datetime(2026, 11, 25, 5, 0, tzinfo=dt.UTC)
USER, PASSWORD = "newsroom", "correct-horse-battery-staple-42"

# The fixture, used here by name (until tests/conftest.py imports it for every module).
smtp_server = smtpd.smtp_server


def rendered() -> Rendered:
    """A variant as a minifier leaves it: the whole HTML on one line, far over 998 characters."""
    stories = "".join(
        f'<tr><td class="story" style="padding:12px 24px;font-family:Georgia,serif;font-size:16px">'
        f'<a href="https://news.example.org/2026/11/25/story-{i}?utm_source=digest" style="color:#1a4d8f">'
        f"Story {i}: Kyiv’s “winter grid” holds through the night</a>"
        f'<p style="margin:4px 0;color:#333">Engineers restored power to {i * 1000} homes; '
        f"économie, Zürich, 東京 and the rest of the wire.</p></td></tr>"
        for i in range(30)
    )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>The Morning Ledger</title>'
        '</head><body><table role="presentation" width="100%"><tr><td>%%greeting%%,</td></tr>'
        f'{stories}<tr><td><a href="%%unsubscribe_url%%">Unsubscribe</a></td></tr></table></body></html>'
    )
    assert "\n" not in html and len(html) > 5000
    text = "%%greeting%%,\n\n" + "\n".join(f"* Story {i}: Kyiv’s winter grid holds" for i in range(30))
    text += "\n\nUnsubscribe: %%unsubscribe_url%%\n"
    return Rendered(
        subject="The Morning Ledger — 25 November", preheader="Kyiv’s grid holds", html=html, text=text
    )


def reader(i: int) -> str:
    return f"reader{i}@example.org"


def make_batch(n: int, start: int = 0) -> Batch:
    envelopes = tuple(
        Envelope(
            greeted(reader(i), f"Reader {i}", f"https://news.example.org/u/token{i}?l=daily"),
            make_message_id(EDITION, reader(i), SENDER),
            {"List-Unsubscribe": f"<https://news.example.org/u/token{i}?l=daily>"},
        )
        for i in range(start, start + n)
    )
    return Batch(EDITION, "daily", "all", rendered(), SENDER, DATE, envelopes)


def transport(server: SmtpServer, env: dict[str, str] | None = None, **options: Any) -> SmtpTransport:
    settings: dict[str, Any] = {"host": server.host, "port": server.port, "backoff": 0.05, "timeout": 5}
    return create(SmtpOptions(**{**settings, **options}), env or {}, Path("."))


def trusting(server: SmtpServer, env: dict[str, str] | None = None, **options: Any) -> SmtpTransport:
    """An SmtpTransport that trusts the test server's self-signed certificate."""
    made = transport(server, env, **options)
    return SmtpTransport(made.options, made.credentials, tls_context=server.client_context)


def send(server: SmtpServer, batch: Batch, **options: Any) -> list[Outcome]:
    with transport(server, **options) as smtp:
        return smtp.send(batch)


def assert_delivered_once(server: SmtpServer, batch: Batch) -> None:
    counts = Counter(rcpt for message in server.messages for rcpt in message.rcpt_tos)
    assert counts == Counter(envelope.recipient.email for envelope in batch.envelopes)


def test_every_recipient_gets_their_own_message(smtp_server: SmtpServer) -> None:
    batch = make_batch(5)
    outcomes = send(smtp_server, batch, connections=2)
    assert [o.email for o in outcomes] == [reader(i) for i in range(5)]
    assert all(o.accepted for o in outcomes)
    assert [o.provider_id for o in outcomes] == [e.message_id for e in batch.envelopes]
    assert_delivered_once(smtp_server, batch)
    for i, envelope in enumerate(batch.envelopes):
        (received,) = smtp_server.received_by(reader(i))
        assert received.mail_from == "digest@news.example.org"
        assert received.message_id == envelope.message_id
        lines = received.data.split(b"\r\n")
        assert max(len(line) for line in lines) <= 998
        assert b"\n" not in received.data.replace(b"\r\n", b"")
        parsed = email.message_from_bytes(received.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        assert parsed["To"].addresses[0].addr_spec == reader(i)
        assert parsed["Subject"] == "The Morning Ledger — 25 November"
        assert parsed["Message-ID"] == envelope.message_id
        assert parsed["List-Unsubscribe"] == f"<https://news.example.org/u/token{i}?l=daily>"
        parts = list(parsed.iter_parts())
        assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
        text, html = (part.get_content() for part in parts)
        assert text.startswith(f"Hello, Reader {i},") and f"token{i}?l=daily" in text
        assert f"Hello, Reader {i}," in html and "東京" in html and len(html) > 5000


def test_the_test_server_rejects_an_over_long_line_like_a_real_one(smtp_server: SmtpServer) -> None:
    raw = b"Subject: minified\r\nContent-Type: text/html\r\n\r\n<p>" + b"x" * 5000 + b"</p>\r\n"
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client,
        pytest.raises(smtplib.SMTPDataError) as caught,
    ):
        client.sendmail("digest@news.example.org", [reader(0)], raw)
    assert caught.value.smtp_code == 500 and b"Line too long" in caught.value.smtp_error
    assert smtp_server.messages == []


def test_three_connections_deliver_sixty_in_order(smtp_server: SmtpServer) -> None:
    smtp_server.slow(0.01)  # long enough that every connection gets a share
    batch = make_batch(60)
    smtp = transport(smtp_server, connections=3)
    assert smtp.max_batch >= 60
    with smtp:
        outcomes = smtp.send(batch)
    assert [o.email for o in outcomes] == [reader(i) for i in range(60)]
    assert all(o.accepted for o in outcomes), [o.error for o in outcomes if not o.accepted]
    assert_delivered_once(smtp_server, batch)
    assert len({message.peer for message in smtp_server.messages}) == 3


@pytest.mark.parametrize("connections", [1, 3])
def test_each_connection_waits_for_its_record_before_the_next_message(
    smtp_server: SmtpServer, connections: int
) -> None:
    """What bounds a crash's duplicates to one per connection: an accepted message is recorded
    before its connection sends again, so the server never holds more than one unrecorded
    message per connection."""
    batch = make_batch(30)
    recorded: list[int] = []
    ahead: list[int] = []
    lock = threading.Lock()

    def record(outcomes: Sequence[tuple[int, Outcome]]) -> None:
        time.sleep(0.002)  # a commit's time: the other connections go on meanwhile
        with lock:
            recorded.extend(position for position, _ in outcomes)
            ahead.append(len(smtp_server.messages) - len(recorded))

    with transport(smtp_server, connections=connections) as smtp:
        outcomes = smtp.send(batch, record)
    assert sorted(recorded) == list(range(30)) and all(o.accepted for o in outcomes)
    assert_delivered_once(smtp_server, batch)
    assert min(ahead) >= 0 and max(ahead) <= connections - 1, ahead
    if connections > 1:
        assert max(ahead) > 0, "the connections did not overlap: the bound was not tested"


def test_rate_is_shared_by_all_connections(smtp_server: SmtpServer) -> None:
    batch = make_batch(11)
    started = time.monotonic()
    outcomes = send(smtp_server, batch, connections=3, rate=20)
    elapsed = time.monotonic() - started
    assert all(o.accepted for o in outcomes)
    assert elapsed >= (11 - 1) / 20 * 0.95


def test_a_temporary_refusal_is_retried_until_accepted(smtp_server: SmtpServer) -> None:
    smtp_server.reply("451 4.3.0 Try again later", to=reader(1), times=2)
    batch = make_batch(3)
    outcomes = send(smtp_server, batch, connections=1, retries=3)
    assert all(o.accepted for o in outcomes)
    assert [a.reply for a in smtp_server.attempts_for(reader(1), "RCPT")] == [
        "451 4.3.0 Try again later",
        "451 4.3.0 Try again later",
        "250 OK",
    ]
    assert_delivered_once(smtp_server, batch)


def test_a_refusal_that_stays_temporary_fails_after_the_retries(smtp_server: SmtpServer) -> None:
    smtp_server.reply("451 4.3.0 Try again later", to=reader(1))
    outcomes = send(smtp_server, make_batch(4), connections=2, retries=2)
    assert [o.accepted for o in outcomes] == [True, False, True, True]
    assert outcomes[1].error == "451 4.3.0 Try again later (gave up after 3 attempts)"
    assert len(smtp_server.attempts_for(reader(1), "RCPT")) == 3
    assert smtp_server.received_by(reader(1)) == []
    assert all(len(smtp_server.received_by(reader(i))) == 1 for i in (0, 2, 3))


def test_a_permanent_refusal_fails_at_once(smtp_server: SmtpServer) -> None:
    smtp_server.reply("550 5.1.1 No such user", to=reader(2))
    outcomes = send(smtp_server, make_batch(4), connections=2)
    assert [o.accepted for o in outcomes] == [True, True, False, True]
    assert outcomes[2].error == "550 5.1.1 No such user"
    assert outcomes[2].permanent  # the address itself refused: a hard bounce at send time
    assert len(smtp_server.attempts_for(reader(2))) == 1
    assert len(smtp_server.messages) == 3


def test_a_permanent_refusal_of_the_data_fails_at_once(smtp_server: SmtpServer) -> None:
    smtp_server.reply("554 5.7.1 Message rejected as spam", to=reader(0), at="DATA")
    outcomes = send(smtp_server, make_batch(2), connections=1)
    assert outcomes[0] == Outcome.failed(reader(0), "554 5.7.1 Message rejected as spam")
    assert outcomes[1].accepted
    assert len(smtp_server.attempts_for(reader(0), "DATA")) == 1


def test_a_dropped_connection_is_reopened_and_nothing_is_lost(smtp_server: SmtpServer) -> None:
    smtp_server.drop(times=2)
    batch = make_batch(10)
    outcomes = send(smtp_server, batch, connections=2)
    assert all(o.accepted for o in outcomes), [o.error for o in outcomes]
    assert [a.reply for a in smtp_server.attempts].count("dropped") == 2
    assert_delivered_once(smtp_server, batch)


def test_a_message_accepted_just_before_the_drop_is_not_sent_again(smtp_server: SmtpServer) -> None:
    smtp_server.drop(times=1, after_reply=True)
    batch = make_batch(4)
    outcomes = send(smtp_server, batch, connections=1)
    assert all(o.accepted for o in outcomes)
    assert_delivered_once(smtp_server, batch)


def test_421_closes_the_connection_and_the_message_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.reply("421 4.7.0 closing", times=1)
    batch = make_batch(3)
    outcomes = send(smtp_server, batch, connections=1)
    assert all(o.accepted for o in outcomes)
    assert_delivered_once(smtp_server, batch)


def test_a_server_slower_than_the_timeout_counts_as_a_drop(smtp_server: SmtpServer) -> None:
    smtp_server.slow(1.5, times=1)
    batch = make_batch(3)
    started = time.monotonic()
    outcomes = send(smtp_server, batch, connections=1, timeout=0.4)
    assert time.monotonic() - started >= 0.4  # it did wait for the slow answer, then gave up
    assert all(o.accepted for o in outcomes)
    assert_delivered_once(smtp_server, batch)


def test_a_server_that_goes_away_fails_every_message_but_never_raises(smtp_server: SmtpServer) -> None:
    smtp = transport(smtp_server, connections=2, retries=1)
    smtp.open()
    smtp_server.stop()
    outcomes = smtp.send(make_batch(6))
    smtp.close()
    assert [o.email for o in outcomes] == [reader(i) for i in range(6)]
    assert not any(o.accepted for o in outcomes)
    where = f"127.0.0.1:{smtp_server.port}"
    assert all(o.error and where in o.error for o in outcomes), [o.error for o in outcomes]


def test_a_server_that_is_not_listening_fails_open() -> None:
    port = free_port()
    smtp = create(SmtpOptions(port=port, timeout=2), {}, Path("."))
    with pytest.raises(TransportError) as caught:
        smtp.open()
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "refused" in str(caught.value).lower()


def test_the_transport_can_be_reused(smtp_server: SmtpServer) -> None:
    smtp = transport(smtp_server, connections=2)
    smtp.open()
    first = smtp.send(make_batch(3))
    second = smtp.send(make_batch(3, start=3))
    smtp.close()
    smtp.close()  # closing twice is harmless
    third = smtp.send(make_batch(2, start=6))  # not open: opens and closes for this batch
    assert all(o.accepted for o in first + second + third)
    assert len(smtp_server.messages) == 8
    assert smtp.send(make_batch(0)) == []


def test_the_options_are_checked_and_create_transport_takes_them() -> None:
    smtp = create_transport(SmtpOptions(host="mail.example.org", port=587, security="starttls"), Path("."))
    assert isinstance(smtp, SmtpTransport) and smtp.name == "smtp"
    with pytest.raises(pydantic.ValidationError, match="hostname"):
        SmtpOptions.model_validate({"hostname": "mail.example.org"})
    with pytest.raises(pydantic.ValidationError, match="both username_env and password_env"):
        SmtpOptions(username_env="SMTP_USER")
    with pytest.raises(pydantic.ValidationError):
        SmtpOptions(connections=33)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "SMTP_USER"),
        ({"SMTP_USER": USER}, "SMTP_PASSWORD"),
        ({"SMTP_USER": USER, "SMTP_PASSWORD": ""}, "SMTP_PASSWORD"),
    ],
)
def test_a_missing_credential_variable_is_named(env: dict[str, str], missing: str) -> None:
    options = SmtpOptions(username_env="SMTP_USER", password_env="SMTP_PASSWORD")
    with pytest.raises(TransportError, match=missing) as caught:
        create(options, env, Path("."))
    assert USER not in str(caught.value)


def test_login_with_credentials_from_the_environment() -> None:
    env = {"SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD}
    with SmtpServer(auth=(USER, PASSWORD)) as server:
        smtp = transport(server, env, connections=2, username_env="SMTP_USER", password_env="SMTP_PASSWORD")
        assert PASSWORD not in repr(smtp) and PASSWORD not in repr(smtp.credentials)
        with smtp:
            outcomes = smtp.send(make_batch(3))
        assert all(o.accepted for o in outcomes)
        assert server.logins == [USER, USER]


def test_a_wrong_password_fails_open_without_showing_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "hunter2-not-the-password"
    env = {"SMTP_USER": USER, "SMTP_PASSWORD": wrong}
    with SmtpServer(auth=(USER, PASSWORD)) as server:
        smtp = transport(server, env, username_env="SMTP_USER", password_env="SMTP_PASSWORD")
        with pytest.raises(TransportError) as caught:
            smtp.open()
        with pytest.raises(TransportError) as again:
            smtp.send(make_batch(1))  # not open, so it opens: refused the same way
    error = caught.value
    assert "535" in str(error) and f"{server.host}:{server.port}" in str(error)
    assert "SMTP_PASSWORD" in str(error)
    for text in (str(error), repr(error), repr(error.args), str(again.value), caplog.text):
        assert wrong not in text and PASSWORD not in text
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_with_login(security: str) -> None:
    env = {"SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD}
    with SmtpServer(auth=(USER, PASSWORD), tls=security) as server:  # type: ignore[arg-type]
        smtp = trusting(
            server, env, security=security, username_env="SMTP_USER", password_env="SMTP_PASSWORD"
        )
        with smtp:
            outcomes = smtp.send(make_batch(2))
    assert all(o.accepted for o in outcomes)
    assert server.logins == [USER] * 4  # every connection (4 by default) logged in
    assert all(message.tls for message in server.messages) and len(server.messages) == 2


def test_tls_checks_the_certificate_by_default() -> None:
    with SmtpServer(tls="starttls") as server:
        smtp = transport(server, security="starttls", connections=1)
        with pytest.raises(TransportError, match="certificate verify failed"):
            smtp.open()
    assert server.messages == []


def test_starttls_against_a_server_without_it_fails_open(smtp_server: SmtpServer) -> None:
    with pytest.raises(TransportError, match="STARTTLS extension not supported"):
        transport(smtp_server, security="starttls", connections=1).open()
