"""A rendered variant + one recipient → a complete RFC 5322 message."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from digest.ingest.sanitize import one_line
from digest.render import Rendered
from digest.render.context import PLACEHOLDERS

# CRLF line ends; headers folded only past RFC 5322's hard limit, because a folded
# List-Unsubscribe would be RFC 2047-encoded and no mail client could use it any more.
# (Set after the parts are encoded: quoted-printable lines must stay at 76 characters.)
WIRE = SMTP.clone(max_line_length=998)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a message is for, and the values that make it theirs."""

    email: str
    name: str = ""
    unsubscribe_url: str = ""

    @property
    def greeting(self) -> str:
        return f"Hello, {self.name}" if self.name else "Hello"


def personalize(rendered: Rendered, recipient: Recipient) -> tuple[str, str]:
    """The variant's HTML and text with the recipient's values in place of the placeholders."""
    values = {"greeting": one_line(recipient.greeting), "unsubscribe_url": recipient.unsubscribe_url}
    return _substitute(rendered.html, values, escape=True), _substitute(rendered.text, values, escape=False)


def _substitute(body: str, values: Mapping[str, str], *, escape: bool) -> str:
    for key, marker in PLACEHOLDERS.items():
        value = values[key]
        body = body.replace(marker, html.escape(value) if escape else value)
    return body


def make_message_id(edition_id: str, recipient: str, sender: str) -> str:
    """The same for the same edition and recipient, so a resent message is recognisably the same."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "digest.invalid"
    token = hashlib.sha256(f"{edition_id}\x1f{recipient.casefold()}".encode()).hexdigest()[:24]
    return f"<{edition_id}.{token}@{domain}>"


def compose(
    rendered: Rendered,
    recipient: Recipient,
    *,
    sender: str,
    edition_id: str,
    date: dt.datetime,
    message_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """multipart/alternative, text first and HTML last, quoted-printable so no line is too long."""
    body_html, text = personalize(rendered, recipient)
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = Address(display_name=one_line(recipient.name), addr_spec=recipient.email)
    message["Subject"] = one_line(rendered.subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id or make_message_id(edition_id, recipient.email, sender)
    for name, value in (headers or {}).items():
        message[name] = one_line(value)
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(body_html, subtype="html", charset="utf-8", cte="quoted-printable")
    # The parts are encoded by now (quoted-printable lines of 76); only the headers use WIRE.
    message.policy = WIRE
    return message


def list_id(sender: str, list_name: str, title: str) -> str:
    """The List-Id header value (RFC 2919): the list's title and a name under the sender's domain."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "digest.invalid"
    title = one_line(title).replace('"', "'")
    return f'"{title}" <{list_name}.{domain}>'
