"""The state store's contract, on SQLite and on a real PostgreSQL server: the same code on both."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import insert, inspect, select, text

from digest.config import Config
from digest.edition import build_edition
from digest.edition.frozen import freeze_edition, frozen_edition
from digest.errors import StateError
from digest.render import Rendered
from digest.state import Store, schema
from digest.state.ledger_types import FAILED, PENDING, SENT
from digest.state.queries import among, insert_many
from digest.state.resends import Resend
from digest.state.schema import LEDGER_FILLFACTOR, SCHEMA_VERSION
from tests.conftest import NOW
from tests.ledger_rows import Entry, add_rows
from tests.older_schema import as_of_version

pytest_plugins = ["tests.pgserver"]

TIMEOUT = dt.timedelta(minutes=10)


def test_schema_is_created_and_versioned(store: Store) -> None:
    with store.engine.connect() as conn:
        version = conn.execute(text("SELECT value FROM digest_meta WHERE key = 'schema_version'")).scalar()
    assert version == str(SCHEMA_VERSION)


def test_a_newer_schema_is_refused(state_url: str) -> None:
    with Store(state_url).migrate() as store, store.engine.begin() as conn:
        conn.execute(
            text("UPDATE digest_meta SET value = :v WHERE key = 'schema_version'"),
            {"v": str(SCHEMA_VERSION + 1)},
        )
    with pytest.raises(StateError, match="newer than this digest"):
        Store(state_url).migrate()


def test_a_version_3_database_gets_the_run_index(state_url: str) -> None:
    # What version 3 had: an index on status alone, no claim index, claims in each row.
    as_of_version(
        state_url,
        3,
        "DROP INDEX ix_send_ledger_run",
        "ALTER TABLE send_ledger ADD COLUMN claimed_at TIMESTAMP",
        "CREATE INDEX ix_send_ledger_status ON send_ledger (status)",
    )
    with Store(state_url) as store, store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO send_ledger (edition_id, email, name, variant, status, attempts, updated_at)"
                " VALUES ('e1', 'kept@example.org', '', 'all', 'pending', 0, :now)"
            ),
            {"now": NOW},
        )
    with Store(state_url).migrate() as store:
        indexes = {
            index["name"]: index["column_names"] for index in inspect(store.engine).get_indexes("send_ledger")
        }
        assert indexes.get("ix_send_ledger_run") == ["edition_id", "variant", "id"]
        assert "ix_send_ledger_status" not in indexes and "ix_send_ledger_claim" not in indexes
        assert [
            row.email for row in store.ledger.claim("e1", "me:1:a", 5, now=NOW, claim_timeout=TIMEOUT)
        ] == ["kept@example.org"]
        with store.engine.connect() as conn:
            assert conn.execute(
                text("SELECT value FROM digest_meta WHERE key = 'schema_version'")
            ).scalar() == str(SCHEMA_VERSION)


def test_a_version_7_database_gives_back_the_rows_its_senders_held(state_url: str) -> None:
    """Before version 8 a claim marked each row "sending", with its time in claimed_at."""
    as_of_version(
        state_url, 7, "DROP TABLE send_claims", "ALTER TABLE send_ledger ADD COLUMN claimed_at TIMESTAMP"
    )
    with Store(state_url) as store, store.engine.begin() as conn:
        for email, status in [("held@example.org", "sending"), ("sent@example.org", "sent")]:
            conn.execute(
                text(
                    "INSERT INTO send_ledger (edition_id, email, name, variant, status, attempts,"
                    " batch_id, claimed_at, updated_at) VALUES ('e1', :email, '', 'all', :status, 1,"
                    " 'old:1:t1:aaaaaaaa', :now, :now)"
                ),
                {"email": email, "status": status, "now": NOW},
            )
    with Store(state_url).migrate() as store:
        columns = {column["name"] for column in inspect(store.engine).get_columns("send_ledger")}
        assert "claimed_at" not in columns and "batch_id" in columns
        assert store.ledger.counts("e1") == {"pending": 1, "sent": 1}
        again = store.ledger.claim("e1", "me:1:a", 5, now=NOW, claim_timeout=TIMEOUT)
        assert [row.email for row in again] == ["held@example.org"]


def test_a_version_8_database_leaves_the_status_out_of_its_indexes(state_url: str) -> None:
    """Before version 9 the claim index had the status in it, so recording an outcome wrote a
    new entry in every index (PostgreSQL's HOT update is only for rows whose indexed columns
    stay the same), and the ledger's pages were full, with no room for a row's next version."""
    with Store(state_url).migrate() as store, store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_send_ledger_run"))
        conn.execute(
            text("CREATE INDEX ix_send_ledger_claim ON send_ledger (edition_id, status, variant, id)")
        )
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE send_ledger RESET (fillfactor)"))
        conn.execute(text("UPDATE digest_meta SET value = '8' WHERE key = 'schema_version'"))
    with Store(state_url).migrate() as store:
        indexes = {
            index["name"]: index["column_names"] for index in inspect(store.engine).get_indexes("send_ledger")
        }
        assert indexes.get("ix_send_ledger_run") == ["edition_id", "variant", "id"]
        assert "ix_send_ledger_claim" not in indexes
        if store.engine.dialect.name == "postgresql":
            assert _reloptions(store, "send_ledger") == [f"fillfactor={LEDGER_FILLFACTOR}"]


def _reloptions(store: Store, table: str) -> list[str] | None:
    with store.engine.connect() as conn:
        options: list[str] | None = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE relname = :table"), {"table": table}
        ).scalar()
    return options


def test_recording_an_outcome_changes_no_indexed_column(store: Store) -> None:
    """So that PostgreSQL updates a recorded row in its own page and no index (HOT), at a third
    of the cost of a new entry in each of the ledger's three indexes (docs/performance.md)."""
    indexed = {
        column
        for index in inspect(store.engine).get_indexes("send_ledger")
        for column in index["column_names"]
    }
    indexed |= set(inspect(store.engine).get_pk_constraint("send_ledger")["constrained_columns"])
    entries = [Entry(f"r{n}@example.org", "R", "all") for n in range(40)]
    add_rows(store, "e1", entries, now=NOW)
    before = _ledger_rows(store)
    claimed = store.ledger.claim("e1", "host:1:a", 40, now=NOW, claim_timeout=TIMEOUT)
    later = NOW + dt.timedelta(minutes=1)
    store.ledger.finish("host:1:a", [(row.id, SENT, f"m{row.id}", None) for row in claimed[:8]], now=later)
    store.ledger.finish("host:1:a", [(row.id, SENT, "m", None) for row in claimed[8:]], now=later)
    after = _ledger_rows(store)
    changed = {
        name for row_id, row in before.items() for name, value in row.items() if after[row_id][name] != value
    }
    assert changed == {"status", "provider_id", "sent_at", "batch_id", "attempts", "updated_at"}
    assert not changed & indexed
    if store.engine.dialect.name == "postgresql":
        assert _reloptions(store, "send_ledger") == [f"fillfactor={LEDGER_FILLFACTOR}"]
        assert _hot_updates(store) == (40, 40)


def _ledger_rows(store: Store) -> dict[int, dict[str, object]]:
    with store.engine.connect() as conn:
        return {row["id"]: dict(row) for row in conn.execute(text("SELECT * FROM send_ledger")).mappings()}


def _hot_updates(store: Store) -> tuple[int, int]:
    """(rows updated, of which HOT) in send_ledger, once the server has the counts: a server
    process reports them at its end, and at most once a second before."""
    store.engine.dispose()
    deadline = time.monotonic() + 10
    while True:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            updated, hot = conn.execute(
                text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'send_ledger'")
            ).one()
        if updated or time.monotonic() > deadline:
            return int(updated), int(hot)
        time.sleep(0.1)


def test_insert_many_stores_every_value_as_given(store: Store) -> None:
    """On PostgreSQL through COPY, whose text format escapes tabs, line ends and backslashes."""
    awkward = ["tab\there", "line\nend", "back\\slash", "\\N", "", "naïve ✓ 東京", 'a,b;"c"']
    rows = [(f"k{n}", value) for n, value in enumerate(awkward)]
    with store.engine.begin() as conn:
        insert_many(conn, schema.meta, ["key", "value"], rows)
    with store.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT key, value FROM digest_meta WHERE key LIKE 'k%'")).all())
    assert stored == dict(rows)


def test_editions_variants_and_seen_stories(store: Store, config: Config) -> None:
    edition = build_edition(config, "daily", now=NOW)
    assert freeze_edition(store.editions, edition, now=NOW) is True
    assert freeze_edition(store.editions, edition, now=NOW) is False
    frozen = frozen_edition(store.editions, edition.id)
    assert frozen is not None and [i.id for i in frozen.items] == [i.id for i in edition.items]
    assert frozen.window == edition.window
    store.editions.save_variant(edition.id, "all", Rendered("s", "p", "<p>h</p>", "t"), ["a", "b"])
    store.editions.save_variant(
        edition.id, "all", Rendered("other", "p", "<p>x</p>", "t"), ["a"]
    )  # first one wins
    assert store.editions.variant(edition.id, "all") == Rendered("s", "p", "<p>h</p>", "t")
    first = edition.items[0]
    assert store.seen("daily", [first.id, first.canonical_url, "nope"]) == {first.id, first.canonical_url}
    assert store.last_window_end("daily") == edition.window.end


def test_ledger_add_claim_finish(store: Store) -> None:
    entries = [Entry(f"r{n}@example.org", f"R {n}", "all") for n in range(10)]
    added = add_rows(store, "e1", entries + entries[:3], now=NOW, chunk=4)
    assert added["pending"] == 10 and added["duplicate"] == 3
    claimed = store.ledger.claim("e1", "host:1:a", 4, now=NOW, claim_timeout=TIMEOUT)
    assert [row.email for row in claimed] == [f"r{n}@example.org" for n in range(4)]
    store.ledger.finish(
        "host:1:a",
        [(claimed[0].id, SENT, "id-0", None), (claimed[1].id, FAILED, None, "550 no")]
        + [(row.id, SENT, None, None) for row in claimed[2:]],
        now=NOW,
        done=[claimed[0].id],
    )
    counts = store.ledger.counts("e1")
    assert counts[SENT] == 3 and counts[FAILED] == 1 and counts[PENDING] == 6
    assert store.ledger.failures("e1") == [("r1@example.org", "550 no")]
    assert store.ledger.retry_failed("e1", now=NOW) == 1
    assert store.ledger.counts("e1")[PENDING] == 7


def test_a_resend_that_reached_the_reader_records_their_ledger_row_as_sent(store: Store) -> None:
    later = NOW + dt.timedelta(hours=1)
    add_rows(store, "e1", [Entry(f"r{n}@example.org", f"R {n}", "all") for n in range(2)], now=NOW)
    claimed = store.ledger.claim("e1", "host:1:a", 2, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(
        "host:1:a", [(claimed[0].id, SENT, "id-0", None), (claimed[1].id, FAILED, None, "550 no")], now=NOW
    )
    sent_before = store.ledger.row("e1", "r0@example.org")

    for n, status in ((0, SENT), (1, FAILED), (1, SENT), (2, SENT)):
        store.resends.record(
            Resend(
                "e1", f"r{n}@example.org", f"R {n}", "all", "mail", f"<e1.resend.{n}>", later, status, f"p{n}"
            )
        )

    assert store.ledger.row("e1", "r0@example.org") == sent_before  # the original reached them
    resent = store.ledger.row("e1", "r1@example.org")
    assert resent is not None and (resent.status, resent.sent_at) == (SENT, later)
    assert resent.error == "resent as <e1.resend.1> after: 550 no"
    added = store.ledger.row("e1", "r2@example.org")  # not in the send: a row of its own
    assert added is not None and (added.status, added.error) == (SENT, None)
    assert store.ledger.counts("e1") == {SENT: 3}
    assert store.ledger.retry_failed("e1", now=later) == 0


def test_concurrent_claims_never_overlap(store: Store, state_url: str) -> None:
    add_rows(store, "e1", (Entry(f"r{n:04d}@example.org", "", "all") for n in range(600)), now=NOW)
    taken: dict[str, list[str]] = {}

    def worker(owner: str) -> None:
        with Store(state_url).migrate() as own:
            mine = taken.setdefault(owner, [])
            while rows := own.ledger.claim("e1", owner, 25, now=NOW, claim_timeout=TIMEOUT):
                mine += [row.email for row in rows]
                own.ledger.finish(owner, [(row.id, SENT, None, None) for row in rows], now=NOW)

    threads = [threading.Thread(target=worker, args=(f"elsewhere:{n}:x",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    everyone = [email for emails in taken.values() for email in emails]
    assert len(everyone) == 600 and len(set(everyone)) == 600
    assert store.ledger.counts("e1")[SENT] == 600


def test_a_claim_left_by_a_dead_sender_is_taken_back(store: Store) -> None:
    add_rows(store, "e1", [Entry("a@example.org", "", "all"), Entry("b@example.org", "", "all")], now=NOW)
    # A sender on another machine: only the timeout frees its rows.
    assert len(store.ledger.claim("e1", "elsewhere:1:x", 1, now=NOW, claim_timeout=TIMEOUT)) == 1
    later = NOW + TIMEOUT + dt.timedelta(seconds=1)
    fresh = store.ledger.claim(
        "e1", "elsewhere:2:y", 5, now=later - dt.timedelta(minutes=1), claim_timeout=TIMEOUT
    )
    assert [r.email for r in fresh] == ["b@example.org"]
    again = store.ledger.claim("e1", "me:3:z", 5, now=later, claim_timeout=TIMEOUT)
    # Nothing was recorded of the dead sender's try: this is the first attempt that counts.
    assert [r.email for r in again] == ["a@example.org"] and again[0].attempts == 1


def test_suppressions(store: Store) -> None:
    assert store.suppressions.add("Anna@Example.org", reason="unsubscribed", source="web", list_name="daily")
    assert not store.suppressions.add(
        "anna@example.org", reason="unsubscribed", source="web", list_name="daily"
    )
    assert store.suppressions.add("bob@example.org", reason="bounced", source="sendgrid")
    assert suppressed_for(store, ["anna@example.org", "bob@example.org", "c@example.org"], "daily") == {
        "anna@example.org",
        "bob@example.org",
    }
    assert suppressed_for(store, ["ANNA@example.org", "bob@example.org"], "weekly") == {"bob@example.org"}


def suppressed_for(store: Store, emails: list[str], list_name: str) -> set[str]:
    return {email for email in emails if store.suppressions.is_suppressed(email, list_name)}


def test_addresses_any_json_or_sql_would_trip_on_are_stored_and_found_as_they_are(store: Store) -> None:
    awkward = [
        '"o\'brien, jr"@example.org',
        '"back\\slash"@example.org',
        "jürgen@bücher.example",
        "[]@example.org",
        "null@example.org",
    ]
    for email in awkward[::2]:
        assert store.suppressions.add(email, reason="bounced", source="sendgrid")
    assert suppressed_for(store, awkward, "daily") == set(awkward[::2])


def test_among_finds_stored_values_that_an_arrays_text_would_change(store: Store) -> None:
    # On PostgreSQL the values go as one array: in an array's text, unquoted, NULL would be no
    # value at all, spaces around a value would go, and braces, commas and quotes would split it.
    stored = ["NULL", "null", "", " padded ", "{a,b}", 'say "hi"', "back\\slash", "o'brien", "ü,ñ"]
    missing = ["NULL ", "{a", "a,b", "back\\\\slash", 'say \\"hi\\"']
    table = schema.suppressions
    with store.engine.begin() as conn:
        conn.execute(
            insert(table),
            [
                {"email": e, "list_name": "daily", "reason": "bounced", "source": "t", "created_at": NOW}
                for e in stored
            ],
        )
        found = conn.execute(
            select(table.c.email).where(among(conn, table.c.email, [*missing, *stored]))
        ).scalars()
        assert sorted(found) == sorted(stored)
        assert conn.execute(select(table.c.email).where(among(conn, table.c.email, []))).all() == []


def test_many_suppressions_are_added_in_chunks_and_counted_once(store: Store) -> None:
    assert store.suppressions.add("old@example.org", reason="complained", source="web")
    rows = [(f"r{n}@example.org", "bounced" if n % 3 else "unsubscribed") for n in range(2500)]
    rows += [
        ("R7@Example.org", "complained"),
        ("old@example.org", "bounced"),
        ("new@example.org", "complained"),
    ]
    added = store.suppressions.add_many(rows, source="sendgrid", chunk=1000)
    assert added == {"bounced": 1666, "unsubscribed": 834, "complained": 1}
    assert store.suppressions.add_many(rows, source="sendgrid", chunk=1000) == {}
    # The first record of an address stands: its reason is not overwritten by a later row.
    kept = store.suppressions.is_suppressed("r7@example.org", "daily")
    assert kept is not None and kept.reason == "bounced"
    old = store.suppressions.is_suppressed("old@example.org", "daily")
    assert old is not None and old.reason == "complained" and old.source == "web"
    assert sum(store.suppressions.count().values()) == 2502  # old, the 2,500 and new, once each


def test_scheduler_lock(store: Store) -> None:
    assert store.runs.acquire("elsewhere:1:a", NOW, dt.timedelta(minutes=2)) is None
    holder = store.runs.acquire("elsewhere:2:b", NOW, dt.timedelta(minutes=2))
    assert holder is not None and holder.owner == "elsewhere:1:a"
    assert store.runs.acquire("elsewhere:2:b", NOW + dt.timedelta(minutes=3), dt.timedelta(minutes=2)) is None
    assert store.runs.heartbeat("elsewhere:1:a", NOW) is False  # it was taken over
    run = store.runs.start("daily", NOW, NOW)
    store.runs.finish(run, "sent", "sent 3", NOW)
    last = store.runs.last("daily")
    assert last is not None and last.result == "sent" and last.scheduled_for == NOW
