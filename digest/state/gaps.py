"""Feed gaps: which feeds a list's editions went out without, and since when.

An edition frozen without a feed opens a gap (or keeps the one already open, with its older
start); an edition frozen with that feed read closes it. The edition build reads the open
gaps to reach back for the stories the list never carried.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine, delete, insert, select

from digest.model import Edition
from digest.state import schema


def open_gaps(engine: Engine, list_name: str) -> dict[str, dt.datetime]:
    """Feed → the start of the first edition of the list that went out without it."""
    table = schema.feed_gaps
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.feed, table.c.since).where(table.c.list_name == list_name))
        return {feed: since for feed, since in rows}


def record_gaps(conn: Connection, edition: Edition) -> None:
    """Inside the transaction that freezes ``edition``: open and close its list's gaps."""
    table = schema.feed_gaps
    read = [feed.source for feed in edition.feeds if not feed.failed]
    if read:
        conn.execute(delete(table).where(table.c.list_name == edition.list_name, table.c.feed.in_(read)))
    if not edition.missing_feeds:
        return
    already = set(
        conn.execute(
            select(table.c.feed).where(
                table.c.list_name == edition.list_name, table.c.feed.in_(edition.missing_feeds)
            )
        ).scalars()
    )
    since = edition.window.start
    rows = [
        {"list_name": edition.list_name, "feed": feed, "since": since, "edition_id": edition.id}
        for feed in edition.missing_feeds
        if feed not in already
    ]
    if rows:
        conn.execute(insert(table), rows)
