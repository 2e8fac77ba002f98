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
    assert owner_id() == owner  # the same process, the same id: its claims stay its own


def test_a_process_that_has_exited_is_dead() -> None:
    child = subprocess.run(
        [sys.executable, "-c", "from digest.state.owner import owner_id; print(owner_id())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert owner_is_dead(child.stdout.strip())


def test_a_later_process_with_the_same_pid_does_not_keep_the_dead_owners_claim() -> None:
    host, pid, tag = owner_id().split(":")
    assert tag.startswith("t"), "Linux shows when a process started"
    # The same pid, alive, but started at another moment: the owner that claimed is gone.
    assert owner_is_dead(f"{host}:{pid}:t{int(tag[1:]) - 1}")


def test_owners_elsewhere_or_unreadable_are_left_to_the_timeout() -> None:
    assert not owner_is_dead(f"another-host:{os.getpid() + 1}:t1")
    assert not owner_is_dead(f"{socket.gethostname()[:32]}:not-a-pid:t1")
    assert not owner_is_dead(
        f"{socket.gethostname()[:32]}:{os.getpid()}:r0123abcd"
    )  # no start time to compare
    assert owner_is_dead(None) and owner_is_dead("")
