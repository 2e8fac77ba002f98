"""Who must never be sent to again: unsubscribes per list, bounces and complaints for all lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

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
        if reason not in REASONS:
            raise ValueError(f"unknown suppression reason {reason!r}")
        row = {
            "email": normalize(email),
            "list_name": list_name or ALL_LISTS,
            "reason": reason,
            "source": source[:200],
            "created_at": now or dt.datetime.now(dt.UTC),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(schema.suppressions).values(**row))
        except IntegrityError:
            return False
        return True

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
