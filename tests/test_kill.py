"""`kill -9` of a sender at ten random moments of one send, each followed by a resume (issue 6).

One list goes out over a real SMTP server (tests/smtpd.py) from real `digest send` processes
on a real SQLite ledger. A seeded plan picks ten moments to kill the sender with SIGKILL: a
few during start-up (imports, freezing the edition, filling the ledger, opening the
connections), the rest after a random number of messages, inside a batch or between two.
Every kill is followed by a resume, which is itself killed at the next moment; after the tenth
kill a last resume runs to the end.

What is checked is the README's promise (Sending): everybody gets the edition, and the only
messages that go out twice are those in flight at a kill, which the server took but the ledger
had not yet recorded as sent: at most one per connection, as with a mail server's own queue
(issue 14). They are sent again on resume with the same Message-ID. The test measures that
window at the server for every kill, checks that the ledger explains each resent message, and
bounds the window by the number of connections.

Each failure message includes the seed. `DIGEST_KILL_SEED=<seed>` replays the same plan. The
kills still land wherever the machine's timing puts them, so a replay is close, not identical.
`pytest -s` prints the measured window for each kill.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from digest.config import SmtpOptions, load_config
from digest.send.transports import create_transport
from tests.conftest import MakeProject
from tests.smtpd import SmtpServer
from tests.test_send import digest_process, fresh_feeds, server, smtp_project

__all__ = ["server"]

READERS = 600
KILLS = 10
CONNECTIONS = 2
# Kill 1 is always a start-up kill. Only a sender that has not yet frozen the edition and
# filled the ledger can die in those steps, and before kill 1 no sender has.
STARTUP_KILLS = 3
# Start-up kills land this many seconds after the spawn at most. That is about the time a sender
# here takes to its first message (imports ~0.45 s, freeze, ledger fill, connections ~0.75 s).
# A start-up kill also lands no later than the first message.
STARTUP = 1.0
# A mid-send kill lands a random 0–20 ms after the sender's n-th message. It also lands before
# the (n + LATE_CAP)-th message, so the plan cannot run out of readers before the tenth kill.
LATE_DELAY = 0.02
LATE_CAP = 8
# The server waits this long before each 250. With that latency the kill lands in the middle
# of a batch, not only at its edges, and it sometimes lands during a DATA exchange.
SERVER_LATENCY = 0.005
TIMEOUT = 30.0


@dataclass(frozen=True)
class Moment:
    """When to kill one sender: after ``after`` messages from it (0: during start-up), ``delay`` s later."""

    after: int
    delay: float

    def __str__(self) -> str:
        if self.after == 0:
            return f"start-up, {self.delay:.2f} s"
        return f"message {self.after} +{self.delay * 1000:.0f} ms"


@dataclass
class Life:
    """One sender process, from spawn to its death, and what it left behind."""

    pid: int
    first: int  # index of its first message in server.messages
    last: int = 0  # one past its last message
    seconds: float = 0.0
    returncode: int | None = None
    frozen: bool = False
    ledger_rows: int = 0
    in_flight: frozenset[str] = frozenset()  # rows it still held as "sending" when it died

    @property
    def delivered(self) -> int:
        return self.last - self.first


def kill_plan(rng: random.Random, max_batch: int) -> list[Moment]:
    rest = [True] * (STARTUP_KILLS - 1) + [False] * (KILLS - STARTUP_KILLS)
    rng.shuffle(rest)
    # Mid-send kills go up to one and a half batches into a sender's life. They land inside its
    # first claim, which resends the last kill's window, in the fresh batch after it, and on the
    # boundary between the two, where the sender finishes one claim and makes the next.
    most = max_batch * 3 // 2
    return [
        Moment(0, rng.uniform(0, STARTUP))
        if startup
        else Moment(rng.randint(1, most), rng.uniform(0, LATE_DELAY))
        for startup in [True, *rest]
    ]


def kill_at(process: subprocess.Popen[str], moment: Moment, delivered: Callable[[], int], why: str) -> float:
    """SIGKILL ``process`` at ``moment``; the seconds it lived."""
    start = time.monotonic()
    reached: float | None = None
    while True:
        now = time.monotonic()
        count = delivered()
        if moment.after == 0:
            due = now - start >= moment.delay or count >= 1
        else:
            if reached is None and count >= moment.after:
                reached = now
            due = reached is not None and (now - reached >= moment.delay or count >= moment.after + LATE_CAP)
        if due:
            break
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(
                f"the sender exited ({process.returncode}) before its kill {why}\n{out}{err}"
            )
        assert now - start < TIMEOUT, f"the kill moment {moment} never came {why}"
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)
    return time.monotonic() - start


def settle(server: SmtpServer) -> int:
    """How many messages the server holds, once a killed sender's last DATA is stored or dropped."""
    count, since = len(server.messages), time.monotonic()
    while time.monotonic() - since < 0.1:
        time.sleep(0.005)
        if len(server.messages) != count:
            count, since = len(server.messages), time.monotonic()
    return count


def query(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows of ``sql``. Returns none if a sender died before it created the database or its tables."""
    if not db.exists():
        return []
    with closing(sqlite3.connect(db, timeout=TIMEOUT)) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def phase(life: Life) -> str:
    """Where the sender was when it died, as its traces in the database and the server tell."""
    if not life.frozen:
        return "start-up: edition not frozen"
    if not life.ledger_rows:
        return "start-up: ledger not filled"
    if life.in_flight:
        return f"in a batch of {len(life.in_flight)}"
    if not life.delivered:
        return "start-up: before its first claim"
    return "between batches"


def test_kill_9_at_ten_random_moments_then_resume_sends_everyone_once_but_the_in_flight_window(
    make_project: MakeProject, server: SmtpServer
) -> None:
    seed = int(os.environ.get("DIGEST_KILL_SEED") or random.SystemRandom().randrange(2**32))
    why = f"(seed {seed}: rerun with DIGEST_KILL_SEED={seed})"
    rng = random.Random(seed)
    readers = [f"reader{n:04d}@example.org" for n in range(READERS)]
    csv = "email,name\n" + "".join(f"{address},Reader {n}\n" for n, address in enumerate(readers))
    project = smtp_project(make_project, server, csv=csv, connections=CONNECTIONS)
    fresh_feeds(project)
    db = project.parent / "state" / "digest.sqlite3"

    # The bounds are taken from the code. The sender loops claim → transport.send, one claim
    # at a time, and a claim is at most transport.max_batch rows (20 per connection for SMTP):
    # at a kill, those are the only rows it holds. Within the claim each connection records
    # its message's outcome (digest.send.recording) before it sends its next one, so at most
    # one message per connection can have been accepted without a record. A resume takes the
    # rows back at once: ledger._release_abandoned sees that the owner's pid is gone
    # (state/owner.py), so it does not wait CLAIM_TIMEOUT. It sends the unrecorded ones again,
    # and those resends are the window.
    config = load_config(project)
    mail = config.settings.transports["mail"]
    max_batch = create_transport(mail, config.root, {}).max_batch
    assert isinstance(mail, SmtpOptions) and mail.connections == CONNECTIONS
    plan = kill_plan(rng, max_batch)
    # Check the plan can never reach the end of the list before the tenth kill. A killed sender
    # delivers at most after + LATE_CAP messages, plus one or two while the signal travels, and
    # the sum stays at least 90 below READERS.
    assert sum(m.after + LATE_CAP + 1 for m in plan) < READERS, f"the plan outruns the list {why}"

    server.slow(SERVER_LATENCY)
    started = time.monotonic()
    lives: list[Life] = []
    for moment in plan:
        life = Life(pid=0, first=settle(server))
        process = digest_process(project)
        life.pid = process.pid
        life.seconds = kill_at(process, moment, lambda life=life: len(server.messages) - life.first, why)
        life.returncode = process.returncode
        life.last = settle(server)
        life.frozen = bool(query(db, "SELECT 1 FROM editions"))
        life.ledger_rows = int(query(db, "SELECT count(*) FROM send_ledger")[0][0] or 0) if life.frozen else 0
        # owner_id() is host:pid:tag; the pid is how the resume knows the owner is dead.
        owner = f"{socket.gethostname()[:32]}:{life.pid}:%"
        held = query(
            db,
            "SELECT l.email FROM send_ledger l JOIN send_claims c ON c.edition_id = l.edition_id"
            " AND c.variant = l.variant AND l.id BETWEEN c.first_id AND c.last_id"
            " WHERE l.status = 'pending' AND c.owner LIKE ?",
            owner,
        )
        life.in_flight = frozenset(str(email) for (email,) in held)
        lives.append(life)

    final = Life(pid=0, first=settle(server))
    recorded_before = int(query(db, "SELECT count(*) FROM send_ledger WHERE status = 'sent'")[0][0] or 0)
    process = digest_process(project)
    final.pid = process.pid
    out, err = process.communicate(timeout=TIMEOUT)
    final.returncode = process.returncode
    final.last = settle(server)
    elapsed = time.monotonic() - started

    # Every killed sender was really killed, each at its own moment: none ran to the end.
    for number, life in enumerate(lives, 1):
        assert life.returncode == -signal.SIGKILL, f"kill {number}: exit {life.returncode} {why}"
    assert final.returncode == 0, f"{out}{err} {why}"
    # The last run counts what it sent itself and what the killed ones recorded before it
    # ("sent 600" alone when every kill fell inside a sender's first batch: nothing recorded).
    counted = re.search(
        r": sent ([\d,]+)(?: now \(([\d,]+) earlier\))?, skipped 0, suppressed 0, failed 0 ", out
    )
    assert counted, f"{out} {why}"
    assert sum(int(n.replace(",", "")) for n in counted.groups() if n) == READERS, f"{out} {why}"
    assert int((counted.group(2) or "0").replace(",", "")) == recorded_before, f"{out} {why}"

    messages = server.messages
    assert all(len(m.rcpt_tos) == 1 for m in messages), why  # one message per recipient
    rcpt = [m.rcpt_tos[0] for m in messages]
    assert sorted(set(rcpt)) == readers, f"someone got nothing, or a stranger got mail {why}"
    statuses = dict(query(db, "SELECT status, count(*) FROM send_ledger GROUP BY status"))
    assert statuses == {"sent": READERS}, f"{statuses} {why}"
    recorded = dict(query(db, "SELECT email, provider_id FROM send_ledger"))

    # A resend is the same message: every delivery to a reader has the Message-ID of the first
    # one. That is the ID the ledger recorded, so a receiver can drop the copy.
    first_id: dict[str, str | None] = {}
    for address, message in zip(rcpt, messages, strict=True):
        first_id.setdefault(address, message.message_id)
        assert message.message_id == first_id[address], f"{address}: a new Message-ID on resend {why}"
    assert all(recorded[a] == first_id[a] for a in readers), why

    # The window, measured at the server: each message a killed sender delivered that its
    # reader got again later. The final sender's messages are all last deliveries.
    last_delivery = {address: index for index, address in enumerate(rcpt)}
    resent = [
        {rcpt[i] for i in range(life.first, life.last) if last_delivery[rcpt[i]] != i} for life in lives
    ]
    assert all(last_delivery[rcpt[i]] == i for i in range(final.first, final.last)), why
    assert len(messages) - READERS == sum(map(len, resent)), why  # nothing else came twice
    for number, (life, again) in enumerate(zip(lives, resent, strict=True), 1):
        delivered = set(rcpt[life.first : life.last])
        # The ledger explains every resend. Those readers' rows were still "sending" under the
        # dead sender, in its one claim. Every such row that had been delivered was delivered again.
        assert again == life.in_flight & delivered, (
            f"kill {number}: resent {sorted(again - life.in_flight)[:5]} not in flight, "
            f"in flight and delivered but not resent {sorted(life.in_flight & delivered - again)[:5]} {why}"
        )
        assert len(life.in_flight) <= max_batch, f"kill {number}: {len(life.in_flight)} rows held {why}"
        assert len(again) <= CONNECTIONS, f"kill {number}: {len(again)} resent > {CONNECTIONS} {why}"

    windows = [len(again) for again in resent]
    report = [
        f"kill -9 × {KILLS}, seed {seed}: {READERS} readers, {CONNECTIONS} SMTP connections, "
        f"claim (max_batch) {max_batch}, server latency {SERVER_LATENCY * 1000:.0f} ms",
        f"{'kill':>4}  {'moment':<22} {'lived':>7} {'sent':>5}  {'phase':<32} {'resent':>6}",
    ]
    for number, (life, moment, window) in enumerate(zip(lives, plan, windows, strict=True), 1):
        report.append(
            f"{number:>4}  {moment!s:<22} {life.seconds:>6.2f}s {life.delivered:>5}  "
            f"{phase(life):<32} {window:>6}"
        )
    report.append(
        f"in-flight window: max {max(windows)} per kill (bound {CONNECTIONS}), total {sum(windows)} "
        f"over {KILLS} kills; {len(messages)} messages for {READERS} readers; final resume sent "
        f"{final.delivered}; {elapsed:.1f} s"
    )
    print("\n" + "\n".join(report))
