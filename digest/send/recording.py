"""Group commit: each outcome durable in the ledger before its connection sends again, cheaply.

An SMTP transport reports every accepted message on its own (the Transport contract's
``record``) and waits; recording each with a commit of its own would make every connection
wait its turn at the database. Instead the first thread to arrive writes everything waiting
in one transaction while the others queue behind it; when it is done, the next one writes
all that arrived meanwhile. So with n connections a commit carries up to n outcomes, and no
thread waits longer than one commit before its own.

Deferred (on a database server): ``record`` hands the outcomes to a writer thread and returns,
and the transport calls ``ready`` before anything more goes out, which waits for that write.
A SendGrid request's thousand outcomes are then written while the next request is built (on
PostgreSQL about 16 µs a recipient of the server's time the sender used to sit through), and
the bound is the same: nothing goes out while an earlier outcome is not yet committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Connection

from digest.send.transports.base import Outcome
from digest.state.ledger import Ledger
from digest.state.ledger_types import FAILED, REFUSED, SENT, Claimed, Result


class Recorder:
    """Records one sender's outcomes in the ledger, from any thread, a commit at a time.

    A context manager: it keeps one connection open for its writes (taking one from the pool
    and giving it back for every message cost as much as the write), and closes it at the end.
    """

    def __init__(
        self, ledger: Ledger, owner: str, clock: Callable[[], dt.datetime], *, deferred: bool = False
    ) -> None:
        """``deferred``: ``record`` returns at once and a thread writes, until ``ready``."""
        self._ledger = ledger
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="digest-record") if deferred else None
        self._conn: Connection | None = None
        self._owner = owner
        self._clock = clock
        self._turn = threading.Condition()
        self._waiting: list[Result] = []
        self._done: list[int] = []  # the first row ids of claims all recorded
        self._queued = 0  # results (and claims done) ever queued
        self._committed = 0  # the first this many of them are in the ledger
        self._writing = False
        self._failed: BaseException | None = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Wait for a write in progress (without raising what it raised), then let go."""
        if self._writer is not None:
            self._writer.shutdown()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def of(self, rows: Sequence[Claimed]) -> RowRecord:
        """The ``record`` of a transport sending to ``rows``, in their order."""
        return RowRecord(self, rows)

    def record(self, results: Sequence[Result], *, done: Sequence[Claimed] = ()) -> None:
        """Return once ``results`` are committed; raises what the write raised if it failed.
        ``done``: a claimed batch whose every outcome is recorded with these (``Ledger.finish``).

        Deferred: return at once, with the write begun in a thread; ``ready`` waits for it.
        """
        if not results and not done:
            return
        with self._turn:
            self._waiting.extend(results)
            if done:
                self._done.append(done[0].id)  # a claim is named by its first row
            self._queued += len(results) + bool(done)
            if self._writer is None:
                self._settle(self._queued)
            elif self._failed is None:
                self._writer.submit(self._flush)
            else:
                raise self._failed

    def ready(self) -> None:
        """Return once everything handed to ``record`` is committed (the Transport contract's
        ``ready``: nothing more goes out before); raises what a write raised."""
        with self._turn:
            self._settle(self._queued)

    def _settle(self, upto: int) -> None:
        """Wait (or write) until the first ``upto`` results are committed; holding the lock."""
        while self._committed < upto:
            if self._failed is not None:
                raise self._failed
            if self._writing:
                self._turn.wait()
            else:
                self._write()

    def _flush(self) -> None:
        """The deferred writer: everything queued, unless a waiting thread is writing it."""
        with self._turn, contextlib.suppress(Exception):  # kept in _failed for ready() to raise
            self._settle(self._queued)

    def _write(self) -> None:
        """Write everything waiting; called holding the lock, released while writing."""
        batch, self._waiting = self._waiting, []
        done, self._done = self._done, []
        upto, self._writing = self._queued, True
        self._turn.release()
        try:
            self._conn = self._conn or self._ledger.engine.connect()
            self._ledger.finish(self._owner, batch, now=self._clock(), conn=self._conn, done=done)
        except BaseException as exc:
            self._turn.acquire()
            self._failed, self._writing = exc, False
            self._turn.notify_all()
            raise
        self._turn.acquire()
        self._committed, self._writing = upto, False
        self._turn.notify_all()


class RowRecord:
    """A transport's ``record`` for one batch of claimed rows (the Transport contract)."""

    def __init__(self, recorder: Recorder, rows: Sequence[Claimed]) -> None:
        self._recorder, self._rows = recorder, rows
        self.recorded: set[int] = set()
        """The ids of the rows recorded (committed; when deferred, their write begun)."""

    def __call__(self, reported: Sequence[tuple[int, Outcome]]) -> None:
        results = [result_of(self._rows[position], outcome) for position, outcome in reported]
        self._recorder.record(results)
        self.recorded.update(row_id for row_id, *_ in results)


def result_of(row: Claimed, outcome: Outcome) -> Result:
    """The ledger's record of what the transport said about one claimed row."""
    if outcome.accepted:
        return (row.id, SENT, outcome.provider_id, None)
    return (row.id, FAILED, None, f"{REFUSED}{outcome.error}" if outcome.permanent else outcome.error)
