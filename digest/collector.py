"""The garbage collector's pace while a subscriber file's rows are read and stored.

A million rows are a few million short-lived tuples, none of them ever in a cycle, and many
alive at once (a batch read ahead, a chunk being stored). At the collector's default pace, a
pass for every 700 new containers, its passes walk those again and again: a tenth of an
import's time. While bulk work runs (``bulk``), a pass comes every ``BULK_THRESHOLD`` new
containers instead; cycles are still collected, a little later.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 10_000


class _Pace:
    """The collector's thresholds are the process's: the first bulk job to start raises them,
    the last to end puts back what it found, whichever threads they run on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.saved: tuple[int, ...] = ()

    def enter(self) -> None:
        with self.lock:
            if not self.running:
                self.saved = gc.get_threshold()
                gc.set_threshold(max(BULK_THRESHOLD, self.saved[0]), *self.saved[1:])
            self.running += 1

    def leave(self) -> None:
        with self.lock:
            self.running -= 1
            if not self.running:
                gc.set_threshold(*self.saved)


_pace = _Pace()


@contextmanager
def bulk() -> Iterator[None]:
    """Space out the collector's passes for the time of the block."""
    _pace.enter()
    try:
        yield
    finally:
        _pace.leave()
