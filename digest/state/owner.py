"""Who holds a claim or a lock: a process on a host, told apart from a later one with the same pid."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

# The ledger keeps an owner in 64 characters: the host name is cut to fit (32 + at most 31).
_HOST_CHARS = 32


def owner_id() -> str:
    """host:pid:t<start>:<random>. The start time (where the system shows it) tells apart a
    later process that got the same pid; the random part, two senders in one process (each
    releases only its own claims)."""
    return f"{_host()}:{os.getpid()}:t{_started(os.getpid()) or ''}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` is a process on this machine that no longer exists.

    An owner on another machine is never known to be dead: only a timeout can tell.
    """
    if not owner:
        return True
    host, pid_text, tag, *_ = [*owner.split(":"), "", ""]
    if host != _host() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # The pid is in use: by the owner, or by a process that started after the owner died?
    if tag[:1] == "t" and tag[1:].isdigit():
        started = _started(int(pid_text))
        return started is not None and tag != f"t{started}"
    return False


def _host() -> str:
    return socket.gethostname()[:_HOST_CHARS]


def _started(pid: int) -> str | None:
    """When the process started, in clock ticks since boot (Linux), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count the fields after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 and fields[19].isdigit() else None
