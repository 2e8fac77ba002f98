"""The garbage collector's pace in bulk work: a subscriber file's rows read and stored, a
send's batches sent.

A million rows are a few million short-lived tuples, none of them ever in a cycle, and many
alive at once (a batch read ahead, a chunk being stored). At the collector's default pace, a
pass for every 700 new containers, its passes walk those again and again: a tenth of an
import's time. While bulk work runs (``bulk``), a pass comes every ``BULK_THRESHOLD`` new
containers instead; cycles are still collected, a little later.

While a send's batches go out (``steady``), the objects alive when they began (modules,
templates, the edition, the store's tables: about 120,000) are frozen out of the collector's
sight: each full pass walked them all (65-70 ms on the bench machine), and the batches'
objects, alive across the younger passes, brought a full pass every thirty batches or so: a
seventh of a first send's time at a million.

A send also fixes glibc's mmap threshold once it starts (``fix_mmap_threshold``).
"""

from __future__ import annotations

import ctypes
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

BULK_THRESHOLD = 10_000
# glibc's mallopt option, and its default value: blocks this large are mapped on their own.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 1024


class _Shared:
    """A setting of the whole process that jobs on any thread share: the first job to start
    makes it, the last to end undoes it."""

    def __init__(self, make: Callable[[], None], undo: Callable[[], None]) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.make, self.undo = make, undo

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.lock:
            if not self.running:
                self.make()
            self.running += 1
        try:
            yield
        finally:
            with self.lock:
                self.running -= 1
                if not self.running:
                    self.undo()


class _Pace:
    """The collector's thresholds, raised for bulk work and put back as they were found."""

    def __init__(self) -> None:
        self.saved: tuple[int, ...] = ()

    def space(self) -> None:
        self.saved = gc.get_threshold()
        gc.set_threshold(max(BULK_THRESHOLD, self.saved[0]), *self.saved[1:])

    def restore(self) -> None:
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
_bulk = _Shared(_pace.space, _pace.restore)
_steady = _Shared(gc.freeze, gc.unfreeze)


def bulk() -> AbstractContextManager[None]:
    """Space out the collector's passes for the time of the block."""
    return _bulk.held()


def steady() -> AbstractContextManager[None]:
    """Leave the objects alive now out of the collector's passes for the time of the block
    (``gc.freeze``); they are back in its sight, in its oldest generation, once the last such
    block ends. A cycle among them that becomes garbage meanwhile waits until then."""
    return _steady.held()
