"""A rendered variant + one recipient → a complete RFC 5322 message."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import html
import random
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from email import quoprimime
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from digest.address import address_key
from digest.ingest.sanitize import one_line
from digest.render import Rendered
from digest.render.context import PLACEHOLDERS

# CRLF line ends; headers folded only past RFC 5322's hard limit, because a folded
# List-Unsubscribe would be RFC 2047-encoded and no mail client could use it any more.
# (Set after the parts are encoded: quoted-printable lines must stay at 76 characters.)
WIRE = SMTP.clone(max_line_length=998)
# The parts are encoded under this one: the email package makes quoted-printable lines as long
# as the policy's max_line_length, and RFC 2045 allows 76 (SMTP's default policy says 78).
QP_LINE = 76
_PARTS = SMTP.clone(max_line_length=QP_LINE)


@functools.lru_cache(maxsize=64)
def sender_domain(sender: str) -> str:
    """The domain of the sender's address (for Message-IDs and List-Id), parsed once per sender."""
    return parseaddr(sender)[1].rpartition("@")[2] or "digest.invalid"


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a message is for, and the values that make it theirs."""

    email: str
    name: str = ""
    unsubscribe_url: str = ""
    greeting: str = ""  # worded by the templates: Greeting.to(name)
    preferences_url: str = ""  # "Manage your desks"


def placeholder_values(recipient: Recipient) -> dict[str, str]:
    """The recipient's value of every placeholder (PLACEHOLDERS), unescaped: the one place
    that says which field fills which placeholder, for every way a message is made."""
    return {
        "greeting": one_line(recipient.greeting),
        "unsubscribe_url": recipient.unsubscribe_url,
        "preferences_url": recipient.preferences_url,
    }


def personalize(rendered: Rendered, recipient: Recipient) -> tuple[str, str]:
    """The variant's HTML and text with the recipient's values in place of the placeholders."""
    values = placeholder_values(recipient)
    return _substitute(rendered.html, values, escape=True), _substitute(rendered.text, values, escape=False)


def _substitute(body: str, values: Mapping[str, str], *, escape: bool) -> str:
    for key, marker in PLACEHOLDERS.items():
        value = values[key]
        body = body.replace(marker, html.escape(value) if escape else value)
    return body


def make_message_id(edition_id: str, recipient: str, sender: str) -> str:
    """The same for the same edition and recipient, so a resent message is recognisably the same."""
    domain = sender_domain(sender)
    token = hashlib.sha256(f"{edition_id}\x1f{address_key(recipient)}".encode()).hexdigest()[:24]
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
    message = EmailMessage(policy=_PARTS)
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
    domain = sender_domain(sender)
    title = one_line(title).replace('"', "'")
    return f'"{title}" <{list_name}.{domain}>'


# -- many recipients of one variant -----------------------------------------------------------

# Header values that the email package writes exactly as given (checked against it on random
# values of all the characters these allow); anything else goes through the email package.
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_PLAIN_TEXT = re.compile(r"[!-~]+(?: [!-~]+)*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9'-]+(?: [A-Za-z0-9'-]+)*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_PLAIN_MESSAGE_ID = re.compile(r"<[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>")
# Well inside WIRE's 998, past which the email package would fold the header.
_HEADER_ROOM = 900
# Headers the email package parses (addresses, dates, MIME): never written by hand.
_STRUCTURED = frozenset(SMTP.header_factory.registry)  # type: ignore[attr-defined]
_PROBES = (
    Recipient(
        "probe.reader@probe.invalid",
        "Probe Reader",
        "https://probe.invalid/unsubscribe/a.b",
        "Hi, Probe",
        "https://probe.invalid/preferences/c.d",
    ),
    Recipient(
        "p@probe.invalid",
        "Prōbe «Reader», <b>&</b> Co",
        "https://probe.invalid/u/a.b?l=x&t=1",
        "Grüß dich, Prōbe «Reader», <b>&</b> Co",
        "https://probe.invalid/p/c.d?l=x&t=1",
    ),
)


class Composer:
    """``compose(...).as_bytes()`` for many recipients of one variant, without composing each.

    Composing re-encodes the whole variant for every recipient, though only a few lines and
    headers differ. Here the variant is encoded once: quoted-printable works line by line, so
    the lines without a placeholder are encoded once, and per recipient only the lines with a
    placeholder (encoded by the same ``quoprimime.body_encode``) and the recipient's own headers
    are made. The result is byte for byte what ``compose`` gives, given the same MIME boundary
    (one per variant here: quoted-printable text cannot contain it). The constructor checks
    that on probe recipients and, should it ever differ, ``message_bytes`` returns None so the
    caller composes instead. It returns None too for anything unusual (a value with a line
    break, a header ``compose`` would refuse or move into a part), for the same reason.
    """

    def __init__(
        self,
        rendered: Rendered,
        *,
        sender: str,
        edition_id: str,
        date: dt.datetime,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.rendered = rendered
        self.sender = sender
        self.edition_id = edition_id
        self.date = date
        self.headers = dict(headers or {})
        self.boundary = f"==============={random.randrange(sys.maxsize):019d}=="
        self._lines: dict[str, bytes] = {}
        self.usable = False
        try:
            self._prepare()
            self.usable = all(self._matches(probe) for probe in _PROBES)
        except (ValueError, TypeError, LookupError):
            self.usable = False

    def message_bytes(
        self, recipient: Recipient, message_id: str, headers: Mapping[str, str] | None = None
    ) -> bytes | None:
        """The message for one recipient, or None when only ``compose`` can make it."""
        pieces = self.message_pieces(recipient, message_id, headers)
        return None if pieces is None else b"".join(pieces)

    def message_pieces(
        self, recipient: Recipient, message_id: str, headers: Mapping[str, str] | None = None
    ) -> list[bytes] | None:
        """``message_bytes`` in the pieces it is joined from, each ending with CRLF.

        The body's pieces without a placeholder are the same objects for every recipient, so a
        DKIM signer can canonicalize each of them once per variant (``digest.send.dkim``).
        """
        if not self.usable:
            return None
        try:
            return self._message(recipient, message_id, headers or {})
        except (ValueError, TypeError, LookupError):
            return None

    def compose(
        self, recipient: Recipient, message_id: str, headers: Mapping[str, str] | None = None
    ) -> EmailMessage:
        """The same message the slow way (with this composer's MIME boundary)."""
        message = compose(
            self.rendered,
            recipient,
            sender=self.sender,
            edition_id=self.edition_id,
            date=self.date,
            message_id=message_id,
            headers={**self.headers, **(headers or {})},
        )
        message.set_boundary(self.boundary)
        return message

    def _prepare(self) -> None:
        probe = self.compose(_PROBES[0], "<probe@probe.invalid>")
        fixed = {name.lower(): WIRE.fold_binary(name, value) for name, value in probe.raw_items()}
        self._from, self._subject, self._date = fixed["from"], fixed["subject"], fixed["date"]
        self._tail = fixed["mime-version"] + fixed["content-type"] + b"\r\n"
        delimiter = b"--" + self.boundary.encode("ascii")
        text_part, html_part = probe.iter_parts()
        self._parts = [
            (delimiter + b"\r\n" + _part_headers(text_part) + b"\r\n", _body_template(self.rendered.text)),
            (
                b"\r\n" + delimiter + b"\r\n" + _part_headers(html_part) + b"\r\n",
                _body_template(self.rendered.html),
            ),
        ]
        self._end = b"\r\n" + delimiter + b"--\r\n"

    def _matches(self, probe: Recipient) -> bool:
        message_id = f"<probe.{len(probe.name)}@probe.invalid>"
        pieces = self._message(probe, message_id, {})
        return pieces is not None and b"".join(pieces) == self.compose(probe, message_id).as_bytes()

    def _message(
        self, recipient: Recipient, message_id: str, headers: Mapping[str, str]
    ) -> list[bytes] | None:
        merged = {**self.headers, **headers}
        names = {name.lower() for name in merged}
        if len(names) < len(merged) or any(
            name in _STRUCTURED or name.startswith("content-") or not _HEADER_NAME.fullmatch(name)
            for name in names
        ):
            return None  # compose would refuse these, or move them into a part
        out = [self._from, _to_line(one_line(recipient.name), recipient.email), self._subject, self._date]
        message_id = message_id or make_message_id(self.edition_id, recipient.email, self.sender)
        out.append(_plain_line("Message-ID", message_id, _PLAIN_MESSAGE_ID))
        for name, value in merged.items():
            if self.headers.get(name) != value:
                out.append(_plain_line(name, one_line(value), _PLAIN_TEXT))
                continue
            line = self._lines.get(name)  # the variant's own headers: the same for everyone
            if line is None:
                line = self._lines[name] = _plain_line(name, one_line(value), _PLAIN_TEXT)
            out.append(line)
        out.append(self._tail)
        values = placeholder_values(recipient)
        for (head, pieces), escape in zip(self._parts, (False, True), strict=True):
            out.append(head)
            for piece in pieces:
                if isinstance(piece, bytes):
                    out.append(piece)
                    continue
                line = _substitute(piece, values, escape=escape).encode("utf-8")
                if b"\r" in line or b"\n" in line:
                    return None  # a value that breaks the line would change the line structure
                out.append(_qp_line(line) + b"\r\n")
        out.append(self._end)
        return out


def _part_headers(part: MIMEPart) -> bytes:
    return b"".join(WIRE.fold_binary(name, value) for name, value in part.raw_items())


def _qp_line(line: bytes) -> bytes:
    """One line (no line break in it) as compose's quoted-printable encodes it."""
    return quoprimime.body_encode(line.decode("latin-1"), QP_LINE, "\r\n").encode("ascii")


def _body_template(body: str) -> list[bytes | str]:
    """The body's encoded lines, CRLF-ended: runs without a placeholder as bytes, encoded once;
    each line with a placeholder as text, to fill in and encode per recipient."""
    markers = tuple(PLACEHOLDERS.values())
    pieces: list[bytes | str] = []
    run: list[bytes] = []
    # As the email package does it: UTF-8, split at CR, LF or CRLF, every line ended.
    for line in body.encode("utf-8").splitlines() or [b""]:
        text = line.decode("utf-8")
        if any(marker in text for marker in markers):
            if run:
                pieces.append(b"".join(run))
                run = []
            pieces.append(text)
        else:
            run.append(_qp_line(line) + b"\r\n")
    if run:
        pieces.append(b"".join(run))
    return pieces


def _to_line(name: str, address: str) -> bytes:
    if len(name) + len(address) < _HEADER_ROOM and _PLAIN_ADDRESS.fullmatch(address):
        if not name:
            return f"To: {address}\r\n".encode("ascii")
        if _PLAIN_NAME.fullmatch(name):
            return f"To: {name} <{address}>\r\n".encode("ascii")
    return WIRE.fold_binary(*SMTP.header_store_parse("To", Address(display_name=name, addr_spec=address)))


def _plain_line(name: str, value: str, plain: re.Pattern[str]) -> bytes:
    if len(name) + len(value) < _HEADER_ROOM and "=?" not in value and plain.fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    return WIRE.fold_binary(*SMTP.header_store_parse(name, value))
