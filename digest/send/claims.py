"""The next batch, claimed while this one goes out (on a database server).

On PostgreSQL a claim is about 20 µs a row of the server's work (a new row version and its
index entries) that the sender would sit waiting for. A thread claims the next batch while the
current one is addressed, posted and recorded, so the wait overlaps work the sender does
anyway: a 100,000-recipient send took 14% less time (docs/performance.md). On SQLite the
claim runs in this process and contends for the GIL and the one write lock with the batch
going out: the same send took 6% longer, so SQLite claims when a batch is wanted.

Claiming ahead changes nothing that is sent or recorded. The rows are "sending" under this
sender's owner until they are taken; a batch claimed ahead but never taken (the send stopped,
or failed) is given back untried; if the process dies, its rows are taken back like any claim
of a dead sender. No recipient is sent anything because of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from digest.state.ledger import Claimed, Ledger

# How long a claim may be held before another sender takes it back (a sender on another
# machine cannot be seen to die).
CLAIM_TIMEOUT = dt.timedelta(minutes=10)


class ClaimAhead:
    """One sender's claims on one edition, ``size`` rows at a time, each made one batch early."""

    def __init__(
        self,
        ledger: Ledger,
        edition_id: str,
        owner: str,
        size: int,
        clock: Callable[[], dt.datetime],
        *,
        ahead: bool | None = None,
    ) -> None:
        """``ahead``: claim one batch early (default: when the ledger is on a database server)."""
        self._ledger, self._edition_id, self._owner = ledger, edition_id, owner
        self._size, self._clock = size, clock
        self.ahead = ledger.engine.dialect.name != "sqlite" if ahead is None else ahead
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="digest-claim")
        self._next: Future[list[Claimed]] | None = None

    def __enter__(self) -> ClaimAhead:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def take(self) -> list[Claimed]:
        """The next batch (empty when none is left), with the one after it being claimed."""
        if self._next is not None:
            # Kept until its result is in: interrupted while waiting, close() still gives it back.
            claimed = self._next.result()
            self._next = None
        else:
            claimed = self._claim()
        if claimed and self.ahead:
            self._next = self._executor.submit(self._claim)
        return claimed

    def close(self) -> None:
        """Give back the batch claimed ahead, if any, untried; then stop claiming."""
        pending, self._next = self._next, None
        try:
            if pending is not None and pending.exception() is None and (rows := pending.result()):
                # A claim that failed took nothing (its transaction rolled back), and the error
                # to tell is the one that stopped the send.
                self._ledger.unclaim(self._owner, [row.id for row in rows], now=self._clock())
        finally:
            self._executor.shutdown()

    def _claim(self) -> list[Claimed]:
        return self._ledger.claim(
            self._edition_id, self._owner, self._size, now=self._clock(), claim_timeout=CLAIM_TIMEOUT
        )
