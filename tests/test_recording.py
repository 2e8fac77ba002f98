"""Group commit of outcomes (digest.send.recording), on SQLite and on a real PostgreSQL server.

What the SMTP path's one-duplicate-per-connection bound rests on: ``record`` returns only once
its outcomes are committed, threads that arrive while one writes are written together by the
next, and a failed write reaches every thread waiting on it instead of passing for success.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from sqlalchemy import Connection

from digest.send.recording import Recorder, result_of
from digest.send.transports.base import Outcome
from digest.state import Store
from digest.state.ledger import FAILED, REFUSED, SENDING, SENT, Claimed, Result
from tests.conftest import NOW
from tests.ledger_rows import Entry, add_rows
from tests.test_ledger import TIMEOUT, column

pytest_plugins = ["tests.pgserver"]

OWNER = "elsewhere-a:1:t1:aaaaaaaa"
THREADS = 8


def claimed(store: Store, count: int) -> list[Claimed]:
    entries = [Entry(f"reader{n}@example.org", f"Reader {n}", "all") for n in range(count)]
    add_rows(store, "e1", entries, now=NOW)
    rows = store.ledger.claim("e1", OWNER, count, now=NOW, claim_timeout=TIMEOUT)
    assert len(rows) == count
    return rows


class SlowFirstWrite:
    """The ledger's finish, the first call held long enough for every other thread to queue."""

    def __init__(self, store: Store, fail: bool = False) -> None:
        self.finish = store.ledger.finish
        self.fail = fail
        self.sizes: list[int] = []

    def __call__(self, owner: str, results: Sequence[Result], *, now: object, conn: Connection) -> None:
        self.sizes.append(len(results))
        if len(self.sizes) == 1:
            time.sleep(0.2)
            if self.fail:
                raise OSError("disk full")
        self.finish(owner, results, now=NOW, conn=conn)


def run_threads(store: Store, recorder: Recorder, rows: list[Claimed], seen: dict[int, object]) -> None:
    """Each row recorded as sent from a thread of its own, all starting together; ``seen`` gets
    each row's status as another connection reads it the moment record returned, or the error."""
    start = threading.Barrier(len(rows))

    def one(row: Claimed) -> None:
        start.wait()
        try:
            recorder.record([(row.id, SENT, f"<{row.id}@id>", None)])
        except OSError as exc:
            seen[row.id] = exc
        else:
            seen[row.id] = column(store, "status")[row.email]

    threads = [threading.Thread(target=one, args=(row,)) for row in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)


def test_record_returns_once_committed_and_waiting_threads_share_one_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = claimed(store, THREADS)
    spy = SlowFirstWrite(store)
    monkeypatch.setattr(store.ledger, "finish", spy)
    recorder = Recorder(store.ledger, OWNER, lambda: NOW)
    seen: dict[int, object] = {}
    run_threads(store, recorder, rows, seen)
    # Every thread saw its own row committed when record returned.
    assert seen == {row.id: SENT for row in rows}
    # The first write took whoever was there; everyone who came while it ran went in the next.
    # (Two writes as a rule; a thread the machine starts late may make a third.)
    assert sum(spy.sizes) == THREADS and len(spy.sizes) < THREADS and max(spy.sizes) > 1, spy.sizes
    assert recorder.recorded == {row.id for row in rows}
    assert column(store, "provider_id") == {row.email: f"<{row.id}@id>" for row in rows}


def test_a_failed_write_is_raised_to_every_thread_waiting_on_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = claimed(store, THREADS)
    spy = SlowFirstWrite(store, fail=True)
    monkeypatch.setattr(store.ledger, "finish", spy)
    recorder = Recorder(store.ledger, OWNER, lambda: NOW)
    seen: dict[int, object] = {}
    run_threads(store, recorder, rows, seen)
    # Those written with the failed commit, and those queued behind it, all hear of it;
    # none is told its outcome is recorded.
    assert len(seen) == THREADS and all(isinstance(error, OSError) for error in seen.values()), seen
    assert len(spy.sizes) == 1
    assert recorder.recorded == set()
    assert set(column(store, "status").values()) == {SENDING}


def test_of_maps_a_transports_positions_to_the_claimed_rows(store: Store) -> None:
    rows = claimed(store, 3)
    recorder = Recorder(store.ledger, OWNER, lambda: NOW)
    record = recorder.of(rows)
    record([(2, Outcome.ok(rows[2].email, "<two@id>")), (0, Outcome.failed(rows[0].email, "421 busy"))])
    assert recorder.recorded == {rows[0].id, rows[2].id}
    assert column(store, "status") == {rows[0].email: FAILED, rows[1].email: SENDING, rows[2].email: SENT}
    assert column(store, "error")[rows[0].email] == "421 busy"


@pytest.mark.parametrize(
    ("outcome", "result"),
    [
        (Outcome.ok("a@example.org", "<id@x>"), (7, SENT, "<id@x>", None)),
        (Outcome.ok("a@example.org"), (7, SENT, None, None)),
        (Outcome.failed("a@example.org", "451 later"), (7, FAILED, None, "451 later")),
        (
            Outcome.failed("a@example.org", "550 no such user", permanent=True),
            (7, FAILED, None, f"{REFUSED}550 no such user"),
        ),
    ],
)
def test_result_of_says_what_the_ledger_records(outcome: Outcome, result: Result) -> None:
    row = Claimed(7, "a@example.org", "A", "all", 1)
    assert result_of(row, outcome) == result
