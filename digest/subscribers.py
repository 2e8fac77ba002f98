"""Subscriber CSV files → Subscriber records, streamed one row at a time.

A list can hold a million addresses, so nothing here keeps the whole file: each row is read,
checked and yielded on its own, and a bad row becomes a Problem (file, line, what to fix)
instead of stopping the list. Only a file that cannot be read at all raises SubscriberError.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

from email_validator import EmailNotValidError

from digest.address import Addresses, address_key
from digest.errors import SubscriberError
from digest.ingest.sanitize import one_line

COLUMNS = ("email", "name", "desks", "status")
# What `digest subscribers export` adds after COLUMNS: read past quietly, so its file imports back.
EXPORT_COLUMNS = ("source", "created", "updated", "confirmed")
MAX_PROBLEMS = 1000
# The header must be the first line, so a Problem on this line is about the header, not a row.
HEADER_LINE = 1
_HEADER_HINT = "the first line must be the header row `email,name,desks,status`"

# Editors write active (or nothing) and unsubscribed; an exported file also says what the state
# store knows (pending, bounced, complained), which an import never takes from a file.
Status = Literal["active", "unsubscribed", "pending", "bounced", "complained"]
STATUSES: tuple[Status, ...] = ("active", "unsubscribed", "pending", "bounced", "complained")
_STATUS: dict[str, Status] = {status: status for status in STATUSES}
# Rows whose duplicates are looked up together (``unique_subscribers``).
UNIQUE_BATCH = 5000
# Distinct desk cells whose choice is remembered: a list has a few dozen among a million rows.
KNOWN_DESK_CELLS = 1024


class Subscriber(NamedTuple):
    """One valid row. ``key`` is the address folded for comparisons; ``desks`` None means all.

    A named tuple rather than a dataclass: a list makes a million of them, and a tuple is made
    in a third of the time.
    """

    email: str
    key: str
    name: str
    desks: tuple[str, ...] | None
    status: Status
    line: int


# A Subscriber's values as a plain tuple: what ``read_fields`` yields, and what crosses a pipe.
Fields = tuple[str, str, str, tuple[str, ...] | None, Status, int]
# A Subscriber from its values, without the named tuple's keyword handling (0.35 µs a row, not 0.5).
from_fields: Callable[[Fields], Subscriber] = partial(tuple.__new__, Subscriber)


@dataclass(frozen=True, slots=True)
class Problem:
    """A row that was skipped (or a header column that was ignored), and how to fix it."""

    path: Path
    line: int
    message: str
    duplicate_of: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def read_subscribers(path: Path, list_desks: tuple[str, ...]) -> Iterator[Subscriber | Problem]:
    """Yield each row of a subscriber CSV as a Subscriber, or as a Problem saying what to fix.

    The file is streamed, so memory stays flat however long the list is; for the same reason
    duplicate addresses are *not* detected here: the caller catches them with a unique key on
    ``Subscriber.key`` in its database (``check_subscribers`` uses a temporary one). Desks come
    back in ``list_desks``' order; blank rows are skipped; a row is reported at the physical
    line it starts on. Raises SubscriberError, before the first row is yielded, when the file
    cannot be opened, is not UTF-8, or its header has no ``email`` column.
    """
    yield from as_subscribers(read_fields(path, list_desks))


def as_subscribers(entries: Iterable[Fields | Problem]) -> Iterator[Subscriber | Problem]:
    """``read_fields``' entries with each valid row as its Subscriber."""
    return (entry if isinstance(entry, Problem) else from_fields(entry) for entry in entries)


def read_fields(
    path: Path, list_desks: tuple[str, ...], *, checked: bool = False
) -> Iterator[Fields | Problem]:
    """``read_subscribers``, each valid row as its plain tuple of values (``Fields``): a third
    of the time to make, and to send to another process (``digest.readahead``). ``checked``:
    the caller has run ``check_utf8`` on the file, so it is not read twice here."""
    raw = _open(path)
    with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        if not checked:
            _check_utf8(raw, path)
            raw.seek(0)
        reader = csv.reader(text, strict=True)  # strict: a stray quote is reported, not swallowed
        layout = _header(reader, path, list_desks)
        if layout.unknown:
            names = ", ".join(map(repr, layout.unknown))
            message = f"unknown column(s) {names} ignored; the columns are email, name, desks, status"
            yield Problem(path, HEADER_LINE, message)
        end = reader.line_num
        while True:
            start = end + 1
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                end = reader.line_num
                yield _problem(path, start, end, f"the row is not valid CSV ({exc}); check its quotes")
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise _unreadable(path, exc) from None
            if cells is None:
                return
            end = reader.line_num
            entry = layout.parse([cell.strip() for cell in cells], start)
            if isinstance(entry, str):
                yield _problem(path, start, end, entry)
            elif entry is not None:
                yield entry


@dataclass(frozen=True, slots=True)
class _Layout:
    """What the header says (where each column is, how many there are), and how a desks cell
    reads against the list's desks."""

    row_width: range  # the named columns, up to the header's blank tail a spreadsheet may add
    unknown: tuple[str, ...]
    # A row's email, name, desks and status cells (a column the header lacks: the last, "").
    cells: Callable[[list[str]], tuple[str, str, str, str]]
    # A desks cell → the desks it chooses, or what is wrong with it (``_desk_choice``).
    choose: Callable[[str], tuple[str, ...] | str | None]
    addresses: Addresses = field(default_factory=Addresses)

    def parse(self, cells: list[str], line: int) -> Fields | str | None:
        """The row's values, or what is wrong with the row, or None for a blank row."""
        if not any(cells):
            return None
        # A row wider than the header, or with text under its blank tail, usually has an
        # unquoted comma in it that shifted the cells, so its desks and status would be wrong.
        if len(cells) not in self.row_width or any(cells[self.row_width.start :]):
            return (
                f"the row has {len(cells)} cells but the header has {self.row_width.start} columns; "
                'quote a cell that contains a comma ("Smith, Anna") and give every row all the columns'
            )
        cells.append("")
        address, name, desks, status = self.cells(cells)
        if not address:
            return "the email cell is empty; fill in the address or delete the row"
        try:
            email = self.addresses.normalized(address)
        except EmailNotValidError as exc:
            reason = str(exc).rstrip(".")
            return f"{address!r} is not a valid email address ({reason}); correct it or delete the row"
        chosen = self.choose(desks)
        if isinstance(chosen, str):
            return chosen
        state = _STATUS.get(status.casefold())
        if state is None and status:
            return f"status {status!r} is not active or unsubscribed; use one of those (empty means active)"
        key = address_key(email)
        # The address itself when folding leaves it as it is (most do): one string to pickle
        # rather than two (``digest.readahead``: 0.56 s a million rows to send, 0.33 s).
        return (email, email if key == email else key, one_line(name), chosen, state or "active", line)


def _desk_choice(desks: dict[str, str], cell: str) -> tuple[str, ...] | str | None:
    """The desks a cell chooses in the list's order (None: every desk), or what is wrong with it."""
    wanted = {desk.strip().casefold(): desk.strip() for desk in cell.split(";") if desk.strip()}
    unknown = next((desk for folded, desk in wanted.items() if folded not in desks), None)
    if unknown:
        return (
            f"desk {unknown!r} is not one of this list's desks ({', '.join(desks.values())}); "
            "fix the spelling, or leave the cell empty for every desk"
        )
    return tuple(desk for folded, desk in desks.items() if folded in wanted) or None


def _header(reader: Iterator[list[str]], path: Path, list_desks: tuple[str, ...]) -> _Layout:
    """The layout the header row gives, or SubscriberError when it has no `email` column."""
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise SubscriberError(f"the header is not valid CSV ({exc})", path=path, line=1) from None
    except (OSError, UnicodeDecodeError) as exc:  # the first block of the file is read here
        raise _unreadable(path, exc) from None
    if not header:
        raise SubscriberError("the header row is missing", path=path, line=1, hint=_HEADER_HINT)
    names = [name.strip().casefold() for name in header]
    columns = {name: index for index, name in enumerate(names) if name in COLUMNS}
    if len(columns) < sum(name in COLUMNS for name in names):
        raise SubscriberError("the header names a column twice", path=path, line=1, hint="delete one")
    if "email" not in columns:
        separator = next((sep for sep in ";\t|" if len(header) == 1 and sep in header[0]), None)
        hint = f"columns are separated by {separator!r}; save it with commas" if separator else _HEADER_HINT
        raise SubscriberError("the header row has no `email` column", path=path, line=1, hint=hint)
    known = ("", *COLUMNS, *EXPORT_COLUMNS)
    unknown = tuple(cell.strip() for cell in header if cell.strip().casefold() not in known)
    # Trailing blank header cells are spreadsheet leftovers, not columns rows must fill.
    width = range(max(index for index, name in enumerate(names) if name) + 1, len(names) + 1)
    desks = {desk.casefold(): desk for desk in list_desks}
    cells = itemgetter(*(columns.get(column, -1) for column in COLUMNS))
    choose = lru_cache(maxsize=KNOWN_DESK_CELLS)(partial(_desk_choice, desks))
    return _Layout(width, unknown, cells, choose)


def _unreadable(path: Path, exc: Exception) -> SubscriberError:
    # After the UTF-8 check passed: the file changed under us, or the disk failed.
    return SubscriberError(f"cannot read the file: {exc}", path=path, hint="check the file and try again")


def _problem(path: Path, start: int, end: int, message: str) -> Problem:
    # A quote left open swallows the lines after it into one cell; say where the row ends.
    span = f" (this row runs from line {start} to line {end}: is a closing quote missing?)"
    return Problem(path, start, message + span * (end > start))


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        hint = "check the list's `subscribers` path in config.toml and that the file is readable"
        raise SubscriberError(f"cannot open the file: {exc.strerror or exc}", path=path, hint=hint) from None


def check_utf8(path: Path) -> None:
    """SubscriberError (with the line) if the file cannot be opened or is not UTF-8, as
    ``read_subscribers`` raises it before its first row."""
    with _open(path) as raw:
        _check_utf8(raw, path)


def _check_utf8(raw: BinaryIO, path: Path) -> None:
    # A separate streaming pass, so a bad byte deep in the file stops the list before any
    # subscriber is yielded (and perhaps mailed), not half-way through a send.
    for number, line in enumerate(raw, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            utf16 = number == 1 and line.startswith((b"\xff\xfe", b"\xfe\xff"))
            hint = ("it is UTF-16; " if utf16 else "") + "save it as “CSV UTF-8”"
            message = f"the file is not UTF-8 (byte 0x{line[exc.start]:02x})"
            raise SubscriberError(message, path=path, line=number, hint=hint) from None


@dataclass
class CheckReport:
    """Counts and problems for `digest subscribers check`; only the first MAX_PROBLEMS are kept."""

    path: Path
    rows: int = 0
    active: int = 0
    unsubscribed: int = 0
    invalid: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_omitted: int = 0

    def keep(self, problem: Problem) -> None:
        """Record a problem, or only count it once MAX_PROBLEMS are held (a broken file is long)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.problems_omitted += 1


def unique_subscribers(path: Path, list_desks: tuple[str, ...]) -> Iterator[Subscriber | Problem]:
    """``read_subscribers``, with a later row for an address already seen turned into a Problem."""
    return without_duplicates(path, read_subscribers(path, list_desks))


def without_duplicates(path: Path, entries: Iterator[Subscriber | Problem]) -> Iterator[Subscriber | Problem]:
    """``entries`` (``read_subscribers``'s, of ``path``), with a later row for an address
    already seen turned into a Problem.

    Duplicates (addresses equal after case folding) are found through a UNIQUE key in a
    temporary SQLite file rather than a set in memory, so memory stays flat for any list size.
    """
    folder = tempfile.TemporaryDirectory(prefix="digest-subscribers-")
    # closing() runs first, so the database is closed before its folder is removed.
    with folder, closing(sqlite3.connect(Path(folder.name) / "seen.sqlite3")) as db:
        db.execute("PRAGMA journal_mode = OFF")  # a throwaway file: no journal or fsync to pay for
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID")
        # An address seen before is noted by SQLite itself as it is inserted, so a batch is
        # one statement and only its (few) duplicates come back to Python.
        db.execute("CREATE TABLE again (key TEXT NOT NULL, line INTEGER NOT NULL)")
        db.execute(
            "CREATE TRIGGER noted AFTER UPDATE ON seen BEGIN INSERT INTO again SELECT old.key, old.line; END"
        )
        # One transaction, never committed: with no journal, SQLite writes pages out of its
        # small cache as it fills, so memory stays flat without a commit.
        while batch := list(islice(entries, UNIQUE_BATCH)):
            first = _first_lines(db, (entry for entry in batch if isinstance(entry, Subscriber)))
            for entry in batch:
                if isinstance(entry, Problem) or first[entry.key] == entry.line:
                    yield entry
                else:
                    yield duplicate(path, entry.line, first[entry.key])


def duplicate(path: Path, line: int, first: int) -> Problem:
    """The problem of a row whose address came first on line ``first``."""
    return Problem(path, line, f"duplicate of line {first}; delete one of them", duplicate_of=first)


def _first_lines(db: sqlite3.Connection, rows: Iterable[Subscriber]) -> dict[str, int]:
    """The line each address first came on, among ``rows`` or in an earlier batch (``seen``)."""
    first: dict[str, int] = {}
    for row in rows:
        first.setdefault(row.key, row.line)
    # The update changes nothing: it is there to fire the trigger that notes the address.
    insert = "INSERT INTO seen VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET line = line"
    db.executemany(insert, first.items())
    first.update(db.execute("SELECT key, line FROM again"))
    db.execute("DELETE FROM again")
    return first


def is_listed(path: Path, key: str, list_desks: tuple[str, ...]) -> bool:
    """Whether a valid row of the file has the address ``key`` (folded like ``Subscriber.key``)."""
    return any(isinstance(row, Subscriber) and row.key == key for row in read_subscribers(path, list_desks))


def check_subscribers(path: Path, list_desks: tuple[str, ...]) -> CheckReport:
    """Read a whole subscriber file and count its rows, bad rows and duplicate addresses.

    Raises SubscriberError like ``read_subscribers``; memory stays flat (``unique_subscribers``).
    """
    report = CheckReport(path)
    for entry in unique_subscribers(path, list_desks):
        if isinstance(entry, Problem):
            if entry.line != HEADER_LINE:
                report.rows += 1
                if entry.duplicate_of is not None:
                    report.duplicates += 1
                else:
                    report.invalid += 1
            report.keep(entry)
            continue
        report.rows += 1
        report.active += entry.status == "active"
        report.unsubscribed += entry.status != "active"
    return report


def format_check(report: CheckReport, list_name: str) -> str:
    """A one-line summary of a CheckReport followed by each kept problem on its own line."""
    lines = [
        f"{list_name} ({report.path}): {report.rows} rows, {report.active} active, "
        f"{report.unsubscribed} unsubscribed, {report.invalid} invalid, {report.duplicates} duplicates",
        *map(str, report.problems),
    ]
    if report.problems_omitted:
        lines.append(f"… and {report.problems_omitted} more problems not shown")
    return "\n".join(lines)
