"""An import's rows, held until the whole file is read, then set against the list's readers.

While the file is read no reader is looked up: every valid row waits in file order in an
unindexed temporary table of the store, with its hash, its status in the file, and the status
a new reader would get (a suppressed or forgotten address is looked up as it comes: the few
there are). Once the file is read, the end works on the whole set in a few statements,
whatever the file's order:

- the duplicates are found, told and taken out (``take_out_duplicates``);
- on a later import (the list has readers), the rows are joined with their readers: those
  whose hash differs from their reader's come back in line order, a page at a time, for the
  import's rule to compare (``changed``), the others are counted (``same``);
- the rows with no reader go to the readers table in key order, so its indexes grow at their
  ends: on SQLite through one covering index over them (a sort by address, then line), on
  PostgreSQL by its own sorts (``end``).

A later import used to look up each chunk's readers as it read them: 13.4 s of a million rows
on PostgreSQL, 8.7 s on SQLite, where the join takes 7.7 and 7.5.

Duplicates are told as ``without_duplicates`` tells them (the first row of an address wins,
the later ones are "duplicate of line N"), after the file's other bad rows rather than among
them. A row that will not be a reader (an unconfirmed sign-up, a forgotten address) is staged
too, marked, since it still makes a later row of its address a duplicate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Index,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    tuple_,
)
from sqlalchemy.schema import CreateTable

from digest.state import schema
from digest.state.queries import insert_many, insert_new
from digest.state.readers import Source
from digest.state.recipients import ReaderRows
from digest.subscribers import Problem, duplicate

_metadata = MetaData()
_rows = Table(
    "digest_import_new",
    _metadata,
    Column("email", Text),
    Column("line", Integer),
    Column("name", Text),
    Column("desks", Text),
    Column("status", Text),  # a new reader's: the file's, or what a suppression of the address makes it
    Column("listed", Text),  # the file's, for comparing with a stored reader
    Column("file_row", Text),
    Column("skip", Text),  # None: a new reader; else why the row is not one (``Skip``)
    prefixes=["TEMPORARY"],
)
# Covering, so the duplicates and the insert read the index alone, in key order (SQLite: ``end``).
_by_key = Index("digest_import_new_key", *_rows.c)
_duplicates = Table(
    "digest_import_duplicates",
    _metadata,
    Column("email", Text, primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("first", Integer, nullable=False),
    Column("skip", Text),
    prefixes=["TEMPORARY"],
)
_readers = schema.subscribers
# A later import's rows whose hash is not their reader's, with the reader's fields beside them.
_changed = Table(
    "digest_import_changed",
    _metadata,
    Column("line", Integer, primary_key=True),
    Column("email", Text),
    Column("name", Text),
    Column("desks", Text),
    Column("listed", Text),
    Column("file_row", Text),
    Column("reader_name", Text),
    Column("reader_desks", Text),
    Column("reader_status", Text),
    Column("skip", Text),
    prefixes=["TEMPORARY"],
)
COLUMNS = tuple(column.name for column in _rows.c)
# A staged row: email (folded), line, name, desks (``desks_value``), status, listed, file_row, skip.
Row = tuple[str, int, str, str | None, str, str, str, str | None]


class Skip(StrEnum):
    """Why a staged row adds no reader."""

    PENDING = "pending"  # a sign-up the file says is unconfirmed: never taken from a file
    FORGOTTEN = "forgotten"  # an address forgotten on request (``digest.state.forgotten``)


class Changed(NamedTuple):
    """A row of a later import whose hash is not its reader's, and that reader's fields."""

    email: str
    line: int
    name: str
    desks: str | None
    listed: str
    file_row: str
    reader_name: str
    reader_desks: str | None
    reader_status: str


class Stage:
    """The staged rows of one import, on its connection: its temporary tables, and its settings,
    are that connection's, which closes at the end of the import (``import_subscribers``).
    ``later``: the list has readers already (their rows are staged as well, for the join)."""

    def __init__(self, conn: Connection, path: Path, list_name: str, *, later: bool) -> None:
        self.conn, self.path, self.list_name, self.later = conn, path, list_name, later
        # Staged rows by ``skip`` (None: new readers), less their duplicates once they are
        # taken out, and on a later import less those with a reader once ``same`` and
        # ``changed`` counted them.
        self.counts: dict[str | None, int] = dict.fromkeys((None, *Skip), 0)
        with conn.begin():
            for table in (_rows, _duplicates, _changed):
                conn.execute(CreateTable(table))  # without its index, made once the rows are in
        of_row = and_(_readers.c.list_name == list_name, _readers.c.email == _rows.c.email)
        # A staged row that adds a reader: on a later import, one whose address has none.
        self._new: ColumnElement[bool] = ~exists().where(of_row) if later else true()
        self._of_row = of_row

    def add(self, rows: Sequence[Row]) -> None:
        """Stage ``rows``, in the connection's transaction."""
        insert_many(self.conn, _rows, COLUMNS, rows)
        for row in rows:
            self.counts[row[-1]] += 1

    @property
    def readers(self) -> ReaderRows:
        """The staged rows that ``end`` adds as readers (once the duplicates are out)."""
        return ReaderRows(_rows, _rows.c.skip.is_(None) & self._new)

    def holds(self, email: ColumnElement[Any]) -> ColumnElement[bool]:
        """Whether the file has a row for the address ``email`` (a column of the readers)."""
        return exists().where(_rows.c.email == email)

    def take_out_duplicates(self, told: Callable[[Problem], None]) -> None:
        """Tell each duplicate (``told``, in line order) and take it out of the stage: the first
        of the import's ends, in the connection's transaction."""
        self._index()
        conn = self.conn
        firsts = (
            select(_rows.c.email, func.min(_rows.c.line).label("line"))
            .group_by(_rows.c.email)
            .having(func.count() > 1)
            .subquery()
        )
        later = select(_rows.c.email, _rows.c.line, firsts.c.line, _rows.c.skip).join(
            firsts, (firsts.c.email == _rows.c.email) & (_rows.c.line > firsts.c.line)
        )
        conn.execute(insert(_duplicates).from_select(["email", "line", "first", "skip"], later))
        found = conn.execute(
            select(_duplicates.c.line, _duplicates.c.first, _duplicates.c.skip).order_by(_duplicates.c.line)
        )
        for line, first, skip in found:
            self.counts[skip] -= 1
            told(duplicate(self.path, line, first))
        pairs = select(_duplicates.c.email, _duplicates.c.line)
        conn.execute(delete(_rows).where(tuple_(_rows.c.email, _rows.c.line).in_(pairs)))

    def end(self, now: dt.datetime) -> None:
        """Add the staged readers to the list (created and updated ``now``), in the connection's
        transaction: the last of its ends."""
        if self.counts[None]:
            self._insert(now)

    def _index(self) -> None:
        if self.conn.dialect.name == "sqlite":
            self.conn.exec_driver_sql("PRAGMA threads = 1")  # a helper thread for the index's sort
            _by_key.create(self.conn)
        elif self.later:
            # PostgreSQL reads a temporary table without statistics, so it sorted the rows for a
            # first import's insert anyway (an index there cost 2 s of 17 at a million). A join
            # needs them, the readers' too: just after a first import (which does not analyze
            # them) it took the list for one reader and read the whole stage for each of a
            # million. Both in 0.35 s at a million; the joins then take 0.5-0.9 s each.
            for table in (_rows, _readers):
                self.conn.exec_driver_sql(f"ANALYZE {table.name}")

    def changed(self, size: int) -> Iterator[list[Changed]]:
        """A later import's rows whose hash is not their reader's, in line order, ``size`` at a
        time, in the connection's transaction; after ``same``."""
        r, s = _readers.c, _rows.c
        staged = (s.line, s.email, s.name, s.desks, s.listed, s.file_row)
        pairs = select(*staged, r.name, r.desks, r.status, s.skip)
        pairs = pairs.join_from(_rows, _readers, self._of_row).where(r.file_row.is_distinct_from(s.file_row))
        self.conn.execute(insert(_changed).from_select(list(_changed.c.keys()), pairs))
        c = _changed.c
        total, *skipped = self.conn.execute(select(func.count(), *_counts(_skips(c.skip)))).one()
        self._matched(total, skipped)
        fields = (c.email, c.line, c.name, c.desks, c.listed, c.file_row)
        readers = (c.reader_name, c.reader_desks, c.reader_status)
        last = 0
        while page := self.conn.execute(
            select(*fields, *readers).where(c.line > last).order_by(c.line).limit(size)
        ).all():
            yield [Changed._make(row) for row in page]
            last = page[-1].line

    def same(self) -> tuple[int, int]:
        """A later import's rows with their reader's hash: how many the reader left as the file
        has them (unchanged), and how many the reader changed since (kept), in the connection's
        transaction, once the duplicates are out."""
        r, s = _readers.c, _rows.c
        alike = and_(r.name == s.name, r.desks.is_not_distinct_from(s.desks), r.status == s.listed)
        # Summed rather than grouped by skip (a few rows have one): 0.9 s at a million, not 1.3.
        counted = select(func.count(), *_counts([alike, *_skips(s.skip)])).join_from(
            _rows, _readers, self._of_row
        )
        total, unchanged, *skipped = self.conn.execute(counted.where(r.file_row == s.file_row)).one()
        self._matched(total, skipped)
        return unchanged, total - unchanged

    def _matched(self, total: int, skipped: Sequence[int]) -> None:
        """Take ``total`` rows that have a reader, ``skipped`` of them by each ``Skip``, off the
        new rows' counts: on a later import those rows are counted apart."""
        for value, count in zip(Skip, skipped, strict=True):
            self.counts[value] -= count
        self.counts[None] -= total - sum(skipped)

    def forgotten_lines(self) -> list[int]:
        """The lines of the staged forgotten addresses, once ``end`` has taken out duplicates."""
        if not self.counts[Skip.FORGOTTEN]:
            return []
        forgotten = (_rows.c.skip == Skip.FORGOTTEN.value) & self._new
        query = select(_rows.c.line).where(forgotten).order_by(_rows.c.line)
        with self.conn.begin():
            return list(self.conn.execute(query).scalars())

    def _insert(self, now: dt.datetime) -> None:
        stamp = literal(now, schema.UTCDateTime())
        shared = (literal(self.list_name), literal(Source.FILE.value), stamp, stamp)
        new = _rows.c.email, _rows.c.name, _rows.c.desks, _rows.c.status, _rows.c.file_row
        rows: Select[Any] = (
            select(*shared, *new).where(_rows.c.skip.is_(None), self._new).order_by(_rows.c.email)
        )
        names = ["list_name", "source", "created_at", "updated_at", *(column.name for column in new)]
        # An address of the file may have come in since the import began (a sign-up, an editor's
        # `subscribers add`, another sender on SQLite importing the same file): it stays.
        insert_new(self.conn, _readers, ["list_name", "email"], names, rows)


def _skips(skip: ColumnElement[Any]) -> list[ColumnElement[bool]]:
    """Whether ``skip`` is each ``Skip``, in its order."""
    return [skip == value.value for value in Skip]


def _counts(conditions: Sequence[ColumnElement[bool]]) -> list[ColumnElement[Any]]:
    """How many rows meet each condition."""
    return [func.count(case((condition, 1))) for condition in conditions]
