"""Who must never be sent to again: unsubscribes per list, bounces and complaints for all lists."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from digest.state import schema

ALL_LISTS = "*"
REASONS = ("unsubscribed", "bounced", "complained")


@dataclass(frozen=True, slots=True)
class Suppression:
    email: str
    list_name: str
    reason: str
    source: str
    created_at: dt.datetime


def normalize(email: str) -> str:
    """Suppressions match addresses case-insensitively."""
    return email.strip().casefold()


class Suppressions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        email: str,
        *,
        reason: str,
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
        """``add`` for each (email, reason), a chunk per transaction; the new rows by reason.

        A provider's suppression list can run to hundreds of thousands of rows: one
        transaction (and one disk sync) per row would take minutes.
        """
        counts: Counter[str] = Counter()
        batch: dict[tuple[str, str], dict[str, object]] = {}
        created = now or dt.datetime.now(dt.UTC)

        def flush() -> None:
            with self.engine.begin() as conn:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                statement = dialect.insert(schema.suppressions).on_conflict_do_nothing()
                counts.update(
                    conn.execute(
                        statement.returning(schema.suppressions.c.reason), list(batch.values())
                    ).scalars()
                )
            batch.clear()

        for email, reason in rows:
            if reason not in REASONS:
                raise ValueError(f"unknown suppression reason {reason!r}")
            row = {
                "email": normalize(email),
                "list_name": list_name or ALL_LISTS,
                "reason": reason,
                "source": source[:200],
                "created_at": created,
            }
            batch.setdefault((row["email"], row["list_name"]), row)  # the first record is kept
            if len(batch) >= chunk:
                flush()
        if batch:
            flush()
        return counts

    def is_suppressed(self, email: str, list_name: str) -> Suppression | None:
        table = schema.suppressions
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table)
                .where(table.c.email == normalize(email), table.c.list_name.in_((list_name, ALL_LISTS)))
                .order_by(table.c.created_at)
                .limit(1)
            ).first()
        return Suppression(**row._mapping) if row else None

    def suppressed_among(self, emails: Iterable[str], list_name: str) -> set[str]:
        """Those of ``emails`` (already normalized) that must not get this list."""
        table = schema.suppressions
        wanted = list(dict.fromkeys(emails))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found.update(
                    conn.execute(
                        select(table.c.email).where(
                            table.c.email.in_(chunk), table.c.list_name.in_((list_name, ALL_LISTS))
                        )
                    ).scalars()
                )
        return found

    def remove(self, email: str, list_name: str | None = None) -> int:
        """Lift a suppression (an editor re-subscribing someone on their request)."""
        table = schema.suppressions
        with self.engine.begin() as conn:
            return conn.execute(
                delete(table).where(
                    table.c.email == normalize(email), table.c.list_name == (list_name or ALL_LISTS)
                )
            ).rowcount

    def count(self) -> dict[str, int]:
        table = schema.suppressions
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.reason)).scalars().all()
        return {reason: rows.count(reason) for reason in REASONS if reason in rows}
