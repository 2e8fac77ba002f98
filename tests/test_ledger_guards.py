"""The ledger's exactly-once guards, on SQLite and on a real PostgreSQL server.

Each test is about one guard a mutant once removed without any test noticing: the owner check
in ``finish``, its updates of a thousand rows, the edition and owner filters of ``release``,
``retry_failed`` and ``failures``, and ``claim`` with several variants.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from digest.state import Store
from digest.state.ledger_types import FAILED, PENDING, SENDING, SENT, Status
from tests.conftest import NOW
from tests.ledger_rows import Entry, add_rows
from tests.test_ledger import column

pytest_plugins = ["tests.pgserver"]

TIMEOUT = dt.timedelta(minutes=10)
# Owners on another host: never judged dead by pid, only by the claim timeout.
STALE, FRESH = "elsewhere-a:1:t1:aaaaaaaa", "elsewhere-b:2:t2:bbbbbbbb"


def entries(count: int, *, prefix: str = "r", variant: str = "all") -> list[Entry]:
    return [Entry(f"{prefix}{n}@example.org", f"R {n}", variant) for n in range(count)]


def statuses(store: Store, edition_id: str) -> dict[str, tuple[str, str | None, str | None, str | None]]:
    """email → (status as the ledger tells it, provider id, error, owner) of every row of the
    edition; the owner is the claim's while one holds the row, else the one that recorded it."""
    status, holder = column(store, "status", edition_id), column(store, "holder", edition_id)
    provider, error, recorder = (
        column(store, name, edition_id) for name in ("provider_id", "error", "batch_id")
    )
    return {
        email: (status[email], provider[email], error[email], holder[email] or recorder[email])  # type: ignore[misc]
        for email in status
    }


# --- finish(): only the owner that holds a row records its outcome ---------------------------


@pytest.mark.parametrize("size", [1, 20], ids=["per-row path", "grouped path"])
def test_a_stale_sender_cannot_overwrite_the_new_owners_result(store: Store, size: int) -> None:
    add_rows(store, "e1", entries(size), now=NOW)
    stale = store.ledger.claim("e1", STALE, size, now=NOW, claim_timeout=TIMEOUT)
    later = NOW + TIMEOUT + dt.timedelta(seconds=1)
    fresh = store.ledger.claim("e1", FRESH, size, now=later, claim_timeout=TIMEOUT)
    assert [row.id for row in fresh] == [row.id for row in stale]
    assert all(row.attempts == 1 for row in fresh)  # no outcome was recorded: no attempt counted

    # The stale sender reports while the new owner still holds the rows: left alone.
    store.ledger.finish(STALE, [(row.id, FAILED, None, "550 stale") for row in stale], now=later)
    assert {status for status, *_ in statuses(store, "e1").values()} == {SENDING}
    assert store.ledger.failures("e1") == []

    store.ledger.finish(FRESH, [(row.id, SENT, "msg-fresh", None) for row in fresh], now=later)
    # ... and once the new owner has recorded "sent", the stale "failed" cannot replace it.
    store.ledger.finish(STALE, [(row.id, FAILED, None, "550 stale") for row in stale], now=later)
    rows = statuses(store, "e1")
    assert set(rows.values()) == {(SENT, "msg-fresh", None, FRESH)}
    assert store.ledger.counts("e1") == Counter({SENT: size})
    assert store.ledger.retry_failed("e1", now=later) == 0


@pytest.mark.parametrize("size", [2, 20], ids=["per-row path", "grouped path"])
def test_a_stale_sender_cannot_record_a_row_taken_back_and_not_yet_claimed_again(
    store: Store, size: int
) -> None:
    add_rows(store, "e1", entries(size), now=NOW)
    stale = store.ledger.claim("e1", STALE, size, now=NOW, claim_timeout=TIMEOUT)
    later = NOW + TIMEOUT + dt.timedelta(seconds=1)
    # The new sender's claim takes every row back but only the first for itself.
    fresh = store.ledger.claim("e1", FRESH, 1, now=later, claim_timeout=TIMEOUT)
    assert [row.email for row in fresh] == ["r0@example.org"]
    store.ledger.finish(STALE, [(row.id, SENT, "msg-stale", None) for row in stale], now=later)
    rows = statuses(store, "e1")
    assert rows.pop("r0@example.org") == (SENDING, None, None, FRESH)
    # Nobody's, and pending: the next claim sends them.
    assert set(rows.values()) == {(PENDING, None, None, None)}
    again = store.ledger.claim("e1", FRESH, size, now=later, claim_timeout=TIMEOUT)
    assert [row.email for row in again] == [f"r{n}@example.org" for n in range(1, size)]


@pytest.mark.parametrize("size", [2, 20], ids=["per-row path", "grouped path"])
def test_an_outcome_once_recorded_is_not_replaced_by_a_later_one_of_the_same_sender(
    store: Store, size: int
) -> None:
    """A transport's record (digest.send.recording) writes each outcome as it comes; whatever
    is finished after that for the same rows, by the same sender, must not change them."""
    add_rows(store, "e1", entries(size), now=NOW)
    claimed = store.ledger.claim("e1", FRESH, size, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(FRESH, [(row.id, SENT, "msg-1", None) for row in claimed], now=NOW)
    store.ledger.finish(FRESH, [(row.id, FAILED, None, "421 late") for row in claimed], now=NOW)
    assert set(statuses(store, "e1").values()) == {(SENT, "msg-1", None, FRESH)}


def test_a_claim_is_taken_back_only_after_the_timeout_has_passed(store: Store) -> None:
    add_rows(store, "e1", entries(1), now=NOW)
    first = store.ledger.claim("e1", STALE, 1, now=NOW, claim_timeout=TIMEOUT)
    # At exactly the timeout the claim still stands; a moment later it is taken back.
    assert store.ledger.claim("e1", FRESH, 1, now=NOW + TIMEOUT, claim_timeout=TIMEOUT) == []
    assert statuses(store, "e1")["r0@example.org"][3] == STALE
    later = NOW + TIMEOUT + dt.timedelta(seconds=1)
    assert store.ledger.claim("e1", FRESH, 1, now=later, claim_timeout=TIMEOUT) == first
    assert statuses(store, "e1")["r0@example.org"][3] == FRESH


# --- finish(): every row of a large outcome list is recorded -----------------------------------


def test_finish_of_a_thousand_shared_outcomes_records_every_row(store: Store) -> None:
    add_rows(store, "e1", entries(1000), now=NOW)
    claimed = store.ledger.claim("e1", FRESH, 1000, now=NOW, claim_timeout=TIMEOUT)
    assert len(claimed) == 1000
    store.ledger.finish(FRESH, [(row.id, SENT, "sg-1", None) for row in claimed], now=NOW)
    assert store.ledger.counts("e1") == Counter({SENT: 1000})
    assert {provider for _, provider, _, _ in statuses(store, "e1").values()} == {"sg-1"}
    last = store.ledger.row("e1", "r999@example.org")
    assert last is not None and last.status == SENT and last.sent_at is not None


def test_finish_of_a_thousand_mixed_outcomes_records_every_row(store: Store) -> None:
    add_rows(store, "e1", entries(1000), now=NOW)
    claimed = store.ledger.claim("e1", FRESH, 1000, now=NOW, claim_timeout=TIMEOUT)
    results: list[tuple[int, Status, str | None, str | None]] = []
    for n, row in enumerate(claimed):
        if n < 600:  # one SendGrid request: a group of 600 (two chunks)
            results.append((row.id, SENT, "sg-a", None))
        elif n < 900:  # another request's group of 300
            results.append((row.id, FAILED, None, "421 try later"))
        elif n < 907:  # a group just under _GROUP_MIN: per row
            results.append((row.id, SENT, "sg-small", None))
        else:  # each its own outcome: per row
            results.append((row.id, FAILED if n % 2 else SENT, f"p-{n}" if n % 2 == 0 else None, f"e-{n}"))
    store.ledger.finish(FRESH, results, now=NOW)

    rows = statuses(store, "e1")
    assert not [email for email, (status, *_) in rows.items() if status == SENDING]
    for n, (_, status, provider, error) in enumerate(results):
        assert rows[f"r{n}@example.org"][:3] == (status, provider, error), n
    counts = store.ledger.counts("e1")
    assert counts[SENT] == 600 + 7 + 46 and counts[FAILED] == 300 + 47
    for email, want_sent in (
        ("r0@example.org", True),
        ("r600@example.org", False),
        ("r900@example.org", True),
    ):
        row = store.ledger.row("e1", email)
        assert row is not None and (row.sent_at is not None) is want_sent, email
    failed_alone = store.ledger.row("e1", "r907@example.org")
    assert failed_alone is not None and failed_alone.sent_at is None


# --- release(): only the given owner's rows of the given edition -------------------------------


def test_release_gives_back_only_that_owners_rows_of_that_edition(store: Store) -> None:
    for edition in ("e1", "e2"):
        add_rows(store, edition, entries(6), now=NOW)
    mine_1 = store.ledger.claim("e1", STALE, 3, now=NOW, claim_timeout=TIMEOUT)
    theirs_1 = store.ledger.claim("e1", FRESH, 2, now=NOW, claim_timeout=TIMEOUT)
    mine_2 = store.ledger.claim("e2", STALE, 2, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(STALE, [(mine_1[0].id, SENT, None, None)], now=NOW)

    store.ledger.release("e1", STALE)
    e1, e2 = statuses(store, "e1"), statuses(store, "e2")
    assert [e1[row.email][0] for row in mine_1] == [SENT, PENDING, PENDING]
    assert [e1[row.email][0] for row in theirs_1] == [SENDING, SENDING]
    assert [e2[row.email][0] for row in mine_2] == [SENDING, SENDING]
    assert store.ledger.counts("e1") == Counter({PENDING: 3, SENDING: 2, SENT: 1})
    assert store.ledger.counts("e2") == Counter({PENDING: 4, SENDING: 2})


def test_a_claim_goes_with_the_finish_that_records_its_last_rows_and_only_its_owners(store: Store) -> None:
    add_rows(store, "e1", entries(6), now=NOW)
    mine = store.ledger.claim("e1", STALE, 4, now=NOW, claim_timeout=TIMEOUT)
    theirs = store.ledger.claim("e1", FRESH, 2, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(STALE, [(row.id, SENT, "m", None) for row in mine[:3]], now=NOW)
    assert store.ledger.counts("e1") == Counter({SENT: 3, SENDING: 3})
    # Done without a result (the last row recorded earlier), and another owner's claim named too.
    store.ledger.finish(STALE, [(mine[3].id, FAILED, None, "451")], now=NOW, done=[mine[0].id, theirs[0].id])
    assert store.ledger.counts("e1") == Counter({SENT: 3, FAILED: 1, SENDING: 2})
    store.ledger.finish(STALE, [], now=NOW, done=[theirs[0].id])
    assert [statuses(store, "e1")[row.email][3] for row in theirs] == [FRESH, FRESH]
    store.ledger.finish(FRESH, [], now=NOW, done=[theirs[0].id])
    assert store.ledger.counts("e1") == Counter({SENT: 3, FAILED: 1, PENDING: 2})
    # Given back, the rows go to the next claim; a finish that records nothing changes nothing.
    store.ledger.finish(FRESH, [], now=NOW)
    again = store.ledger.claim("e1", STALE, 6, now=NOW, claim_timeout=TIMEOUT)
    assert [row.email for row in again] == [row.email for row in theirs]


# --- retry_failed() and failures(): one edition -----------------------------------------------


def test_retry_failed_and_failures_keep_to_their_edition(store: Store) -> None:
    for edition, failing in (("e1", 2), ("e2", 3)):
        add_rows(store, edition, entries(4, prefix=edition), now=NOW)
        claimed = store.ledger.claim(edition, FRESH, 4, now=NOW, claim_timeout=TIMEOUT)
        store.ledger.finish(
            FRESH,
            [(row.id, FAILED, None, f"550 {row.email}") for row in claimed[:failing]]
            + [(row.id, SENT, None, None) for row in claimed[failing:]],
            now=NOW,
            done=[claimed[0].id],
        )
    assert store.ledger.failures("e1") == [
        ("e10@example.org", "550 e10@example.org"),
        ("e11@example.org", "550 e11@example.org"),
    ]
    assert [email for email, _ in store.ledger.failures("e2")] == [f"e2{n}@example.org" for n in range(3)]
    assert [email for email, _ in store.ledger.failures("e2", limit=2)] == [
        "e20@example.org",
        "e21@example.org",
    ]

    assert store.ledger.retry_failed("e1", now=NOW) == 2
    assert store.ledger.counts("e1") == Counter({PENDING: 2, SENT: 2})
    assert store.ledger.counts("e2") == Counter({FAILED: 3, SENT: 1})
    assert store.ledger.failures("e1") == []
    assert len(store.ledger.failures("e2")) == 3


# --- claim() with several variants ------------------------------------------------------------


def test_a_claim_takes_one_variant_in_id_order_and_every_variant_in_turn(store: Store) -> None:
    # Added one at a time, so the variants' ids interleave: b0 a0 c0 b1 a1 c1 …
    for n in range(5):
        for variant, count in (("b", 5), ("a", 4), ("c", 2)):
            if n < count:
                add_rows(store, "e1", [Entry(f"{variant}{n}@example.org", "", variant)], now=NOW, chunk=1)

    taken: list[list[tuple[str, int]]] = []
    while claimed := store.ledger.claim("e1", FRESH, 3, now=NOW, claim_timeout=TIMEOUT):
        assert [row.id for row in claimed] == sorted(row.id for row in claimed)
        taken.append([(row.variant, row.id) for row in claimed])
        store.ledger.finish(FRESH, [(row.id, SENT, None, None) for row in claimed], now=NOW)

    variants = [{variant for variant, _ in batch} for batch in taken]
    assert all(len(batch) == 1 for batch in variants), taken  # never two variants in one claim
    # The run index's order: variant a, then b, then c; each variant's rows in id (list) order.
    assert [batch.pop() for batch in variants] == ["a", "a", "b", "b", "c"]
    assert [len(batch) for batch in taken] == [3, 1, 3, 2, 2]
    ids = [row_id for batch in taken for _, row_id in batch]
    by_variant: dict[str, list[int]] = {}
    for batch in taken:
        for variant, row_id in batch:
            by_variant.setdefault(variant, []).append(row_id)
    assert all(found == sorted(found) for found in by_variant.values())
    assert Counter({variant: len(found) for variant, found in by_variant.items()}) == Counter(a=4, b=5, c=2)
    assert len(ids) == len(set(ids)) == 11
    assert store.ledger.counts("e1") == Counter({SENT: 11})


def test_a_claim_of_one_variant_is_not_topped_up_from_another(store: Store) -> None:
    add_rows(store, "e1", [Entry("z@example.org", "", "z"), Entry("a@example.org", "", "a")], now=NOW)
    first = store.ledger.claim("e1", FRESH, 10, now=NOW, claim_timeout=TIMEOUT)
    second = store.ledger.claim("e1", FRESH, 10, now=NOW, claim_timeout=TIMEOUT)
    assert [(row.email, row.variant) for row in first] == [("a@example.org", "a")]
    assert [(row.email, row.variant) for row in second] == [("z@example.org", "z")]
    assert store.ledger.claim("e1", FRESH, 10, now=NOW, claim_timeout=TIMEOUT) == []


def test_a_released_row_is_claimed_again_in_list_order(store: Store) -> None:
    # On PostgreSQL the released row's new version lies after the others in the table: a claim
    # still takes the list's rows in id order, and returns them in that order.
    add_rows(store, "e1", entries(4), now=NOW)
    assert [row.email for row in store.ledger.claim("e1", STALE, 1, now=NOW, claim_timeout=TIMEOUT)] == [
        "r0@example.org"
    ]
    store.ledger.release("e1", STALE)
    again = store.ledger.claim("e1", FRESH, 2, now=NOW, claim_timeout=TIMEOUT)
    assert [(row.email, row.attempts) for row in again] == [("r0@example.org", 1), ("r1@example.org", 1)]
    rest = store.ledger.claim("e1", FRESH, 5, now=NOW, claim_timeout=TIMEOUT)
    assert [row.email for row in rest] == ["r2@example.org", "r3@example.org"]


def test_a_claims_done_drops_that_claim_and_not_the_owners_next(store: Store) -> None:
    # A sender writes one batch's outcomes while it already holds the next (on a server).
    add_rows(store, "e1", entries(4), now=NOW)
    first = store.ledger.claim("e1", STALE, 2, now=NOW, claim_timeout=TIMEOUT)
    second = store.ledger.claim("e1", STALE, 2, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.finish(STALE, [(row.id, SENT, "m", None) for row in first], now=NOW, done=[first[0].id])
    assert [statuses(store, "e1")[row.email][:1] for row in second] == [(SENDING,), (SENDING,)]
    assert store.ledger.claim("e1", FRESH, 4, now=NOW, claim_timeout=TIMEOUT) == []


def test_a_claim_in_another_edition_does_not_cut_this_ones_batch_short(store: Store) -> None:
    # Added in turns, so the two editions' ids interleave: e1 1, e2 2, e1 3, e2 4 …
    for n in range(3):
        for edition in ("e1", "e2"):
            add_rows(store, edition, [Entry(f"r{n}@example.org", "", "all")], now=NOW, chunk=1)
    assert len(store.ledger.claim("e2", FRESH, 3, now=NOW, claim_timeout=TIMEOUT)) == 3
    mine = store.ledger.claim("e1", STALE, 3, now=NOW, claim_timeout=TIMEOUT)
    assert [row.email for row in mine] == [f"r{n}@example.org" for n in range(3)]


@pytest.mark.parametrize("size", [2, 20], ids=["per-row path", "grouped path"])
def test_each_recorded_outcome_counts_one_attempt(store: Store, size: int) -> None:
    add_rows(store, "e1", entries(size), now=NOW)
    for attempt in (1, 2, 3):
        claimed = store.ledger.claim("e1", FRESH, size, now=NOW, claim_timeout=TIMEOUT)
        assert {row.attempts for row in claimed} == {attempt}  # the attempt this claim is
        results = [(row.id, FAILED, None, "451 later") for row in claimed]
        store.ledger.finish(FRESH, results, now=NOW, done=[claimed[0].id])
        assert store.ledger.retry_failed("e1", now=NOW) == size
    # Taken and given back without an outcome: not an attempt.
    store.ledger.claim("e1", FRESH, size, now=NOW, claim_timeout=TIMEOUT)
    store.ledger.release("e1", FRESH)
    assert {
        row.attempts for row in store.ledger.claim("e1", FRESH, size, now=NOW, claim_timeout=TIMEOUT)
    } == {4}


def test_a_claim_looks_past_where_the_last_ended_first_then_from_the_start(store: Store) -> None:
    add_rows(store, "e1", [*entries(3, variant="a"), *entries(2, prefix="s", variant="b")], now=NOW)
    a0, a1, a2 = (store.ledger.row("e1", f"r{n}@example.org") for n in range(3))
    assert a0 and a1 and a2
    # Past a1 in the run index's order: a2, before b's rows.
    (past,) = store.ledger.claim("e1", FRESH, 5, now=NOW, after=("a", a1.id))
    assert past.email == a2.email and past.position == ("a", a2.id)
    later = store.ledger.claim("e1", FRESH, 5, now=NOW, after=past.position)
    assert [row.email for row in later] == ["s0@example.org", "s1@example.org"]
    # Nothing past the last: the rows before it, from the start.
    again = store.ledger.claim("e1", FRESH, 5, now=NOW, after=later[-1].position)
    assert [row.email for row in again] == [a0.email, a1.email]
    assert store.ledger.claim("e1", FRESH, 5, now=NOW, after=again[-1].position) == []


def test_counts_tell_as_sending_only_the_claimed_rows_within_a_claims_ids(store: Store) -> None:
    """A claim names a range of ids; rows of another variant or edition may lie between."""
    for n in range(3):
        add_rows(
            store,
            "e1",
            entries(1, prefix=f"a{n}-", variant="a") + entries(1, prefix=f"b{n}-", variant="b"),
            now=NOW,
            chunk=1,
        )
        add_rows(store, "e2", entries(1, prefix=f"a{n}-", variant="a"), now=NOW)
    claimed = store.ledger.claim("e1", STALE, 3, now=NOW, claim_timeout=TIMEOUT)
    assert [row.variant for row in claimed] == ["a"] * 3
    assert store.ledger.counts("e1") == Counter({SENDING: 3, PENDING: 3})
    assert store.ledger.counts("e2") == Counter({PENDING: 3})
