"""An import's rows that have no reader in the store yet, held until the whole file is read.

On a list's first import that is every valid row, and none of them needs telling apart as it
comes (there is no stored reader to compare it with), so nothing is looked up while the file is
read: the rows wait in file order in an unindexed temporary table of the store. Once the file
is read, the duplicates are found whatever the file's order, and the rows go to the readers
table in key order, so that table's indexes grow at their ends: on SQLite through one covering
index over them (a sort by address, then line), on PostgreSQL by its own sorts. A later
import finds duplicates as it reads (a row is compared with its stored reader at once:
``digest.subscribers.without_duplicates``), so its stage has none to find, and the same end
serves it.

Duplicates are told as ``without_duplicates`` tells them (the first row of an address wins,
the later ones are "duplicate of line N"), after the file's other bad rows rather than among
them. A row that will not be a reader (an unconfirmed sign-up, a forgotten address) is staged
too, marked, since it still makes a later row of its address a duplicate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
)
from sqlalchemy.schema import CreateTable

from digest.state import schema
from digest.state.queries import insert_many, insert_new
from digest.state.readers import Source
from digest.subscribers import Problem, duplicate

_metadata = MetaData()
_rows = Table(
    "digest_import_new",
    _metadata,
    Column("email", Text),
    Column("line", Integer),
    Column("name", Text),
    Column("desks", Text),
    Column("status", Text),
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
COLUMNS = tuple(column.name for column in _rows.c)
# A staged row: email (folded), line, name, desks (``desks_value``), status, file_row, skip.
Row = tuple[str, int, str, str | None, str, str, str | None]


class Skip(StrEnum):
    """Why a staged row adds no reader."""

    PENDING = "pending"  # a sign-up the file says is unconfirmed: never taken from a file
    FORGOTTEN = "forgotten"  # an address forgotten on request (``digest.state.forgotten``)


class Stage:
    """The staged rows of one import, on its connection: its temporary tables, and its settings,
    are that connection's, which closes at the end of the import (``import_subscribers``)."""

    def __init__(self, conn: Connection, path: Path) -> None:
        self.conn, self.path = conn, path
        # Staged rows by ``skip`` (None: new readers), less their duplicates once ``end`` ran.
        self.counts: dict[str | None, int] = dict.fromkeys((None, *Skip), 0)
        with conn.begin():
            for table in (_rows, _duplicates):
                conn.execute(CreateTable(table))  # without its index, made once the rows are in

    def add(self, rows: Sequence[Row]) -> None:
        """Stage ``rows``, in the connection's transaction."""
        insert_many(self.conn, _rows, COLUMNS, rows)
        for row in rows:
            self.counts[row[-1]] += 1

    def end(self, list_name: str, now: dt.datetime, told: Callable[[Problem], None]) -> None:
        """Tell each duplicate (``told``, in line order), take the duplicates out, and add the
        staged readers to the list (created and updated ``now``)."""
        conn = self.conn
        with conn.begin():
            # PostgreSQL reads a temporary table without its statistics, so it sorted the rows
            # for the insert anyway and the index only cost time (2 s of 17 at a million).
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA threads = 1")  # a helper thread for the index's sort
                _by_key.create(conn)
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
                select(_duplicates.c.line, _duplicates.c.first, _duplicates.c.skip).order_by(
                    _duplicates.c.line
                )
            )
            for line, first, skip in found:
                self.counts[skip] -= 1
                told(duplicate(self.path, line, first))
            pairs = select(_duplicates.c.email, _duplicates.c.line)
            conn.execute(delete(_rows).where(tuple_(_rows.c.email, _rows.c.line).in_(pairs)))
            self._insert(list_name, now)

    def forgotten_lines(self) -> list[int]:
        """The lines of the staged forgotten addresses, once ``end`` has taken out duplicates."""
        if not self.counts[Skip.FORGOTTEN]:
            return []
        query = select(_rows.c.line).where(_rows.c.skip == Skip.FORGOTTEN.value).order_by(_rows.c.line)
        with self.conn.begin():
            return list(self.conn.execute(query).scalars())

    def _insert(self, list_name: str, now: dt.datetime) -> None:
        table = schema.subscribers
        stamp = literal(now, schema.UTCDateTime())
        shared = (literal(list_name), literal(Source.FILE.value), stamp, stamp)
        new = _rows.c.email, _rows.c.name, _rows.c.desks, _rows.c.status, _rows.c.file_row
        rows = select(*shared, *new).where(_rows.c.skip.is_(None)).order_by(_rows.c.email)
        names = ["list_name", "source", "created_at", "updated_at", *(column.name for column in new)]
        # An address of the file may have come in since the import began (a sign-up, an editor's
        # `subscribers add`, another sender on SQLite importing the same file): it stays.
        insert_new(self.conn, table, ["list_name", "email"], names, rows)
