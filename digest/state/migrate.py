"""The schema step: create or upgrade it (a writer, once), or check it is ours (a reader).

Both run inside one transaction that, on PostgreSQL, holds an advisory lock: senders
starting together on a new database must not create it twice, and a reader must not look
at a schema half upgraded.
"""

from __future__ import annotations

from sqlalchemy import Connection, Row, insert, inspect, select, text, update

from digest.errors import NoStateError, StateError
from digest.state import schema

# An arbitrary number naming the PostgreSQL advisory lock taken while the schema is migrated.
MIGRATION_LOCK = 0x6469676573  # "diges"


def migrate_schema(conn: Connection, label: str) -> None:
    """Create the tables of a new database, or bring an older one up to SCHEMA_VERSION."""
    _lock(conn)
    schema.meta.create(conn, checkfirst=True)
    row, version = _stored_version(conn, label)
    if version == schema.SCHEMA_VERSION:
        return
    # New tables are created; columns added to old tables need their own step.
    schema.metadata.create_all(conn)
    if version:
        for step in range(version + 1, schema.SCHEMA_VERSION + 1):
            for statement in schema.MIGRATIONS.get(step, ()):
                conn.execute(text(statement))
            if conn.dialect.name == "postgresql":
                for statement in schema.POSTGRESQL_MIGRATIONS.get(step, ()):
                    conn.execute(text(statement))
    if row:
        conn.execute(
            update(schema.meta)
            .where(schema.meta.c.key == "schema_version")
            .values(value=str(schema.SCHEMA_VERSION))
        )
    else:
        conn.execute(insert(schema.meta).values(key="schema_version", value=str(schema.SCHEMA_VERSION)))


def verify_schema(conn: Connection, label: str) -> None:
    """Refuse a database with no digest state (NoStateError) or of another schema version."""
    _lock(conn)
    if not inspect(conn).has_table(schema.meta.name):
        raise NoStateError(
            "the state database has no digest state in it yet, and a preview does not create it",
            path=label,
            hint="run `digest build` or `digest send` once, or check [state] url",
        )
    _row, version = _stored_version(conn, label)
    if version < schema.SCHEMA_VERSION:
        # Upgrading it would lock out the older digest that may be sending from it.
        raise StateError(
            f"the state database has schema version {version}, older than this digest's "
            f"({schema.SCHEMA_VERSION}), and a preview does not upgrade it",
            path=label,
            hint="upgrade the digest that sends from it (its next run upgrades the "
            "database), or preview with that digest's version",
        )


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def _stored_version(conn: Connection, label: str) -> tuple[Row[tuple[str]] | None, int]:
    """The schema_version row (None in a new database) and its number; newer is refused."""
    row = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).first()
    version = _version(row[0], label) if row else 0
    if version > schema.SCHEMA_VERSION:
        raise StateError(
            f"the state database has schema version {version}, newer than this digest "
            f"understands ({schema.SCHEMA_VERSION})",
            path=label,
            hint="upgrade digest, or point [state] url at another database",
        )
    return row, version


def _version(value: str, label: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise StateError(
            f"the state database's schema version {value!r} is not a number",
            path=label,
            hint="it may be corrupted or not digest's; point [state] url at digest's database",
        ) from None
