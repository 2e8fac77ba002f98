"""Who holds a claim or a lock: a process on a host, told apart from a later one with the same pid."""

from __future__ import annotations

import os
import socket
import uuid


def owner_id() -> str:
    """This host and process, and a random part so a reused pid differs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` is a process on this machine that no longer exists.

    An owner on another machine is never known to be dead: only a timeout can tell.
    """
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
