"""A large subscriber file read in a second process (digest.readahead): the same rows and
problems as reading it here, the same errors, and no child left behind however it ends."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest import readahead
from digest.errors import SubscriberError
from digest.state import Store
from digest.state.imports import import_subscribers
from digest.subscribers import Problem, Subscriber, read_subscribers

DESKS = ("Ukraine", "North America", "Business", "Europe", "Culture")
NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
# Valid rows, a bad address, an unknown desk, a duplicate, a blank row, a quoted comma,
# a row too wide, an unsubscribed reader: each kind of entry the reader yields.
ROWS = [
    "anna.koval@example.org,Anna Koval,Ukraine;Business,",
    "not-an-address,Broken,,",
    "petro@example.org,Petro,Sport,",
    "ANNA.KOVAL@example.org,Anna again,,",
    "",
    'olena@приклад.укр,"Melnyk, Olena",Culture,active',
    "ivan@example.org,Ivan,,active,extra",
    "maria@example.org,Maria,North America,unsubscribed",
]


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every file read ahead in a child, whatever its size and the machine's cores; the
    children started, to check on them."""
    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def recording(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        child: subprocess.Popen[bytes] = popen(*args, **kwargs)  # type: ignore[call-overload]
        started.append(child)
        return child

    monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", 0)
    monkeypatch.setattr(readahead, "cores", lambda: 2)
    monkeypatch.setattr(readahead.subprocess, "Popen", recording)
    yield started
    assert all(child.poll() is not None for child in started), "a child outlived its reading"


def write(tmp_path: Path, rows: list[str], times: int = 1) -> Path:
    path = tmp_path / "list.csv"
    path.write_text("email,name,desks,status\n" + "\n".join(rows * times) + "\n", encoding="utf-8")
    return path


def many(count: int) -> list[str]:
    return [f"reader.{n}@example.org,Reader {n},{DESKS[n % 5]}," for n in range(count)]


@pytest.mark.parametrize("times", [1, 3000], ids=["one-batch", "several-batches"])
def test_the_child_reads_what_this_process_would(
    tmp_path: Path, children: list[subprocess.Popen[bytes]], times: int
) -> None:
    path = write(tmp_path, ROWS, times)
    ahead = list(readahead.read_ahead(path, DESKS))
    assert ahead == list(read_subscribers(path, DESKS))
    assert len(children) == 1 and children[0].returncode == 0
    assert {type(entry) for entry in ahead} == {Subscriber, Problem}
    assert len(ahead) == 7 * times  # the blank row yields nothing


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"email,name\nanna@example.org,\xff\n", ":2: the file is not UTF-8 (byte 0xff)"),
        # Past the first batches: the parent checks the file while the child reads it unchecked.
        (b"email\n" + b"anna@example.org\n" * 12_000 + b"\xff\n", ":12002: the file is not UTF-8"),
        (b"name,desks\nAnna,\n", "the header row has no `email` column"),
        (b"", "the header row is missing"),
    ],
    ids=["not-utf8", "not-utf8-deep", "no-email-column", "empty"],
)
def test_a_file_that_cannot_be_read_raises_the_same_error_before_any_row(
    tmp_path: Path, children: list[subprocess.Popen[bytes]], content: bytes, message: str
) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    with pytest.raises(SubscriberError) as here:
        list(read_subscribers(path, DESKS))
    with pytest.raises(SubscriberError) as ahead:
        next(readahead.read_ahead(path, DESKS))
    assert str(ahead.value) == str(here.value) and message in str(ahead.value)
    assert (ahead.value.path, ahead.value.line, ahead.value.hint) == (
        here.value.path,
        here.value.line,
        here.value.hint,
    )


def test_a_reader_that_stops_early_ends_the_child(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    rows = readahead.read_ahead(write(tmp_path, many(60_000)), DESKS)
    assert isinstance(next(rows), Subscriber)
    rows.close()
    assert children[0].returncode is not None  # the fixture also checks it is gone


def test_a_child_that_dies_is_an_error_not_a_short_list(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    rows = readahead.read_ahead(write(tmp_path, many(60_000)), DESKS)
    seen = [next(rows)]
    children[0].kill()
    with pytest.raises(SubscriberError, match=r"reading the file stopped: its process exited with code -9"):
        seen.extend(rows)
    assert len(seen) < 60_000


def test_ctrl_c_is_the_parents_to_act_on(tmp_path: Path, children: list[subprocess.Popen[bytes]]) -> None:
    # Ctrl-C reaches the whole process group; the child must not die of it mid-list while the
    # parent decides (here, to go on).
    rows = readahead.read_ahead(write(tmp_path, many(60_000)), DESKS)
    seen = [next(rows)]
    children[0].send_signal(signal.SIGINT)
    seen.extend(rows)
    assert len(seen) == 60_000 and children[0].returncode == 0


def test_small_files_and_single_cores_read_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, ROWS)
    monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", path.stat().st_size + 1)
    assert not readahead.worth_it(path)
    monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", path.stat().st_size)
    monkeypatch.setattr(readahead, "cores", lambda: 1)
    assert not readahead.worth_it(path)
    monkeypatch.setattr(readahead, "cores", lambda: 2)
    assert readahead.worth_it(path)
    assert not readahead.worth_it(tmp_path / "absent.csv")


def test_an_import_read_ahead_stores_what_one_read_here_does(
    tmp_path: Path, children: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, ROWS + many(12_000))
    stored = []
    for name in ("ahead", "here"):
        if name == "here":
            monkeypatch.setattr(readahead, "cores", lambda: 1)
        with Store(f"sqlite:///{tmp_path}/{name}.db").migrate() as store:
            report = import_subscribers(store, "daily", path, DESKS, now=NOW)
            readers = list(store.readers.of_list("daily"))
        stored.append(([str(problem) for problem in report.problems], report.new, report.duplicates, readers))
    assert stored[0] == stored[1]
    assert stored[0][1] == 12_003 and stored[0][2] == 1
    assert len(children) == 1


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipes are sized on Linux only")
def test_the_childs_pipe_holds_a_few_batches_where_the_system_allows(tmp_path: Path) -> None:
    read, write = os.pipe()
    with open(read, "rb") as pipe, open(write, "wb"):
        readahead._widen(pipe)
        assert fcntl.fcntl(read, fcntl.F_GETPIPE_SZ) == readahead.PIPE_BYTES
    with (tmp_path / "plain").open("wb") as plain:
        readahead._widen(plain)  # not a pipe: the system says no, and that is not an error


def test_the_child_starts_without_the_feed_machinery() -> None:
    # The child's start is time the importer waits (0.37 s when the subscriber reader pulled in
    # every feed module through digest.ingest's package, 0.13 s without).
    imports = "import sys, digest.readahead; print(*sorted(sys.modules), sep='\\n')"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", imports], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert "digest.subscribers" in loaded
    assert not loaded & {"digest.ingest.collect", "digest.config", "httpx", "feedparser", "pydantic"}
