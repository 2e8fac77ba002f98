"""A state database as an older digest left it, for the tests of its upgrade."""

from __future__ import annotations

from sqlalchemy import text

from digest.state import Store


def as_of_version(state_url: str, version: int, *statements: str) -> None:
    """Make ``state_url`` a database of schema ``version``: migrated, then ``statements`` (what
    that version had instead), then the version it says it is."""
    with Store(state_url).migrate() as store, store.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
        conn.execute(
            text("UPDATE digest_meta SET value = :v WHERE key = 'schema_version'"), {"v": str(version)}
        )
