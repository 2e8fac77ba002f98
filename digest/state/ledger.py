"""The send ledger: one row per edition × recipient, so a crash loses nothing and repeats nothing.

A row goes pending → sending (claimed by one sender, with its owner and time) → sent / failed.
Rows are claimed in small batches inside one transaction, so two senders never hold the same
row; a row left "sending" by a sender that died is taken back (at once when that sender was a
process on this machine that no longer exists, else after ``claim_timeout``) and sent again.
That resend is the one window no sender can close: the provider took the message but the
answer was lost. Outcomes are recorded as they come (``digest.send.recording``), so it is at
most one message per SMTP connection or one SendGrid request, and it keeps its Message-ID.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    bindparam,
    func,
    or_,
    select,
    true,
    update,
)

from digest.state import schema
from digest.state.owner import owner_is_dead
from digest.state.queries import among


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
# finish(): outcomes shared by this many rows are recorded with one UPDATE … WHERE id IN (…).
_GROUP_MIN = 8
# A finish() outcome: (status, provider id, error).
_Outcome = tuple[Status, str | None, str | None]
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
    """A row taken to send. A tuple: a claim makes a thousand of them, each from a result row."""

    id: int
    email: str
    name: str
    variant: str
    attempts: int


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def retry_failed(self, edition_id: str, *, now: dt.datetime) -> int:
        """A new run sends again to those a previous run failed to reach.

        Not to those an editor has since reached with `digest send --resend`: their row says
        sent (``Resends.record``). Nor to those refused for good (``REFUSED``): they are
        suppressed, and trying them again only made every later run fail.
        """
        table = schema.ledger
        with self.engine.begin() as conn:
            return conn.execute(
                update(table)
                .where(table.c.edition_id == edition_id, table.c.status == FAILED, _retryable(table))
                .values(status=PENDING, updated_at=now)
            ).rowcount

    def row(self, edition_id: str, email: str) -> Row | None:
        """The ledger's row for one recipient (``email`` folded as the ledger keeps it)."""
        table = schema.ledger
        with self.engine.connect() as conn:
            found = conn.execute(
                select(*(table.c[field] for field in Row.__slots__)).where(
                    table.c.edition_id == edition_id, table.c.email == email
                )
            ).first()
        return Row(*found) if found else None

    def claim(
        self, edition_id: str, owner: str, limit: int, *, now: dt.datetime, claim_timeout: dt.timedelta
    ) -> list[Claimed]:
        """Take up to ``limit`` rows to send: pending ones, or ones a dead sender left behind.

        The rows are of one variant, so that they go out as one batch (one request, one set
        of connections) rather than one small batch each: variants go out one after another,
        in the order of the claim index, and each variant's recipients in the list's order.
        Both lookups are a step into that index; finding the first waiting row in id order
        instead would walk past every row already sent, which slows each claim as the list
        grows.
        """
        table = schema.ledger
        with self.engine.begin() as conn:
            self._release_abandoned(conn, edition_id, now=now, claim_timeout=claim_timeout)
            # Picked and taken in one statement (the ids never travel to Python and back as a
            # thousand parameters), under SQLite's write lock or PostgreSQL's row locks.
            taking = update(table).values(
                status=SENDING, batch_id=owner, claimed_at=now, attempts=table.c.attempts + 1, updated_at=now
            )
            for ids in _waiting(edition_id, limit, postgresql=conn.dialect.name == "postgresql"):
                taken = conn.execute(
                    taking.where(table.c.id.in_(ids)).returning(
                        *(table.c[field] for field in Claimed._fields)
                    )
                )
                rows = list(map(Claimed._make, taken.all()))
                if rows:
                    break
        return sorted(rows)  # by id: it comes first in a Claimed, and no two rows share one

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
            if owner_is_dead(owner) or (claimed and now - claimed > claim_timeout)
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
        results: Sequence[Result],
        *,
        now: dt.datetime,
        conn: Connection | None = None,
    ) -> None:
        """Record (row id, status, provider id, error) for rows this owner claimed.

        A row this owner no longer holds (taken back as abandoned, then claimed by another
        sender) is left alone. Rows with the same outcome (a SendGrid request's recipients
        share one message id) are updated together by id; the rest with one statement run
        for each row (executemany). ``conn``: a connection the caller keeps open for many
        finishes (one commit per message on the SMTP path), not in a transaction.
        """
        if not results:
            return
        if conn is None:
            with self.engine.connect() as own:
                self.finish(owner, results, now=now, conn=own)
            return
        grouped, single = _plan_finish(results, owner=owner, now=now)
        table = schema.ledger
        with conn.begin():
            for (status, provider_id, error), ids in grouped.items():
                conn.execute(
                    update(table)
                    .where(among(conn, table.c.id, ids), table.c.batch_id == owner, table.c.status == SENDING)
                    .values(
                        status=status,
                        provider_id=provider_id,
                        error=error,
                        sent_at=now if status == SENT else None,
                        updated_at=now,
                    )
                )
            if single:
                conn.execute(_FINISH_ONE, single)

    def of_address(self, email: str) -> list[tuple[str, str, dt.datetime | None, int]]:
        """(edition, status, sent at, resends) of every edition that had the address (folded)."""
        table, resends = schema.ledger, schema.resends
        with self.engine.connect() as conn:
            again: dict[str, int] = dict(
                conn.execute(
                    select(resends.c.edition_id, func.count())
                    .where(resends.c.email == email, resends.c.status == SENT)
                    .group_by(resends.c.edition_id)
                ).all()
            )
            rows = conn.execute(
                select(table.c.edition_id, table.c.status, table.c.sent_at)
                .where(table.c.email == email)
                .order_by(table.c.edition_id)
            ).all()
        return [(edition, status, sent_at, again.get(edition, 0)) for edition, status, sent_at in rows]

    def release(self, edition_id: str, owner: str, *, now: dt.datetime) -> int:
        """Give back rows this owner claimed but did not send (the transport failed outright)."""
        table = schema.ledger
        with self.engine.begin() as conn:
            return conn.execute(
                update(table)
                .where(table.c.edition_id == edition_id, table.c.batch_id == owner, table.c.status == SENDING)
                .values(status=PENDING, updated_at=now)
            ).rowcount

    def unclaim(self, owner: str, ids: Sequence[int], *, now: dt.datetime) -> int:
        """Give back rows this owner claimed ahead and never tried: pending again, and the
        claim not counted as an attempt (``digest.send.claims``)."""
        table = schema.ledger
        with self.engine.begin() as conn:
            return conn.execute(
                update(table)
                .where(among(conn, table.c.id, ids), table.c.batch_id == owner, table.c.status == SENDING)
                .values(status=PENDING, attempts=table.c.attempts - 1, updated_at=now)
            ).rowcount

    def counts(self, edition_id: str) -> Counter[str]:
        table = schema.ledger
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.status, func.count())
                .where(table.c.edition_id == edition_id)
                .group_by(table.c.status)
            ).all()
        return Counter({status: count for status, count in rows})

    def last_sent(self, edition_id: str) -> dt.datetime | None:
        """When the edition's latest message was sent (None: nothing sent yet)."""
        table = schema.ledger
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.max(table.c.sent_at)).where(table.c.edition_id == edition_id)
            ).scalar()

    def refused(self, edition_id: str) -> int:
        """How many of the edition's recipients were refused for good (``REFUSED``)."""
        table = schema.ledger
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        table.c.edition_id == edition_id, table.c.status == FAILED, ~_retryable(table)
                    )
                ).scalar_one()
            )

    def failures(self, edition_id: str, limit: int = 20) -> list[tuple[str, str]]:
        """The failed recipients a later run tries again, with why they failed."""
        table = schema.ledger
        with self.engine.connect() as conn:
            return [
                (email, error or "")
                for email, error in conn.execute(
                    select(table.c.email, table.c.error)
                    .where(table.c.edition_id == edition_id, table.c.status == FAILED, _retryable(table))
                    .order_by(table.c.id)
                    .limit(limit)
                )
            ]


def _waiting(edition_id: str, limit: int, *, postgresql: bool) -> Iterator[Select[tuple[int]]]:
    """Up to ``limit`` pending rows of the first variant waiting, in list order (``claim``)."""
    table = schema.ledger
    pending = (table.c.edition_id == edition_id, table.c.status == PENDING)
    first_variant = select(table.c.variant).where(*pending).order_by(table.c.variant).limit(1)
    # Another sender may hold every row of that variant (PostgreSQL skips locked rows): then
    # any variant will do.
    for wanted in (table.c.variant == first_variant.scalar_subquery(), true()):
        query = select(table.c.id).where(*pending, wanted).order_by(table.c.id).limit(limit)
        yield query.with_for_update(skip_locked=True) if postgresql else query


# finish()'s statement for one row, built once: the SMTP path runs it for every message, and
# building it each time cost more than running it.
_FINISH_ONE = (
    update(schema.ledger)
    .where(
        schema.ledger.c.id == bindparam("row_id"),
        schema.ledger.c.batch_id == bindparam("owner"),
        schema.ledger.c.status == SENDING,
    )
    .values(
        status=bindparam("new_status"),
        provider_id=bindparam("new_provider_id"),
        error=bindparam("new_error"),
        # Each takes its column's type (UTCDateTime for the times) from values().
        sent_at=bindparam("new_sent_at"),
        updated_at=bindparam("now"),
    )
)


def _retryable(table: Table) -> ColumnElement[bool]:
    return or_(table.c.error.is_(None), ~table.c.error.startswith(REFUSED, autoescape=True))


def _plan_finish(
    results: Sequence[Result], *, owner: str, now: dt.datetime
) -> tuple[dict[_Outcome, list[int]], list[dict[str, object]]]:
    """What ``Ledger.finish`` writes: the row ids of each outcome shared by ``_GROUP_MIN`` rows
    or more (one UPDATE by id each), and the parameters of every other row (one executemany).
    """
    groups: dict[_Outcome, list[int]] = {}
    for row_id, status, provider_id, error in results:
        groups.setdefault((status, provider_id, error), []).append(row_id)
    grouped: dict[_Outcome, list[int]] = {}
    single: list[dict[str, object]] = []
    for (status, provider_id, error), ids in groups.items():
        if len(ids) < _GROUP_MIN:
            sent_at = now if status == SENT else None
            values = {"owner": owner, "now": now, "new_status": status, "new_provider_id": provider_id}
            values |= {"new_error": error, "new_sent_at": sent_at}
            single.extend({"row_id": row_id, **values} for row_id in ids)
            continue
        grouped[(status, provider_id, error)] = ids
    return grouped, single
