"""An import finds its duplicates once the file is read (``digest.state.import_stage``): what it
tells and stores must be what reading the file in order says (``check_subscribers``), whatever
the order of the rows, on a list's first import or a later one, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import event

from digest.state import Store, import_report, imports
from digest.state.forgotten import forget
from digest.state.imports import import_subscribers
from digest.subscribers import Problem, check_subscribers
from tests.conftest import NOW
from tests.test_store_subscribers import DESKS, HEADER, KEY, store

pytest_plugins = ["tests.pgserver"]
__all__ = ["store"]  # the fixture, on both databases


@dataclass(frozen=True)
class Case:
    rows: tuple[str, ...]  # the file's rows, after its header (line 2 onwards)
    readers: dict[str, str]  # each stored address → its name: the first row of the address wins
    new: int
    pending: int = 0


CASES = {
    "none": Case(("a@example.org,A,,", "b@example.org,B,,"), {"a@example.org": "A", "b@example.org": "B"}, 2),
    "case folded, the first wins": Case(
        ("B@Example.org,First,,", "a@example.org,A,,", "b@example.org,Second,,"),
        {"a@example.org": "A", "b@example.org": "First"},
        2,
    ),
    "three of one address, among bad rows": Case(
        (
            "c@example.org,C1,,",
            "nope,,,",
            "C@example.org,C2,,",
            "d@example.org,D,Sport,",
            "c@EXAMPLE.org,C3,,",
        ),
        {"c@example.org": "C1"},
        1,
    ),
    "a later row in the file's order, earlier in the key's": Case(
        ("z@example.org,Z1,,", "a@example.org,A,,", "z@example.org,Z2,,", "m@example.org,M,,"),
        {"a@example.org": "A", "m@example.org": "M", "z@example.org": "Z1"},
        3,
    ),
    # An unconfirmed sign-up adds no reader, but still makes its later rows duplicates.
    "the first row unconfirmed": Case(
        ("p@example.org,P1,,pending", "p@example.org,P2,,", "q@example.org,Q,,"), {"q@example.org": "Q"}, 1, 1
    ),
    "a later row unconfirmed": Case(
        ("p@example.org,P1,,", "p@example.org,P2,,pending"), {"p@example.org": "P1"}, 1, 0
    ),
}


@pytest.mark.parametrize("later", [False, True], ids=["first", "later"])
@pytest.mark.parametrize("chunk", [1, 2, 10_000])
@pytest.mark.parametrize("name", CASES)
def test_an_import_tells_and_keeps_what_reading_in_order_says(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, chunk: int, later: bool
) -> None:
    monkeypatch.setattr("digest.state.imports.CHUNK", chunk)
    case, readers = CASES[name], dict(CASES[name].readers)
    if later:  # the list has a reader the file does not (an editor's: never removed by it)
        store.readers.add("daily", "zed@example.org", name="Zed", desks=None, now=NOW)
        readers["zed@example.org"] = "Zed"
    path = tmp_path / "d.csv"
    path.write_text(HEADER + "".join(f"{row}\n" for row in case.rows), encoding="utf-8")
    told: list[Problem] = []
    report = import_subscribers(store, "daily", path, DESKS, now=NOW, on_problem=told.append)
    checked = check_subscribers(path, DESKS)
    assert sorted(told, key=lambda problem: problem.line) == checked.problems == report.problems
    assert (report.duplicates, report.invalid) == (checked.duplicates, checked.invalid)
    assert (report.new, report.pending) == (case.new, case.pending)
    assert {reader.email: reader.name for reader in store.readers.of_list("daily")} == readers


@pytest.mark.parametrize("chunk", [1, 2, 10_000])
def test_a_later_imports_changes_come_in_line_order_a_page_at_a_time(
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    chunk: int,
) -> None:
    monkeypatch.setattr("digest.state.imports.CHUNK", chunk)
    who = ["e", "a", "d", "b", "c"]  # lines against the addresses' order
    path = tmp_path / "d.csv"
    path.write_text(HEADER + "".join(f"{w}@example.org,{w},,\n" for w in who), encoding="utf-8")
    import_subscribers(store, "daily", path, DESKS, now=NOW)
    path.write_text(HEADER + "".join(f"{w}@example.org,{w.upper()},,\n" for w in who), encoding="utf-8")
    applied: list[int] = []
    apply = imports._Importer._apply
    monkeypatch.setattr(
        imports._Importer,
        "_apply",
        lambda self, changes: (applied.append(len(changes)), apply(self, changes)),
    )
    with caplog.at_level(logging.INFO, logger="digest.state.imports"):
        report = import_subscribers(store, "daily", path, DESKS, now=NOW)
    assert (report.changed, report.unchanged, report.kept, report.new) == (5, 0, 0, 0)
    assert [record.line for record in caplog.records] == [2, 3, 4, 5, 6]  # type: ignore[attr-defined]
    assert applied == {1: [1] * 5, 2: [2, 2, 1], 10_000: [5]}[chunk]
    assert {reader.email: reader.name for reader in store.readers.of_list("daily")} == {
        f"{w}@example.org": w.upper() for w in who
    }


def test_duplicates_are_told_after_the_other_bad_rows_in_line_order(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    # The duplicates' lines run against their addresses' order (b's before a's).
    rows = ["b@example.org", "a@example.org", "bad", "B@example.org", "A@example.org", "x y@example.org"]
    path.write_text("email\n" + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    told: list[tuple[int, int | None]] = []
    report = import_subscribers(
        store, "daily", path, DESKS, now=NOW, on_problem=lambda p: told.append((p.line, p.duplicate_of))
    )
    assert told == [(4, None), (7, None), (5, 2), (6, 3)]
    assert [problem.line for problem in report.problems] == [4, 5, 6, 7]


def test_readers_of_a_first_import_are_stamped_with_the_instant_given(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(HEADER + "anna@example.org,Anna,,\n", encoding="utf-8")
    kyiv = dt.timezone(dt.timedelta(hours=2))
    import_subscribers(store, "daily", path, DESKS, now=NOW.astimezone(kyiv))
    anna = store.readers.get("daily", "anna@example.org")
    assert anna is not None and (anna.created_at, anna.updated_at) == (NOW, NOW)


def test_forgotten_addresses_and_their_duplicates_on_a_first_import(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "d.csv"
    path.write_text(HEADER + "anna@example.org,Anna,,\nzed@example.org,,,\n", encoding="utf-8")
    import_subscribers(store, "other", path, DESKS, now=NOW)  # the store now knows the addresses
    for address in ("anna@example.org", "zed@example.org"):
        forget(store.engine, address, KEY, now=NOW)
    # Forgotten in lines against their addresses' order (zed's before anna's).
    rows = (
        "bob@example.org,,,",
        "zed@example.org,,,",
        "anna@example.org,,,",
        "ANNA@example.org,,,",
        "anna@example.org,,,",
    )
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="digest.state.imports"):
        report = import_subscribers(store, "daily", path, DESKS, now=NOW)
    assert (report.new, report.forgotten, report.duplicates) == (1, 2, 2)
    lines = [(problem.line, problem.duplicate_of) for problem in report.problems]
    assert lines == [(3, None), (4, None), (5, 4), (6, 4)]
    assert all("forgotten" in problem.message for problem in report.problems[:2])
    assert [record.getMessage() for record in caplog.records] == list(map(str, report.problems[:2]))
    assert [reader.email for reader in store.readers.of_list("daily")] == ["bob@example.org"]


def test_an_import_that_stops_leaves_nothing_in_the_way_of_the_next(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(HEADER + "anna@example.org,,,\nnope,,,\nbob@example.org,,,\n", encoding="utf-8")

    def stop(_problem: Problem) -> None:
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        import_subscribers(store, "daily", path, DESKS, now=NOW, on_problem=stop)
    assert list(store.readers.of_list("daily")) == []  # the staged rows went with the import
    for _ in range(2):  # on the pool's connections, as every import is on its own
        report = import_subscribers(store, "daily", path, DESKS, now=NOW, force=True)
    assert report.invalid == 1
    assert [reader.email for reader in store.readers.of_list("daily")] == [
        "anna@example.org",
        "bob@example.org",
    ]


def test_an_address_added_while_the_file_is_read_keeps_its_record(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        HEADER + "anna@example.org,From the file,,\nnope,,,\nbob@example.org,Bob,,\n", encoding="utf-8"
    )

    def editor_adds_anna(_problem: Problem) -> None:  # told of line 3 while the file is read
        store.readers.add("daily", "Anna@Example.org", name="By hand", desks=["Europe"], now=NOW)

    report = import_subscribers(store, "daily", path, DESKS, now=NOW, on_problem=editor_adds_anna)
    readers = {
        reader.email: (reader.name, reader.desks, reader.source) for reader in store.readers.of_list("daily")
    }
    assert readers == {
        "anna@example.org": ("By hand", ("Europe",), "editor"),
        "bob@example.org": ("Bob", None, "file"),
    }
    assert report.invalid == 1


def test_a_long_report_keeps_the_earliest_lines_though_duplicates_come_last(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_report, "MAX_PROBLEMS", 3)
    rows = ("a@example.org,A,,", "nope,,,", "a@example.org,Again,,", *["nope,,,"] * 5)
    path = tmp_path / "d.csv"
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    report = import_subscribers(store, "daily", path, DESKS, now=NOW)
    # Lines 3 and 5-9 are told as they are read, the duplicate on line 4 once the file is read.
    assert [(problem.line, problem.duplicate_of) for problem in report.problems] == [
        (3, None),
        (4, 2),
        (5, None),
    ]
    assert (report.problems_omitted, report.invalid, report.duplicates) == (4, 6, 1)


def test_a_row_saying_pending_for_a_reader_is_no_pending_sign_up(store: Store, tmp_path: Path) -> None:
    # A pending row adds no reader, but one for an address the list has is compared like any:
    # neither the change nor, the next time, the row the reader has is counted as pending.
    path = tmp_path / "d.csv"
    for rows, expected in [
        ("anna@example.org,Anna,,\nbob@example.org,Bob,,\n", (2, 0, 0, 0, 0)),
        (
            "anna@example.org,Anna K,,pending\nbob@example.org,Bob,,\ncarl@example.org,,,pending\n",
            (0, 1, 1, 0, 1),
        ),
        (
            "anna@example.org,Anna K,,pending\nbob@example.org,Bob,,\ncarl@example.org,,,pending\n",
            (0, 0, 1, 1, 1),  # a row saying pending, the reader active: theirs, kept
        ),
    ]:
        path.write_text(HEADER + rows, encoding="utf-8")
        report = import_subscribers(store, "daily", path, DESKS, now=NOW, force=True)
        assert (report.new, report.changed, report.unchanged, report.kept, report.pending) == expected
    anna = store.readers.get("daily", "anna@example.org")
    assert anna is not None and (anna.name, anna.status) == ("Anna K", "active")
    assert {reader.email for reader in store.readers.of_list("daily")} == {
        "anna@example.org",
        "bob@example.org",
    }


def test_a_later_import_inserts_only_its_new_rows(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(HEADER + "anna@example.org,Anna,,\n", encoding="utf-8")
    import_subscribers(store, "daily", path, DESKS, now=NOW)
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    path.write_text(HEADER + "anna@example.org,Anna,,\nbob@example.org,Bob,,\n", encoding="utf-8")
    report = import_subscribers(store, "daily", path, DESKS, now=NOW)
    assert (report.new, report.unchanged) == (1, 1)
    # Not every row, falling back on the one already there: a plain insert of the new one.
    inserts = [text for text in statements if text.startswith("INSERT INTO subscribers")]
    assert len(inserts) == 1 and "ON CONFLICT" not in inserts[0]
