"""Faults lose nothing: a send that cannot write stops with a clear error and resumes cleanly.

The outbox's disk is full or read-only (a real tmpfs, so the kernel says ENOSPC and EROFS), and
the state database is damaged or from a newer digest (SQLite and a real PostgreSQL): each is one
`error:` line naming what is wrong, and nothing is reset or half-recorded. Faults of the mail
providers are in test_faults_transports.py, of the feeds in test_faults_feeds.py.
"""

from __future__ import annotations

import email
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, make_url, text

from digest.cli import cli
from digest.state import Store
from digest.state.schema import SCHEMA_VERSION
from tests.conftest import NOW, MakeProject
from tests.test_send import SECRET, run

pytest_plugins = ["tests.pgserver"]

CSV = "email,name\n" + "".join(f"r{n}@example.org,R {n}\n" for n in range(30))
EDITION = "daily-2026-11-25"


def ledger(project: Path) -> dict[str, int]:
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        return dict(db.execute("SELECT status, count(*) FROM send_ledger GROUP BY status").fetchall())


def test_an_outbox_that_cannot_be_written_stops_the_send_and_the_next_run_completes(
    make_project: MakeProject,
) -> None:
    project = make_project()
    (project.parent / "subscribers" / "daily.csv").write_text(CSV)
    # A file where the edition's folder must go: every write fails, as on a full or read-only disk.
    blocked = project.parent / "outbox" / "daily-2026-11-25"
    blocked.parent.mkdir()
    blocked.write_text("in the way")
    failed = run(project, "send", "--list", "daily", secret=None)
    assert failed.exit_code == 1
    assert failed.stderr.count("error:") == 1 and "Traceback" not in failed.stderr
    assert "daily-2026-11-25" in failed.stderr
    assert ledger(project).get("sent", 0) == 0  # nothing claims to be sent that was not written
    blocked.unlink()
    done = run(project, "send", "--list", "daily", secret=None)
    assert done.exit_code == 0, done.stderr
    assert ledger(project) == {"sent": 30}
    assert len(list((project.parent / "outbox" / "daily-2026-11-25").glob("*.eml"))) == 30


# -- the outbox's disk, full or read-only -------------------------------------------------------

Mount = Callable[..., None]


@pytest.fixture
def small_disk() -> Iterator[Mount]:
    """``mount(folder, size, read_only=False)``: a tmpfs of ``size`` bytes at ``folder``, unmounted after.

    A real file system that runs out of space, not a stand-in: it needs root (as `make test`
    runs) and says so, rather than passing, where it cannot mount.
    """
    mounted: list[Path] = []

    def mount(folder: Path, size: int, *, read_only: bool = False) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        options = f"size={size},mode=0755" + (",ro" if read_only else "")
        try:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "digest-test", str(folder)],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            problem = getattr(exc, "stderr", None) or exc
            pytest.skip(f"cannot mount a tmpfs to fill (needs root): {str(problem).strip()}")
        mounted.append(folder)

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(folder)], check=False, capture_output=True)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


def sent_files(project: Path) -> dict[str, str]:
    """Recipient → the outbox file the ledger says their message went to."""
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        return dict(db.execute("SELECT email, provider_id FROM send_ledger WHERE status = 'sent'").fetchall())


CROWD = [f"reader{n:03d}@example.org" for n in range(250)]  # two outbox batches: 200, then 50


def test_a_full_outbox_disk_stops_the_send_with_the_ledger_true_and_the_next_run_completes(
    make_project: MakeProject, small_disk: Mount, tmp_path: Path
) -> None:
    project = make_project()
    (project.parent / "subscribers" / "daily.csv").write_text(
        "email,name\n" + "".join(f"{address},Reader\n" for address in CROWD)
    )
    # A subscriber's message is about the size of the built edition's sample message.
    sample = run(project, "build", "--out", str(tmp_path / "sample"))
    assert sample.exit_code == 0, sample.stderr
    pages = -(-((tmp_path / "sample" / "daily.eml").stat().st_size + 1024) // 4096)
    # Room for the first batch and ten messages more: the second batch runs out of space.
    outbox = project.parent / "outbox"
    small_disk(outbox, (200 + 10) * pages * 4096)

    full = run(project, "send", "--list", "daily", secret=None)

    assert full.exit_code == 1, full.output
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in full.stderr
    assert f"error: {outbox / EDITION}/" in errors[0] and "No space left on device" in errors[0]
    assert f"{EDITION}: stopped by the error below: sent 200, 50 still to send" in full.stderr
    # The ledger says exactly what is on the disk: the first batch sent, one file each, whole;
    # the second back to pending (not failed: no recipient's fault; not stuck in "sending").
    assert ledger(project) == {"sent": 200, "pending": 50}
    on_disk = sorted((outbox / EDITION).iterdir())
    assert [path.suffix for path in on_disk] == [".eml"] * 200  # no temporary file left behind
    written = sent_files(project)
    assert sorted(written.values()) == [str(path) for path in on_disk]
    for address, path in written.items():
        message = email.message_from_bytes(Path(path).read_bytes())
        assert message["To"].endswith(f"<{address}>")
        boundary = message.get_boundary()
        assert boundary and Path(path).read_bytes().rstrip().endswith(f"--{boundary}--".encode())
    first_files = {path.name: os.stat(path).st_ino for path in on_disk}

    remount(outbox, "size=64m")  # space was freed
    rest = run(project, "send", "--list", "daily", secret=None)

    assert rest.exit_code == 0, rest.stderr
    assert f"{EDITION}: sent 50 now (200 earlier), skipped 0, suppressed 0, failed 0" in rest.output
    assert ledger(project) == {"sent": 250}
    assert sorted(sent_files(project)) == sorted(CROWD)
    assert len(list((outbox / EDITION).iterdir())) == 250
    # Nobody twice: the first 200 files are the very files the first run wrote, not rewritten.
    assert {name: os.stat(outbox / EDITION / name).st_ino for name in first_files} == first_files


def test_a_read_only_outbox_disk_stops_the_send_and_the_next_run_completes(
    make_project: MakeProject, small_disk: Mount
) -> None:
    project = make_project()
    (project.parent / "subscribers" / "daily.csv").write_text(CSV)
    outbox = project.parent / "outbox"
    small_disk(outbox, 16 * 1024 * 1024, read_only=True)

    refused = run(project, "send", "--list", "daily", secret=None)

    assert refused.exit_code == 1, refused.output
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in refused.stderr
    assert str(outbox) in errors[0] and "Read-only file system" in errors[0]
    assert ledger(project) == {"pending": 30}

    remount(outbox, "rw")
    done = run(project, "send", "--list", "daily", secret=None)

    assert done.exit_code == 0, done.stderr
    assert ledger(project) == {"sent": 30}
    assert len(list((outbox / EDITION).glob("*.eml"))) == 30


# -- the state database, damaged or newer ---------------------------------------------------------


def break_a_page(path: Path) -> None:
    """Overwrite the first page of the editions table: the file still opens, reading it fails."""
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'editions'").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * page_size : root * page_size] = b"\xde\xad\xbe\xef" * (page_size // 4)
    path.write_bytes(bytes(data))


def set_version(path: Path, value: str) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE digest_meta SET value = ? WHERE key = 'schema_version'", (value,))
    db.close()  # the last connection folds the WAL back into the file


# How the file is spoilt → what the one error line must say.
SQLITE_FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "not-a-database": (
        lambda path: path.write_bytes(b"this is not a database\n" * 400),
        "cannot open the state database: file is not a database",
    ),
    "damaged-page": (break_a_page, "the state database is damaged: database disk image is malformed"),
    "version-not-a-number": (
        lambda path: set_version(path, "3b"),
        "the state database's schema version '3b' is not a number",
    ),
    "newer-version": (
        lambda path: set_version(path, str(SCHEMA_VERSION + 1)),
        f"the state database has schema version {SCHEMA_VERSION + 1}, newer than this digest understands",
    ),
}


@pytest.mark.parametrize("command", ["send", "build"])
@pytest.mark.parametrize("fault", SQLITE_FAULTS)
def test_a_damaged_or_newer_sqlite_state_is_one_clear_error_and_is_left_as_it_was(
    make_project: MakeProject, tmp_path: Path, fault: str, command: str
) -> None:
    project = make_project()
    # A state worth keeping: an edition frozen, its stories seen, a recipient in the ledger.
    assert run(project, "send", "--list", "daily").exit_code == 0
    state = project.parent / "state"
    path = state / "digest.sqlite3"
    assert [p.name for p in state.iterdir()] == [path.name]  # one file, the WAL folded in
    spoil, expected = SQLITE_FAULTS[fault]
    spoil(path)
    before = path.read_bytes()
    outbox = sorted((project.parent / "outbox" / EDITION).iterdir())

    args = ["send", "--list", "daily"] if command == "send" else ["build", "--out", str(tmp_path / "out")]
    result = run(project, *args)

    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert result.stderr.startswith(f"error: {path}: {expected} (")
    assert result.stdout == ""
    # Never a silent reset: the file is byte for byte what it was, with no write pending in a WAL.
    assert path.read_bytes() == before
    wal = state / f"{path.name}-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert sorted((project.parent / "outbox" / EDITION).iterdir()) == outbox
    assert not (tmp_path / "out").exists()


def snapshot(url: str) -> dict[str, list[str]]:
    """Every row of every table, for comparing a database before and after."""
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return {
                table: sorted(repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"')))
                for table in inspect(conn).get_table_names()
            }
    finally:
        engine.dispose()


PG_PASSWORD = "pg-secret-never-shown"

POSTGRES_FAULTS = {
    "version-not-a-number": ("3b", "the state database's schema version '3b' is not a number"),
    "newer-version": (
        str(SCHEMA_VERSION + 1),
        f"the state database has schema version {SCHEMA_VERSION + 1}, newer than this digest understands",
    ),
}


def run_with_postgres(project: Path, *args: str) -> Result:
    with time_machine.travel(NOW, tick=False):
        return CliRunner().invoke(
            cli, ["--config", str(project), *args], env={"DIGEST_SECRET": SECRET, "PGPASSWORD": PG_PASSWORD}
        )


@pytest.mark.parametrize("command", ["send", "build"])
@pytest.mark.parametrize("fault", POSTGRES_FAULTS)
def test_a_damaged_or_newer_postgresql_state_is_one_clear_error_naming_the_database(
    make_project: MakeProject, postgres_url: str, tmp_path: Path, fault: str, command: str
) -> None:
    project = make_project(replace={'url = "sqlite:///state/digest.sqlite3"': f'url = "{postgres_url}"'})
    assert run_with_postgres(project, "send", "--list", "daily").exit_code == 0
    value, expected = POSTGRES_FAULTS[fault]
    with Store(postgres_url).migrate() as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE digest_meta SET value = :v WHERE key = 'schema_version'"), {"v": value})
    before = snapshot(postgres_url)
    assert before["send_ledger"] and before["editions"]  # a state worth keeping

    args = ["send", "--list", "daily"] if command == "send" else ["build", "--out", str(tmp_path / "out")]
    result = run_with_postgres(project, *args)

    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [result.stderr.strip()]  # one line, no traceback
    url = make_url(postgres_url)
    assert result.stderr.startswith("error: postgresql")
    assert f"@{url.host}:{url.port}/{url.database}: {expected} (" in result.stderr
    assert PG_PASSWORD not in result.output
    assert snapshot(postgres_url) == before  # never a silent reset or migration
    assert not (tmp_path / "out").exists()
