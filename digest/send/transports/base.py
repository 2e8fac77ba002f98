"""The interface every transport implements: open(), send(batch), close().

A batch is one rendered variant (with its per-recipient placeholders still in it) and up to
``max_batch`` recipients, each with the values that make the message theirs. A transport
composes or uploads the messages its own way and reports one Outcome per recipient, in order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

from digest.render import Rendered
from digest.render.message import Recipient, compose


@dataclass(frozen=True, slots=True)
class Envelope:
    """One recipient of a batch: who, the values to substitute, and their own headers."""

    recipient: Recipient
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    # The envelope sender (MAIL FROM) of this message alone, for VERP; None: the batch's sender.
    return_path: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """One variant to several recipients."""

    edition_id: str
    list_name: str
    variant: str
    content: Rendered
    sender: str
    date: dt.datetime
    envelopes: tuple[Envelope, ...]
    headers: Mapping[str, str] = field(default_factory=dict)

    def message(self, envelope: Envelope) -> EmailMessage:
        """The complete message for one recipient (for transports that send MIME)."""
        return compose(
            self.content,
            envelope.recipient,
            sender=self.sender,
            edition_id=self.edition_id,
            date=self.date,
            message_id=envelope.message_id,
            headers={**self.headers, **envelope.headers},
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one recipient: accepted (with the provider's id) or failed (with why)."""

    email: str
    accepted: bool
    provider_id: str | None = None
    error: str | None = None
    # The receiving server refused the address itself for good (5xx to RCPT, "no such user"):
    # trying again cannot help, and the address must be suppressed like a hard bounce.
    permanent: bool = False

    @classmethod
    def ok(cls, email: str, provider_id: str | None = None) -> Outcome:
        return cls(email, True, provider_id)

    @classmethod
    def failed(cls, email: str, error: str, *, permanent: bool = False) -> Outcome:
        return cls(email, False, None, error, permanent)


Record = Callable[[Sequence[tuple[int, Outcome]]], None]
"""Takes outcomes as a transport learns them: (the envelope's position in the batch, its outcome)."""

Ready = Callable[[], None]
"""Called before each message or request goes out; nothing goes out until it returns."""


class Transport(Protocol):
    """Three methods. ``send`` retries what its provider says is temporary, as configured,
    and raises TransportError only when it cannot go on at all (bad credentials, no server).

    ``send``'s ``record``, when given, gets each outcome as soon as the transport knows it
    (each position once), and the transport sends nothing more on the connection or request
    stream that produced it until ``record`` returns: the caller can make each acceptance
    durable before the next message goes, so a crash leaves at most the one in hand per
    connection unrecorded. An error raised by ``record`` stops the send and is raised by
    ``send``. Outcomes the transport makes up at the end (envelopes never tried) may be
    returned without having been recorded.

    ``ready``, when given, is called before each message or request goes out, and nothing
    goes out until it returns: a caller whose ``record`` returns before
    the outcome is durable makes it durable there, so the bound above still holds while the
    next message is being prepared. An error it raises stops the send like one from ``record``.
    """

    name: str
    max_batch: int

    def open(self) -> None: ...

    def send(
        self, batch: Batch, record: Record | None = None, ready: Ready | None = None
    ) -> list[Outcome]: ...

    def close(self) -> None: ...
