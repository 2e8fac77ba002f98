"""An edition's recipients, from the list's readers in the state store, straight into its ledger.

The ledger is filled with one ``INSERT … SELECT`` per variant rather than row by row through
Python: readers who chose the same desks get the same variant, so the variants are found
from the distinct ``desks`` values of the list (a few dozen), and each variant's readers are
copied in address order, side by side in the table (a claim takes one variant's rows).

Every reader but an unconfirmed sign-up is in the ledger: an active one pending (or skipped,
when their desks have no stories today), one who left (unsubscribed, bounced, complained)
suppressed, with their status as the reason.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, and_, case, exists, func, literal, or_, select

from digest.state import schema
from digest.state.ledger import PENDING, SENT, SKIPPED, SUPPRESSED, Status
from digest.state.queries import chunked, insert_ignoring
from digest.state.readers import ReaderStatus
from digest.state.suppressions import ALL_LISTS

SKIPPED_ERROR = "no stories in the chosen desks today"
# The error of a reader who left: "reader unsubscribed", "reader bounced"…
LEFT_PREFIX = "reader "


@dataclass(frozen=True, slots=True)
class Group:
    """A variant's readers: the ``desks`` values that mean it (None among them: every desk)."""

    key: str
    desks: tuple[str | None, ...]


def desk_groups(
    engine: Engine, list_name: str, variant_of: Callable[[tuple[str, ...] | None], str]
) -> list[Group]:
    """The list's readers' variants, each with the stored desks values that give it.

    ``variant_of`` turns a reader's desks (None: all) into a variant key.
    """
    table = schema.subscribers
    with engine.connect() as conn:
        values = conn.execute(
            select(table.c.desks)
            .where(table.c.list_name == list_name, table.c.status != ReaderStatus.PENDING.value)
            .distinct()
        ).scalars()
        groups: dict[str, list[str | None]] = {}
        for value in values:
            groups.setdefault(variant_of(None if value is None else tuple(json.loads(value))), []).append(
                value
            )
    return [Group(key, tuple(desks)) for key, desks in sorted(groups.items())]


def _of_group(list_name: str, desks: list[str | None]) -> ColumnElement[bool]:
    table = schema.subscribers
    chosen = [value for value in desks if value is not None]
    either = [table.c.desks.in_(chosen)] if chosen else []
    if None in desks:
        either.append(table.c.desks.is_(None))
    return and_(table.c.list_name == list_name, table.c.status != ReaderStatus.PENDING.value, or_(*either))


def fill_ledger(
    engine: Engine,
    edition_id: str,
    list_name: str,
    groups: Mapping[Group, Status],
    *,
    now: dt.datetime,
) -> None:
    """Add every reader of the list not yet in the edition's ledger; ``groups`` gives each
    variant's status for its active readers (PENDING, or SKIPPED when it has nothing today)."""
    table, ledger = schema.subscribers, schema.ledger
    active = table.c.status == ReaderStatus.ACTIVE.value
    columns = ["edition_id", "email", "name", "variant", "status", "error", "attempts", "updated_at"]
    with engine.begin() as conn:
        for group, status in groups.items():
            for desks in chunked(group.desks):
                error = literal(SKIPPED_ERROR) if status == SKIPPED else literal(None, ledger.c.error.type)
                rows = (
                    select(
                        literal(edition_id),
                        table.c.email,
                        table.c.name,
                        literal(group.key),
                        case((active, literal(status.value)), else_=literal(SUPPRESSED.value)),
                        case((active, error), else_=literal(LEFT_PREFIX) + table.c.status),
                        literal(0),
                        literal(now, schema.UTCDateTime()),
                    )
                    .where(_of_group(list_name, desks))
                    .order_by(table.c.email)
                )
                statement = insert_ignoring(conn, ledger, ["edition_id", "email"]).from_select(columns, rows)
                conn.execute(statement)


def dry_counts(
    engine: Engine, edition_id: str, list_name: str, groups: Mapping[Group, Status]
) -> tuple[Counter[str], Counter[str]]:
    """What ``fill_ledger`` and the send would do now, changing nothing: recipients by the
    status they would end with (sent already, suppressed, skipped, pending), and the pending
    ones by variant key."""
    table, ledger, sup = schema.subscribers, schema.ledger, schema.suppressions
    sent = exists().where(
        ledger.c.edition_id == edition_id, ledger.c.status == SENT.value, ledger.c.email == table.c.email
    )
    suppressed = exists().where(sup.c.email == table.c.email, sup.c.list_name.in_((list_name, ALL_LISTS)))
    counts: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    with engine.connect() as conn:
        for group, status in groups.items():
            whens: list[tuple[ColumnElement[bool], ColumnElement[str]]] = [
                (sent, literal(SENT.value)),
                (table.c.status != ReaderStatus.ACTIVE.value, literal(SUPPRESSED.value)),
            ]
            if status == PENDING:  # a suppressed reader's row is suppressed when claimed
                whens.append((suppressed, literal(SUPPRESSED.value)))
            outcome = case(*whens, else_=literal(status.value))
            for desks in chunked(group.desks):
                query = select(outcome, func.count()).where(_of_group(list_name, desks)).group_by(outcome)
                for found, count in conn.execute(query):
                    counts[found] += count
                    if found == PENDING.value:
                        variants[group.key] += count
    return counts, variants
