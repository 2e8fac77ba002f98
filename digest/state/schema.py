"""The state database's tables and its version; SQL that SQLite and PostgreSQL both run."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Dialect,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)

SCHEMA_VERSION = 1


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return value.replace(tzinfo=dt.UTC) if value is not None else None


metadata = MetaData()

meta = Table(
    "digest_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

feed_cache = Table(
    "feed_cache",
    metadata,
    Column("source", Text, primary_key=True),
    Column("body", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False),
    Column("fetched_at", UTCDateTime, nullable=False),
)

editions = Table(
    "editions",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("list_name", String(200), nullable=False, index=True),
    Column("edition_date", Date, nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

seen_items = Table(
    "seen_items",
    metadata,
    Column("list_name", String(200), nullable=False),
    Column("item_id", String(600), nullable=False),
    Column("edition_id", String(200), nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("list_name", "item_id"),
)
