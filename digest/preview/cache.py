"""What a preview reads between requests, without writing: the state store and the feeds.

The state database is opened only to be read (where the list's previous edition ended, which
stories it carried, cached feed bodies); a SQLite file that does not exist is not created,
and a database of another schema version is refused rather than upgraded.
Collected feeds are kept in memory, so reloading the page does not fetch them again.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from digest.config import Config
from digest.ingest.collect import collect
from digest.model import FeedResult
from digest.state import Store
from digest.state.feeds import ReadOnlyFeeds
from digest.statefile import state_url

REMOTE_TTL = 300.0  # seconds a fetched remote feed is reused


class StateOpener:
    """Opens the configured store for reading and keeps it between requests.

    The store itself is what an edition build reads (it refuses to write, not having been
    migrated); its feed cache is read through ``ReadOnlyFeeds``, whose remembering is a no-op.

    A SQLite file that does not exist is not created (the preview then reads no state, like a
    first run); one deleted or replaced meanwhile (``make demo`` starts afresh) is reopened.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._identity: tuple[str, int, int] | None = None
        self._store: Store | None = None

    def get(self, config: Config) -> Store | None:
        url = state_url(config)
        parsed = make_url(url)
        identity = (url, 0, 0)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            try:
                stat = os.stat(database) if database not in ("", ":memory:") else None
            except OSError:
                stat = None
            if stat is None:
                self.close()
                return None
            identity = (url, stat.st_dev, stat.st_ino)
        with self._lock:
            if identity != self._identity:
                self._close()
            if self._store is None:
                self._store = Store.for_reading(url)
                if self._store is None:
                    return None  # a database nothing has written to yet: read as a first run
                self._identity = identity
            return self._store

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = None
        self._identity = None

    def close(self) -> None:
        with self._lock:
            self._close()


@dataclass(frozen=True, slots=True)
class _Collected:
    files: tuple[tuple[str, int, int], ...]
    remote: bool
    fetched: float
    now: dt.datetime
    results: tuple[FeedResult, ...]


class FeedMemo:
    """Collected feeds kept in memory, so reloading the page does not fetch them again.

    An entry holds while no local feed file changed (mtime and size) and, if any feed is a
    URL, for ``ttl`` seconds. One collection runs at a time; concurrent requests wait for it.
    """

    def __init__(self, ttl: float = REMOTE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Collected] = {}

    def _key(self, config: Config) -> str:
        settings = config.settings
        feeds = [(feed.source, feed.desk, feed.name) for feed in settings.feeds]
        categories = sorted(settings.desks.categories.items())
        return repr((str(config.path), feeds, settings.desks.order, categories))

    def _files(self, config: Config) -> tuple[tuple[str, int, int], ...]:
        found: list[tuple[str, int, int]] = []
        for feed in config.settings.feeds:
            if feed.is_remote:
                continue
            path = config.resolve(feed.source)
            try:
                stat = path.stat()
            except OSError:
                found.append((str(path), -1, -1))
            else:
                found.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def get(self, config: Config, *, now: dt.datetime, cache: ReadOnlyFeeds | None) -> tuple[FeedResult, ...]:
        key = self._key(config)
        with self._lock:
            files = self._files(config)
            entry = self._entries.get(key)
            if entry is not None and entry.files == files and self._fresh(entry, now):
                return entry.results
            remote = any(feed.is_remote for feed in config.settings.feeds)
            results = collect(config, now=now, cache=cache)
            if len(self._entries) >= 8:
                self._entries.clear()
            self._entries[key] = _Collected(files, remote, self.clock(), now, results)
            return results

    def _fresh(self, entry: _Collected, now: dt.datetime) -> bool:
        # Which stories are "in the future" depends on now: a clock moved far (tests) refetches.
        if not dt.timedelta(0) <= now - entry.now <= dt.timedelta(seconds=self.ttl):
            return False
        return not entry.remote or self.clock() - entry.fetched < self.ttl

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
