"""The send ledger: one row per edition × recipient, so a crash loses nothing and repeats nothing.

A row goes pending → sending (claimed by one sender, with its owner and time) → sent / failed.
Rows are claimed in small batches inside one transaction, so two senders never hold the same
row; a row left "sending" by a sender that died is taken back (at once when that sender was a
process on this machine that no longer exists, else after ``claim_timeout``) and sent again.
That resend is the one window no sender can close: the provider took the message but the
answer was lost. It is at most one batch, and the message keeps its Message-ID.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from digest.state import schema

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
SKIPPED, SUPPRESSED = "skipped", "suppressed"
STATUSES = (PENDING, SENDING, SENT, FAILED, SKIPPED, SUPPRESSED)


@dataclass(frozen=True, slots=True)
class Entry:
    """A recipient to add to an edition's ledger."""

    email: str
    name: str
    variant: str
    status: str = PENDING
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    email: str
    name: str
    variant: str
    attempts: int


def owner_id() -> str:
    """Who holds a claim: this host and process, and a random part so a reused pid differs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str | None) -> bool:
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's sender: only the timeout can tell
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _insert(self, conn: Connection):  # type: ignore[no-untyped-def]
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(schema.ledger).on_conflict_do_nothing(index_elements=["edition_id", "email"])

    def add(
        self, edition_id: str, entries: Iterable[Entry], *, now: dt.datetime, chunk: int = 2000
    ) -> Counter[str]:
        """Add recipients not yet in the edition's ledger; counts the new rows by status.

        Streams: ``entries`` is consumed in chunks, so memory does not grow with the list.
        An address already in the ledger (a duplicate row, or a recipient of an earlier run)
        is left as it is and counted as "duplicate".
        """
        counts: Counter[str] = Counter()
        batch: list[dict[str, object]] = []

        def flush() -> None:
            with self.engine.begin() as conn:
                inserted = (
                    conn.execute(self._insert(conn).returning(schema.ledger.c.status), batch).scalars().all()
                )
            counts.update(inserted)
            counts["duplicate"] += len(batch) - len(inserted)
            batch.clear()

        for entry in entries:
            batch.append(
                {
                    "edition_id": edition_id,
                    "email": entry.email,
                    "name": entry.name,
                    "variant": entry.variant,
                    "status": entry.status,
                    "error": entry.error,
                    "attempts": 0,
                    "updated_at": now,
                }
            )
            if len(batch) >= chunk:
                flush()
        if batch:
            flush()
        return counts

    def retry_failed(self, edition_id: str, *, now: dt.datetime) -> int:
        """A new run sends again to those a previous run failed to reach."""
        table = schema.ledger
        with self.engine.begin() as conn:
            return conn.execute(
                update(table)
                .where(table.c.edition_id == edition_id, table.c.status == FAILED)
                .values(status=PENDING, updated_at=now)
            ).rowcount

    def claim(
        self, edition_id: str, owner: str, limit: int, *, now: dt.datetime, claim_timeout: dt.timedelta
    ) -> list[Claimed]:
        """Take up to ``limit`` rows to send: pending ones, or ones a dead sender left behind."""
        table = schema.ledger
        with self.engine.begin() as conn:
            self._release_abandoned(conn, edition_id, now=now, claim_timeout=claim_timeout)
            query = (
                select(table.c.id)
                .where(table.c.edition_id == edition_id, table.c.status == PENDING)
                .order_by(table.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(
                update(table)
                .where(table.c.id.in_(ids), table.c.status == PENDING)
                .values(
                    status=SENDING,
                    batch_id=owner,
                    claimed_at=now,
                    attempts=table.c.attempts + 1,
                    updated_at=now,
                )
            )
            rows = conn.execute(
                select(table.c.id, table.c.email, table.c.name, table.c.variant, table.c.attempts)
                .where(table.c.id.in_(ids), table.c.batch_id == owner, table.c.status == SENDING)
                .order_by(table.c.id)
            ).all()
        return [Claimed(*row) for row in rows]

    def _release_abandoned(
        self, conn: Connection, edition_id: str, *, now: dt.datetime, claim_timeout: dt.timedelta
    ) -> None:
        table = schema.ledger
        owners = conn.execute(
            select(table.c.batch_id, func.min(table.c.claimed_at))
            .where(table.c.edition_id == edition_id, table.c.status == SENDING)
            .group_by(table.c.batch_id)
        ).all()
        abandoned = [
            owner
            for owner, claimed in owners
            if _owner_is_dead(owner) or (claimed and now - claimed > claim_timeout)
        ]
        if abandoned:
            conn.execute(
                update(table)
                .where(
                    table.c.edition_id == edition_id,
                    table.c.status == SENDING,
                    table.c.batch_id.in_(abandoned),
                )
                .values(status=PENDING, updated_at=now)
            )

    def finish(
        self,
        owner: str,
        results: Sequence[tuple[int, str, str | None, str | None]],
        *,
        now: dt.datetime,
    ) -> None:
        """Record (row id, status, provider id, error) for rows this owner claimed."""
        table = schema.ledger
        with self.engine.begin() as conn:
            for row_id, status, provider_id, error in results:
                conn.execute(
                    update(table)
                    .where(and_(table.c.id == row_id, table.c.batch_id == owner, table.c.status == SENDING))
                    .values(
                        status=status,
                        provider_id=provider_id,
                        error=error,
                        sent_at=now if status == SENT else None,
                        updated_at=now,
                    )
                )

    def sent_among(self, edition_id: str, emails: Iterable[str]) -> set[str]:
        table = schema.ledger
        wanted = list(dict.fromkeys(emails))
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(table.c.email).where(
                        table.c.edition_id == edition_id, table.c.status == SENT, table.c.email.in_(wanted)
                    )
                ).scalars()
            )

    def counts(self, edition_id: str) -> Counter[str]:
        table = schema.ledger
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.status, func.count())
                .where(table.c.edition_id == edition_id)
                .group_by(table.c.status)
            ).all()
        return Counter({status: count for status, count in rows})

    def failures(self, edition_id: str, limit: int = 20) -> list[tuple[str, str]]:
        table = schema.ledger
        with self.engine.connect() as conn:
            return [
                (email, error or "")
                for email, error in conn.execute(
                    select(table.c.email, table.c.error)
                    .where(table.c.edition_id == edition_id, or_(table.c.status == FAILED))
                    .order_by(table.c.id)
                    .limit(limit)
                )
            ]
