"""Group commit: each outcome durable in the ledger before its connection sends again, cheaply.

An SMTP transport reports every accepted message on its own (the Transport contract's
``record``) and waits; recording each with a commit of its own would make every connection
wait its turn at the database. Instead the first thread to arrive writes everything waiting
in one transaction while the others queue behind it; when it is done, the next one writes
all that arrived meanwhile. So with n connections a commit carries up to n outcomes, and no
thread waits longer than one commit before its own.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from digest.send.transports.base import Outcome, Record
from digest.state.ledger import FAILED, REFUSED, SENT, Claimed, Ledger, Result


class Recorder:
    """Records one sender's outcomes in the ledger, from any thread, a commit at a time.

    A context manager: it keeps one connection open for its writes (taking one from the pool
    and giving it back for every message cost as much as the write), and closes it at the end.
    """

    def __init__(self, ledger: Ledger, owner: str, clock: Callable[[], dt.datetime]) -> None:
        self._ledger = ledger
        self._conn: Connection | None = None
        self._owner = owner
        self._clock = clock
        self._turn = threading.Condition()
        self._waiting: list[Result] = []
        self._queued = 0  # results ever queued
        self._committed = 0  # the first this many of them are in the ledger
        self._writing = False
        self._failed: BaseException | None = None
        self.recorded: set[int] = set()
        """The row ids recorded so far."""

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def of(self, rows: Sequence[Claimed]) -> Record:
        """The ``record`` of a transport sending to ``rows``, in their order."""

        def record(reported: Sequence[tuple[int, Outcome]]) -> None:
            self.record([result_of(rows[position], outcome) for position, outcome in reported])

        return record

    def record(self, results: Sequence[Result]) -> None:
        """Return once ``results`` are committed; raises what the write raised if it failed."""
        with self._turn:
            self._waiting.extend(results)
            self._queued += len(results)
            mine = self._queued
            while self._committed < mine:
                if self._failed is not None:
                    raise self._failed
                if self._writing:
                    self._turn.wait()
                else:
                    self._write()

    def _write(self) -> None:
        """Write everything waiting; called holding the lock, released while writing."""
        batch, self._waiting = self._waiting, []
        upto, self._writing = self._queued, True
        self._turn.release()
        try:
            self._conn = self._conn or self._ledger.engine.connect()
            self._ledger.finish(self._owner, batch, now=self._clock(), conn=self._conn)
        except BaseException as exc:
            self._turn.acquire()
            self._failed, self._writing = exc, False
            self._turn.notify_all()
            raise
        self._turn.acquire()
        self.recorded.update(row_id for row_id, *_ in batch)
        self._committed, self._writing = upto, False
        self._turn.notify_all()


def result_of(row: Claimed, outcome: Outcome) -> Result:
    """The ledger's record of what the transport said about one claimed row."""
    if outcome.accepted:
        return (row.id, SENT, outcome.provider_id, None)
    return (row.id, FAILED, None, f"{REFUSED}{outcome.error}" if outcome.permanent else outcome.error)
