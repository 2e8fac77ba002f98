"""The state database fails under a command: a PostgreSQL server out of reach or gone in the middle,
a SQLite file locked too long by another writer, or on a full disk. Each is one StateError (one
`error:` line from the CLI, exit 1) naming the database, what went wrong and what to do, rather
than an unexpected error with its SQL; what was committed before it stays."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from digest.errors import StateError
from digest.state import Store
from digest.state import store as store_module
from tests.conftest import NOW, MakeProject
from tests.test_faults import Mount, run_with_postgres, small_disk

pytest_plugins = ["tests.pgserver"]
__all__ = ["small_disk"]  # the fixture


def test_a_postgresql_server_out_of_reach_is_one_clear_error(make_project: MakeProject) -> None:
    with socket.socket() as unused:  # a port nothing listens on once it is closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    nowhere = f"postgresql://digest@127.0.0.1:{port}/digest"
    project = make_project(replace={'url = "sqlite:///state/digest.sqlite3"': f'url = "{nowhere}"'})
    result = run_with_postgres(project, "send", "--list", "daily")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert result.stderr.startswith(f"error: {nowhere}: cannot reach the state database: connection failed: ")
    assert "check that the server is running and that `[state] url` is right" in result.stderr
    assert "damaged" not in result.stderr  # not mistaken for a broken database


def test_a_connection_the_server_drops_is_a_clear_error_and_the_next_one_works(postgres_url: str) -> None:
    with Store(postgres_url).migrate() as store:
        store.readers.add("daily", "anna@example.org", name="Anna", desks=None, now=NOW)
        with store.engine.connect() as conn:
            backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            # From another session, as a server restart or an administrator would.
            with Store(postgres_url).engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            with pytest.raises(StateError) as lost:
                conn.execute(text("SELECT 1"))
        assert lost.value.message.startswith("lost the connection to the state database: ")
        assert lost.value.path == store.label
        assert "run the command again" in (lost.value.hint or "")
        assert store.readers.get("daily", "anna@example.org") is not None  # committed before: kept


def test_a_sqlite_database_locked_too_long_says_another_writer_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BUSY_SECONDS", 1)
    path = tmp_path / "state.sqlite3"
    with Store(f"sqlite:///{path}").migrate() as store:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StateError) as locked:
                store.readers.add("daily", "anna@example.org", name="Anna", desks=None, now=NOW)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert locked.value.message == "the state database stayed locked by another process for 1 s"
        assert (locked.value.path, locked.value.hint) == (
            str(path),
            f"another digest command (a send, an import) was writing to it; {store_module._AGAIN}",
        )
        assert store.readers.add("daily", "anna@example.org", name="Anna", desks=None, now=NOW) is not None


def test_a_sqlite_database_on_a_full_disk_keeps_what_it_had(tmp_path: Path, small_disk: Mount) -> None:
    folder = tmp_path / "state"
    small_disk(folder, 1 << 20)
    path = folder / "state.sqlite3"
    with Store(f"sqlite:///{path}").migrate() as store:
        store.readers.add("daily", "anna@example.org", name="Anna", desks=None, now=NOW)
        with pytest.raises(StateError) as full:
            for n in range(100_000):  # far more than a mebibyte holds
                store.readers.add("daily", f"reader{n}@example.org", name="R" * 200, desks=None, now=NOW)
        assert full.value.message == "cannot write the state database: database or disk is full"
        assert (full.value.hint or "").startswith("free space on its disk, or check the disk; ")
        assert store.readers.get("daily", "anna@example.org") is not None
