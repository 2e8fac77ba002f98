"""Suppressions out of one state database and into another, as CSV.

A state database that is damaged, or replaced, holds the one thing a new database must not
lose: who unsubscribed, bounced or complained (a new one would mail them all again). Export
writes them as CSV, reading what it can of a damaged SQLite file; import adds them to any
state database, and importing the same file twice adds nothing the second time.
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from email_validator import EmailNotValidError
from sqlalchemy.engine import make_url

from digest.address import normalize_address
from digest.errors import StateError
from digest.state.store import Store
from digest.state.suppressions import ALL_LISTS, REASONS, Suppression, Suppressions, by_reason

COLUMNS = ("address", "list", "reason", "source", "date")
IMPORT_SOURCE = "import"


@dataclass
class Exported:
    """What an export wrote: counts by reason, and whether a damaged file lost some rows."""

    counts: Counter[str] = field(default_factory=Counter)
    damaged: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        return f"{self.total:,} suppressions ({by_reason(self.counts)})"


def export_suppressions(state_url: str, out: TextIO) -> Exported:
    """Write every suppression of the state database at ``state_url`` to ``out`` as CSV.

    The columns are ``COLUMNS``; an empty list means every list. SQLite is read with
    ``salvage_sqlite``, so a damaged file gives what can still be read (``damaged`` is then
    set); PostgreSQL through the store, without creating or upgrading anything.
    """
    url = make_url(state_url)
    exported = Exported()
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not path.is_file():
            raise StateError("there is no state database here: nothing to export", path=path)
        _write_csv(salvage_sqlite(path, exported), out, exported)
        return exported
    store = Store.for_reading(state_url)
    if store is None:
        raise StateError(
            "the state database has no digest state in it: nothing to export", path=url.render_as_string()
        )
    with store:
        _write_csv(store.suppressions.every(), out, exported)
    return exported


def _write_csv(records: Iterable[Suppression], out: TextIO, exported: Exported) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for record in records:
        scope = "" if record.list_name == ALL_LISTS else record.list_name
        date = record.created_at.astimezone(dt.UTC).isoformat(timespec="seconds")
        writer.writerow([record.email, scope, record.reason, record.source, date])
        exported.counts[record.reason] += 1


@dataclass
class Imported:
    """What an import did: new rows by reason, rows already held, and the bad rows (the first
    ``max_bad`` of them; the rest counted)."""

    added: Counter[str] = field(default_factory=Counter)
    read: int = 0
    bad: list[BadRow] = field(default_factory=list)
    bad_omitted: int = 0

    def describe(self, path: Path) -> str:
        new = sum(self.added.values())
        bad = len(self.bad) + self.bad_omitted
        return (
            f"imported {path}: {new:,} new ({by_reason(self.added)}), {self.read - new:,} already there, "
            f"{bad:,} bad row{'s' * (bad != 1)}"
        )


def import_suppressions(
    suppressions: Suppressions, path: Path, now: dt.datetime, *, max_bad: int
) -> Imported:
    """Add the rows of an export file that are not held yet; a bad row is set aside, not fatal.

    The first ``max_bad`` bad rows are kept to show, the rest only counted.
    """
    imported = Imported()

    def good_rows() -> Iterator[Suppression]:
        for row in read_csv(path, now):
            if isinstance(row, Suppression):
                imported.read += 1
                yield row
            elif len(imported.bad) < max_bad:
                imported.bad.append(row)
            else:
                imported.bad_omitted += 1

    imported.added = suppressions.add_records(good_rows())
    return imported


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row of an import file that was not imported, and why."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def read_csv(path: Path, now: dt.datetime) -> Iterator[Suppression | BadRow]:
    """Each row of an export file as a Suppression, or as a BadRow saying what to fix.

    An empty source becomes "import" and an empty date ``now``; a date without a timezone
    is UTC. Raises StateError when the file cannot be read or its header is not ours.
    """
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise StateError(f"cannot open the file: {exc.strerror or exc}", path=path) from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip().casefold() for name in next(reader, [])]
            if sorted(header) != sorted(COLUMNS):
                hint = f"the first line must be `{','.join(COLUMNS)}`, as `digest suppressions export` writes"
                raise StateError("the header is not a suppressions export's", path=path, line=1, hint=hint)
            start = reader.line_num + 1
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    yield _record(path, start, header, [cell.strip() for cell in cells], now)
                start = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read the file: {exc}", path=path, line=reader.line_num) from None


def _record(
    path: Path, line: int, header: list[str], row: list[str], now: dt.datetime
) -> Suppression | BadRow:
    if len(row) != len(header):
        return BadRow(
            path, line, f"the row has {len(row)} cells, not {len(header)}; quote a cell with a comma"
        )
    cells = dict(zip(header, row, strict=True))
    try:
        address = normalize_address(cells["address"])
    except EmailNotValidError as exc:
        return BadRow(path, line, f"{cells['address']!r} is not an email address ({str(exc).rstrip('.')})")
    if cells["reason"] not in REASONS:
        return BadRow(path, line, f"reason {cells['reason']!r} is not one of {', '.join(REASONS)}")
    try:
        date = dt.datetime.fromisoformat(cells["date"]) if cells["date"] else now
    except ValueError:
        return BadRow(path, line, f"date {cells['date']!r} is not an ISO 8601 date and time")
    date = date if date.tzinfo else date.replace(tzinfo=dt.UTC)
    scope = cells["list"] or ALL_LISTS
    return Suppression(address, scope, cells["reason"], cells["source"] or IMPORT_SOURCE, date)


def salvage_sqlite(path: Path, exported: Exported) -> Iterator[Suppression]:
    """Every suppression that can still be read from a SQLite state file, damaged or not.

    Reads the file read-only with sqlite3 itself, in rowid order: a damaged page stops a
    scan, so the scan starts again past it (the step doubling until it reads again), and
    ``exported.damaged`` says rows were lost. Raises StateError when nothing can be read.
    """
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        db.execute("SELECT 1 FROM suppressions LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StateError(
            f"cannot read the suppressions from the state database: {exc}",
            path=path,
            hint="restore it from a backup; its unsubscribes, bounces and complaints cannot be exported",
        ) from None
    query = (
        "SELECT rowid, email, list_name, reason, source, created_at FROM suppressions "
        "WHERE rowid > ? ORDER BY rowid"
    )
    after, step = 0, 1
    try:
        while step < 2**62:
            try:
                for rowid, *values in db.execute(query, (after,)):
                    after, step = rowid, 1
                    yield _salvaged(*values)
                return
            except (sqlite3.DatabaseError, ValueError, TypeError):  # a damaged page, a garbled row
                exported.damaged = True
                after, step = after + step, step * 2
    finally:
        db.close()


def _salvaged(email: str, list_name: str, reason: str, source: str, created_at: str) -> Suppression:
    # SQLAlchemy keeps a SQLite datetime as naive UTC text (digest.state.schema.UTCDateTime).
    created = dt.datetime.fromisoformat(created_at).replace(tzinfo=dt.UTC)
    return Suppression(email, list_name, reason, source, created)
