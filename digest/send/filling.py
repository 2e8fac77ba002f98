"""The edition's ledger filled beside the send: on a database server, the first variants go
out while the rest go in.

The fill is the server's work (``digest.state.recipients.fill_ledger``), about 8 µs a reader
there: at a million readers, seconds that the sender would otherwise wait before its first
batch. On a server it runs in a thread of its own (with the list's import before it:
``digest.send.recipients``), beside the renders and then the sends, a part at a time. A
sender whose claim comes back empty asks ``more`` whether another part came in since, so it
takes the end of what is in the ledger for the end of the send only once the fill is over.
On SQLite it runs before the send: SQLite has one writer, which the renders' saves and the
claims would wait for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol


class Fill(Protocol):
    """A fill of the ledger, telling ``on_part`` of each part that is in (None: all at once)."""

    def __call__(self, *, on_part: Callable[[], None] | None) -> None: ...


class Filling:
    """A fill of the ledger: in the background (``start``), or run to its end (``run``)."""

    def __init__(self, fill: Fill) -> None:
        self._fill = fill
        self._changed = threading.Condition()
        self._parts = 0
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[None] = Future()

    def start(self) -> None:
        """Fill in a thread of its own, a part at a time."""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="digest-fill")
        self._future = self._pool.submit(self._fill, on_part=self._part_in)
        self._future.add_done_callback(self._over)

    def run(self) -> None:
        """Fill now, all at once."""
        try:
            self._fill(on_part=None)
        except BaseException as error:
            self._future.set_exception(error)
            raise
        self._future.set_result(None)

    @property
    def started(self) -> bool:
        """Whether the fill runs in its thread (``start``)."""
        return self._pool is not None

    @property
    def parts(self) -> int:
        """How many parts are in so far."""
        with self._changed:
            return self._parts

    @property
    def over(self) -> bool:
        """Whether the fill has ended (done or failed)."""
        return self._future.done()

    def more(self, seen: int) -> bool:
        """Wait for a part past the first ``seen`` (True), or for the end of the fill (False;
        its error is raised)."""
        with self._changed:
            self._changed.wait_for(lambda: self._parts > seen or self._future.done())
            if self._parts > seen:
                return True
        self._future.result()
        return False

    def wait(self) -> None:
        """Wait for the end of the fill; its error is raised."""
        self._future.result()

    def close(self) -> None:
        """Wait for the end of the fill, if it started, without raising."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _part_in(self) -> None:
        with self._changed:
            self._parts += 1
            self._changed.notify_all()

    def _over(self, _future: Future[None]) -> None:
        with self._changed:
            self._changed.notify_all()
