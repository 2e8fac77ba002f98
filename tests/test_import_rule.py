"""The import's rule in the corners a mutation pass found untested (``digest.state.imports``):
each list on its own, counts past one, what is logged for each row, and what a removal leaves
for the next import to read."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select

from digest.state import Store, schema
from digest.state.imports import import_subscribers
from digest.state.readers import Event, ReaderStatus, Source
from digest.state.recipients import ReaderRows
from digest.state.suppressions import Reason
from tests.conftest import NOW
from tests.test_store_subscribers import DESKS, HEADER, LATER, counts, events, imported, store

pytest_plugins = ["tests.pgserver"]
__all__ = ["store"]  # the fixture, on both databases
KYIV = dt.timezone(dt.timedelta(hours=2))


def names(store: Store, list_name: str) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    return {reader.email: (reader.name, reader.desks) for reader in store.readers.of_list(list_name)}


def test_each_list_is_its_own_whatever_the_address(store: Store, tmp_path: Path) -> None:
    daily, weekly = tmp_path / "daily.csv", tmp_path / "weekly.csv"
    imported(store, daily, "anna@example.org,Anna,Culture,\nbob@example.org,Bob,,\ncarl@example.org,Carl,,\n")
    weekly.write_text(
        HEADER + "anna@example.org,Anna W,Business,\nbob@example.org,Bob W,,\n", encoding="utf-8"
    )
    import_subscribers(store, "weekly", weekly, DESKS, now=NOW)
    report = imported(store, daily, "anna@example.org,Anna K,Culture,\ncarl@example.org,Carl,,\n", now=LATER)
    assert counts(report) == (0, 1, 1, 1, 0, 0)
    assert names(store, "daily") == {
        "anna@example.org": ("Anna K", ("Culture",)),
        "carl@example.org": ("Carl", None),
    }
    assert names(store, "weekly") == {
        "anna@example.org": ("Anna W", ("Business",)),
        "bob@example.org": ("Bob W", None),
    }


def test_every_row_kept_or_changed_is_counted(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    rows = "".join(f"{who}@example.org,{who},,\n" for who in ("a", "b", "c", "d", "e", "f"))
    imported(store, path, rows)
    for who in ("a", "b"):  # their own change, which an unchanged row keeps
        store.readers.set_preferences("daily", f"{who}@example.org", name="Mine", desks=None, now=NOW)
    for who in ("c", "d"):  # gone, which a row saying active cannot undo
        store.readers.leave("daily", f"{who}@example.org", reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    changed = rows.replace("e,,", "E,,").replace("f,,", "F,,")
    report = imported(store, path, changed + "g@example.org,g,,\n", now=LATER)
    assert counts(report) == (1, 2, 0, 0, 4, 0)


def test_what_is_logged_for_a_changed_row_and_a_forgotten_one(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from digest.state.forgotten import forget
    from tests.test_store_subscribers import KEY

    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,Anna,,\nbob@example.org,Bob,,\n")
    forget(store.engine, "bob@example.org", KEY, now=NOW)
    with caplog.at_level(logging.INFO, logger="digest.state.imports"):
        imported(store, path, "anna@example.org,Anna K,,\nbob@example.org,Bob,,\n", now=LATER)
    logged = [(r.levelname, r.event, r.list, getattr(r, "line", None)) for r in caplog.records]  # type: ignore[attr-defined]
    assert logged == [
        ("INFO", "subscriber_changed_by_file", "daily", 2),
        ("WARNING", "subscriber_forgotten", "daily", None),
    ]


def test_what_the_editors_changed_is_the_base_a_readers_own_change_is_kept_against(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,Anna,Culture,\n")
    changed = "anna@example.org,Anna K,Culture,\n"
    imported(store, path, changed, now=LATER)
    store.readers.set_preferences("daily", "anna@example.org", name="Anna K", desks=("Business",), now=LATER)
    report = import_subscribers(store, "daily", path, DESKS, now=LATER, force=True)
    assert counts(report) == (0, 0, 0, 0, 1, 0)
    assert names(store, "daily") == {"anna@example.org": ("Anna K", ("Business",))}


def test_desks_are_told_by_name_in_a_changes_detail(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,Anna,,\nbob@example.org,Bob,Culture,\n")
    store.readers.set_preferences("daily", "bob@example.org", name="Bob", desks=(), now=NOW)
    imported(
        store, path, "anna@example.org,Anna,Culture;Ukraine,\nbob@example.org,Bobby,Culture,\n", now=LATER
    )
    assert (Event.FILE_CHANGED.value, "desks: all → Ukraine;Culture") in events(store, "anna@example.org")
    assert (Event.FILE_CHANGED.value, "name: 'Bob' → 'Bobby'; desks: none → Culture") in events(
        store, "bob@example.org"
    )


def test_a_removal_touches_only_the_files_own_receiving_readers(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,Anna,,\nbob@example.org,Bob,,\ncarl@example.org,Carl,,\n")
    store.readers.leave("daily", "carl@example.org", reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    store.readers.sign_up("daily", "dana@example.org", name="", desks=None, url="u", ip=None, now=NOW)
    store.readers.confirm("daily", "dana@example.org", url="u", ip=None, now=NOW)
    imported(
        store, path, "anna@example.org,Anna,,\nbob@example.org,Bob,,\ndana@example.org,Dana,,\n", now=NOW
    )
    report = import_subscribers(
        store, "daily", write(path, "anna@example.org,Anna,,\n"), DESKS, now=LATER.astimezone(KYIV)
    )
    assert report.removed == 1  # Bob; Carl had left, Dana signed up (though the file once had her)
    assert set(names(store, "daily")) == {"anna@example.org", "carl@example.org", "dana@example.org"}
    removed = [e for e in store.readers.history("bob@example.org") if e.event == Event.REMOVED.value]
    assert [(e.list_name, e.at) for e in removed] == [("daily", LATER)]
    for kept in ("anna@example.org", "carl@example.org", "dana@example.org"):
        assert Event.REMOVED.value not in [event for event, _ in events(store, kept)]
    dana = store.readers.get("daily", "dana@example.org")
    assert dana is not None and dana.source is not Source.FILE
    # Anna's row is still the file's: her own change holds against the unchanged row.
    store.readers.set_preferences("daily", "anna@example.org", name="Anna", desks=("Business",), now=LATER)
    report = import_subscribers(store, "daily", path, DESKS, now=LATER, force=True)
    assert (report.kept, report.changed) == (1, 0)


def write(path: Path, rows: str) -> Path:
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def test_readers_held_back_by_bad_rows_are_those_still_receiving(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,,,\nbob@example.org,,,\ncarl@example.org,,,\n")
    report = imported(
        store, path, "anna@example.org,,,\nbob@example.org,,,\ncarl@example.org,,,\nnope,,,\n", now=LATER
    )
    assert (report.invalid, report.removal_held) == (1, 0)
    store.readers.leave("daily", "carl@example.org", reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    report = imported(store, path, "anna@example.org,,,\nnope,,,\n", now=LATER)
    assert (report.removed, report.removal_held) == (0, 1)  # Bob; Carl left
    assert len(names(store, "daily")) == 3


def test_a_header_column_ignored_is_not_a_bad_row(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("email,name,desks,status,colour\nanna@example.org,Anna,,,red\n", encoding="utf-8")
    report = import_subscribers(store, "daily", path, DESKS, now=NOW)
    assert (report.new, report.invalid, report.bad, len(report.problems)) == (1, 0, 0, 1)


def test_a_bounce_says_more_than_an_unsubscribe_whichever_is_found_first(
    store: Store, tmp_path: Path
) -> None:
    for address in ("a@example.org", "b@example.org"):
        store.suppressions.add(address, reason=Reason.UNSUBSCRIBED, source="web", list_name="daily", now=NOW)
        store.suppressions.add(address, reason=Reason.BOUNCED, source="sendgrid", now=NOW)
    imported(store, tmp_path / "d.csv", "a@example.org,,,\nb@example.org,,,\n")
    statuses = {reader.status for reader in store.readers.of_list("daily")}
    assert statuses == {ReaderStatus.BOUNCED}


def test_no_key_is_asked_for_when_no_address_was_forgotten(tmp_path: Path) -> None:
    def no_secret() -> bytes:
        raise AssertionError("the key of forgotten addresses was asked for")

    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}", forget_key=no_secret).migrate() as opened:
        report = imported(opened, tmp_path / "d.csv", "anna@example.org,,,\n")
        assert report.new == 1


def test_a_list_gains_a_reader_another_list_already_has(store: Store, tmp_path: Path) -> None:
    weekly = write(tmp_path / "weekly.csv", "dora@example.org,Dora W,,\n")
    import_subscribers(store, "weekly", weekly, DESKS, now=NOW)
    daily = tmp_path / "daily.csv"
    imported(store, daily, "anna@example.org,Anna,,\n")
    report = imported(store, daily, "anna@example.org,Anna K,,\ndora@example.org,Dora,,\n", now=LATER)
    assert counts(report) == (1, 1, 0, 0, 0, 0)
    assert names(store, "daily") == {"anna@example.org": ("Anna K", None), "dora@example.org": ("Dora", None)}
    anna = store.readers.get("daily", "anna@example.org")
    assert anna is not None and (anna.created_at, anna.updated_at) == (NOW, LATER)


def test_a_file_whose_list_changed_its_desks_is_read_again(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,Anna,Culture,\n")
    report = import_subscribers(store, "daily", path, (*DESKS, "Film"), now=LATER)
    assert not report.skipped and report.unchanged == 1


def test_a_pending_sign_up_the_file_also_lists_is_left_to_confirm(store: Store, tmp_path: Path) -> None:
    store.readers.sign_up("daily", "anna@example.org", name="", desks=None, url="u", ip=None, now=NOW)
    imported(store, tmp_path / "seed.csv", "bob@example.org,,,\n")  # the list has readers
    report = imported(store, tmp_path / "d.csv", "anna@example.org,,,\nbob@example.org,,,\n", now=LATER)
    assert (report.unchanged, report.kept, report.changed) == (2, 0, 0)
    anna = store.readers.get("daily", "anna@example.org")
    assert anna is not None and anna.status is ReaderStatus.PENDING


def test_rows_the_editors_changed_to_what_readers_who_left_had_chosen(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "c@example.org,C,,\nd@example.org,D,,\n")
    for who in ("c", "d"):
        store.readers.set_preferences("daily", f"{who}@example.org", name="Mine", desks=None, now=NOW)
        store.readers.leave("daily", f"{who}@example.org", reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    report = imported(store, path, "c@example.org,Mine,,\nd@example.org,Mine,,\n", now=LATER)
    assert (report.kept, report.changed, report.unchanged) == (2, 0, 0)


def test_a_reader_who_left_the_file_and_came_back_by_signing_up_stays(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,,,\ncarl@example.org,,,\n")
    store.readers.leave("daily", "carl@example.org", reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    imported(store, path, "anna@example.org,,,\n", now=NOW)  # Carl's row is gone: he is no longer the file's
    store.readers.sign_up("daily", "carl@example.org", name="", desks=None, url="u", ip=None, now=LATER)
    store.readers.confirm("daily", "carl@example.org", url="u", ip=None, now=LATER)
    report = import_subscribers(store, "daily", path, DESKS, now=LATER, force=True)
    assert report.removed == 0
    carl = store.readers.get("daily", "carl@example.org")
    assert carl is not None and carl.status is ReaderStatus.ACTIVE


def test_a_first_import_tells_its_new_readers_before_they_go_in(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.csv",
        "anna@example.org,Anna,Culture;Europe,\nbob@example.org,,,\nnope,,,\ncarl@example.org,,,pending\n"
        "Anna@example.org,Again,,\ndave@example.org,Dave,,unsubscribed\n",
    )
    told: list[tuple[set[tuple[Any, ...]], int]] = []

    def on_staged(conn: Connection, readers: ReaderRows) -> None:
        rows = readers.rows.c
        with conn.begin():
            found = conn.execute(select(rows.email, rows.name, rows.desks, rows.status).where(readers.theirs))
            staged = {tuple(row) for row in found}
        told.append((staged, len(list(store.readers.of_list("daily")))))

    import_subscribers(store, "daily", path, DESKS, now=NOW, on_staged=on_staged)
    table = schema.subscribers
    with store.engine.connect() as conn:
        stored = conn.execute(select(table.c.email, table.c.name, table.c.desks, table.c.status))
        readers = {tuple(row) for row in stored}
    # The readers as they then went in (no duplicate, no unconfirmed sign-up), none in yet.
    assert told == [(readers, 0)]
    assert {row[0] for row in readers} == {"anna@example.org", "bob@example.org", "dave@example.org"}
    # A later import sets its rows against the readers: nothing to tell.
    import_subscribers(store, "daily", path, DESKS, now=LATER, force=True, on_staged=on_staged)
    assert len(told) == 1
