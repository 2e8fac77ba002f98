"""One contract, every transport: the same batch must reach the same people, the same way.

Each transport runs against a real peer: the outbox writes files, SMTP talks to an aiosmtpd
server, SendGrid posts to a local HTTP sink (its request bodies are checked against
SendGrid's official schema by the Prism tests in test_sendgrid_transport.py).
"""

from __future__ import annotations

import datetime as dt
import email
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email import policy
from pathlib import Path

import pytest

from digest.config import OutboxOptions, SendGridOptions, SmtpOptions
from digest.render import Rendered
from digest.render.message import list_id, make_message_id
from digest.send.transports import create_transport
from digest.send.transports.base import Batch, Envelope, Outcome, Transport
from digest.send.unsubscribe import Purpose, list_unsubscribe_headers, make_token, unsubscribe_url
from tests.conftest import greeted
from tests.dkimkeys import DOMAIN, Dns, ed25519_seed, rsa_pem
from tests.sendgrid_sink import SendGridSink
from tests.smtpd import SmtpServer

SENDER = "The Morning Ledger <digest@news.example.org>"
SECRET = b"contract-test-secret-0123456789"
BASE = "https://news.example.org"
NOW = dt.datetime(2026, 11, 25, 5, 0, tzinfo=dt.UTC)
CONTENT = Rendered(
    subject="The Morning Ledger · 25 November: Grid repairs",
    preheader="Three stories",
    html="<!DOCTYPE html><html lang=en><body><p>%%greeting%%,</p>"
    + "<p>"
    + "A long line of story text. " * 200
    + "</p>"
    + '<p><a href="%%unsubscribe_url%%">Unsubscribe</a></p></body></html>',
    # Lines that SMTP treats specially ("." starts a line, "From " is mangled by mbox tools).
    text="%%greeting%%,\n\nStories.\nFrom the desk: more to come.\n.hidden dot line\n\nUnsubscribe: %%unsubscribe_url%%\n",
)


@dataclass(frozen=True)
class Delivered:
    to: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]


Inbox = Callable[[], list[Delivered]]


def from_mime(raw: bytes) -> Delivered:
    message = email.message_from_bytes(raw, policy=policy.default)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return Delivered(
        to=message["To"].addresses[0].addr_spec,
        subject=str(message["Subject"]),
        text=text.get_content(),
        html=html.get_content(),
        headers={name: str(value) for name, value in message.items()},
    )


def fill(content: str, substitutions: dict[str, str]) -> str:
    """What SendGrid does with a personalization's substitutions."""
    for key, value in substitutions.items():
        content = content.replace(key, value)
    return content


def from_sendgrid(body: dict) -> Iterator[Delivered]:
    text, html = (part["value"] for part in body["content"])
    for personalization in body["personalizations"]:
        yield Delivered(
            to=personalization["to"][0]["email"],
            subject=body["subject"],
            text=fill(text, personalization["substitutions"]),
            html=fill(html, personalization["substitutions"]),
            headers={**body.get("headers", {}), **personalization.get("headers", {})},
        )


@pytest.fixture(params=["outbox", "smtp", "smtp-dkim", "sendgrid"])
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Transport, Inbox]]:
    if request.param == "outbox":
        folder = tmp_path / "outbox"
        transport = create_transport(OutboxOptions(path="outbox"), tmp_path)
        yield transport, lambda: [from_mime(p.read_bytes()) for p in sorted(folder.rglob("*.eml"))]
    elif request.param == "smtp":
        with SmtpServer() as server:
            options = SmtpOptions(host="127.0.0.1", port=server.port, connections=2, backoff=0.01)
            yield (
                create_transport(options, tmp_path),
                lambda: [from_mime(m.data) for m in server.messages],
            )
    elif request.param == "smtp-dkim":
        # Signed with RSA and Ed25519: the same contract, and every message as it arrived verifies.
        (tmp_path / "rsa.pem").write_bytes(rsa_pem())
        signers = [
            {"domain": DOMAIN, "selector": "rsa", "key_file": "rsa.pem"},
            {"domain": DOMAIN, "selector": "ed", "key_env": "DKIM_ED25519"},
        ]
        published = Dns().publish("rsa", rsa_pem()).publish("ed", ed25519_seed())
        with SmtpServer() as server:
            settings = {"port": server.port, "connections": 2, "backoff": 0.01, "dkim": signers}
            env = {"DKIM_ED25519": ed25519_seed().decode()}
            yield (
                create_transport(SmtpOptions.model_validate(settings), tmp_path, env),
                lambda: [from_mime(m.data) for m in server.messages if published.verify_all(m.data)],
            )
    else:
        with SendGridSink() as sink:
            transport = create_transport(
                SendGridOptions(api_url=sink.url, backoff=0.01),
                tmp_path,
                {"SENDGRID_API_KEY": "SG.contract-key"},
            )
            yield transport, lambda: [d for r in sink.requests for d in from_sendgrid(r.json)]


def batch(addresses: list[str], names: list[str] | None = None) -> Batch:
    envelopes = []
    for number, address in enumerate(addresses):
        token = make_token(SECRET, "daily", address, purpose=Purpose.UNSUBSCRIBE)
        name = names[number] if names else f"Reader {number}"
        envelopes.append(
            Envelope(
                recipient=greeted(address, name, unsubscribe_url(BASE, token)),
                message_id=make_message_id("daily-2026-11-25", address, SENDER),
                headers=list_unsubscribe_headers(BASE, SENDER, token),
            )
        )
    return Batch(
        edition_id="daily-2026-11-25",
        list_name="daily",
        variant="all",
        content=CONTENT,
        sender=SENDER,
        date=NOW,
        envelopes=tuple(envelopes),
        headers={"List-Id": list_id(SENDER, "daily", "The Morning Ledger")},
    )


ADDRESSES = [f"reader{n}@example.org" for n in range(7)]


def test_every_recipient_gets_one_message_of_their_own(transport: tuple[Transport, Inbox]) -> None:
    sender, inbox = transport
    sender.open()
    try:
        outcomes = sender.send(batch(ADDRESSES, names=[f"Reader <{n}> & Co" for n in range(7)]))
    finally:
        sender.close()
    assert [o.email for o in outcomes] == ADDRESSES
    assert all(o.accepted for o in outcomes), outcomes
    delivered = {d.to: d for d in inbox()}
    assert sorted(delivered) == sorted(ADDRESSES) and len(inbox()) == len(ADDRESSES)
    for number, address in enumerate(ADDRESSES):
        message = delivered[address]
        token = make_token(SECRET, "daily", address, purpose=Purpose.UNSUBSCRIBE)
        assert message.subject == CONTENT.subject
        assert message.text.startswith(f"Hello, Reader <{number}> & Co,")
        assert f"<p>Hello, Reader &lt;{number}&gt; &amp; Co,</p>" in message.html
        assert f"Unsubscribe: {BASE}/unsubscribe/{token}" in message.text
        assert f'href="{BASE}/unsubscribe/{token}"' in message.html
        assert message.headers["List-Unsubscribe"].startswith(f"<{BASE}/unsubscribe/{token}>, <mailto:")
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.headers["List-Id"] == '"The Morning Ledger" <daily.news.example.org>'
        assert "\nFrom the desk: more to come.\n.hidden dot line\n" in message.text.replace("\r\n", "\n")
        assert "%%" not in message.text + message.html


def test_open_send_send_close_and_close_again(transport: tuple[Transport, Inbox]) -> None:
    sender, inbox = transport
    sender.open()
    first = sender.send(batch(ADDRESSES[:3]))
    second = sender.send(batch(ADDRESSES[3:5]))
    sender.close()
    sender.close()  # closing twice is harmless
    assert [o.accepted for o in first + second] == [True] * 5
    assert sorted(d.to for d in inbox()) == sorted(ADDRESSES[:5])


def test_an_empty_batch_sends_nothing(transport: tuple[Transport, Inbox]) -> None:
    sender, inbox = transport
    sender.open()
    try:
        assert sender.send(batch([])) == []
    finally:
        sender.close()
    assert inbox() == []


def test_batches_up_to_max_batch_are_taken_whole(transport: tuple[Transport, Inbox]) -> None:
    sender, inbox = transport
    addresses = [f"bulk{n}@example.org" for n in range(min(sender.max_batch, 120))]
    sender.open()
    try:
        outcomes = sender.send(batch(addresses))
    finally:
        sender.close()
    assert len(outcomes) == len(addresses) and all(o.accepted for o in outcomes)
    assert len(inbox()) == len(addresses)


def test_ready_is_called_before_each_message_or_request_goes_out(transport: tuple[Transport, Inbox]) -> None:
    sender, inbox = transport
    addresses = [f"ready{n}@example.org" for n in range(12)]
    delivered_then: list[int] = []
    lock = threading.Lock()

    def ready() -> None:
        with lock:  # SMTP calls from one thread per connection
            delivered_then.append(len(inbox()))

    sender.open()
    try:
        outcomes = sender.send(batch(addresses), ready=ready)
    finally:
        sender.close()
    assert all(o.accepted for o in outcomes) and len(inbox()) == len(addresses)
    # Once for each message SMTP sends, once for the outbox's one write or SendGrid's one
    # request; each time before what it precedes, so never as many delivered as calls so far.
    assert len(delivered_then) == (len(addresses) if sender.name == "smtp" else 1)
    assert all(count < call for call, count in enumerate(delivered_then, 1))


def test_an_error_in_ready_stops_the_send_before_anything_goes_out(
    transport: tuple[Transport, Inbox],
) -> None:
    sender, inbox = transport
    addresses = [f"unready{n}@example.org" for n in range(20)]

    def ready() -> None:
        raise Unrecordable("the last outcome is not in the ledger")

    sender.open()
    try:
        with pytest.raises(Unrecordable, match="the last outcome"):
            sender.send(batch(addresses), ready=ready)
    finally:
        sender.close()
    assert inbox() == []


class Unrecordable(Exception):
    """What a ledger that cannot write raises from ``record``."""


def test_record_gets_every_outcome_once_as_send_returns_it(transport: tuple[Transport, Inbox]) -> None:
    sender, inbox = transport
    addresses = [f"recorded{n}@example.org" for n in range(30)]
    reported: list[tuple[int, Outcome]] = []
    lock = threading.Lock()

    def record(outcomes: Sequence[tuple[int, Outcome]]) -> None:
        with lock:  # SMTP calls from one thread per connection
            reported.extend(outcomes)

    sender.open()
    try:
        outcomes = sender.send(batch(addresses), record)
    finally:
        sender.close()
    assert sorted(position for position, _ in reported) == list(range(len(addresses)))
    assert dict(reported) == dict(enumerate(outcomes))
    assert all(o.accepted for o in outcomes) and len(inbox()) == len(addresses)


def test_an_error_in_record_stops_the_send_and_is_raised(transport: tuple[Transport, Inbox]) -> None:
    sender, inbox = transport
    addresses = [f"stopped{n}@example.org" for n in range(40)]
    calls: list[int] = []

    def record(outcomes: Sequence[tuple[int, Outcome]]) -> None:
        calls.append(len(outcomes))
        raise Unrecordable("the ledger is gone")

    sender.open()
    try:
        with pytest.raises(Unrecordable, match="the ledger is gone"):
            sender.send(batch(addresses), record)
    finally:
        sender.close()
    # What was sent is what had been reported when record failed: for SMTP one message on each
    # connection at most; for the outbox and SendGrid, the one write or request already made.
    assert len(inbox()) == sum(calls) and len(calls) <= 2
