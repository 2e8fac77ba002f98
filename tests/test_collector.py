"""The collector's pace during bulk work (``digest.collector``): raised while any bulk job
runs, on any thread, and put back as found when the last one ends."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.collector import BULK_THRESHOLD, bulk
from digest.state import Store
from digest.state.imports import import_subscribers
from tests.conftest import NOW
from tests.test_store_subscribers import DESKS


@pytest.fixture(autouse=True)
def default_pace() -> Iterator[tuple[int, int, int]]:
    found = gc.get_threshold()
    gc.set_threshold(700, 11, 12)
    yield gc.get_threshold()
    gc.set_threshold(*found)


def test_bulk_work_spaces_the_passes_and_puts_back_what_it_found(default_pace: tuple[int, int, int]) -> None:
    with bulk():
        assert gc.get_threshold() == (BULK_THRESHOLD, 11, 12)
    assert gc.get_threshold() == default_pace


def test_a_pace_already_slower_is_left_as_it_is() -> None:
    gc.set_threshold(50_000, 3, 4)
    with bulk():
        assert gc.get_threshold() == (50_000, 3, 4)
    assert gc.get_threshold() == (50_000, 3, 4)


def test_the_last_of_overlapping_jobs_puts_the_pace_back(default_pace: tuple[int, int, int]) -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def second() -> None:
        first_in.wait(5)
        with bulk():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.get_threshold())  # the first job has ended: still raised

    thread = threading.Thread(target=second)
    thread.start()
    with bulk():
        first_in.set()
        second_in.wait(5)
    first_out.set()
    thread.join(5)
    assert seen == [(BULK_THRESHOLD, 11, 12)]
    assert gc.get_threshold() == default_pace


def test_an_import_runs_at_the_bulk_pace(tmp_path: Path, default_pace: tuple[int, int, int]) -> None:
    path = tmp_path / "d.csv"
    path.write_text("email\nnot an address\n", encoding="utf-8")
    during: list[int] = []
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}").migrate() as store:
        import_subscribers(
            store, "daily", path, DESKS, now=NOW, on_problem=lambda _: during.append(gc.get_threshold()[0])
        )
    assert during == [BULK_THRESHOLD]
    assert gc.get_threshold() == default_pace


def test_an_import_that_fails_puts_the_pace_back(tmp_path: Path, default_pace: tuple[int, int, int]) -> None:
    path = tmp_path / "d.csv"

    def stop(_problem: object) -> None:
        raise RuntimeError("stopped")

    path.write_text("email\nbad\n", encoding="utf-8")
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}").migrate() as store, pytest.raises(RuntimeError):
        import_subscribers(store, "daily", path, DESKS, now=NOW, on_problem=stop)
    assert gc.get_threshold() == default_pace
