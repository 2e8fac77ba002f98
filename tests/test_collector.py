"""The collector's pace during bulk work (``digest.collector``): raised while any bulk job
runs, on any thread, and put back as found when the last one ends; and the objects alive when
a send's batches begin, frozen out of its passes until the last send's batches end."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from digest.cli.send import _ProgressLine
from digest.collector import BULK_THRESHOLD, bulk, steady
from digest.state import Store
from digest.state.imports import import_subscribers
from tests.conftest import NOW, MakeProject
from tests.test_send import SUBSCRIBERS, run
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


def frozen() -> bool:
    return gc.get_freeze_count() > 0


# Each kind of block, and what it changes while one runs.
SHARED = [
    pytest.param(bulk, lambda: gc.get_threshold()[0] == BULK_THRESHOLD, id="bulk"),
    pytest.param(steady, frozen, id="steady"),
]


@pytest.mark.parametrize(("block", "on"), SHARED)
def test_the_last_of_overlapping_jobs_puts_the_setting_back(
    block: Callable[[], AbstractContextManager[None]], on: Callable[[], bool]
) -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def second() -> None:
        first_in.wait(5)
        with block():
            second_in.set()
            first_out.wait(5)
            seen.append(on())  # the first job has ended: still on

    thread = threading.Thread(target=second)
    thread.start()
    assert not on()
    with block():
        first_in.set()
        second_in.wait(5)
    first_out.set()
    thread.join(5)
    assert seen == [True]
    assert not on()


def test_steady_leaves_what_lives_now_out_of_the_passes_until_it_ends() -> None:
    before = [["alive before"]]
    with steady():
        after = [["made within"]]
        tracked = gc.get_objects()
        assert not any(item is before for item in tracked)
        assert any(item is after for item in tracked)
    assert any(item is before for item in gc.get_objects())
    assert not frozen()


def test_a_block_that_raises_puts_the_setting_back() -> None:
    with pytest.raises(RuntimeError), steady():
        raise RuntimeError("stopped")
    assert not frozen()


def test_a_sends_batches_go_out_steady(make_project: MakeProject, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project()
    (project.parent / "subscribers" / "daily.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    during: list[bool] = []
    monkeypatch.setattr(_ProgressLine, "__call__", lambda _self, _done, _total: during.append(frozen()))
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    assert during and all(during)
    assert not frozen()


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
