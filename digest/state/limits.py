"""Rate limits shared by every worker and machine that serves the same database.

A limit counts hits per key (a client, an address) in fixed windows: one row per key and
window in ``rate_limits``. Counting is a single upsert that returns the new count, so two
workers hitting the same key at once both count, and each sees its own total: no read, then
write, that could lose a hit. Windows that have ended are deleted now and then (``prune``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, delete
from sqlalchemy.dialects import postgresql, sqlite

from digest.state import schema

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_KEY = 200  # the column's length


@dataclass(frozen=True, slots=True)
class Hit:
    """One counted hit: the key's count in this window so far, and when the window ends."""

    count: int
    window_end: dt.datetime

    def retry_after(self, now: dt.datetime) -> int:
        """Whole seconds until the window ends (at least 1), for a Retry-After header."""
        return max(1, int((self.window_end - now).total_seconds() + 0.999))


def window_start(now: dt.datetime, window: dt.timedelta) -> dt.datetime:
    """The start of the fixed window ``now`` falls in (windows are counted from the epoch)."""
    size = int(window.total_seconds())
    if size < 1:
        raise ValueError("a rate-limit window is at least a second long")
    seconds = int((now - EPOCH).total_seconds())
    return EPOCH + dt.timedelta(seconds=seconds - seconds % size)


class Limits:
    """The repository of ``rate_limits``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def hit(self, key: str, now: dt.datetime, window: dt.timedelta = dt.timedelta(minutes=1)) -> Hit:
        """Count one hit for ``key`` in the window of ``now``; the count including this one."""
        if not key or len(key) > MAX_KEY:
            raise ValueError(f"a rate-limit key is 1 to {MAX_KEY} characters")
        start = window_start(now, window)
        table = schema.rate_limits
        with self.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(table).values(key=key, window_start=start, hits=1)
            # ON CONFLICT … DO UPDATE is atomic on both: PostgreSQL locks the row it updates,
            # SQLite's writer holds the database; RETURNING gives this hit's own total.
            upsert = statement.on_conflict_do_update(
                index_elements=[table.c.key, table.c.window_start],
                set_={"hits": table.c.hits + 1},
            ).returning(table.c.hits)
            count = int(conn.execute(upsert).scalar_one())
        return Hit(count, start + window)

    def prune(self, now: dt.datetime, keep: dt.timedelta = dt.timedelta(hours=1)) -> int:
        """Delete the windows that started more than ``keep`` ago; how many rows went."""
        table = schema.rate_limits
        with self.engine.begin() as conn:
            return int(conn.execute(delete(table).where(table.c.window_start < now - keep)).rowcount)
