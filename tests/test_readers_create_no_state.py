"""Commands that only read the state never create it: no SQLite file, no PostgreSQL tables.

And a store opened without migrating it refuses to write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect

from digest.errors import StateError
from digest.state import Store
from tests.conftest import MakeProject
from tests.test_cli import run

pytest_plugins = ["tests.pgserver"]

REPO = Path(__file__).parent.parent
SQLITE_URL = 'url = "sqlite:///state/digest.sqlite3"'

READERS = {
    "feeds check": ("feeds", "check"),
    "build --date": ("build", "--date", "2026-11-25", "--out", "out"),
    "subscribers check": ("subscribers", "check"),
    "jobs": ("jobs",),
    "report": ("report",),
    "lists held": ("lists", "held"),
}


def preview_once(project: Path) -> None:
    """Run `digest preview`, ask it for the next edition, and stop it."""
    command = [sys.executable, "-m", "digest", "--config", str(project), "preview", "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Preview: http://127.0.0.1:"), line
        answer = httpx.get(f"{line.split()[1]}api/preview", timeout=30).json()
        assert answer["error"] is None and answer["lists"] == ["daily"], answer
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def run_reader(project: Path, command: str) -> None:
    if command == "preview":
        preview_once(project)
        return
    result = run(project, *READERS[command])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", [*READERS, "preview"])
def test_a_reader_creates_no_sqlite_database(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    project = make_project()
    monkeypatch.chdir(project.parent)  # where build --date writes its files
    run_reader(project, command)
    assert not (project.parent / "state").exists()


@pytest.mark.parametrize("command", [*READERS, "preview"])
def test_a_reader_leaves_an_empty_postgresql_database_empty(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch, postgres_url: str, command: str
) -> None:
    project = make_project({SQLITE_URL: f'url = "{postgres_url}"'})
    monkeypatch.chdir(project.parent)
    run_reader(project, command)
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_build_without_a_date_creates_the_database(make_project: MakeProject) -> None:
    """It writes the feed cache, and reads where the list's previous edition ended."""
    project = make_project()
    result = run(project, "build", "--out", str(project.parent / "out"))
    assert result.exit_code == 0, result.output
    assert (project.parent / "state" / "digest.sqlite3").is_file()


def test_a_store_not_migrated_refuses_to_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url).migrate().close()
    with Store(url).verify() as reader, pytest.raises(StateError, match="opened for reading only"):
        reader.feeds.remember_feed("https://a.example/feed", b"<rss/>", {})
    with Store(url) as opened:
        assert opened.feeds.cached_feed("https://a.example/feed") is None  # reading is fine


def test_opening_a_store_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state" / "s.db"
    Store(f"sqlite:///{path}").close()
    assert not path.parent.exists()
