"""Group commit of outcomes (digest.send.recording), on SQLite and on a real PostgreSQL server.

What the SMTP path's one-duplicate-per-connection bound rests on: ``record`` returns only once
its outcomes are committed, threads that arrive while one writes are written together by the
next, and a failed write reaches every thread waiting on it instead of passing for success.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from digest.send.recording import Recorder, result_of
from digest.send.transports.base import Outcome
from digest.state import Store
from digest.state.ledger import Ledger
from digest.state.ledger_types import FAILED, PENDING, REFUSED, SENDING, SENT, Claimed, Result
from tests.conftest import NOW, MakeProject
from tests.ledger_rows import Entry, add_rows
from tests.sendgrid_sink import Reply, SendGridSink, errors
from tests.test_faults_transports import EDITION, READERS, Script, send_via_sendgrid, sendgrid_project
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


class FinishSpy:
    """The ledger's finish, each call's size noted and ``before`` run ahead of it."""

    def __init__(self, store: Store, fail: bool = False) -> None:
        self.finish = store.ledger.finish
        self.fail = fail
        self.sizes: list[int] = []

    def before(self) -> None:
        """What a test holds each write with (nothing here)."""

    def __call__(
        self,
        owner: str,
        results: Sequence[Result],
        *,
        now: object,
        conn: Connection,
        done: Sequence[int] = (),
    ) -> None:
        self.sizes.append(len(results))
        self.before()
        self.finish(owner, results, now=NOW, conn=conn, done=done)


class SlowFirstWrite(FinishSpy):
    """The first call held long enough for every other thread to queue (and failing, if asked)."""

    def before(self) -> None:
        if len(self.sizes) == 1:
            time.sleep(0.2)
            if self.fail:
                raise OSError("disk full")


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
    assert set(column(store, "status").values()) == {SENDING}


def test_of_maps_a_transports_positions_to_the_claimed_rows(store: Store) -> None:
    rows = claimed(store, 3)
    recorder = Recorder(store.ledger, OWNER, lambda: NOW)
    record = recorder.of(rows)
    record([(2, Outcome.ok(rows[2].email, "<two@id>")), (0, Outcome.failed(rows[0].email, "421 busy"))])
    assert record.recorded == {rows[0].id, rows[2].id}
    assert column(store, "status") == {rows[0].email: FAILED, rows[1].email: SENDING, rows[2].email: SENT}
    assert column(store, "error")[rows[0].email] == "421 busy"


def test_of_does_not_count_a_row_whose_write_failed(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = claimed(store, 2)
    monkeypatch.setattr(store.ledger, "finish", SlowFirstWrite(store, fail=True))
    record = Recorder(store.ledger, OWNER, lambda: NOW).of(rows)
    with pytest.raises(OSError, match="disk full"):
        record([(0, Outcome.ok(rows[0].email, "<zero@id>"))])
    assert record.recorded == set()


class HeldWrite(FinishSpy):
    """Each call held until ``go`` is set (and failing, if asked)."""

    def __init__(self, store: Store, fail: bool = False) -> None:
        super().__init__(store, fail)
        self.go = threading.Event()
        self.started = threading.Event()

    def before(self) -> None:
        self.started.set()
        assert self.go.wait(10)
        if self.fail:
            raise OSError("disk full")


def held_write(store: Store, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> HeldWrite:
    """The ledger's finish replaced by a HeldWrite: held until ``go``, or failing at once."""
    held = HeldWrite(store, fail)
    if fail:
        held.go.set()
    monkeypatch.setattr(store.ledger, "finish", held)
    return held


def in_thread(call: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def test_deferred_record_returns_before_the_commit_and_ready_waits_for_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = claimed(store, 3)
    held = held_write(store, monkeypatch)
    with Recorder(store.ledger, OWNER, lambda: NOW, deferred=True) as recorder:
        record = recorder.of(rows)
        record([(0, Outcome.ok(rows[0].email, "<zero@id>")), (2, Outcome.failed(rows[2].email, "451"))])
        # Back while the write is held: its rows count as recorded, and the write has begun.
        assert record.recorded == {rows[0].id, rows[2].id}
        assert held.started.wait(10)
        assert set(column(store, "status").values()) == {SENDING}
        waiting = in_thread(recorder.ready)
        waiting.join(0.2)
        assert waiting.is_alive()  # ready() waits for the write
        held.go.set()
        waiting.join(10)
        assert not waiting.is_alive()
        assert column(store, "status") == {rows[0].email: SENT, rows[1].email: SENDING, rows[2].email: FAILED}


def test_a_failed_deferred_write_is_raised_by_ready_and_by_every_later_record(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = claimed(store, 2)
    held_write(store, monkeypatch, fail=True)
    with Recorder(store.ledger, OWNER, lambda: NOW, deferred=True) as recorder:
        recorder.of(rows)([(0, Outcome.ok(rows[0].email, "<zero@id>"))])
        with pytest.raises(OSError, match="disk full"):
            recorder.ready()
        record = recorder.of(rows)
        with pytest.raises(OSError, match="disk full"):
            record([(1, Outcome.ok(rows[1].email, "<one@id>"))])
        assert record.recorded == set()
    assert set(column(store, "status").values()) == {SENDING}


def test_closing_waits_for_a_deferred_write_and_keeps_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = claimed(store, 2)
    held = held_write(store, monkeypatch)
    recorder = Recorder(store.ledger, OWNER, lambda: NOW, deferred=True)
    recorder.of(rows)([(1, Outcome.ok(rows[1].email, "<one@id>"))])
    closing = in_thread(recorder.close)
    closing.join(0.2)
    assert closing.is_alive()  # a sender that stops must not give back rows being recorded
    held.go.set()
    closing.join(10)
    assert not closing.is_alive()
    assert column(store, "status") == {rows[0].email: SENDING, rows[1].email: SENT}


def test_closing_after_a_failed_deferred_write_raises_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = claimed(store, 1)
    held = held_write(store, monkeypatch, fail=True)
    recorder = Recorder(store.ledger, OWNER, lambda: NOW, deferred=True)
    recorder.of(rows)([(0, Outcome.ok(rows[0].email, "<zero@id>"))])
    recorder.close()  # the error to tell is the one that stopped the send
    assert held.started.is_set()
    assert column(store, "status") == {rows[0].email: SENDING}


def test_nothing_to_record_writes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[object] = []
    monkeypatch.setattr(store.ledger, "finish", lambda *args, **kwargs: writes.append(args))
    for deferred in (False, True):
        with Recorder(store.ledger, OWNER, lambda: NOW, deferred=deferred) as recorder:
            recorder.record([])
            recorder.ready()
    assert writes == []


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


def test_a_send_on_postgresql_whose_deferred_write_fails_sends_nothing_more(
    make_project: MakeProject, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole send on a database server, where outcomes are written while the next batch is
    addressed: the first request's write fails, so the second request never goes, and the
    first batch is given back (sent again by the next run: the one window no sender closes)."""
    finish = Ledger.finish

    def failing_first(self: Ledger, *args: Any, **kwargs: Any) -> None:
        if not failing_first.calls:  # type: ignore[attr-defined]
            failing_first.calls = 1  # type: ignore[attr-defined]
            raise OperationalError("UPDATE send_ledger", {}, OSError("could not write the ledger"))
        finish(self, *args, **kwargs)

    failing_first.calls = 0  # type: ignore[attr-defined]
    script = Script()
    with SendGridSink(default=script) as sink:
        project = sendgrid_project(make_project, sink, READERS)
        text = project.read_text().replace(
            'url = "sqlite:///state/digest.sqlite3"', f'url = "{postgres_url}"'
        )
        project.write_text(text)
        with monkeypatch.context() as patch:
            patch.setattr(Ledger, "finish", failing_first)
            stopped = send_via_sendgrid(project)
        assert stopped.exit_code != 0 and "could not write the ledger" in stopped.output
        assert script.accepted() == Counter(READERS[:2])
        with Store(postgres_url).migrate() as store:
            assert [store.ledger.row(EDITION, address).status for address in READERS] == [PENDING] * 8  # type: ignore[union-attr]
        resumed = send_via_sendgrid(project)
    assert resumed.exit_code == 0, resumed.stderr
    assert script.accepted() == Counter(READERS) + Counter(READERS[:2])


def test_a_send_on_postgresql_stopped_by_an_error_leaves_nothing_claimed(
    make_project: MakeProject, postgres_url: str
) -> None:
    """The whole send on a database server, where the first batch's outcomes are written while
    the second is addressed: SendGrid takes the first request and refuses the key on the second."""
    script = Script(Reply(202), Reply(401, errors("The provided authorization grant is invalid")))
    with SendGridSink(default=script) as sink:
        project = sendgrid_project(make_project, sink, READERS)
        text = project.read_text().replace(
            'url = "sqlite:///state/digest.sqlite3"', f'url = "{postgres_url}"'
        )
        project.write_text(text)

        stopped = send_via_sendgrid(project)
        assert stopped.exit_code == 1 and f"{EDITION}: stopped by the error below: sent 2" in stopped.stderr
        with Store(postgres_url).migrate() as store:
            rows = [store.ledger.row(EDITION, address) for address in READERS]
            # The first batch recorded with its message id; nothing else held, nor tried.
            assert [row.status for row in rows if row] == [SENT] * 2 + [PENDING] * 6
            assert store.ledger.counts(EDITION) == {SENT: 2, PENDING: 6}
            again = store.ledger.claim(EDITION, OWNER, 8, now=NOW, claim_timeout=TIMEOUT)
            # Nothing was recorded of the refused batch: no attempt counted.
            assert [(row.email, row.attempts) for row in again] == [(email, 1) for email in READERS[2:]]
            store.ledger.release(EDITION, OWNER)

        resumed = send_via_sendgrid(project)
    assert resumed.exit_code == 0, resumed.stderr
    assert script.accepted() == Counter(READERS)
