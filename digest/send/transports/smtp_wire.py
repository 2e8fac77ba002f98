"""SMTP on the wire: connections with a quicker DATA, a rate shared by them, replies classified,
and each message's bytes as they go out.

The parts of the SMTP transport that speak to smtplib rather than decide what to send.
"""

from __future__ import annotations

import re
import smtplib
import threading
import time
from dataclasses import dataclass
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Literal, cast

from digest.render.message import Composer, make_message_id
from digest.send.dkim import Signer
from digest.send.transports.base import Batch, Envelope

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_DOT_AFTER_LF = re.compile(rb"\n\.")


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed, and what that means: retry (temporary, dropped) or not."""

    reason: str
    kind: Literal["temporary", "permanent", "rejected", "dropped", "unreachable"]
    """"rejected": permanent, and about the address itself (a hard bounce at send time)."""


class RateLimiter:
    """Spaces sends evenly so that all threads together stay under ``rate`` per second."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this caller's turn; turns are handed out in order of arrival."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            turn = max(now, self._next)
            self._next = turn + self.interval
        if turn > now:
            time.sleep(turn - now)


class _QuickData:
    """``smtplib``'s DATA, with a quicker search for the lines that start with "." to double.

    ``smtplib`` finds them with a pattern anchored at the start of every line, which the regular
    expression engine tries at every byte: about 230 µs for a 60 KB edition, more than all the
    rest of sending it. A line feed followed by a dot is a literal the engine jumps to: 30 µs.
    """

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        connection: smtplib.SMTP = self  # type: ignore[assignment]
        if not isinstance(msg, bytes) or connection.debuglevel:
            return super().data(msg)  # type: ignore[misc, no-any-return]
        connection.putcmd("data")
        code, answer = connection.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, answer)
        # What smtplib's re.sub(rb"(?m)^\.", b"..", msg) does: a "." at the start or after LF.
        quoted = (b"." if msg.startswith(b".") else b"") + _DOT_AFTER_LF.sub(b"\n..", msg)
        if not quoted.endswith(b"\r\n"):
            quoted += b"\r\n"
        connection.send(quoted + b".\r\n")
        return connection.getreply()


class Connection(_QuickData, smtplib.SMTP):
    pass


class SSLConnection(_QuickData, smtplib.SMTP_SSL):
    pass


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient per message, so one reply.
        code, text = next(iter(exc.recipients.values()), (-1, b"recipient refused"))
        failure = _from_reply(code, text)
        if failure.kind == "permanent" and _about_the_address(failure.reason):
            return Failure(failure.reason, "rejected")
        return failure
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return Failure(f"connection lost: {exc}", "dropped")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _from_reply(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPException):
        # SMTPNotSupportedError and the like: this message cannot go over this server.
        return Failure(str(exc), "permanent")
    return Failure(f"connection lost: {describe(exc)}", "dropped")


# An enhanced status (RFC 3463) of another class than 5.1 (address) or 5.2 (mailbox) says
# the refusal is about us, the message or the server (5.7.1 relaying denied, 5.3.4 too big,
# 5.7.26 DMARC): suppressing the reader for that could empty a list in one send.
_ENHANCED = re.compile(r"\d{3} ([245])\.(\d{1,3})\.(\d{1,3})\b")


def _about_the_address(reason: str) -> bool:
    found = _ENHANCED.match(reason)
    if found is None:
        # No enhanced status: 550, 551 and 553 at RCPT are "no such mailbox" in RFC 5321.
        return reason[:3] in ("550", "551", "553") and not re.search(r"relay|spam|block|polic", reason, re.I)
    return found.group(2) == "1" or (found.group(2) == "2" and found.group(3) == "1")


def _from_reply(code: int, text: bytes | str) -> Failure:
    return Failure(reply(code, text), "temporary" if 400 <= code < 500 else "permanent")


def reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"


def describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return reply(exc.smtp_code, exc.smtp_error)
    if not isinstance(exc, smtplib.SMTPException) and isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def message_bytes(
    batch: Batch, composer: Composer | None, envelope: Envelope, international: bool, signer: Signer | None
) -> tuple[bytes, str | None]:
    """The message as it goes over the wire, and its Message-ID.

    The same bytes as ``batch.message(envelope).as_bytes()``; the composer makes them without
    composing the whole message when it can. (Not ``smtplib``'s ``send_message``: its generator
    would turn every body line starting with "From " into ">From ".) ``signer`` DKIM-signs these
    exact bytes, after every per-recipient change; the composer's pieces make that quicker.
    """
    recipient = envelope.recipient
    if composer is not None and not international:
        message_id = envelope.message_id or make_message_id(batch.edition_id, recipient.email, batch.sender)
        pieces = composer.message_pieces(recipient, message_id, envelope.headers)
        if pieces is not None:
            data = b"".join(pieces)
            return (signer.sign(data, pieces) if signer else data), message_id
    message = batch.message(envelope)
    # Batch messages are made under an EmailPolicy (SMTP's), the kind that knows utf8.
    policy = cast(EmailPolicy, message.policy).clone(utf8=True) if international else None
    message_id, data = message["Message-ID"], message.as_bytes(policy=policy)
    return (signer.sign(data) if signer else data), str(message_id) if message_id else None
