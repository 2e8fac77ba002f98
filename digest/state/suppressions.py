"""Who must never be sent to again: unsubscribes per list, bounces and complaints for all lists."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import BindParameter, ColumnElement, Engine, Exists, delete, func, select

from digest.address import address_key
from digest.state import schema
from digest.state.queries import insert_ignoring

ALL_LISTS = "*"


class Reason(StrEnum):
    """Why an address is suppressed, stored as its value."""

    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


REASONS = tuple(Reason)


def applies_to(list_name: str | BindParameter[str]) -> ColumnElement[bool]:
    """The suppression keeps its address from ``list_name``: it is that list's, or every list's."""
    return schema.suppressions.c.list_name.in_((list_name, ALL_LISTS))


def blocks(email: ColumnElement[str], list_name: str | BindParameter[str]) -> Exists:
    """A suppression keeps ``email`` (a folded address) from ``list_name``."""
    table = schema.suppressions
    return select(table.c.email).where(table.c.email == email, applies_to(list_name)).exists()


@dataclass(frozen=True, slots=True)
class Suppression:
    email: str
    list_name: str
    reason: str
    source: str
    created_at: dt.datetime


def by_reason(counts: Mapping[str, int]) -> str:
    """Counts by reason in one phrase, every reason named: "unsubscribed 2, bounced 0, complained 1"."""
    return ", ".join(f"{reason} {counts.get(reason, 0):,}" for reason in REASONS)


class Suppressions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        email: str,
        *,
        reason: Reason,
        source: str,
        list_name: str | None = None,
        now: dt.datetime | None = None,
    ) -> bool:
        """Suppress ``email`` for one list (unsubscribed) or for all (``list_name=None``).

        Returns False when it was already suppressed there (the first record is kept).
        """
        added = self.add_many([(email, reason)], source=source, list_name=list_name, now=now)
        return sum(added.values()) == 1

    def add_many(
        self,
        rows: Iterable[tuple[str, str]],
        *,
        source: str,
        list_name: str | None = None,
        now: dt.datetime | None = None,
        chunk: int = 1000,
    ) -> Counter[str]:
        """``add`` for each (email, reason); the new rows by reason."""
        created = now or dt.datetime.now(dt.UTC)
        records = (
            Suppression(email, list_name or ALL_LISTS, reason, source, created) for email, reason in rows
        )
        return self.add_records(records, chunk=chunk)

    def add_records(self, records: Iterable[Suppression], *, chunk: int = 1000) -> Counter[str]:
        """Add each record not yet held (its list, reason, source and date kept), a chunk per
        transaction; the new rows by reason. Adding the same records again adds nothing.

        A provider's suppression list can run to hundreds of thousands of rows: one
        transaction (and one disk sync) per row would take minutes.
        """
        counts: Counter[str] = Counter()
        batch: dict[tuple[str, str], dict[str, object]] = {}

        def flush() -> None:
            with self.engine.begin() as conn:
                statement = insert_ignoring(conn, schema.suppressions)
                counts.update(
                    conn.execute(
                        statement.returning(schema.suppressions.c.reason), list(batch.values())
                    ).scalars()
                )
            batch.clear()

        for record in records:
            if record.reason not in REASONS:
                raise ValueError(f"unknown suppression reason {record.reason!r}")
            key = (address_key(record.email), record.list_name)
            row = {
                "email": key[0],
                "list_name": record.list_name,
                "reason": record.reason,
                "source": record.source[:200],
                "created_at": record.created_at,
            }
            batch.setdefault(key, row)  # the first record is kept
            if len(batch) >= chunk:
                flush()
        if batch:
            flush()
        return counts

    def every(self) -> Iterator[Suppression]:
        """Every suppression, list by list (all lists first), streamed."""
        table = schema.suppressions
        with self.engine.connect() as conn:
            query = select(table).order_by(table.c.list_name, table.c.email)
            for row in conn.execution_options(yield_per=1000).execute(query):
                yield Suppression(**row._mapping)

    def of_list(self, list_name: str, limit: int) -> tuple[Counter[str], list[Suppression]]:
        """Who must not get ``list_name``: the count by reason, and the ``limit`` newest records."""
        table = schema.suppressions
        applies = applies_to(list_name)
        with self.engine.connect() as conn:
            counts: Counter[str] = Counter(
                dict(
                    conn.execute(
                        select(table.c.reason, func.count()).where(applies).group_by(table.c.reason)
                    ).all()
                )
            )
            rows = conn.execute(
                select(table).where(applies).order_by(table.c.created_at.desc(), table.c.email).limit(limit)
            )
            return counts, [Suppression(**row._mapping) for row in rows]

    def is_suppressed(self, email: str, list_name: str) -> Suppression | None:
        table = schema.suppressions
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table)
                .where(table.c.email == address_key(email), applies_to(list_name))
                .order_by(table.c.created_at)
                .limit(1)
            ).first()
        return Suppression(**row._mapping) if row else None

    def of_address(self, email: str) -> list[Suppression]:
        """Every suppression of the address (folded), oldest first."""
        table = schema.suppressions
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table).where(table.c.email == address_key(email)).order_by(table.c.created_at)
            )
            return [Suppression(**row._mapping) for row in rows]

    def remove(self, email: str, list_name: str | None = None) -> int:
        """Lift a suppression (an editor re-subscribing someone on their request)."""
        table = schema.suppressions
        with self.engine.begin() as conn:
            return conn.execute(
                delete(table).where(
                    table.c.email == address_key(email), table.c.list_name == (list_name or ALL_LISTS)
                )
            ).rowcount

    def count(self) -> dict[str, int]:
        table = schema.suppressions
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.reason)).scalars().all()
        return {reason: rows.count(reason) for reason in REASONS if reason in rows}
