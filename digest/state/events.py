"""What came back after sending: deliveries, opens, clicks, bounces, complaints, unsubscribes.

Every source (SendGrid's event webhook, bounce messages, feedback reports, mailed
unsubscribes) records ``DeliveryEvent`` rows here; each is stored once by its ``event_id``,
so a report delivered twice counts once. The effects on who gets mail (suppressions, a
reader's status) are applied by the caller through ``Readers.leave``; this table is what
editors' results are counted from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, Engine, func, select

from digest.address import address_key
from digest.state import schema
from digest.state.queries import insert_ignoring


class Kind(StrEnum):
    """What an event says happened to one message."""

    DELIVERED = "delivered"
    OPEN = "open"
    CLICK = "click"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    DROPPED = "dropped"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    event_id: str
    source: str  # "sendgrid", "dsn", "arf", "smtp", "mailto"
    kind: Kind
    occurred_at: dt.datetime
    list_name: str | None = None
    edition_id: str | None = None
    email: str | None = None
    url: str | None = None
    detail: str = ""


class Events:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self,
        events: Iterable[DeliveryEvent],
        *,
        now: dt.datetime,
        chunk: int = 1000,
        then: Callable[[Connection, list[DeliveryEvent]], object] | None = None,
    ) -> list[DeliveryEvent]:
        """Store the events not stored before (by ``event_id``); returns those that were new,
        so their effects are applied once however often a report arrives.

        ``then`` is called with each chunk's new events in the transaction that stores them:
        effects applied there are kept if and only if their events are, so a failure between
        the two cannot leave an event stored (and so never new again) without its effect.
        """
        new: list[DeliveryEvent] = []
        batch: dict[str, DeliveryEvent] = {}

        def flush() -> None:
            rows = [
                {
                    "event_id": event.event_id[:200],
                    "source": event.source,
                    "kind": event.kind.value,
                    "list_name": event.list_name,
                    "edition_id": event.edition_id,
                    "email": address_key(event.email) if event.email else None,
                    "url": event.url,
                    "detail": event.detail,
                    "occurred_at": event.occurred_at,
                    "received_at": now,
                }
                for event in batch.values()
            ]
            with self.engine.begin() as conn:
                statement = insert_ignoring(conn, schema.delivery_events, ["event_id"])
                stored = set(
                    conn.execute(statement.returning(schema.delivery_events.c.event_id), rows).scalars()
                )
                fresh = [event for key, event in batch.items() if key[:200] in stored]
                if then is not None and fresh:
                    then(conn, fresh)
            new.extend(fresh)
            batch.clear()

        for event in events:
            batch.setdefault(event.event_id, event)
            if len(batch) >= chunk:
                flush()
        if batch:
            flush()
        return new

    def count(self, email: str, kind: Kind, *, since: dt.datetime) -> int:
        """How many ``kind`` events the address had since then (soft bounces, for the policy)."""
        table = schema.delivery_events
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        table.c.email == address_key(email),
                        table.c.kind == kind.value,
                        table.c.occurred_at >= since,
                    )
                ).scalar_one()
            )

    def recipient_of(self, ledger_row: int) -> tuple[str, str, str] | None:
        """(list, edition, address) of a send ledger row: whom a bounce token names."""
        ledger, editions = schema.ledger, schema.editions
        with self.engine.connect() as conn:
            found = conn.execute(
                select(editions.c.list_name, ledger.c.edition_id, ledger.c.email)
                .join(editions, editions.c.id == ledger.c.edition_id)
                .where(ledger.c.id == ledger_row)
            ).first()
        return (found[0], found[1], found[2]) if found else None

    def last_sent_to(self, email: str) -> tuple[str, str] | None:
        """(list, edition) of the latest edition sent to the address; None: digest never mailed it."""
        ledger, editions = schema.ledger, schema.editions
        with self.engine.connect() as conn:
            found = conn.execute(
                select(editions.c.list_name, ledger.c.edition_id)
                .join(editions, editions.c.id == ledger.c.edition_id)
                .where(ledger.c.email == address_key(email), ledger.c.sent_at.is_not(None))
                .order_by(ledger.c.sent_at.desc())
                .limit(1)
            ).first()
        return (found[0], found[1]) if found else None
