"""The send ledger: one row per edition × recipient, so a crash loses nothing and repeats nothing.

A row is pending until a sender records its outcome (sent / failed / suppressed / skipped).
To send, a sender claims the next pending rows of one variant, up to a batch: the claim is
one row of ``send_claims`` naming the rows' id range, made under a lock on the edition, so
two senders never hold the same row and no claim writes a thousand rows. A pending row under
a claim counts as "sending". A claim left by a sender that died is taken back (at once when
that sender was a process on this machine that no longer exists, else after
``claim_timeout``) and its rows not yet recorded are sent again. That resend is the one
window no sender can close: the provider took the message but the answer was lost. Outcomes
are recorded as they come (``digest.send.recording``), so it is at most one message per SMTP
connection or one SendGrid request, and it keeps its Message-ID.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)

from digest.state import claims, schema
from digest.state.ledger_types import (
    FAILED,
    PENDING,
    REFUSED,
    SENDING,
    SENT,
    Claimed,
    Position,
    Result,
    Row,
    Status,
)
from digest.state.queries import among
from digest.state.suppressions import blocks

# Past every row id (a BIGINT): the bound of a run with no claim after it.
_NO_CLAIM = 2**63 - 1
# finish(): outcomes shared by this many rows are recorded with one UPDATE … WHERE id IN (…).
_GROUP_MIN = 8
# A finish() outcome: (status, provider id, error).
_Outcome = tuple[Status, str | None, str | None]


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def on_server(self) -> bool:
        """Whether the ledger is on a database server, which works in processes of its own, so
        its writes can overlap the sender's work (SQLite works in the sender, under its GIL)."""
        return self.engine.dialect.name != "sqlite"

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
        fields = (_status() if field == "status" else table.c[field] for field in Row.__slots__)
        with self.engine.connect() as conn:
            found = conn.execute(
                select(*fields).where(table.c.edition_id == edition_id, table.c.email == email)
            ).first()
        return Row(*found) if found else None

    def claim(
        self,
        edition_id: str,
        owner: str,
        limit: int,
        *,
        now: dt.datetime,
        claim_timeout: dt.timedelta = claims.CLAIM_TIMEOUT,
        after: Position | None = None,
        list_name: str | None = None,
    ) -> list[Claimed]:
        """Take up to ``limit`` rows to send: pending ones no claim holds, or, when there are
        none, ones a dead sender left behind. ``after``: where the sender's last claim ended
        (``Claimed.position``); the rows past it are looked at first. ``suppressed``: the
        address is suppressed for ``list_name`` or every list (only every list if None).

        The rows are of one variant, so that they go out as one batch (one request, one set
        of connections) rather than one small batch each: variants go out one after another,
        in the order of the run index, and each variant's recipients in the list's order.
        The claim is one row naming the first and last id; claims never overlap, so the rows
        between them are this owner's alone. It goes when its rows are recorded (``finish``'s
        ``done``) or given back (``release``).
        """
        edition = {"edition_id": edition_id, "list_name": list_name}
        with self.engine.begin() as conn:
            claims.lock(conn, edition_id)
            rows = _next_run(conn, edition, limit, after)
            if not rows and claims.take_back_abandoned(
                conn, edition_id, now=now, claim_timeout=claim_timeout
            ):
                rows = _next_run(conn, edition, limit, None)
            if rows:
                claims.add(conn, edition_id, owner, rows, now)
        return rows

    def finish(
        self,
        owner: str,
        results: Sequence[Result],
        *,
        now: dt.datetime,
        conn: Connection | None = None,
        done: Sequence[int] = (),
    ) -> None:
        """Record (row id, status, provider id, error) for rows this owner claimed.

        A row this owner no longer holds (taken back as abandoned, then claimed by another
        sender) is left alone. Rows with the same outcome (a SendGrid request's recipients
        share one message id) are updated together by id; the rest with one statement run
        for each row (executemany). ``conn``: a connection the caller keeps open for many
        finishes (one commit per message on the SMTP path), not in a transaction. ``done``:
        the first row ids of this owner's claims whose every row is recorded with this: the
        claims go in the same transaction.
        """
        if not results and not done:
            return
        if conn is None:
            with self.engine.connect() as own:
                self.finish(owner, results, now=now, conn=own, done=done)
            return
        grouped, single = _plan_finish(results, owner=owner, now=now)
        table = schema.ledger
        with conn.begin():
            for (status, provider_id, error), ids in grouped.items():
                conn.execute(
                    update(table)
                    .where(among(conn, table.c.id, ids), table.c.status == PENDING, claims.holding(owner))
                    .values(
                        status=status,
                        provider_id=provider_id,
                        error=error,
                        sent_at=now if status == SENT else None,
                        batch_id=owner,
                        attempts=table.c.attempts + 1,
                        updated_at=now,
                    )
                )
            if single:
                conn.execute(_statements()["finish_one"], single)
            if done:
                claims.drop_done(conn, owner, done)

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
                select(table.c.edition_id, _status(), table.c.sent_at)
                .where(table.c.email == email)
                .order_by(table.c.edition_id)
            ).all()
        return [(edition, status, sent_at, again.get(edition, 0)) for edition, status, sent_at in rows]

    def release(self, edition_id: str, owner: str) -> None:
        """Give back what this owner claimed (its send is over, or failed outright): its rows
        not yet recorded are pending for any sender again."""
        with self.engine.begin() as conn:
            claims.drop_owners(conn, edition_id, [owner])

    def counts(self, edition_id: str) -> Counter[str]:
        """The edition's rows by status, pending rows under a claim as "sending"."""
        table = schema.ledger
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.status, func.count())
                .where(table.c.edition_id == edition_id)
                .group_by(table.c.status)
            ).all()
            sending = conn.execute(
                claims.held_rows(edition_id).where(schema.ledger.c.status == PENDING)
            ).scalar_one()
        counts = Counter({status: count for status, count in rows})
        if sending:
            counts[PENDING] -= sending
            counts[SENDING.value] = sending
        return +counts  # without a status whose every row is sending

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


def _status() -> ColumnElement[str]:
    """A row's status as a reader of the ledger sees it: "sending" for a pending row under a claim."""
    table = schema.ledger
    return case((and_(table.c.status == PENDING, claims.holding()), SENDING.value), else_=table.c.status)


def _next_run(conn: Connection, edition: dict[str, Any], limit: int, after: Position | None) -> list[Claimed]:
    """Up to ``limit`` pending rows of one variant that no claim holds, from the first such row
    in the run index's order (after ``after``, if any are) to short of the next claim's first
    row (so none between is held: a claim holding one would hold the first). ``edition``: the
    edition id and list name (``Ledger.claim``)."""
    first = _first_free(conn, edition, after)
    if first is None:
        return []
    variant, start, bound = first
    run = conn.execute(_statements()["run"], {**edition, "variant": variant, "start": start, "limit": limit})
    return [Claimed._make(row) for row in run if row[0] < bound]


def _first_free(conn: Connection, edition: dict[str, Any], after: Position | None) -> Sequence[Any] | None:
    """(variant, id, the next claim's first row) of the first pending row no claim holds."""
    if after:
        # From the sender's last claim: the index's entries before it are rows already
        # recorded, which a search from the start steps over, reading each (at a million rows,
        # more time than the rest of the claim). In two steps, as each is a search of the
        # index that SQLite makes (a row-value comparison, it reads from the variant's first row).
        variant, row_id = after
        statements = _statements()
        found = conn.execute(
            statements["first_free_in"], {**edition, "variant": variant, "id": row_id}
        ).first()
        found = found or conn.execute(statements["first_free_after"], {**edition, "variant": variant}).first()
        if found:
            return found
    return conn.execute(_statements()["first_free"], edition).first()


@functools.cache
def _statements() -> dict[str, Executable]:
    """The claim's statements and finish()'s for one row (which the SMTP path runs for every
    message), built once: building them cost more than running them. Built by a function, not
    at import, so that a mutation run's mutant builds its own (the tests clear the cache)."""
    col = schema.ledger.c
    first_free = (
        select(col.variant, col.id, func.coalesce(claims.following(), _NO_CLAIM))
        .where(col.edition_id == bindparam("edition_id"), col.status == PENDING, ~claims.holding())
        .order_by(col.variant, col.id)
        .limit(1)
    )
    # Asked apart from the first row, and cut at the bound in Python: so the rows are read from
    # the run index in id order, a batch long, even in a plan PostgreSQL keeps for the prepared
    # statement (one took the primary key, and read through the other variants' rows).
    suppressed = blocks(col.email, bindparam("list_name", type_=String))
    run = (
        select(col.id, col.email, col.name, col.variant, col.attempts + 1, suppressed)
        .where(col.edition_id == bindparam("edition_id"), col.status == PENDING)
        .where(col.variant == bindparam("variant"), col.id >= bindparam("start"))
        .order_by(col.id)
        .limit(bindparam("limit"))
    )
    finish_one = (
        update(schema.ledger)
        .where(col.id == bindparam("row_id"), col.status == PENDING, claims.holding(bindparam("owner")))
        .values(
            status=bindparam("new_status"),
            provider_id=bindparam("new_provider_id"),
            error=bindparam("new_error"),
            # Each takes its column's type (UTCDateTime for the times) from values().
            sent_at=bindparam("new_sent_at"),
            batch_id=bindparam("owner"),
            attempts=col.attempts + 1,
            updated_at=bindparam("now"),
        )
    )
    return {
        "first_free": first_free,
        "first_free_in": first_free.where(col.variant == bindparam("variant"), col.id > bindparam("id")),
        "first_free_after": first_free.where(col.variant > bindparam("variant")),
        "run": run,
        "finish_one": finish_one,
    }


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
