"""One message from the bounce mailbox, read into a Report: what it is and whom it names.

Reading decides nothing: which recipient a report is about (the VERP token first) and what
it does to them are ``process`` and ``policy``'s work. The order of the checks matters:

1. an RFC 3464 DSN (``multipart/report; report-type=delivery-status``);
2. an RFC 5965 ARF feedback report (``report-type=feedback-report``): a complaint;
3. an unsubscribe mailed to the List-Unsubscribe mailto: ("unsubscribe <token>");
4. an auto-reply (RFC 3834 and its older cousins): ignored. Only after the reports, since
   MTAs mark their own DSNs ``Auto-Submitted: auto-replied`` (Postfix does);
5. the looser bounce formats flufl.bounce knows (Exim, qmail, Exchange, …);
6. anything else: unknown, kept for a person to look at.
"""

from __future__ import annotations

import email
import email.parser
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from enum import StrEnum

import flufl.bounce


class Category(StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    AUTO_REPLY = "auto-reply"
    NOT_A_FAILURE = "not a failure"  # a DSN that says delivered, relayed or only delayed
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a bounce reports: hard (5.x.x) or soft (4.x.x, given up on)."""

    email: str
    hard: bool
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    category: Category
    message_id: str | None
    failures: tuple[Failure, ...] = ()
    # Headers a return-path token may be in: the report's own (To, Delivered-To, …) and the
    # returned message's (Return-Path, Received).
    envelope_texts: tuple[str, ...] = ()
    # The returned or reported message: its Message-ID and List-Id, and, for a complaint, who
    # complained (Original-Rcpt-To, else the original To: providers often redact both).
    original_message_id: str | None = None
    list_id: str | None = None
    complainant: str | None = None
    unsubscribe_token: str | None = None
    detail: str = ""


_ENVELOPE_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "Cc")
_ORIGINAL_HEADERS = ("Return-Path", "Received", "Sender", "X-Original-To", "Delivered-To")
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_UNSUBSCRIBE = re.compile(r"^\s*(?:(?:re|aw|fwd?)\s*:\s*)*unsubscribe\s+(\S+)\s*$", re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|autoreply|auto:|out of (?:the )?office|"
    r"on vacation|vacation reply|abwesenheit|réponse automatique|respuesta automática|absence)",
    re.IGNORECASE,
)


def read(raw: bytes) -> Report:
    """What ``raw`` (one whole message) is, and the addresses and ids it carries."""
    message = email.message_from_bytes(raw)
    message_id = _header(message, "Message-ID") or None
    texts = _envelope_texts(message)
    report_type = message.get_param("report-type", header="Content-Type")
    if message.get_content_type() == "multipart/report" and isinstance(report_type, str):
        if report_type.lower() == "delivery-status":
            report = _dsn(message, message_id, texts)
            if report.category != Category.UNKNOWN:
                return report  # else a DSN without a readable recipient block: try flufl
        if report_type.lower() == "feedback-report":
            return _arf(message, message_id, texts)
    subject = _header(message, "Subject")
    found = _UNSUBSCRIBE.match(subject)
    if found:
        return Report(Category.UNSUBSCRIBE, message_id, unsubscribe_token=found.group(1), detail=subject)
    if _auto_reply(message, subject) and not _from_a_mailer(message):
        return Report(Category.AUTO_REPLY, message_id, detail=subject)
    return _loose_bounce(message, message_id, texts, subject)


def _dsn(message: Message, message_id: str | None, texts: tuple[str, ...]) -> Report:
    failures: list[Failure] = []
    delivered = False
    for fields in _recipient_blocks(message):
        action = fields.get("Action", "").strip().lower()
        recipient = _address_field(fields.get("Final-Recipient") or fields.get("Original-Recipient"))
        status_match = _STATUS.search(fields.get("Status", ""))
        status = status_match.group(0) if status_match else ""
        diagnostic = " ".join(fields.get("Diagnostic-Code", "").split())
        if action != "failed" or not recipient:
            # Delayed is a warning while the MTA keeps trying: the failure, if any, follows.
            delivered = delivered or action in ("delivered", "relayed", "expanded", "delayed")
            continue
        failures.append(Failure(recipient, not status.startswith("4"), status, diagnostic[:500]))
    original = _original(message)
    category = Category.BOUNCE if failures else Category.NOT_A_FAILURE if delivered else Category.UNKNOWN
    return Report(
        category,
        message_id,
        tuple(failures),
        texts + _original_texts(original),
        _header(original, "Message-ID") or None if original else None,
        _header(original, "List-Id") or None if original else None,
        detail="; ".join(f"{f.email} {f.status} {f.diagnostic}".strip() for f in failures)[:1000],
    )


def _recipient_blocks(message: Message) -> Iterator[Message]:
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks: list[Message] = []
        if isinstance(payload, str):  # a parser that did not split it: do it here
            blocks = [email.message_from_string(b) for b in re.split(r"\r?\n\r?\n", payload.strip())]
        elif isinstance(payload, list):
            blocks = [b for b in payload if isinstance(b, Message)]
        # The first block is per-message (Reporting-MTA …), the rest one per recipient.
        yield from blocks[1:]


def _arf(message: Message, message_id: str | None, texts: tuple[str, ...]) -> Report:
    fields = Message()
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            fields = _embedded(part) or fields
            break
    original = _original(message)
    complainant = _address_field(fields.get("Original-Rcpt-To") or fields.get("Removal-Recipient"))
    if not complainant and original is not None:
        complainant = next((a for _n, a in getaddresses([_header(original, "To")]) if "@" in a), "")
    feedback_type = fields.get("Feedback-Type", "abuse").strip().lower()
    return Report(
        Category.COMPLAINT,
        message_id,
        envelope_texts=texts + _original_texts(original),
        original_message_id=_header(original, "Message-ID") or None if original else None,
        list_id=_header(original, "List-Id") or None if original else None,
        complainant=complainant or None,
        detail=f"feedback-type {feedback_type}; {fields.get('User-Agent', '').strip()}"[:500],
    )


def _loose_bounce(message: Message, message_id: str | None, texts: tuple[str, ...], subject: str) -> Report:
    try:
        temporary, permanent = flufl.bounce.all_failures(message)
    except Exception as exc:  # flufl's heuristics on hostile mail: unknown, not a crash
        return Report(Category.UNKNOWN, message_id, envelope_texts=texts, detail=f"unreadable: {exc!r}")
    failures = tuple(
        Failure(address.decode("utf-8", "replace"), hard)
        for hard, found in ((True, permanent), (False, temporary - permanent))
        for address in sorted(found)
        if b"@" in address
    )
    original = _original(message)
    return Report(
        Category.BOUNCE if failures else Category.UNKNOWN,
        message_id,
        failures,
        texts + _original_texts(original),
        _header(original, "Message-ID") or None if original else None,
        _header(original, "List-Id") or None if original else None,
        detail=subject[:500],
    )


def _auto_reply(message: Message, subject: str) -> bool:
    auto = _header(message, "Auto-Submitted").lower()
    precedence = _header(message, "Precedence").lower()
    return (
        (auto != "" and auto != "no")
        or any(
            message.get(h) is not None for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")
        )
        or precedence in ("auto_reply", "bulk", "junk")
        or bool(_AUTO_SUBJECT.match(subject))
    )


def _from_a_mailer(message: Message) -> bool:
    """A mail system's own notice (Exim and others mark their bounces auto-replied too)."""
    sender = " ".join(a for _n, a in getaddresses([_header(message, "From")])).lower()
    return message.get("X-Failed-Recipients") is not None or any(
        sender.startswith(who) for who in ("mailer-daemon@", "postmaster@", "mail-daemon@")
    )


def _original(message: Message) -> Message | None:
    """The returned message (message/rfc822) or its headers (text/rfc822-headers)."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            return _embedded(part)
        if kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return email.parser.BytesHeaderParser().parsebytes(payload)
    return None


def _embedded(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return email.parser.HeaderParser().parsestr(payload)
    return None


def _envelope_texts(message: Message) -> tuple[str, ...]:
    return tuple(str(v) for name in _ENVELOPE_HEADERS for v in message.get_all(name) or ())


def _original_texts(original: Message | None) -> tuple[str, ...]:
    if original is None:
        return ()
    return tuple(str(v) for name in _ORIGINAL_HEADERS for v in original.get_all(name) or ())


def _address_field(value: str | None) -> str:
    """The address of a DSN/ARF address field: "rfc822; anna@example.org" or a bare address."""
    if not value:
        return ""
    address = value.split(";", 1)[-1].strip().strip("<>").strip()
    return address if "@" in address and not any(c.isspace() for c in address) else ""


def _header(message: Message | None, name: str) -> str:
    """A header's text, encoded words decoded, on one line ("" when missing or unreadable)."""
    if message is None:
        return ""
    value = message.get(name)
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        text = str(value)
    return " ".join(text.split())
