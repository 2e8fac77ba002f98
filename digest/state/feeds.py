"""The feed cache: each remote feed's last body and validators, so an unchanged feed costs one
small conditional request (digest.ingest.fetch.FeedCache)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Engine, insert, select, update

from digest.model import CachedFeed
from digest.state import schema


class Feeds:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def cached_feed(self, source: str) -> CachedFeed | None:
        table = schema.feed_cache
        with self.engine.connect() as conn:
            row = conn.execute(select(table.c.body, table.c.headers).where(table.c.source == source)).first()
        return CachedFeed(bytes(row.body), json.loads(row.headers)) if row else None

    def remember_feed(self, source: str, body: bytes, headers: dict[str, str]) -> None:
        table = schema.feed_cache
        values = {"body": body, "headers": json.dumps(headers), "fetched_at": dt.datetime.now(dt.UTC)}
        with self.engine.begin() as conn:
            changed = conn.execute(update(table).where(table.c.source == source).values(**values)).rowcount
            if not changed:
                conn.execute(insert(table).values(source=source, **values))


class ReadOnlyFeeds:
    """The feed cache for a reader (preview, `digest feeds check`): read, never written."""

    def __init__(self, feeds: Feeds) -> None:
        self._feeds = feeds

    def cached_feed(self, source: str) -> CachedFeed | None:
        return self._feeds.cached_feed(source)

    def remember_feed(self, source: str, body: bytes, headers: dict[str, str]) -> None:
        """Nothing: a reader never writes the state database."""
