"""The send ledger's words: a row's status, a row as read, a row as claimed, an outcome.

Apart from the ledger's queries (``digest.state.ledger``), so that a module can name them
without importing those, and the claims, which the ledger's queries import, without a cycle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Status(StrEnum):
    """A ledger row's status, stored as its value."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    SUPPRESSED = "suppressed"


PENDING, SENDING, SENT, FAILED = Status.PENDING, Status.SENDING, Status.SENT, Status.FAILED
SKIPPED, SUPPRESSED = Status.SKIPPED, Status.SUPPRESSED
# The error of a failed row whose address the receiving server refused for good (a hard
# bounce at send time): it stays failed, and no later run tries it again.
REFUSED = "refused permanently: "
Result = tuple[int, Status, str | None, str | None]
"""What became of one claimed row: (row id, status, provider id, error)."""


@dataclass(frozen=True, slots=True)
class Row:
    """What the ledger says one recipient of an edition got."""

    id: int
    email: str
    name: str
    variant: str
    status: str
    error: str | None
    sent_at: dt.datetime | None
    updated_at: dt.datetime


class Claimed(NamedTuple):
    """A row taken to send (``suppressed``: see ``Ledger.claim``). A tuple: a claim makes a
    thousand of them, each from a result row."""

    id: int
    email: str
    name: str
    variant: str
    attempts: int
    suppressed: bool = False

    @property
    def position(self) -> Position:
        """Where the row is in the run index's order (within its edition)."""
        return (self.variant, self.id)


Position = tuple[str, int]
