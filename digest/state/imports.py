"""A list's subscriber file into the state store, by the rule between the file and the readers.

The editors' CSV stays the way they add readers in bulk, but what a reader then does is theirs:

- a row the editors have not changed since the last import (the same ``file_row`` hash) never
  undoes a reader's own change (desks, name, unsubscribe): it is counted as kept;
- a row the editors did change is applied, field by field, and logged ("changed by the file");
- an address that unsubscribed, bounced or complained comes back only by signing up and
  confirming again, never through the file (which may still unsubscribe an address);
- a new row for an address already suppressed gets the matching status; one for an address
  that was forgotten (``digest.state.forgotten``) is skipped;
- a reader from the file whose row is gone stops getting mail (their record is deleted, with
  a "removed from the file" event; one that had left keeps its record, so its status holds).
  Readers who signed up, or whom an editor added, are never removed by the file.

The file is streamed (read in a second process while this one writes, when it is large:
``digest.readahead``), the store written in chunks, and the keys the file still has kept in a
temporary table of the store for finding the removed rows: memory stays flat for any list.
Rows with no stored reader wait in another (``digest.state.import_stage``) and go into the
readers table at the end in one statement, in key order; on a list's first import, that is
every row, and the duplicates are found there too. A later import finds them as it reads
(``digest.subscribers.without_duplicates``): a row is compared with its stored reader at once.
An unchanged file (same fingerprint as the last import) is not read again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from digest.collector import bulk
from digest.readahead import read_ahead
from digest.state import forgotten, schema
from digest.state.import_report import ImportReport, fingerprint, row_hash
from digest.state.import_stage import Row, Skip, Stage
from digest.state.queries import among, insert_many
from digest.state.readers import GONE, LEFT, Event, ReaderStatus, Source, desks_value
from digest.state.store import Store
from digest.state.suppressions import Reason, applies_to
from digest.subscribers import Problem, Subscriber

log = logging.getLogger(__name__)

# Rows stored together. Each chunk's rows are short-lived, but what outlives them (a cached
# statement, say) keeps their memory from going back to the system: with 10,000 a million-row
# import left the process 6 MiB larger than with 5,000, no faster.
CHUNK = 5_000
# The keys the file has (for the removed rows), on the importing connection only.
_keys = Table(
    "digest_import_keys", MetaData(), Column("email", String(320), primary_key=True), prefixes=["TEMPORARY"]
)


def import_subscribers(
    store: Store,
    list_name: str,
    path: Path,
    list_desks: tuple[str, ...],
    *,
    now: dt.datetime,
    force: bool = False,
    on_problem: Callable[[Problem], None] | None = None,
) -> ImportReport:
    """Import the list's file into the store (unless it is the file last imported and not
    ``force``); ``on_problem`` is told of each bad row as it is read."""
    report = ImportReport(list_name, path)
    printed = fingerprint(path, list_desks)
    with store.engine.connect() as conn, _one_importer(conn, list_name):
        if not force and _last_fingerprint(conn, list_name) == printed:
            report.skipped = True
            return report
        # The connection closes when the import ends, rather than going back to the pool: its
        # temporary tables go with it, at no cost (dropping them freed a page at a time).
        conn.detach()
        told = partial(_told, report, on_problem)
        importer = _Importer(store, conn, report, now)
        with bulk():
            # A later import compares each row with its stored reader, so its duplicates are
            # told as they come; a first import's are found at its end (``Stage.end``).
            entries = read_ahead(path, list_desks, unique=importer.has_readers)
            for rows in _chunks(entries, told):
                importer.chunk(rows)
            importer.end(told)
            importer.remove_missing()
        report.problems.sort(key=attrgetter("line"))  # a first import finds duplicates last
        with conn.begin():
            files = schema.subscriber_files
            conn.execute(delete(files).where(files.c.list_name == list_name))
            # A file with bad rows is read again next time, so its problems are told every day
            # (and the readers it lost are removed once it is fixed).
            if not report.bad:
                conn.execute(insert(files).values(list_name=list_name, fingerprint=printed, imported_at=now))
    return report


def _last_fingerprint(conn: Connection, list_name: str) -> str | None:
    files = schema.subscriber_files
    with conn.begin():
        return conn.execute(select(files.c.fingerprint).where(files.c.list_name == list_name)).scalar()


@contextmanager
def _one_importer(conn: Connection, list_name: str) -> Iterator[None]:
    """Several senders share a PostgreSQL store: one imports, the others then find it done."""
    if conn.dialect.name != "postgresql":
        yield
        return
    lock = text("SELECT pg_advisory_lock(hashtext(:key))").bindparams(key=f"digest import {list_name}")
    with conn.begin():
        conn.execute(lock)
    try:
        yield
    finally:
        unlock = text("SELECT pg_advisory_unlock(hashtext(:key))").bindparams(
            key=f"digest import {list_name}"
        )
        with conn.begin():
            conn.execute(unlock)


def _told(report: ImportReport, on_problem: Callable[[Problem], None] | None, problem: Problem) -> None:
    if problem.line != 1 or problem.duplicate_of is not None:
        report.duplicates += problem.duplicate_of is not None
        report.invalid += problem.duplicate_of is None
    report.keep(problem)
    if on_problem:
        on_problem(problem)


def _chunks(
    rows: Iterable[Subscriber | Problem], told: Callable[[Problem], None]
) -> Iterator[list[Subscriber]]:
    chunk: list[Subscriber] = []
    for row in rows:
        if isinstance(row, Problem):
            told(row)
            continue
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True, slots=True)
class _Current:
    name: str
    desks: str | None
    status: str
    file_row: str | None


class _Importer:
    """Applies one import's rows, chunk by chunk, on one connection (its temporary table's)."""

    def __init__(self, store: Store, conn: Connection, report: ImportReport, now: dt.datetime) -> None:
        self.conn, self.report, self.now = conn, report, now
        self.list_name = report.list_name
        self._desk_values: dict[tuple[str, ...] | None, str | None] = {}
        table, sup = schema.subscribers, schema.suppressions
        with conn.begin():
            of_list = table.c.list_name == self.list_name
            # A first import (the list is empty) has nothing to compare with or remove.
            self.has_readers = conn.execute(select(table.c.email).where(of_list).limit(1)).first() is not None
            self.has_suppressions = conn.execute(select(sup.c.email).limit(1)).first() is not None
            self.any_forgotten = forgotten.any_forgotten(conn)
            if self.has_readers:
                _keys.create(conn)
        self.stage = Stage(conn, report.path)
        self.key = store.forget_key() if self.any_forgotten and store.forget_key else None

    def chunk(self, rows: list[Subscriber]) -> None:
        keys = [row.key for row in rows]
        with self.conn.begin():
            existing = self._existing(keys) if self.has_readers else {}
            suppressed = self._suppressed(keys) if self.has_suppressions else {}
            hashes = {key: forgotten.keyed_hash(self.key, key) for key in keys} if self.key else {}
            gone = forgotten.forgotten_among(self.conn, hashes.values()) if hashes else set()
            if self.has_readers:
                insert_many(self.conn, _keys, ["email"], [(key,) for key in keys])
            new: list[Row] = []
            changes: list[dict[str, Any]] = []
            for row in rows:
                current = existing.get(row.key)
                if current is None:
                    skip = Skip.FORGOTTEN if hashes and hashes[row.key] in gone else None
                    new.append(self._new(row, suppressed.get(row.key), skip))
                elif change := self._compare(row, current):
                    changes.append(change)
            if new:
                self.stage.add(new)
            self._apply(changes)

    def _existing(self, keys: list[str]) -> dict[str, _Current]:
        table = schema.subscribers
        query = select(table.c.email, table.c.name, table.c.desks, table.c.status, table.c.file_row).where(
            table.c.list_name == self.list_name, among(self.conn, table.c.email, keys)
        )
        return {email: _Current(*rest) for email, *rest in self.conn.execute(query)}

    def _suppressed(self, keys: list[str]) -> dict[str, str]:
        sup = schema.suppressions
        found: dict[str, str] = {}
        query = select(sup.c.email, sup.c.reason).where(
            among(self.conn, sup.c.email, keys), applies_to(self.list_name)
        )
        for email, reason in self.conn.execute(query):
            # A bounce or complaint (every list) says more than an unsubscribe.
            if found.get(email) in (None, Reason.UNSUBSCRIBED.value):
                found[email] = reason
        return found

    def _new(self, row: Subscriber, suppression: str | None, skip: Skip | None) -> Row:
        status = row.status if suppression is None else LEFT[Reason(suppression)].value
        if skip is None and row.status == "pending":
            skip = Skip.PENDING
        return (row.key, row.line, row.name, self._desks(row.desks), status, row_hash(row), skip)

    def _desks(self, desks: tuple[str, ...] | None) -> str | None:
        """``desks_value``, remembered: a list has a few dozen choices among a million rows."""
        if desks not in self._desk_values:
            self._desk_values[desks] = desks_value(desks)
        return self._desk_values[desks]

    def _compare(self, row: Subscriber, current: _Current) -> dict[str, Any] | None:
        """The update a row the editors changed makes (None: nothing to write)."""
        hashed = row_hash(row)
        desks = self._desks(row.desks)
        status = current.status
        if row.status == "unsubscribed" and status in (ReaderStatus.ACTIVE, ReaderStatus.PENDING):
            status = ReaderStatus.UNSUBSCRIBED.value
        if current.file_row == hashed:
            if (current.name, current.desks, current.status) == (row.name, desks, row.status):
                self.report.unchanged += 1
            else:
                self.report.kept += 1  # the reader changed it since: theirs to keep
            return None
        said = [
            f"{what}: {old} → {new}"
            for what, old, new in (
                ("name", repr(current.name), repr(row.name)),
                ("desks", _label(current.desks), _label(desks)),
                ("status", current.status, status),
            )
            if old != new
        ]
        if not said:
            # An address that left stays out, whatever the file says.
            if current.status in GONE and row.status != current.status:
                self.report.kept += 1
            else:
                self.report.unchanged += 1
            return None
        self.report.changed += 1
        fields = ", ".join(change.split(":")[0] for change in said)
        log.info(
            "%s:%d: changed by the file (%s)",
            self.report.path,
            row.line,
            fields,
            extra={"event": "subscriber_changed_by_file", "list": self.list_name, "line": row.line},
        )
        return {
            "key": row.key,
            "new_name": row.name,
            "new_desks": desks,
            "new_status": status,
            "new_file_row": hashed,
            "detail": "; ".join(said),
        }

    def end(self, told: Callable[[Problem], None]) -> None:
        """The staged rows into the readers table, once their duplicates are ``told``."""
        self.stage.end(self.list_name, self.now, told)
        self.report.new = self.stage.counts[None]
        self.report.pending = self.stage.counts[Skip.PENDING]
        self.report.forgotten = self.stage.counts[Skip.FORGOTTEN]
        for line in self.stage.forgotten_lines():
            self._note(line, "skipped: this address was forgotten (`digest subscribers forget`)")

    def _apply(self, changes: list[dict[str, Any]]) -> None:
        table, events = schema.subscribers, schema.subscriber_events
        if not changes:
            return
        self.conn.execute(
            update(table)
            .where(table.c.list_name == self.list_name, table.c.email == bindparam("key"))
            .values(
                name=bindparam("new_name"),
                desks=bindparam("new_desks"),
                status=bindparam("new_status"),
                file_row=bindparam("new_file_row"),
                updated_at=self.now,
            ),
            [{k: v for k, v in change.items() if k != "detail"} for change in changes],
        )
        self.conn.execute(
            insert(events),
            [
                {
                    "list_name": self.list_name,
                    "email": change["key"],
                    "at": self.now,
                    "event": Event.FILE_CHANGED.value,
                    "detail": change["detail"],
                }
                for change in changes
            ],
        )

    def _note(self, line: int, message: str) -> None:
        problem = Problem(self.report.path, line, message)
        self.report.keep(problem)
        log.warning("%s", problem, extra={"event": "subscriber_forgotten", "list": self.list_name})

    def remove_missing(self) -> None:
        """Readers of the file whose row is gone: deleted (with an event), or, if they had left,
        no longer tied to a row of the file. Held back while the file has bad rows: a row that
        could not be read is not a reader the editors deleted."""
        if not self.has_readers:
            return
        table, events = schema.subscribers, schema.subscriber_events
        stage = _keys
        missing = and_(
            table.c.list_name == self.list_name,
            table.c.source == Source.FILE.value,
            table.c.file_row.is_not(None),
            ~exists().where(stage.c.email == table.c.email),
        )
        receiving = table.c.status.in_((ReaderStatus.ACTIVE.value, ReaderStatus.PENDING.value))
        with self.conn.begin():
            if self.report.invalid:
                count = select(func.count()).select_from(table).where(missing, receiving)
                self.report.removal_held = self.conn.execute(count).scalar() or 0
                return
            detail = literal(str(self.report.path))
            gone = select(
                table.c.list_name,
                table.c.email,
                literal(self.now, schema.UTCDateTime()),
                literal(Event.REMOVED.value),
                detail,
            ).where(missing, receiving)
            self.conn.execute(
                insert(events).from_select(["list_name", "email", "at", "event", "detail"], gone)
            )
            self.report.removed = self.conn.execute(delete(table).where(missing, receiving)).rowcount
            self.conn.execute(update(table).where(missing).values(file_row=None))


def _label(desks: str | None) -> str:
    return "all" if desks is None else ";".join(json.loads(desks)) or "none"
