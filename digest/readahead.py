"""A large subscriber file read in a second process while this one stores what it has read.

An import spends about as long reading the file (CSV, email-validator) as finding its
duplicates and writing its rows to the store, and the two need not wait for each other: on a
machine with two cores or more, a child process (``child_main``) reads the rows
(``read_fields``) and pickles them to this one in batches, so a million rows take the longer
half's time rather than both; this one checks that the file is UTF-8 while the child starts.
The rows, their order and their problems are exactly ``read_subscribers``'s; a file that
cannot be read raises the same SubscriberError, before the first row.

A process started here rather than multiprocessing's: a spawned worker runs the caller's main
script again, which breaks any script that calls the library without a ``__main__`` guard,
and a forked one copies the locks of the caller's threads (a scheduler's) in whatever state
they are. A small file, or one core, reads in this process: the child takes a tenth of a
second to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO, cast

import digest
from digest.collector import bulk
from digest.errors import SubscriberError
from digest.subscribers import (
    UNIQUE_BATCH,
    Fields,
    Problem,
    Subscriber,
    as_subscribers,
    check_utf8,
    read_fields,
    read_subscribers,
)

# Below this (about 70,000 rows) the child's start costs about what it saves (measured in
# docs/performance.md: even at 25,000 rows, 0.05 s sooner at 50,000, 0.2 s at 100,000).
READ_AHEAD_BYTES = 4 << 20
_DESK_SEPARATOR = "\n"  # desk names are one line each (digest.config.models)
# Batches read off the pipe and not yet stored, at most (each about 5,000 rows). Those further
# ahead wait in the pipe (``_widen``), pickled: a fifth of the memory of the rows they become
# (the import's peak RSS at a million: 92.3 MiB with four here, 87.3 with one, as fast).
QUEUED_BATCHES = 1
# What the pipe from the child may hold, where it can be sized (``_widen``): three batches or so.
PIPE_BYTES = 1 << 20
# Seconds a child that sent its last batch may take to exit before it is ended.
CHILD_EXIT = 10
_STOPPED = object()  # the child's output ended before its last word


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worth_it(path: Path) -> bool:
    """Whether reading ``path`` in a second process would save time here."""
    try:
        large = path.stat().st_size >= READ_AHEAD_BYTES
    except OSError:
        return False  # read_subscribers says what is wrong with it
    return large and cores() > 1


def read_ahead(path: Path, list_desks: tuple[str, ...]) -> Iterator[Subscriber | Problem]:
    """``read_subscribers(path, list_desks)``, read in a child process when ``worth_it``."""
    if not worth_it(path):
        yield from read_subscribers(path, list_desks)
        return
    # The child runs this very digest, wherever it was imported from.
    package_root = str(Path(digest.__file__).resolve().parent.parent)
    command = [sys.executable, "-c", _CHILD, package_root, str(path), _DESK_SEPARATOR.join(list_desks)]
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
        assert child.stdout is not None
        _widen(child.stdout)
        # A thread takes the batches off the pipe as they come: a pipe holds 64 KiB unless
        # widened, a batch about five times that, and a child blocked on a full pipe reads
        # nothing while this process writes. The queue is bounded, so memory stays flat however
        # far the child gets.
        batches: queue.Queue[object] = queue.Queue(maxsize=QUEUED_BATCHES)
        stop = threading.Event()
        reader = threading.Thread(
            target=_drain, args=(child.stdout, batches, stop), name="digest-read-ahead", daemon=True
        )
        reader.start()
        try:
            # Here, while the child starts (it reads the file unchecked): a third of its time
            # to the first row (0.23 s a million) was this pass.
            check_utf8(path)
            yield from _received(batches, child, errors, path)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=CHILD_EXIT)  # it has said its last word, and is closing
        finally:
            stop.set()  # the caller may have stopped early (an error, a full disk)
            if child.poll() is None:
                child.terminate()
            child.wait()
            reader.join()
            child.stdout.close()


def _widen(pipe: IO[bytes]) -> None:
    """Let the pipe hold a few batches where the system allows it (Linux, up to its
    ``pipe-max-size``): the thread that takes them off shares this process's interpreter with
    the importer, so it comes late at times, and the child waited there (a million rows: 0.6 s
    sooner with 1 MiB)."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is not None:
        with contextlib.suppress(OSError):  # above the system's limit: the default it is
            fcntl.fcntl(pipe.fileno(), setsize, PIPE_BYTES)


def _received(
    batches: queue.Queue[object], child: subprocess.Popen[bytes], errors: IO[bytes], path: Path
) -> Iterator[Subscriber | Problem]:
    while (batch := batches.get()) is not None:
        if batch is _STOPPED:
            child.wait()
            errors.seek(0)
            last = (errors.read().decode("utf-8", "replace").strip().splitlines() or [""])[-1]
            raise SubscriberError(
                f"reading the file stopped: its process exited with code {child.returncode}"
                + (f" ({last})" if last else ""),
                path=path,
                hint="run it again; `digest subscribers check` reads the file in one process",
            )
        if isinstance(batch, SubscriberError):
            raise batch
        # Plain tuples cross the pipe (``read_fields``): a named tuple pickles five times slower.
        yield from as_subscribers(cast("list[Fields | Problem]", batch))


def _drain(stream: IO[bytes], batches: queue.Queue[object], stop: threading.Event) -> None:
    """Each batch the child sends, then None; _STOPPED if it stopped without saying so. Ends
    when told to ``stop``, even with the queue full."""
    while not stop.is_set():
        try:
            batch = pickle.load(stream)
        except Exception:  # an end, or a pickle cut short: the child is gone
            batch = _STOPPED
        while not stop.is_set():
            try:
                batches.put(batch, timeout=0.1)
                break
            except queue.Full:
                continue
        if batch is None or batch is _STOPPED or isinstance(batch, SubscriberError):
            return


def _read(path: Path, list_desks: tuple[str, ...], out: IO[bytes]) -> None:
    """The child's work: every row of the file, in batches, then None (or the error that
    stopped it, with its path, line and hint)."""
    try:
        entries = read_fields(path, list_desks, checked=True)  # by the parent (``read_ahead``)
        while batch := list(islice(entries, UNIQUE_BATCH)):
            pickle.dump(batch, out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(None, out)
    except SubscriberError as error:
        pickle.dump(error, out)
    out.flush()


def child_main(argv: list[str]) -> None:
    """The child: ``argv`` is the file and its list's desks (one per line)."""
    # Ctrl-C reaches the whole process group: the parent decides, and ends the child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent that stopped reading closes the pipe: end quietly rather than with a traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    path, desks = argv
    with bulk():
        _read(Path(path), tuple(desks.split(_DESK_SEPARATOR)) if desks else (), sys.stdout.buffer)


_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); import digest.readahead as r; r.child_main(sys.argv[2:])"
)
