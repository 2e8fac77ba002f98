"""The state store: created on first use, versioned, and never silently reset."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from digest.config import Config
from digest.edition import build_edition
from digest.edition.frozen import freeze_edition
from digest.errors import StateError
from digest.state import Store
from digest.state.schema import SCHEMA_VERSION
from digest.statefile import open_store
from tests.conftest import NOW


def test_sqlite_file_next_to_config_in_wal_mode(config: Config) -> None:
    with open_store(config).migrate():
        pass
    path = config.root / "state" / "digest.sqlite3"
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM digest_meta WHERE key='schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )


def test_recording_an_edition_marks_its_stories_seen(config: Config) -> None:
    edition = build_edition(config, "daily", now=NOW)
    with open_store(config).migrate() as store:
        assert freeze_edition(store.editions, edition, now=NOW) is True
        assert freeze_edition(store.editions, edition, now=NOW) is False  # once per edition
        first = edition.items[0]
        assert store.seen("daily", [first.id, "unknown"]) == {first.id}
        assert store.seen("daily", [first.canonical_url]) == {first.canonical_url}
        assert store.seen("weekly", [first.id]) == set()
        assert store.last_window_end("daily") == edition.window.end
    # It survives a new process (a new Store on the same file).
    with open_store(config).migrate() as store:
        assert store.last_window_end("daily") == edition.window.end


def test_feed_cache_round_trip(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 's.db'}").migrate() as store:
        assert store.feeds.cached_feed("https://a.example/feed") is None
        store.feeds.remember_feed("https://a.example/feed", b"<rss/>", {"etag": '"v1"'})
        store.feeds.remember_feed("https://a.example/feed", b"<rss>2</rss>", {"etag": '"v2"'})
        cached = store.feeds.cached_feed("https://a.example/feed")
        assert cached is not None and cached.body == b"<rss>2</rss>" and cached.headers == {"etag": '"v2"'}


def test_newer_schema_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(f"sqlite:///{path}").migrate().close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE digest_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    with pytest.raises(StateError, match="newer than this digest") as caught:
        Store(f"sqlite:///{path}").migrate()
    assert str(path) in str(caught.value)


def test_corrupted_database_is_an_error_not_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="cannot open the state database") as caught:
        Store(f"sqlite:///{path}").migrate()
    assert str(path) in str(caught.value)
    assert path.read_bytes().startswith(b"this is not a database")


def test_an_emptied_database_file_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(f"sqlite:///{path}").migrate():
        pass
    assert path.stat().st_size > 0  # digest's own new file is never empty, even before a checkpoint
    path.write_bytes(b"")  # truncated, as by a full disk or a careless `> digest.sqlite3`
    Path(f"{path}-wal").unlink(missing_ok=True)
    with pytest.raises(StateError, match="file is empty") as caught:
        Store(f"sqlite:///{path}").migrate()
    assert str(path) in str(caught.value) and "delete the empty file" in str(caught.value)
    assert path.read_bytes() == b""


def test_a_reader_reads_while_a_sender_holds_the_write_lock(tmp_path: Path, config: Config) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    edition = build_edition(config, "daily", now=NOW)
    with Store(url).migrate() as store:
        freeze_edition(store.editions, edition, now=NOW)
    sender = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    sender.execute("BEGIN IMMEDIATE")  # a send in the middle of recording a batch
    try:
        # A writer's BEGIN IMMEDIATE would wait the 10 s busy timeout here, then fail "locked".
        with Store(url).verify() as reader:
            first = edition.items[0].id
            assert reader.seen("daily", [first, "nope"]) == {first}
            assert reader.last_window_end("daily") == edition.window.end
    finally:
        sender.rollback()
        sender.close()


def test_naive_datetimes_are_refused(tmp_path: Path, config: Config) -> None:
    edition = build_edition(config, "daily", now=NOW)
    with Store(f"sqlite:///{tmp_path / 's.db'}").migrate() as store, pytest.raises(Exception, match="naive"):
        freeze_edition(store.editions, edition, now=dt.datetime(2026, 11, 25, 5, 0))
