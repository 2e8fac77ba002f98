"""Several `digest send` processes on one list share the work through PostgreSQL: nobody twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

from sqlalchemy import text

from digest.config import load_config
from digest.send.run import Sender
from digest.state import Store
from digest.statefile import state_url
from tests.conftest import NOW, MakeProject
from tests.smtpd import SmtpServer
from tests.test_send import SECRET, fresh_feeds, server, smtp_project, wait_for

pytest_plugins = ["tests.pgserver"]
__all__ = ["server"]

RECIPIENTS = 20_000


def test_three_senders_on_postgresql_send_every_recipient_exactly_once(
    make_project: MakeProject, server: SmtpServer, postgres_url: str
) -> None:
    csv = "email,name,desks\n" + "".join(
        f"reader{n:05d}@example.org,Reader {n},{'Business' if n % 3 == 0 else ''}\n"
        for n in range(RECIPIENTS)
    )
    project = smtp_project(make_project, server, csv=csv, connections=2)
    project.write_text(
        project.read_text().replace('url = "sqlite:///state/digest.sqlite3"', f'url = "{postgres_url}"')
    )
    fresh_feeds(project)
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    # Nothing is accepted until all three have claimed a batch: on a busy machine one sender
    # may take seconds longer to start, and would otherwise find the list nearly sent.
    server.hold()
    senders = [
        subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", str(project), "send", "--list", "daily"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        with Store(postgres_url).migrate() as store:
            wait_for(lambda: len(owners_sending(store)) == 3, timeout=120)
    finally:
        server.release()
    results = [sender.communicate(timeout=600) for sender in senders]
    for sender, (out, err) in zip(senders, results, strict=True):
        assert sender.returncode == 0, out + err
    counts = Counter(address for message in server.messages for address in message.rcpt_tos)
    assert len(counts) == RECIPIENTS
    assert set(counts.values()) == {1}, [a for a, c in counts.items() if c > 1][:10]
    with Store(postgres_url).migrate() as store, store.engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM send_ledger GROUP BY status")).all())
        editions = conn.execute(text("SELECT count(*) FROM editions")).scalar()
        shares = conn.execute(text("SELECT batch_id, count(*) FROM send_ledger GROUP BY batch_id")).all()
    assert statuses == {"sent": RECIPIENTS}
    assert editions == 1  # frozen once, whoever got there first
    # Each sender did a fair part of the work (they start a moment apart, so not a third each).
    assert len(shares) == 3 and min(count for _, count in shares) >= RECIPIENTS // 10, shares


def owners_sending(store: Store) -> set[str]:
    """The senders holding a claimed batch right now."""
    with store.engine.connect() as conn:
        query = text("SELECT DISTINCT owner FROM send_claims")
        return set(conn.execute(query).scalars())


def test_a_sender_that_finds_the_edition_frozen_under_it_sends_that_edition(
    make_project: MakeProject,
) -> None:
    """The race three senders run: B looks for a frozen edition (none yet), A freezes it and marks
    its stories seen, B's own build then finds nothing new. B must send A's edition, not nothing."""
    project = make_project()
    config = load_config(project)
    with Store(state_url(config)).migrate() as store:
        first = Sender(config, "daily", store, now=NOW).edition(freeze=True)
        late = Sender(config, "daily", store, now=NOW)
        original = store.editions.frozen
        calls: list[str] = []

        def not_yet_then_frozen(edition_id: str) -> str | None:
            calls.append(edition_id)
            return None if len(calls) == 1 else original(edition_id)

        store.editions.frozen = not_yet_then_frozen  # type: ignore[method-assign]
        edition = late.edition(freeze=True)
    assert not first.is_empty
    assert [item.id for item in edition.items] == [item.id for item in first.items]
