"""The garbage collector's pace while a subscriber file's rows are read and stored.

A million rows are a few million short-lived tuples, none of them ever in a cycle, and many
alive at once (a batch read ahead, a chunk being stored). At the collector's default pace, a
pass for every 700 new containers, its passes walk those again and again: a tenth of an
import's time. While bulk work runs (``bulk``), a pass comes every ``BULK_THRESHOLD`` new
containers instead; cycles are still collected, a little later.

A send also fixes glibc's mmap threshold once it starts (``fix_mmap_threshold``).
"""

from __future__ import annotations

import ctypes
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 10_000
# glibc's mallopt option, and its default value: blocks this large are mapped on their own.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 1024


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


def fix_mmap_threshold() -> None:
    """Keep large blocks (128 KiB or more) mapped on their own, so that each goes back to the
    system once freed: for the whole process, from the first call on.

    glibc raises its threshold each time such a block is freed (up to 32 MiB), and the blocks
    under it then come from the heap of the thread that asked, and stay there once freed. A
    send on a database server imports in one thread and sends in another, so what the import
    freed (batches of a few hundred KiB) stayed beside the sends' own: 2.5-3 MiB more at the
    peak of a send of 100,000 or a million. Elsewhere than glibc (no ``mallopt``), nothing is
    done.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


_pace = _Pace()


@contextmanager
def bulk() -> Iterator[None]:
    """Space out the collector's passes for the time of the block."""
    _pace.enter()
    try:
        yield
    finally:
        _pace.leave()
