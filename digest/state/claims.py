"""Claims on the send ledger's rows (``send_claims``): which sender holds which batch.

A claim is one row naming a variant's first and last ledger row: the rows between them that
are still pending are its owner's to send. The claims of an edition are made one at a time
(``lock``) and never overlap. One row per claim, rather than a mark on each of its thousand
rows, is what makes a claim cheap on PostgreSQL, where each marked row was a new row version
and three index entries (docs/performance.md). Every statement on the table is here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import (
    ColumnElement,
    Connection,
    Exists,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
)

from digest.state import schema
from digest.state.owner import owner_is_dead
from digest.state.queries import among

if TYPE_CHECKING:
    from digest.state.ledger_types import Claimed

# How long a sender may go without claiming before its claims are taken back (a sender on
# another machine cannot be seen to die).
CLAIM_TIMEOUT = dt.timedelta(minutes=10)
# The PostgreSQL advisory lock class of claims (its second key: the edition id's hash).
CLAIM_LOCK = 0x636C61  # "cla"


def lock(conn: Connection, edition_id: str) -> None:
    """One claim of the edition at a time: SQLite's write lock (a writer's transactions begin
    IMMEDIATE) does it there; on PostgreSQL, an advisory lock held to the end of the claim."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"edition_id": edition_id})


# Built once: a claim runs these for every batch, and building them cost more than running them.
_LOCK = select(func.pg_advisory_xact_lock(CLAIM_LOCK, func.hashtext(bindparam("edition_id"))))
_ADD = insert(schema.claims)


def holding(owner: str | ColumnElement[str] | None = None) -> Exists:
    """The ledger row is in a claim (of ``owner``, if given)."""
    claims = schema.claims
    mine = () if owner is None else (claims.c.owner == owner,)
    return select(claims.c.id).where(_within(), *mine).exists()


def held_rows(edition_id: str) -> Select[int]:
    """How many of the edition's ledger rows are in a claim: read from the claims, which are
    few, and the rows in their ranges alone (a filter on the ledger's columns is added by the
    caller)."""
    claims = schema.claims
    return (
        select(func.count())
        .select_from(claims.join(schema.ledger, _within()))
        .where(claims.c.edition_id == edition_id)
    )


def _within() -> ColumnElement[bool]:
    """The ledger row is in the claim: the claim's edition and variant, between its first and
    last row."""
    table, claims = schema.ledger, schema.claims
    return and_(
        claims.c.edition_id == table.c.edition_id,
        claims.c.variant == table.c.variant,
        table.c.id.between(claims.c.first_id, claims.c.last_id),
    )


def following() -> ColumnElement[int]:
    """The first row of the next claim of the ledger row's variant, after the row (None: none)."""
    table, claims = schema.ledger, schema.claims
    return (
        select(func.min(claims.c.first_id))
        .where(claims.c.edition_id == table.c.edition_id, claims.c.variant == table.c.variant)
        .where(claims.c.first_id > table.c.id)
        .scalar_subquery()
    )


def add(conn: Connection, edition_id: str, owner: str, rows: Sequence[Claimed], now: dt.datetime) -> None:
    """The claim of ``rows`` (of one variant, in id order): from the first to the last."""
    values = {"edition_id": edition_id, "variant": rows[0].variant, "owner": owner, "claimed_at": now}
    conn.execute(_ADD, {**values, "first_id": rows[0].id, "last_id": rows[-1].id})


def drop_done(conn: Connection, owner: str, first_ids: Sequence[int]) -> None:
    """Drop the owner's claims that begin at ``first_ids``: all their rows are recorded."""
    claims = schema.claims
    conn.execute(delete(claims).where(claims.c.owner == owner, among(conn, claims.c.first_id, first_ids)))


def drop_owners(conn: Connection, edition_id: str, owners: Sequence[str]) -> None:
    """Drop every claim of these owners in the edition: their rows not recorded are free."""
    claims = schema.claims
    conn.execute(delete(claims).where(claims.c.edition_id == edition_id, claims.c.owner.in_(owners)))


def take_back_abandoned(
    conn: Connection, edition_id: str, *, now: dt.datetime, claim_timeout: dt.timedelta
) -> bool:
    """Drop the edition's claims of senders that are dead or have claimed nothing for
    ``claim_timeout``; whether there were any."""
    claims = schema.claims
    owners = conn.execute(
        select(claims.c.owner, func.max(claims.c.claimed_at))
        .where(claims.c.edition_id == edition_id)
        .group_by(claims.c.owner)
    ).all()
    abandoned = [owner for owner, claimed in owners if owner_is_dead(owner) or now - claimed > claim_timeout]
    if abandoned:
        drop_owners(conn, edition_id, abandoned)
    return bool(abandoned)
