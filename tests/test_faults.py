"""Faults lose nothing: a send that cannot write stops with a clear error and resumes cleanly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import MakeProject
from tests.test_send import run

CSV = "email,name\n" + "".join(f"r{n}@example.org,R {n}\n" for n in range(30))


def ledger(project: Path) -> dict[str, int]:
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        return dict(db.execute("SELECT status, count(*) FROM send_ledger GROUP BY status").fetchall())


def test_an_outbox_that_cannot_be_written_stops_the_send_and_the_next_run_completes(make_project: MakeProject) -> None:
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
