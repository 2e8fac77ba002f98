"""Feed gaps: which feeds a list's editions went out without, and since when.

An edition frozen without a feed opens a gap (or keeps the one already open, with its older
start); an edition frozen with that feed read closes it. The edition build reads the open
gaps to reach back for the stories the list never carried.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine, delete, select

from digest.model import Edition
from digest.state import schema
from digest.state.queries import insert_ignoring


class Gaps:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, list_name: str) -> dict[str, dt.datetime]:
        """Feed → the start of the first edition of the list that went out without it."""
        table = schema.feed_gaps
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.feed, table.c.since).where(table.c.list_name == list_name))
            return {feed: since for feed, since in rows}

    def settle(self, edition: Edition) -> None:
        """Open and close the list's gaps for an edition that is not frozen (it is empty)."""
        with self.engine.begin() as conn:
            record_gaps(conn, edition)


def record_gaps(conn: Connection, edition: Edition) -> None:
    """Inside the transaction that freezes ``edition``: open and close its list's gaps."""
    table = schema.feed_gaps
    read = [feed.source for feed in edition.feeds if not feed.failed]
    if read:
        conn.execute(delete(table).where(table.c.list_name == edition.list_name, table.c.feed.in_(read)))
    rows = [
        {
            "list_name": edition.list_name,
            "feed": feed,
            "since": edition.window.start,
            "edition_id": edition.id,
        }
        for feed in edition.missing_feeds
    ]
    if rows:
        # A gap already open keeps its older start.
        conn.execute(insert_ignoring(conn, table), rows)
