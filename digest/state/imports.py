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
``digest.readahead``) into a temporary table of the store (``digest.state.import_stage``):
memory stays flat for any list. Once it is read, the rows are set against the readers in a
few statements: the duplicates are told, the rows the editors changed come back to be
compared and applied here in line order, the others are counted, and the new rows go in. An
unchanged file (same fingerprint as the last import) is not read again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
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
from digest.state.import_stage import Changed, Row, Skip, Stage
from digest.state.queries import among
from digest.state.readers import GONE, LEFT, Event, ReaderStatus, Source, desks_value
from digest.state.recipients import ReaderRows
from digest.state.store import Store
from digest.state.suppressions import Reason, applies_to
from digest.subscribers import Problem, Subscriber

log = logging.getLogger(__name__)

# A row's choice of desks, as the file spells them (None: every desk).
Desks = tuple[str, ...] | None

# Told a first import's new readers, on its connection, before they go into the readers table.
OnStaged = Callable[[Connection, ReaderRows], None]

# Rows stored together. Each chunk's rows are short-lived, but what outlives them (a cached
# statement, say) keeps their memory from going back to the system: with 10,000 a million-row
# import left the process 6 MiB larger than with 5,000, no faster.
CHUNK = 5_000


def import_subscribers(
    store: Store,
    list_name: str,
    path: Path,
    list_desks: tuple[str, ...],
    *,
    now: dt.datetime,
    force: bool = False,
    on_problem: Callable[[Problem], None] | None = None,
    on_staged: OnStaged | None = None,
) -> ImportReport:
    """Import the list's file into the store (unless it is the file last imported and not
    ``force``); ``on_problem`` is told of each bad row as it is read.

    ``on_staged``: told the new readers of a list's first import, once the file is read and its
    duplicates are out, on the import's connection, to read (in transactions of its own) before
    they go into the readers table: on a database server that insert is the longest work of a
    first import (seconds at a million), which a send spends sending what it read from them.
    """
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
            # Duplicates are found at the end, among the staged rows (``Stage.take_out_duplicates``).
            entries = read_ahead(path, list_desks)
            for rows in _chunks(entries, told):
                importer.chunk(rows)
        # Past the collector's spaced passes: ``on_staged`` may send meanwhile, in another thread.
        importer.end(told, on_staged)
        importer.remove_missing()
        report.problems.sort(key=attrgetter("line"))  # the duplicates are found last
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


class _Importer:
    """Stages one import's rows, chunk by chunk, then sets them against the readers, on one
    connection (its temporary tables')."""

    def __init__(self, store: Store, conn: Connection, report: ImportReport, now: dt.datetime) -> None:
        self.conn, self.report, self.now = conn, report, now
        self.list_name = report.list_name
        # Each desk choice of the file's rows (None: every desk), and its ``desks_value``: a
        # list has a few dozen among a million rows.
        self._desk_values: dict[Desks, str | None] = {}
        table, sup = schema.subscribers, schema.suppressions
        with conn.begin():
            of_list = table.c.list_name == self.list_name
            # A first import (the list is empty) has nothing to compare with or remove.
            has_readers = conn.execute(select(table.c.email).where(of_list).limit(1)).first() is not None
            self.has_suppressions = conn.execute(select(sup.c.email).limit(1)).first() is not None
            self.any_forgotten = forgotten.any_forgotten(conn)
        self.stage = Stage(conn, report.path, self.list_name, later=has_readers)
        self.key = store.forget_key() if self.any_forgotten and store.forget_key else None

    def chunk(self, rows: list[Subscriber]) -> None:
        keys = [row.key for row in rows]
        with self.conn.begin():
            suppressed = self._suppressed(keys) if self.has_suppressions else {}
            hashes = {key: forgotten.keyed_hash(self.key, key) for key in keys} if self.key else {}
            gone = forgotten.forgotten_among(self.conn, hashes.values()) if hashes else set()
            forgot = {key for key, hashed in hashes.items() if hashed in gone}
            self.stage.add([self._staged(row, suppressed.get(row.key), row.key in forgot) for row in rows])

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

    def _staged(self, row: Subscriber, suppression: str | None, gone: bool) -> Row:
        """The row as staged: were it a new reader, its status, and why it would not be one."""
        status = row.status if suppression is None else LEFT[Reason(suppression)].value
        skip = Skip.FORGOTTEN if gone else Skip.PENDING if row.status == "pending" else None
        return (row.key, row.line, row.name, self._desks(row.desks), status, row.status, row_hash(row), skip)

    def _desks(self, desks: Desks) -> str | None:
        if desks not in self._desk_values:
            self._desk_values[desks] = desks_value(desks)
        return self._desk_values[desks]

    def _compare(self, row: Changed) -> dict[str, Any] | None:
        """The update a row the editors changed since the last import makes (None: nothing to
        write). A row they left alone is only counted (``Stage.same``): whatever its reader
        changed since (desks, name, unsubscribe) is theirs to keep."""
        status = row.reader_status
        if row.listed == "unsubscribed" and status in (ReaderStatus.ACTIVE, ReaderStatus.PENDING):
            status = ReaderStatus.UNSUBSCRIBED.value
        said = [
            f"{what}: {old} → {new}"
            for what, old, new in (
                ("name", repr(row.reader_name), repr(row.name)),
                ("desks", _label(row.reader_desks), _label(row.desks)),
                ("status", row.reader_status, status),
            )
            if old != new
        ]
        if not said:
            # An address that left stays out, whatever the file says.
            if row.reader_status in GONE and row.listed != row.reader_status:
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
            "key": row.email,
            "new_name": row.name,
            "new_desks": row.desks,
            "new_status": status,
            "new_file_row": row.file_row,
            "detail": "; ".join(said),
        }

    def end(self, told: Callable[[Problem], None], on_staged: OnStaged | None) -> None:
        """The staged rows set against the readers, in one transaction: their duplicates
        ``told`` and taken out; on a later import, the rows the editors changed compared and
        applied, the others counted; then the new readers added (on a first import, once
        ``on_staged`` has read them, in a transaction of its own)."""
        staged = None if self.stage.later else on_staged
        with self.conn.begin():
            self.stage.take_out_duplicates(told)
            if self.stage.later:
                # Counted before the changes are applied: those then have their row's hash too.
                self.report.unchanged, self.report.kept = self.stage.same()
                for rows in self.stage.changed(CHUNK):
                    self._apply([change for row in rows if (change := self._compare(row))])
            if staged is None:
                self.stage.end(self.now)
        if staged is not None:
            staged(self.conn, self.stage.readers)
            with self.conn.begin():
                self.stage.end(self.now)
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
        if not self.stage.later:
            return
        table, events = schema.subscribers, schema.subscriber_events
        missing = and_(
            table.c.list_name == self.list_name,
            table.c.source == Source.FILE.value,
            table.c.file_row.is_not(None),
            ~self.stage.holds(table.c.email),
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
