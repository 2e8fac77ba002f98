"""Claim and lock owners: a dead sender's claim is taken back at once, a live one's never."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from digest.state.owner import owner_id, owner_is_dead


def test_this_process_is_alive_and_its_id_fits_the_ledger() -> None:
    owner = owner_id()
    assert owner.startswith(f"{socket.gethostname()[:32]}:{os.getpid()}:")
    assert len(owner) <= 64  # send_ledger.batch_id
    assert not owner_is_dead(owner)
    # Two senders in one process each release only their own claims.
    assert owner_id() != owner and owner_id().rpartition(":")[0] == owner.rpartition(":")[0]


def test_a_process_that_has_exited_is_dead() -> None:
    child = subprocess.run(
        [sys.executable, "-c", "from digest.state.owner import owner_id; print(owner_id())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert owner_is_dead(child.stdout.strip())


def test_a_later_process_with_the_same_pid_does_not_keep_the_dead_owners_claim() -> None:
    host, pid, tag, random = owner_id().split(":")
    assert tag[:1] == "t" and tag[1:].isdigit(), "Linux shows when a process started"
    # The same pid, alive, but started at another moment: the owner that claimed is gone.
    assert owner_is_dead(f"{host}:{pid}:t{int(tag[1:]) - 1}:{random}")
    assert not owner_is_dead(f"{host}:{pid}:{tag}:{random}")


def test_owners_elsewhere_or_unreadable_are_left_to_the_timeout() -> None:
    here = socket.gethostname()[:32]
    assert not owner_is_dead(f"another-host:{os.getpid() + 1}:t1:0123abcd")
    assert not owner_is_dead(f"{here}:not-a-pid:t1:0123abcd")
    # No start time to compare (a system without /proc, or an id from before they were kept).
    assert not owner_is_dead(f"{here}:{os.getpid()}:t:0123abcd")
    assert not owner_is_dead(f"{here}:{os.getpid()}:0123abcd")
    assert owner_is_dead(None) and owner_is_dead("")
