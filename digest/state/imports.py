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
``digest.readahead``), the store written in chunks, duplicates found through a temporary key
(``digest.subscribers.unique_subscribers``) and the keys the file still has kept in a
temporary table of the store for finding the removed rows: memory stays flat for any list.
New readers wait in an unindexed temporary table and go into the readers table at the end in
one statement, in key order: its indexes then grow at their ends, whatever the file's order.
An unchanged file (same fingerprint as the last import) is not read again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    true,
    update,
)

from digest.readahead import read_ahead
from digest.state import forgotten, schema
from digest.state.import_report import ImportReport, fingerprint, row_hash
from digest.state.queries import among, insert_ignoring, insert_many
from digest.state.readers import GONE, LEFT, Event, ReaderStatus, Source, desks_value
from digest.state.store import Store
from digest.state.suppressions import ALL_LISTS, Reason
from digest.subscribers import Problem, Subscriber, without_duplicates

log = logging.getLogger(__name__)

CHUNK = 10_000
# A new reader's values, beside those every new row of an import shares (``_Importer.insert_new``).
_NEW_COLUMNS = ("email", "name", "desks", "status", "file_row")
# Temporary tables, on the importing connection only: the keys the file has (for the removed
# rows), and the new readers it brings.
_keys = Table(
    "digest_import_keys", MetaData(), Column("email", String(320), primary_key=True), prefixes=["TEMPORARY"]
)
_new_rows = Table(
    "digest_import_new", MetaData(), *(Column(name, Text) for name in _NEW_COLUMNS), prefixes=["TEMPORARY"]
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
        importer = _Importer(store, conn, report, now)
        try:
            entries = without_duplicates(path, read_ahead(path, list_desks))
            for rows in _chunks(entries, report, on_problem):
                importer.chunk(rows)
            importer.insert_new()
            importer.remove_missing()
        finally:
            importer.close()
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


def _chunks(
    rows: Iterable[Subscriber | Problem], report: ImportReport, on_problem: Callable[[Problem], None] | None
) -> Iterator[list[Subscriber]]:
    chunk: list[Subscriber] = []
    for row in rows:
        if isinstance(row, Problem):
            if row.line != 1 or row.duplicate_of is not None:
                report.duplicates += row.duplicate_of is not None
                report.invalid += row.duplicate_of is None
            report.keep(row)
            if on_problem:
                on_problem(row)
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
            self.stages = (_keys, _new_rows) if self.has_readers else (_new_rows,)
            for stage in self.stages:
                conn.execute(text(f"DROP TABLE IF EXISTS {stage.name}"))
                stage.create(conn)
        self.key = store.forget_key() if self.any_forgotten and store.forget_key else None

    def close(self) -> None:
        with self.conn.begin():
            for stage in self.stages:
                self.conn.execute(text(f"DROP TABLE IF EXISTS {stage.name}"))

    def chunk(self, rows: list[Subscriber]) -> None:
        keys = [row.key for row in rows]
        with self.conn.begin():
            existing = self._existing(keys) if self.has_readers else {}
            suppressed = self._suppressed(keys) if self.has_suppressions else {}
            hashes = {key: forgotten.keyed_hash(self.key, key) for key in keys} if self.key else {}
            gone = forgotten.forgotten_among(self.conn, hashes.values()) if hashes else set()
            if self.has_readers:
                self.conn.execute(insert(_keys), [{"email": key} for key in keys])
            new: list[tuple[str, str, str | None, str, str]] = []
            changes: list[dict[str, Any]] = []
            for row in rows:
                current = existing.get(row.key)
                if current is not None:
                    change = self._compare(row, current)
                    if change:
                        changes.append(change)
                elif hashes and hashes[row.key] in gone:
                    self.report.forgotten += 1
                    self._note(row, "skipped: this address was forgotten (`digest subscribers forget`)")
                elif row.status == "pending":
                    self.report.pending += 1
                else:
                    new.append(self._new(row, suppressed.get(row.key)))
            if new:
                insert_many(self.conn, _new_rows, _NEW_COLUMNS, new)
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
            among(self.conn, sup.c.email, keys), sup.c.list_name.in_((self.list_name, ALL_LISTS))
        )
        for email, reason in self.conn.execute(query):
            # A bounce or complaint (every list) says more than an unsubscribe.
            if found.get(email) in (None, Reason.UNSUBSCRIBED.value):
                found[email] = reason
        return found

    def _new(self, row: Subscriber, suppression: str | None) -> tuple[str, str, str | None, str, str]:
        self.report.new += 1
        status = row.status if suppression is None else LEFT[Reason(suppression)].value
        return (row.key, row.name, self._desks(row.desks), status, row_hash(row))

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

    def insert_new(self) -> None:
        """The new readers the file brought, from their temporary table in key order."""
        table = schema.subscribers
        now = literal(self.now, schema.UTCDateTime())
        shared = (literal(self.list_name), literal(Source.FILE.value), now, now)
        # WHERE: SQLite would read the ON of ON CONFLICT as a join's without it.
        rows = select(*shared, *_new_rows.c).where(true()).order_by(_new_rows.c.email)
        names = ["list_name", "source", "created_at", "updated_at", *_NEW_COLUMNS]
        with self.conn.begin():
            # Ignoring a row already there: another sender on SQLite may import the same file.
            self.conn.execute(
                insert_ignoring(self.conn, table, ["list_name", "email"]).from_select(names, rows)
            )

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

    def _note(self, row: Subscriber, message: str) -> None:
        problem = Problem(self.report.path, row.line, message)
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
