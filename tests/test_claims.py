"""Claiming one batch ahead (digest.send.claims): the same rows in the same order, and a batch
claimed ahead but never sent is given back untried, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest

from digest.send.claims import ClaimAhead
from digest.state import Store
from digest.state.ledger import PENDING, SENDING, SENT, Claimed, Ledger
from tests.conftest import NOW, MakeProject
from tests.ledger_rows import Entry, add_rows
from tests.sendgrid_sink import Reply, SendGridSink, errors
from tests.test_faults_transports import EDITION, READERS, Script, send_via_sendgrid, sendgrid_project

pytest_plugins = ["tests.pgserver"]

OWNER = "elsewhere:1:t1:aaaaaaaa"


def fill(store: Store, count: int) -> None:
    variants = ("business", "europe", "ukraine")
    readers = [Entry(f"r{n:02d}@example.org", f"R {n}", variants[n % 3]) for n in range(count)]
    add_rows(store, "e1", readers, now=NOW)


def clock() -> dt.datetime:
    return NOW


def drain(claims: ClaimAhead) -> list[list[Claimed]]:
    batches = []
    while batch := claims.take():
        batches.append(batch)
    return batches


@pytest.mark.parametrize("ahead", [True, False])
def test_the_batches_are_the_ledgers_own_claims_in_order(store: Store, ahead: bool) -> None:
    fill(store, 20)
    with ClaimAhead(store.ledger, "e1", OWNER, 4, clock, ahead=ahead) as claims:
        batches = drain(claims)
    # Each batch one variant, the variants one after another, each in the list's order.
    keys = [[(row.variant, row.email) for row in batch] for batch in batches]
    assert [len(batch) for batch in batches] == [4, 3, 4, 3, 4, 2]
    assert [key for batch in keys for key in batch] == sorted(key for batch in keys for key in batch)
    assert all(len({variant for variant, _ in batch}) == 1 for batch in keys)
    assert all(row.attempts == 1 for batch in batches for row in batch)
    assert store.ledger.counts("e1") == {SENDING: 20}


def test_a_batch_claimed_ahead_and_never_taken_is_given_back_untried(store: Store) -> None:
    fill(store, 12)
    claims = ClaimAhead(store.ledger, "e1", OWNER, 4, clock, ahead=True)
    first = claims.take()
    claims.close()
    assert store.ledger.counts("e1") == {SENDING: 4, PENDING: 8}
    assert {store.ledger.row("e1", row.email).status for row in first} == {SENDING}  # type: ignore[union-attr]
    # The rows claimed ahead (the next variant's) are pending again, their claim not an attempt.
    again = store.ledger.claim("e1", OWNER, 12, now=NOW, claim_timeout=dt.timedelta(minutes=10))
    assert [row.variant for row in first] == ["business"] * 4
    assert [(row.variant, row.attempts) for row in again] == [("europe", 1)] * 4
    claims.close()  # twice: nothing more to give back
    assert store.ledger.counts("e1") == {SENDING: 8, PENDING: 4}


def test_ahead_by_default_only_on_a_database_server(store: Store) -> None:
    fill(store, 6)
    with ClaimAhead(store.ledger, "e1", OWNER, 2, clock) as claims:
        claims.take()
        assert claims.ahead == (store.engine.dialect.name == "postgresql")
    # Whatever was claimed ahead went back when the claims closed.
    assert store.ledger.counts("e1") == {SENDING: 2, PENDING: 4}


class FailingLedger(Ledger):
    """The ledger, with its second claim failing (a database that went away mid-send)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.engine)
        self.calls = 0
        self.in_thread: list[str] = []

    def claim(self, *args: object, **kwargs: object) -> list[Claimed]:
        self.calls += 1
        self.in_thread.append(threading.current_thread().name)
        if self.calls == 2:
            raise RuntimeError("the database went away")
        return super().claim(*args, **kwargs)  # type: ignore[arg-type]


def test_a_failed_claim_ahead_is_raised_when_its_batch_is_wanted(store: Store) -> None:
    fill(store, 6)
    ledger = FailingLedger(store)
    claims = ClaimAhead(ledger, "e1", OWNER, 2, clock, ahead=True)
    assert len(claims.take()) == 2
    with pytest.raises(RuntimeError, match="went away"):
        claims.take()
    claims.close()
    assert ledger.in_thread[0] == threading.current_thread().name
    assert ledger.in_thread[1].startswith("digest-claim")


def test_closing_after_a_failed_claim_ahead_gives_back_nothing_and_raises_nothing(store: Store) -> None:
    fill(store, 6)
    ledger = FailingLedger(store)
    claims = ClaimAhead(ledger, "e1", OWNER, 2, clock, ahead=True)
    first = claims.take()
    claims.close()  # the send stopped: the error to tell is its own, not the claim's
    store.ledger.finish(OWNER, [(row.id, SENT, "m", None) for row in first], now=NOW)
    assert store.ledger.counts("e1") == {SENT: 2, PENDING: 4}


def test_a_send_on_postgresql_stopped_by_an_error_leaves_nothing_claimed(
    make_project: MakeProject, postgres_url: str
) -> None:
    """The whole send on a database server, where it claims ahead: SendGrid takes the first
    request and refuses the key on the second, while the third batch was claimed ahead."""
    script = Script(Reply(202), Reply(401, errors("The provided authorization grant is invalid")))
    with SendGridSink(default=script) as sink:
        project = sendgrid_project(make_project, sink, READERS)
        text = project.read_text().replace(
            'url = "sqlite:///state/digest.sqlite3"', f'url = "{postgres_url}"'
        )
        project.write_text(text)

        stopped = send_via_sendgrid(project)
        assert stopped.exit_code == 1 and f"{EDITION}: stopped by the error below: sent 2" in stopped.stderr
        with Store(postgres_url).migrate() as store:
            rows = [store.ledger.row(EDITION, address) for address in READERS]
            assert [row.status for row in rows if row] == [SENT] * 2 + [PENDING] * 6
            # The refused batch was tried once; nothing after it was: the batch claimed ahead
            # went back untried. (Claimed again here, each row counts one attempt more.)
            again = store.ledger.claim(EDITION, OWNER, 8, now=NOW, claim_timeout=dt.timedelta(0))
            assert [(row.email, row.attempts) for row in again] == list(
                zip(READERS[2:], [2, 2, 1, 1, 1, 1], strict=True)
            )
            store.ledger.release(EDITION, OWNER, now=NOW)

        resumed = send_via_sendgrid(project)
    assert resumed.exit_code == 0, resumed.stderr
    assert script.accepted() == Counter(READERS)
