"""An edition's recipients, from the list's readers in the state store, straight into its ledger.

The ledger is filled by ``INSERT … SELECT`` rather than row by row through Python: readers
who chose the same desks get the same variant, so the variants are found from the distinct
``desks`` values of the list (a few dozen), a CASE on ``desks`` gives each reader's, and the
rows go in by variant, then address, side by side in the table (a claim takes one variant's
rows). A sender may send the first variants while the rest go in: then they go in parts that
grow, each committed on its own. The readers are read from the readers table, or, during a
list's first import on a database server, from the rows it staged (``ReaderRows``), so that
the sender can send while the server inserts them.

Every reader but an unconfirmed sign-up is in the ledger: an active one pending (or skipped,
when their desks have no stories today), one who left (unsubscribed, bounced, complained)
suppressed, with their status as the reason.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import chain
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Select,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    true,
)

from digest.state import schema
from digest.state.ledger_types import PENDING, SENT, SKIPPED, SUPPRESSED, Status
from digest.state.queries import insert_ignoring, insert_new
from digest.state.readers import ReaderStatus, Source
from digest.state.suppressions import blocks

SKIPPED_ERROR = "no stories in the chosen desks today"
# The error of a reader who left: "reader unsubscribed", "reader bounced"…
LEFT_PREFIX = "reader "
# Desks values in one statement's CASE (two bound parameters each).
_VALUES = 1000
# A fill beside a send goes in parts that grow (by readers): the first about a sixteenth of the
# list, so that the first batch goes out soon, and each next up to four times the one before.
# The server fills a part faster than the sender sends the one before it (at a million, about
# 110,000 rows a second against 20,000), so the sender does not wait for the next; with the
# first an eighth of the variants and the rest after, it waited 4 s of 48 at a million. Each
# part reads the whole list once more: a few parts, not one per variant.
_FIRST_PART = 1 / 16
_GROWTH = 4


@dataclass(frozen=True, slots=True)
class Group:
    """A variant's readers: the ``desks`` values that mean it (None among them: every desk),
    and how many active readers it had when the list was read."""

    key: str
    desks: tuple[str | None, ...]
    readers: int


@dataclass(frozen=True, slots=True)
class ReaderRows:
    """Where a list's readers are read from: the readers table, or the rows of the list's first
    import, staged on its connection (a send on a database server fills the ledger from them
    while the server inserts them as readers). ``rows`` has the readers' columns ``email``,
    ``name``, ``desks`` and ``status``; ``theirs`` picks the list's."""

    rows: FromClause
    theirs: ColumnElement[bool]


def readers_of(list_name: str, *, from_file: bool = True) -> ReaderRows:
    """The list's readers in the readers table (``from_file=False``: only those who came in
    another way, signed up or added by an editor)."""
    table = schema.subscribers
    theirs = table.c.list_name == list_name
    return ReaderRows(table, theirs if from_file else theirs & (table.c.source != Source.FILE.value))


# Opens a transaction and gives its connection: ``Engine.begin``, or one on a given connection.
Begin = Callable[[], AbstractContextManager[Connection]]

VariantOf = Callable[[tuple[str, ...] | None], str]


def desk_groups(engine: Engine, list_name: str, variant_of: VariantOf) -> list[Group]:
    """The list's readers' variants, each with the stored desks values that give it.

    ``variant_of`` turns a reader's desks (None: all) into a variant key.
    """
    with engine.connect() as conn:
        return read_groups(conn, readers_of(list_name), variant_of)


def read_groups(conn: Connection, source: ReaderRows, variant_of: VariantOf) -> list[Group]:
    """``desk_groups`` of ``source``, on ``conn``."""
    rows = source.rows.c
    active = func.count(case((rows.status == ReaderStatus.ACTIVE.value, 1)))  # NULL otherwise
    found = conn.execute(
        select(rows.desks, active)
        .where(source.theirs, rows.status != ReaderStatus.PENDING.value)
        .group_by(rows.desks)
    ).all()
    groups: dict[str, tuple[list[str | None], int]] = {}
    for value, readers in found:
        key = variant_of(None if value is None else tuple(json.loads(value)))
        values, count = groups.get(key, ([], 0))
        groups[key] = ([*values, value], count + readers)
    return [Group(key, tuple(values), readers) for key, (values, readers) in sorted(groups.items())]


def _variant(source: ReaderRows, groups: Iterable[Group]) -> tuple[ColumnElement[str], list[str | None]]:
    """The variant key of each reader as SQL (a CASE on ``desks``), and the desks values it covers."""
    table = source.rows
    whens: list[tuple[ColumnElement[bool], ColumnElement[str]]] = []
    values: list[str | None] = []
    for group in groups:
        for value in group.desks:
            whens.append((table.c.desks == value, literal(group.key)))  # None: IS NULL
            values.append(value)
    return case(*whens), values


def _readers(source: ReaderRows, values: list[str | None]) -> ColumnElement[bool]:
    table = source.rows
    chosen = [value for value in values if value is not None]
    either = [table.c.desks.in_(chosen)]  # none: an IN that holds for no row
    if None in values:
        either.append(table.c.desks.is_(None))
    return and_(source.theirs, table.c.status != ReaderStatus.PENDING.value, or_(*either))


def _parts(groups: Iterable[Group]) -> Iterator[list[Group]]:
    """The groups in parts of at most ``_VALUES`` desks values, each part one statement."""
    part: list[Group] = []
    size = 0
    for group in groups:
        if part and size + len(group.desks) > _VALUES:
            yield part
            part, size = [], 0
        part.append(group)
        size += len(group.desks)
    if part:
        yield part


def _growing(groups: list[Group]) -> Iterator[list[Group]]:
    """The groups, in order, in parts of growing size by their readers: the first until it
    has ``_FIRST_PART`` of them, each next until it has ``_GROWTH`` times the one before."""
    goal = max(sum(group.readers for group in groups) * _FIRST_PART, 1)
    part: list[Group] = []
    size = 0
    for group in groups:
        part.append(group)
        size += group.readers
        if size >= goal:
            yield part
            goal, part, size = size * _GROWTH, [], 0
    if part:
        yield part


def fill_ledger(
    engine: Engine,
    edition_id: str,
    list_name: str,
    groups: Mapping[Group, Status],
    *,
    now: dt.datetime,
    on_part: Callable[[], None] | None = None,
) -> None:
    """Add every reader of the list not yet in the edition's ledger; ``groups`` gives each
    variant's status for its active readers (PENDING, or SKIPPED when it has nothing today).

    One statement (for up to ``_VALUES`` desks values): a CASE on the desks gives each
    reader's variant, and the rows go in by variant, then address. ``on_part``: told as each
    part of the rows is in (its own transaction; parts that grow: ``_growing``), so that a
    sender can send them while the rest go in.
    """
    fill_from(engine.begin, edition_id, readers_of(list_name), groups, now=now, on_part=on_part)


def fill_from(
    begin: Begin,
    edition_id: str,
    readers: ReaderRows,
    groups: Mapping[Group, Status],
    *,
    now: dt.datetime,
    on_part: Callable[[], None] | None = None,
) -> None:
    """``fill_ledger`` from ``readers``, each part in a transaction of ``begin``'s."""
    ledger = schema.ledger
    with begin() as conn:
        fresh = (
            conn.execute(select(ledger.c.id).where(ledger.c.edition_id == edition_id).limit(1)).first()
            is None
        )
    ordered = list(groups)
    growing = _growing(ordered) if on_part else [ordered]
    for part in chain.from_iterable(map(_parts, growing)):
        rows = _rows(edition_id, readers, part, [g.key for g in part if groups[g] == SKIPPED], now)
        _add(begin, rows, fresh=fresh)
        if on_part:
            on_part()
    with begin() as conn:
        if fresh and conn.dialect.name == "postgresql":
            # The claim's plan depends on the ledger's statistics: without them, PostgreSQL takes
            # a new edition's rows for a few and sorts them all for each claim (50 ms at 100,000).
            conn.execute(text(f"ANALYZE {ledger.name}"))


_COLUMNS = ["edition_id", "email", "name", "variant", "status", "error", "attempts", "updated_at"]


def _rows(
    edition_id: str, source: ReaderRows, part: list[Group], skipped: list[str], now: dt.datetime
) -> Select[Any]:
    """The ledger rows of the readers of ``part``'s variants (``_COLUMNS``), by variant, then address."""
    table = source.rows
    variant, values = _variant(source, part)
    readers = (
        select(table.c.email, table.c.name, table.c.status, variant.label("variant"))
        .where(_readers(source, values))
        .subquery()
    )
    active = readers.c.status == ReaderStatus.ACTIVE.value
    is_skipped = readers.c.variant.in_(skipped)
    return (
        select(
            literal(edition_id),
            readers.c.email,
            readers.c.name,
            readers.c.variant,
            case(
                (~active, literal(SUPPRESSED.value)),
                (is_skipped, literal(SKIPPED.value)),
                else_=literal(PENDING.value),
            ),
            case(
                (~active, literal(LEFT_PREFIX) + readers.c.status),
                (is_skipped, literal(SKIPPED_ERROR)),
            ),
            literal(0),
            literal(now, schema.UTCDateTime()),
        )
        .where(true())
        .order_by(readers.c.variant, readers.c.email)
    )


def _add(begin: Begin, rows: Select[Any], *, fresh: bool) -> None:
    """Insert ``rows``, leaving a reader already in the ledger as they are (filled by another
    sender meanwhile); into an edition that had none, plainly first (``insert_new``)."""
    ledger, keys = schema.ledger, ["edition_id", "email"]
    with begin() as conn:
        if fresh:
            insert_new(conn, ledger, keys, _COLUMNS, rows)
        else:
            conn.execute(insert_ignoring(conn, ledger, keys).from_select(_COLUMNS, rows))


def dry_counts(
    engine: Engine, edition_id: str, list_name: str, groups: Mapping[Group, Status]
) -> tuple[Counter[str], Counter[str]]:
    """What ``fill_ledger`` and the send would do now, changing nothing: recipients by the
    status they would end with (sent already, suppressed, skipped, pending), and the pending
    ones by variant key."""
    source, ledger = readers_of(list_name), schema.ledger
    table = source.rows
    skipped = [group.key for group, status in groups.items() if status == SKIPPED]
    counts: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    with engine.connect() as conn:
        for part in _parts(groups):
            variant, values = _variant(source, part)
            readers = (
                select(table.c.email, table.c.status, variant.label("variant"))
                .where(_readers(source, values))
                .subquery()
            )
            sent = exists().where(
                ledger.c.edition_id == edition_id,
                ledger.c.status == SENT.value,
                ledger.c.email == readers.c.email,
            )
            suppressed = blocks(readers.c.email, list_name)
            outcome = case(
                (sent, literal(SENT.value)),
                (readers.c.status != ReaderStatus.ACTIVE.value, literal(SUPPRESSED.value)),
                (readers.c.variant.in_(skipped), literal(SKIPPED.value)),
                (suppressed, literal(SUPPRESSED.value)),  # a suppressed reader's row, once claimed
                else_=literal(PENDING.value),
            ).label("outcome")
            query = select(outcome, readers.c.variant, func.count()).group_by(outcome, readers.c.variant)
            for found, key, count in conn.execute(query):
                counts[found] += count
                if found == PENDING.value:
                    variants[key] += count
    return counts, variants
