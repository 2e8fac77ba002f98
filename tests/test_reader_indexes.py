"""How the readers table is found into, on SQLite and on a real PostgreSQL server: a bounce or a
complaint looks an address up in every list, and each send first expires the sign-ups never
confirmed; both by an index, not by reading a million readers each time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, inspect, text

from digest.state import Store, schema
from digest.state.readers import ReaderStatus
from digest.state.suppressions import Reason
from tests.conftest import NOW
from tests.older_schema import as_of_version

pytest_plugins = ["tests.pgserver"]


@contextmanager
def statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The statements run on the readers table meanwhile, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if " subscribers " in f" {statement} ".replace("\n", " "):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", note)


def plans(store: Store, seen: list[tuple[str, Any]]) -> list[str]:
    """How the database would run each statement, with scans made as dear as they can be (on
    PostgreSQL, whose planner reads a table this small from start to end anyway)."""
    found = []
    with store.engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        if store.engine.dialect.name == "postgresql":
            cursor.execute("SET enable_seqscan = off")
            explain = "EXPLAIN "
        else:
            explain = "EXPLAIN QUERY PLAN "
        for statement, parameters in seen:
            cursor.execute(explain + statement, parameters)
            found.append(" ".join(str(part) for row in cursor.fetchall() for part in row))
        cursor.close()
    return found


def test_a_bounce_and_the_expiry_of_sign_ups_read_an_index(store: Store) -> None:
    with statements(store) as seen:
        store.readers.expire_pending(NOW)
        store.readers.leave(None, "gone@example.org", reason=Reason.BOUNCED, source="test", now=NOW)
    found = plans(store, seen)
    assert len(found) == 4, seen  # the expiry's select and delete, the bounce's select and update
    assert all("ix_subscribers_pending" in plan for plan in found[:2]), found
    assert all("ix_subscribers_email" in plan for plan in found[2:]), found


def test_the_pending_index_holds_the_status_the_readers_are_written_with() -> None:
    assert f"status = '{ReaderStatus.PENDING.value}'" == schema.PENDING_READERS


def test_a_version_9_database_gets_the_address_and_pending_indexes(state_url: str) -> None:
    """Before version 10 the readers had an index on (list, status) and none on the address."""
    as_of_version(
        state_url,
        9,
        "DROP INDEX ix_subscribers_email",
        "DROP INDEX ix_subscribers_pending",
        "CREATE INDEX ix_subscribers_status ON subscribers (list_name, status)",
    )
    old = NOW - dt.timedelta(days=30)
    with Store(state_url).migrate() as store:
        indexes = {
            index["name"]: index["column_names"] for index in inspect(store.engine).get_indexes("subscribers")
        }
        assert indexes == {"ix_subscribers_email": ["email"], "ix_subscribers_pending": ["signed_up_at"]}
        with store.engine.begin() as conn:
            for email, status in [("late@example.org", "pending"), ("kept@example.org", "active")]:
                conn.execute(
                    text(
                        "INSERT INTO subscribers (list_name, email, name, status, source, created_at,"
                        " updated_at, signed_up_at) VALUES ('daily', :email, '', :status, 'signup',"
                        " :at, :at, :at)"
                    ),
                    {"email": email, "status": status, "at": old},
                )
        assert store.readers.expire_pending(NOW) == 1
        assert store.readers.counts("daily") == {"active": 1}
