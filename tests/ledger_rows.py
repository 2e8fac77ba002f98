"""Ledger rows for tests: recipients written straight into an edition's ledger.

A send fills the ledger from the state store's readers (``digest.state.recipients``); the
ledger's own tests need rows with chosen addresses, variants and statuses, and no readers.
The rows go in as a send's do: through ``insert_ignoring`` on (edition, address), a variant's
rows side by side.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from digest.state import Store, schema
from digest.state.ledger_types import PENDING, Status
from digest.state.queries import insert_ignoring


@dataclass(frozen=True, slots=True)
class Entry:
    """A recipient to add to an edition's ledger."""

    email: str
    name: str
    variant: str
    status: Status = PENDING
    error: str | None = None


def add_rows(
    store: Store, edition_id: str, entries: Iterable[Entry], *, now: dt.datetime, chunk: int = 2000
) -> Counter[str]:
    """Add the recipients not yet in the edition's ledger, ``chunk`` at a time; the new rows
    by status, and how many were already there ("duplicate")."""
    counts: Counter[str] = Counter()
    rows = [
        {
            "edition_id": edition_id,
            "email": entry.email,
            "name": entry.name,
            "variant": entry.variant,
            "status": entry.status,
            "error": entry.error,
            "updated_at": now,
        }
        for entry in entries
    ]
    for start in range(0, len(rows), chunk):
        batch = sorted(rows[start : start + chunk], key=lambda row: str(row["variant"]))
        with store.engine.begin() as conn:
            statement = insert_ignoring(conn, schema.ledger).returning(schema.ledger.c.status)
            inserted = conn.execute(statement, batch).scalars().all()
        counts.update(inserted)
        counts["duplicate"] += len(batch) - len(inserted)
    return counts
