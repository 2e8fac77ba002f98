"""What the ledger stores and tells, on SQLite and on a real PostgreSQL server.

Each test pins one thing a reader, an editor or a later run depends on: every row as added,
each step's time (what a stuck-send report and the claim timeout read), the abandoned claims
taken back and only those, the failed rows a later run retries, and the reads behind
`digest report` and `digest subscribers show`. The exactly-once guards are in
tests/test_ledger_guards.py.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, func, insert, select

from digest.state import Store, schema
from digest.state.claims import CLAIM_LOCK
from digest.state.ledger_types import FAILED, PENDING, REFUSED, SENDING, SENT, SKIPPED, Row
from digest.state.resends import Resend
from tests.conftest import NOW
from tests.ledger_rows import Entry, add_rows

pytest_plugins = ["tests.pgserver"]

TIMEOUT = dt.timedelta(minutes=10)
# Owners on other hosts: judged abandoned only by the claim timeout, never by pid.
ONE, TWO = "elsewhere-a:1:t1:aaaaaaaa", "elsewhere-b:2:t2:bbbbbbbb"


def at(minutes: float) -> dt.datetime:
    return NOW + dt.timedelta(minutes=minutes)


def column(store: Store, name: str, edition_id: str = "e1") -> dict[str, object]:
    """email → one column of every row of the edition: "status" as the ledger tells it (a
    pending row that a claim holds is "sending"), "holder" the owner of that claim, if any."""
    table = schema.ledger
    with store.engine.connect() as conn:
        claims = conn.execute(select(schema.claims).where(schema.claims.c.edition_id == edition_id)).all()
        rows = conn.execute(
            select(
                table.c.email,
                table.c.id,
                table.c.variant,
                table.c.status,
                table.c[name if name in table.c else "id"],
            ).where(table.c.edition_id == edition_id)
        ).all()
    found: dict[str, object] = {}
    for email, row_id, variant, status, value in rows:
        holders = [c.owner for c in claims if c.variant == variant and c.first_id <= row_id <= c.last_id]
        holder = holders[0] if status == PENDING and holders else None
        found[email] = {"status": SENDING if holder else status, "holder": holder}.get(name, value)
    return found


# --- add() and row() ----------------------------------------------------------------------------


def test_each_entry_is_stored_as_given_and_new_rows_are_counted_by_status(store: Store) -> None:
    added = add_rows(
        store,
        "e1",
        [
            Entry("anna@example.org", "Anna", "ukraine"),
            Entry("boris@example.org", "Boris", "all", SKIPPED, "no desk of theirs had news"),
        ],
        now=NOW,
    )
    assert added == Counter({PENDING: 1, SKIPPED: 1})
    anna, boris = store.ledger.row("e1", "anna@example.org"), store.ledger.row("e1", "boris@example.org")
    assert anna is not None and boris is not None
    assert anna == Row(anna.id, "anna@example.org", "Anna", "ukraine", PENDING, None, None, NOW)
    assert boris == Row(
        boris.id, "boris@example.org", "Boris", "all", SKIPPED, "no desk of theirs had news", None, NOW
    )
    (claimed,) = store.ledger.claim("e1", ONE, 10, now=NOW, claim_timeout=TIMEOUT)
    # The row as the ledger tells it: being sent while a claim holds it, as stored otherwise.
    assert store.ledger.row("e1", "anna@example.org") == Row(
        anna.id, "anna@example.org", "Anna", "ukraine", SENDING, None, None, NOW
    )
    assert store.ledger.row("e1", "boris@example.org") == boris
    assert [status for _, status, _, _ in store.ledger.of_address("anna@example.org")] == [SENDING]
    assert (claimed.id, claimed.email, claimed.name, claimed.variant, claimed.attempts) == (
        anna.id,
        "anna@example.org",
        "Anna",
        "ukraine",
        1,
    )
    # Added again (a rerun, a duplicate row): left as it is, and counted.
    again = add_rows(store, "e1", [Entry("anna@example.org", "Other", "all")], now=at(5))
    assert again == Counter(duplicate=1)
    assert column(store, "name") == {"anna@example.org": "Anna", "boris@example.org": "Boris"}


def test_a_row_is_the_editions_own_and_none_for_an_address_it_did_not_have(store: Store) -> None:
    add_rows(store, "e1", [Entry("anna@example.org", "Anna", "all")], now=NOW)
    add_rows(store, "e2", [Entry("anna@example.org", "Anna B", "all", SKIPPED)], now=at(1))
    first, second = store.ledger.row("e1", "anna@example.org"), store.ledger.row("e2", "anna@example.org")
    assert first is not None and second is not None
    assert (first.name, first.status, first.updated_at) == ("Anna", PENDING, NOW)
    assert (second.name, second.status, second.updated_at) == ("Anna B", SKIPPED, at(1))
    assert store.ledger.row("e1", "boris@example.org") is None
    assert store.ledger.row("e3", "anna@example.org") is None


# --- each step's time ---------------------------------------------------------------------------


def claimed_at(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(schema.claims.c.claimed_at).order_by(schema.claims.c.id)).scalars())


def test_every_change_of_a_row_records_when(store: Store) -> None:
    add_rows(store, "e1", [Entry(f"r{n}@example.org", "", "all") for n in range(12)], now=NOW)
    claimed = store.ledger.claim("e1", ONE, 12, now=at(1), claim_timeout=TIMEOUT)
    # A claim writes none of its rows: its time is its own.
    assert set(column(store, "updated_at").values()) == {NOW}
    assert claimed_at(store) == [at(1)]
    # Ten share an outcome (one grouped UPDATE), two have their own (the per-row one).
    shared = [(row.id, SENT, "msg-1", None) for row in claimed[:10]]
    own = [(claimed[10].id, SENT, "msg-2", None), (claimed[11].id, FAILED, None, "451 try later")]
    # Given in any timezone, the moment is kept as that instant.
    store.ledger.finish(ONE, [*shared, *own], now=at(2).astimezone(ZoneInfo("Europe/Kyiv")))
    updated, sent_at = column(store, "updated_at"), column(store, "sent_at")
    assert set(updated.values()) == {at(2)}
    assert sent_at == {row.email: at(2) for row in claimed[:11]} | {claimed[11].email: None}
    assert store.ledger.last_sent("e1") == at(2)
    assert store.ledger.retry_failed("e1", now=at(3)) == 1
    assert updated | {claimed[11].email: at(3)} == column(store, "updated_at")
    store.ledger.release("e1", ONE)
    again = store.ledger.claim("e1", ONE, 5, now=at(4), claim_timeout=TIMEOUT)
    assert [row.email for row in again] == [claimed[11].email]
    store.ledger.release("e1", ONE)
    assert set(column(store, "holder").values()) == {None}
    assert column(store, "updated_at") == updated | {claimed[11].email: at(3)}


def test_last_sent_is_the_editions_latest_and_none_before_any(store: Store) -> None:
    for edition in ("e1", "e2"):
        add_rows(store, edition, [Entry(f"r{n}@example.org", "", "all") for n in range(2)], now=NOW)
    assert store.ledger.last_sent("e1") is None
    first, second = store.ledger.claim("e1", ONE, 2, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(ONE, [(first.id, SENT, "a", None)], now=at(1))
    store.ledger.finish(ONE, [(second.id, SENT, "b", None)], now=at(3))
    (other, _) = store.ledger.claim("e2", ONE, 2, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(ONE, [(other.id, SENT, "c", None)], now=at(9))
    assert store.ledger.last_sent("e1") == at(3)
    assert store.ledger.last_sent("e2") == at(9)


# --- abandoned claims: which are taken back -----------------------------------------------------


def test_a_sender_that_keeps_working_keeps_its_newest_claim(store: Store) -> None:
    # A long send: the first batch was claimed (and sent) long ago, the current one just now.
    # Judged by the rows it holds now, the sender is alive.
    add_rows(store, "e1", [Entry(f"r{n}@example.org", "", "all") for n in range(3)], now=NOW)
    # Its first claim's rows are all recorded, but the claim not yet dropped (finish's done).
    (early,) = store.ledger.claim("e1", ONE, 1, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(ONE, [(early.id, SENT, "m", None)], now=at(1))
    (current,) = store.ledger.claim("e1", ONE, 1, now=at(15), claim_timeout=TIMEOUT)
    taken = store.ledger.claim("e1", TWO, 5, now=at(16), claim_timeout=TIMEOUT)
    assert [row.email for row in taken] == ["r2@example.org"]
    # Nothing left but the working sender's rows: looked at, and left to it.
    assert store.ledger.claim("e1", TWO, 5, now=at(16), claim_timeout=TIMEOUT) == []
    assert column(store, "status") == {
        "r0@example.org": SENT,
        "r1@example.org": SENDING,
        "r2@example.org": SENDING,
    }
    assert column(store, "holder") == {"r0@example.org": None, current.email: ONE, "r2@example.org": TWO}


def test_a_claim_in_another_edition_does_not_age_this_one(store: Store) -> None:
    for edition in ("e1", "e2"):
        add_rows(store, edition, [Entry("anna@example.org", "", "all")], now=NOW)
    store.ledger.claim("e2", ONE, 1, now=NOW, claim_timeout=TIMEOUT)  # old, in e2
    store.ledger.claim("e1", ONE, 1, now=at(15), claim_timeout=TIMEOUT)  # fresh, in e1
    assert store.ledger.claim("e1", TWO, 1, now=at(16), claim_timeout=TIMEOUT) == []
    assert column(store, "holder") == {"anna@example.org": ONE}
    # The old one is taken back in its own edition.
    assert [row.email for row in store.ledger.claim("e2", TWO, 1, now=at(16), claim_timeout=TIMEOUT)] == [
        "anna@example.org"
    ]


def test_taking_back_a_dead_senders_claim_leaves_what_it_sent_and_other_editions(store: Store) -> None:
    for edition in ("e1", "e2"):
        add_rows(store, edition, [Entry(f"r{n}@example.org", "", "all") for n in range(2)], now=NOW)
    sent, _held = store.ledger.claim("e1", ONE, 2, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(ONE, [(sent.id, SENT, "m", None)], now=NOW)
    store.ledger.claim("e2", ONE, 2, now=NOW, claim_timeout=TIMEOUT)
    again = store.ledger.claim("e1", TWO, 5, now=at(11), claim_timeout=TIMEOUT)
    # Its outcome was never recorded: the first attempt that counts is this one.
    assert [(row.email, row.attempts) for row in again] == [("r1@example.org", 1)]
    assert column(store, "status") == {"r0@example.org": SENT, "r1@example.org": SENDING}
    assert column(store, "holder") == {"r0@example.org": None, "r1@example.org": TWO}
    assert column(store, "status", "e2") == {"r0@example.org": SENDING, "r1@example.org": SENDING}
    assert set(column(store, "holder", "e2").values()) == {ONE}


# --- two senders claim side by side ------------------------------------------------------------


@pytest.fixture
def held(store: Store) -> Iterator[Callable[[], None]]:
    """Another sender mid-claim: its claim of the first three rows written, in a transaction
    it has not committed yet (holding the claim lock); calling the fixture's value commits it."""
    variants = ["a", "a", "a", "a", "b"]
    add_rows(store, "e1", [Entry(f"r{n}@example.org", "", v) for n, v in enumerate(variants)], now=NOW)
    other = create_engine(store.engine.url)
    with other.connect() as conn:
        conn.begin()
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK, func.hashtext("e1"))))
        values = {"edition_id": "e1", "variant": "a", "owner": ONE, "first_id": 1, "last_id": 3}
        conn.execute(insert(schema.claims).values(**values, claimed_at=NOW))
        yield conn.commit
        conn.rollback()
    other.dispose()


def claim_within(store: Store, limit: int, seconds: float = 10) -> list[str] | None:
    """The emails a claim took, or None when it was still waiting after ``seconds``."""
    found: list[list[str]] = []

    def work() -> None:
        claimed = store.ledger.claim("e1", TWO, limit, now=NOW, claim_timeout=TIMEOUT)
        found.append([row.email for row in claimed])

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(seconds)
    return found[0] if found else None


def test_a_claim_waits_for_one_in_progress_then_takes_the_rows_after_it(
    store: Store, held: Callable[[], None]
) -> None:
    # Claimed together, two senders would both take the first rows: one waits its turn.
    found: list[list[str]] = []

    def claim() -> None:
        found.append([row.email for row in store.ledger.claim("e1", TWO, 5, now=NOW, claim_timeout=TIMEOUT)])

    waiting = threading.Thread(target=claim, daemon=True)
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive() and found == []
    held()
    waiting.join(20)
    assert found == [["r3@example.org"]]


def test_a_claim_takes_another_variant_when_the_first_is_all_held(
    store: Store, held: Callable[[], None]
) -> None:
    held()
    assert claim_within(store, 1) == ["r3@example.org"]
    assert claim_within(store, 1) == ["r4@example.org"]
    assert claim_within(store, 1) == []
    assert column(store, "holder") == {
        **{f"r{n}@example.org": ONE for n in range(3)},
        "r3@example.org": TWO,
        "r4@example.org": TWO,
    }


def test_a_claim_says_who_is_suppressed_for_its_list_or_every_list(store: Store) -> None:
    # Suppressed after the ledger was filled (a bounce or an unsubscribe during the send): the
    # claim tells the sender, so no separate lookup stands between it and each batch.
    people = ["anna", "bob", "carla", "dave", "o'brien"]
    add_rows(store, "e1", [Entry(f"{name}@example.org", "", "all") for name in people], now=NOW)
    store.suppressions.add("anna@example.org", reason="unsubscribed", source="web", list_name="daily")
    store.suppressions.add("bob@example.org", reason="bounced", source="sendgrid")  # every list
    store.suppressions.add("carla@example.org", reason="unsubscribed", source="web", list_name="weekly")
    store.suppressions.add("o'brien@example.org", reason="complained", source="sendgrid")

    def suppressed(list_name: str | None) -> list[str]:
        rows = store.ledger.claim("e1", ONE, 10, now=NOW, claim_timeout=TIMEOUT, list_name=list_name)
        store.ledger.release("e1", ONE)
        assert [row.email for row in rows] == [f"{name}@example.org" for name in people]
        return [row.email.split("@")[0] for row in rows if row.suppressed]

    assert suppressed("daily") == ["anna", "bob", "o'brien"]
    assert suppressed("weekly") == ["bob", "carla", "o'brien"]
    assert suppressed(None) == ["bob", "o'brien"]


# --- failed rows: retried, listed, or refused for good ------------------------------------------


def fail(store: Store, edition_id: str, errors: list[str | None]) -> None:
    add_rows(store, edition_id, [Entry(f"f{n}@example.org", "", "all") for n in range(len(errors))], now=NOW)
    claimed = store.ledger.claim(edition_id, ONE, len(errors), now=NOW, claim_timeout=TIMEOUT)
    outcomes = [(row.id, FAILED, None, error) for row, error in zip(claimed, errors, strict=True)]
    # Recorded last row first: on PostgreSQL the rows' new versions then lie in reverse order.
    store.ledger.finish(ONE, outcomes[::-1], now=NOW, done=[claimed[0].id])


def test_failed_rows_are_retried_and_listed_unless_refused_for_good(store: Store) -> None:
    fail(
        store, "e1", [None, "451 mailbox busy", REFUSED + "550 5.1.1 no such user", "refused_permanently? no"]
    )
    fail(store, "e2", [REFUSED + "550 5.1.1", REFUSED + "550 5.1.2"])
    assert store.ledger.failures("e1") == [
        ("f0@example.org", ""),
        ("f1@example.org", "451 mailbox busy"),
        ("f3@example.org", "refused_permanently? no"),
    ]
    assert store.ledger.refused("e1") == 1
    assert store.ledger.refused("e2") == 2
    assert store.ledger.failures("e2") == []
    assert store.ledger.retry_failed("e1", now=at(1)) == 3
    assert column(store, "status") == {
        "f0@example.org": PENDING,
        "f1@example.org": PENDING,
        "f2@example.org": FAILED,
        "f3@example.org": PENDING,
    }


def test_a_refused_reader_an_editor_reached_later_is_no_longer_counted_refused(store: Store) -> None:
    fail(store, "e1", [REFUSED + "550 5.1.1", REFUSED + "550 5.1.1"])
    store.resends.record(
        Resend("e1", "f0@example.org", "", "all", "outbox", "<m@x>", at(1), SENT, provider_id="p")
    )
    assert column(store, "status") == {"f0@example.org": SENT, "f1@example.org": FAILED}
    assert store.ledger.refused("e1") == 1


def test_failures_come_in_list_order_twenty_at_a_time(store: Store) -> None:
    fail(store, "e1", [f"451 busy {n}" for n in range(25)])
    listed = store.ledger.failures("e1")
    assert listed == [(f"f{n}@example.org", f"451 busy {n}") for n in range(20)]
    assert len(store.ledger.failures("e1", limit=25)) == 25


def test_failures_of_several_variants_come_in_list_order_not_the_variants(store: Store) -> None:
    """The run index keeps each variant's rows together; the list's order is the rows' ids."""
    entries = [Entry(f"f{n:02d}@example.org", "", "b" if n % 2 else "a") for n in range(6)][::-1]
    add_rows(store, "e1", entries, now=NOW, chunk=1)  # ids: f05 (b), f04 (a), f03 (b)…
    while claimed := store.ledger.claim("e1", ONE, 10, now=NOW, claim_timeout=TIMEOUT):
        outcomes = [(row.id, FAILED, None, f"451 {row.email}") for row in claimed]
        store.ledger.finish(ONE, outcomes, now=NOW, done=[claimed[0].id])
    assert [email for email, _ in store.ledger.failures("e1")] == [entry.email for entry in entries]


# --- of_address(): every edition an address had -------------------------------------------------


def test_an_address_shows_each_edition_it_had_with_its_resends(store: Store) -> None:
    for edition in ("2026-12-02", "2026-11-30", "2026-12-01"):
        add_rows(
            store,
            edition,
            [Entry("anna@example.org", "", "all"), Entry("boris@example.org", "", "all")],
            now=NOW,
        )
    (row, _) = store.ledger.claim("2026-12-01", ONE, 2, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(ONE, [(row.id, SENT, "m", None)], now=at(1))
    for status in (SENT, SENT, FAILED):
        store.resends.record(
            Resend("2026-12-01", "anna@example.org", "", "all", "outbox", "<m@x>", at(2), status)
        )
    store.resends.record(Resend("2026-12-02", "boris@example.org", "", "all", "outbox", "<m@x>", at(2), SENT))
    assert store.ledger.of_address("anna@example.org") == [
        ("2026-11-30", PENDING, None, 0),
        ("2026-12-01", SENT, at(1), 2),
        ("2026-12-02", PENDING, None, 0),
    ]
    assert store.ledger.of_address("nobody@example.org") == []
