"""Filling an edition's ledger from the list's readers (digest.state.recipients), on SQLite and
on a real PostgreSQL server, and the send that starts while it fills (digest.send.filling)."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, insert, text, update

import digest.send.recipients
from digest.cli.send import _ProgressLine
from digest.send.filling import Filling
from digest.state import Store, recipients, schema
from digest.state.ledger_types import PENDING, SENT, SKIPPED, Status
from digest.state.recipients import SKIPPED_ERROR, Group, desk_groups, dry_counts, fill_from, fill_ledger
from tests.conftest import NOW, MakeProject
from tests.ledger_rows import Entry, add_rows
from tests.test_send import SUBSCRIBERS, run, wait_for

pytest_plugins = ["tests.pgserver"]

DESKS = [f"d{n:02d}" for n in range(16)]
EDITION = f"daily-{NOW.date().isoformat()}"


def variant_of(desks: tuple[str, ...] | None) -> str:
    return "all" if desks is None else "+".join(desks)


def add_readers(store: Store, per_desk: int) -> None:
    """``per_desk`` readers of each desk alone, and one of every desk."""
    for desk in DESKS:
        for n in range(per_desk):
            store.readers.add("daily", f"{desk}-{n}@example.org", name=f"R {n}", desks=[desk], now=NOW)
    store.readers.add("daily", "all@example.org", name="All", desks=None, now=NOW)


def ledger_rows(store: Store, edition_id: str = "e1") -> dict[str, tuple[str, str, str]]:
    """Each recipient's (variant, status, name)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT email, variant, status, name FROM send_ledger WHERE edition_id = :e"),
            {"e": edition_id},
        )
        return {email: (variant, status, name) for email, variant, status, name in rows}


def groups_of(store: Store, skipped: tuple[str, ...] = ()) -> dict[Group, Status]:
    return {
        group: SKIPPED if group.key in skipped else PENDING
        for group in desk_groups(store.engine, "daily", variant_of)
    }


def test_groups_count_the_active_readers_of_every_desks_value_of_a_variant(store: Store) -> None:
    add_readers(store, 3)
    store.readers.add("daily", "later@example.org", name="", desks=["D00"], now=NOW)
    with store.engine.begin() as conn:
        table = schema.subscribers
        conn.execute(update(table).where(table.c.email == "d01-0@example.org").values(status="unsubscribed"))
    folded = desk_groups(store.engine, "daily", lambda desks: variant_of(desks).lower())
    found = {group.key: (sorted(map(str, group.desks)), group.readers) for group in folded}
    assert found["d00"] == (['["D00"]', '["d00"]'], 4)
    assert found["d01"] == (['["d01"]'], 2)  # the one who left is not an active reader
    assert found["all"] == (["None"], 1)
    assert len(found) == 17


def test_the_fill_goes_in_by_parts_that_grow(store: Store) -> None:
    """81 readers: the first part has a sixteenth of them (all: 1, d00: 5), the next up to four
    times that (d01 to d05: 25), the last the rest."""
    add_readers(store, 5)
    groups = groups_of(store, skipped=("d15",))
    seen: list[Counter[str]] = []

    def part_in() -> None:
        seen.append(Counter(variant for variant, _, _ in ledger_rows(store).values()))

    fill_ledger(store.engine, "e1", "daily", groups, now=NOW, on_part=part_in)
    keys = sorted(group.key for group in groups)
    assert [set(part) for part in seen] == [set(keys[:2]), set(keys[:7]), set(keys)]
    assert all(count in (1, 5) for part in seen for count in part.values())
    rows = ledger_rows(store)
    assert len(rows) == 16 * 5 + 1
    assert Counter(status for _, status, _ in rows.values()) == {PENDING: 76, SKIPPED: 5}
    assert rows["d03-2@example.org"] == ("d03", PENDING, "R 2")


@pytest.mark.parametrize(
    ("readers", "parts"),
    [
        ([10] * 16, [[10], [10] * 4, [10] * 11]),  # 160: a sixteenth first, then four times that
        ([1, 1, 1, 100, 1, 1], [[1, 1, 1, 100], [1, 1]]),  # a big group ends the part it is in
        ([0, 0, 0], [[0, 0, 0]]),  # no active readers (variants with nothing today): one part
        ([5], [[5]]),
        ([10, 29, 10, 111], [[10], [29, 10, 111]]),  # 39 of a part's 40: it goes on
    ],
)
def test_parts_grow_by_readers(readers: list[int], parts: list[list[int]]) -> None:
    groups = [Group(f"v{n:02d}", (f"v{n:02d}",), count) for n, count in enumerate(readers)]
    found = list(recipients._growing(groups))
    assert [[group.readers for group in part] for part in found] == parts
    assert [group for part in found for group in part] == groups  # all of them, in order


def test_a_fill_without_parts_is_one_part_told_to_no_one(store: Store) -> None:
    """One statement: each part reads the whole list again."""
    add_readers(store, 2)
    inserts: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO SEND_LEDGER"):
            inserts.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    fill_ledger(store.engine, "e1", "daily", groups_of(store), now=NOW)
    event.remove(store.engine, "before_cursor_execute", seen)
    assert len(ledger_rows(store)) == 33 and len(inserts) == 1


def test_a_variants_rows_go_in_by_address_wherever_the_readers_lie(store: Store) -> None:
    """Readers added in the reverse order of their addresses, enough of them that PostgreSQL
    reads the table rather than its key: the ledger still has them by address (a claim sends a
    variant's rows in id order, so the list's order)."""
    emails = [f"reader-{n:03d}@example.org" for n in range(300)]
    for email in reversed(emails):
        store.readers.add("daily", email, name="", desks=["d00"], now=NOW)
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE subscribers" if conn.dialect.name == "postgresql" else "ANALYZE"))
    fill_ledger(store.engine, "e1", "daily", groups_of(store), now=NOW)
    with store.engine.connect() as conn:
        order = conn.execute(text("SELECT email FROM send_ledger ORDER BY id")).scalars().all()
    assert order == emails


def test_a_fill_gives_way_to_a_row_another_sender_added_meanwhile(store: Store) -> None:
    """The plain INSERT of a new edition's part fails on the row already there; the part goes
    in again leaving it as it is."""
    add_readers(store, 3)
    groups = groups_of(store)

    def other_sender() -> None:
        if len(ledger_rows(store)) < 10:
            with store.engine.begin() as conn:
                values = {"edition_id": "e1", "email": "d09-1@example.org", "name": "Other", "variant": "x"}
                conn.execute(insert(schema.ledger).values(**values, status=SENT, updated_at=NOW))

    fill_ledger(store.engine, "e1", "daily", groups, now=NOW, on_part=other_sender)
    rows = ledger_rows(store)
    assert len(rows) == 16 * 3 + 1
    assert rows["d09-1@example.org"] == ("x", SENT, "Other")
    assert rows["d09-0@example.org"] == ("d09", PENDING, "R 0")


def test_a_second_fill_adds_the_new_readers_and_leaves_the_rows_there(store: Store) -> None:
    add_readers(store, 2)
    fill_ledger(store.engine, "e1", "daily", groups_of(store), now=NOW)
    with store.engine.begin() as conn:
        conn.execute(
            update(schema.ledger).where(schema.ledger.c.email == "d00-0@example.org").values(status=SENT)
        )
    store.readers.add("daily", "new@example.org", name="New", desks=["d04"], now=NOW)
    fill_ledger(store.engine, "e1", "daily", groups_of(store), now=NOW, on_part=lambda: None)
    rows = ledger_rows(store)
    assert len(rows) == 34
    assert rows["d00-0@example.org"][1] == SENT and rows["new@example.org"] == ("d04", PENDING, "New")


def set_status(store: Store, email: str, status: str) -> None:
    with store.engine.begin() as conn:
        table = schema.subscribers
        conn.execute(update(table).where(table.c.email == email).values(status=status))


def ledger_errors(store: Store) -> dict[str, str | None]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT email, error FROM send_ledger WHERE edition_id = 'e1'"))
        return dict(rows.all())  # type: ignore[arg-type]


def test_each_reader_goes_in_as_their_status_and_variant_say(store: Store) -> None:
    """Active readers pending (skipped where their variant has no stories), readers who left
    suppressed with why; unconfirmed sign-ups and other lists' readers not at all."""
    add_readers(store, 2)
    set_status(store, "d01-0@example.org", "unsubscribed")
    set_status(store, "d02-0@example.org", "bounced")
    set_status(store, "d03-0@example.org", "pending")
    store.readers.add("weekly", "d04-9@example.org", name="Other list", desks=["d04"], now=NOW)
    groups = groups_of(store, skipped=("d05",))
    assert {group.key: group.readers for group in groups}["d01"] == 1
    assert "d03" in {group.key for group in groups}  # its other reader is active
    fill_ledger(store.engine, "e1", "daily", groups, now=NOW)
    rows, errors = ledger_rows(store), ledger_errors(store)
    assert "d03-0@example.org" not in rows and "d04-9@example.org" not in rows
    assert len(rows) == 16 * 2 + 1 - 1
    assert (rows["d01-0@example.org"][1], errors["d01-0@example.org"]) == (
        "suppressed",
        "reader unsubscribed",
    )
    assert (rows["d02-0@example.org"][1], errors["d02-0@example.org"]) == ("suppressed", "reader bounced")
    assert (rows["d05-1@example.org"][1], errors["d05-1@example.org"]) == (SKIPPED, SKIPPED_ERROR)
    assert (rows["d06-1@example.org"][1], errors["d06-1@example.org"]) == (PENDING, None)


def test_only_the_lists_readers_who_can_receive_make_its_groups(store: Store) -> None:
    store.readers.add("daily", "a@example.org", name="", desks=["d00"], now=NOW)
    store.readers.add("daily", "b@example.org", name="", desks=["d01"], now=NOW)
    store.readers.add("weekly", "c@example.org", name="", desks=["d02"], now=NOW)
    set_status(store, "b@example.org", "pending")
    assert [(g.key, g.readers) for g in desk_groups(store.engine, "daily", variant_of)] == [("d00", 1)]


def test_rows_go_in_by_variant_then_address_each_moment_as_given(store: Store) -> None:
    for email, desk in [("zed@example.org", "d00"), ("amy@example.org", "d01"), ("kim@example.org", "d00")]:
        store.readers.add("daily", email, name="", desks=[desk], now=NOW)
    kyiv = (NOW + dt.timedelta(hours=1)).astimezone(ZoneInfo("Europe/Kyiv"))
    fill_ledger(store.engine, "e1", "daily", groups_of(store), now=kyiv)
    with store.engine.connect() as conn:
        order = conn.execute(text("SELECT email FROM send_ledger ORDER BY id")).scalars().all()
    assert order == ["kim@example.org", "zed@example.org", "amy@example.org"]
    row = store.ledger.row("e1", "amy@example.org")
    assert row is not None and row.updated_at == kyiv


def test_a_fill_of_few_variants_sends_one_first(store: Store) -> None:
    for desk in DESKS[:4]:
        store.readers.add("daily", f"{desk}@example.org", name="", desks=[desk], now=NOW)
    seen: list[int] = []
    fill_ledger(
        store.engine,
        "e1",
        "daily",
        groups_of(store),
        now=NOW,
        on_part=lambda: seen.append(len(ledger_rows(store))),
    )
    assert seen == [1, 4]


def test_desks_values_beyond_a_statements_share_go_in_by_more_statements(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recipients, "_VALUES", 3)
    add_readers(store, 2)
    fill_ledger(store.engine, "e1", "daily", groups_of(store, skipped=("d07",)), now=NOW)
    rows = ledger_rows(store)
    assert len(rows) == 33 and Counter(status for _, status, _ in rows.values()) == {PENDING: 31, SKIPPED: 2}


def test_parts_hold_at_most_a_statements_share_of_desks_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipients, "_VALUES", 3)
    sizes = {"a": 2, "b": 1, "c": 1, "d": 3, "e": 1, "f": 2, "g": 4}
    groups = [Group(key, tuple(f"v{n}" for n in range(size)), 0) for key, size in sizes.items()]
    parts = [[group.key for group in part] for part in recipients._parts(groups)]
    assert parts == [["a", "b"], ["c"], ["d"], ["e", "f"], ["g"]]


def test_the_fill_gives_postgresql_the_ledgers_statistics(store: Store) -> None:
    """Without them a claim's plan sorts every row of a new edition; SQLite is spared the time.
    A new edition's fill analyzes the ledger, a fill of one that had rows does not."""
    add_rows(store, "e0", [Entry("earlier@example.org", "", "d00")], now=NOW)  # another edition
    add_readers(store, 2)
    fill_ledger(store.engine, "e1", "daily", groups_of(store), now=NOW)
    add_rows(store, "e1", [Entry("late@example.org", "", "d00")], now=NOW)
    fill_ledger(store.engine, "e1", "daily", groups_of(store), now=NOW)  # adds nobody
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            analyzed = conn.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = 'send_ledger'")
            ).scalar()
            assert analyzed == 34  # as the first fill left it: its 33 rows and e0's
        else:
            assert not conn.execute(text("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")).all()


DRY = [
    # (reader, its status, suppressed for, in the ledger already as, expected outcome)
    ("d00-0@example.org", "active", None, None, PENDING),
    ("d00-1@example.org", "active", "daily", None, "suppressed"),
    ("d01-0@example.org", "active", "*", None, "suppressed"),
    ("d01-1@example.org", "active", "weekly", None, PENDING),
    ("d02-0@example.org", "unsubscribed", None, None, "suppressed"),
    ("d02-1@example.org", "active", None, SENT, SENT),
    ("d03-0@example.org", "active", None, PENDING, PENDING),
    ("d05-0@example.org", "active", None, None, SKIPPED),
]


def test_a_dry_run_counts_what_the_fill_and_the_send_would_do(store: Store) -> None:
    add_readers(store, 2)
    for email, status, suppressed, ledger, _ in DRY:
        set_status(store, email, status)
        if suppressed:
            with store.engine.begin() as conn:
                values = {"email": email, "list_name": suppressed, "reason": "unsubscribed", "source": "test"}
                conn.execute(insert(schema.suppressions).values(**values, created_at=NOW))
        if ledger:
            add_rows(store, "e1", [Entry(email, "", email[:3], status=ledger)], now=NOW)
    add_rows(store, "e2", [Entry("d06-0@example.org", "", "d06", status=SENT)], now=NOW)
    counts, variants = dry_counts(store.engine, "e1", "daily", groups_of(store, skipped=("d05",)))
    expected = Counter(outcome for *_, outcome in DRY)
    others = 16 * 2 + 1 - len(DRY) - 1  # the rest pending; d05's other reader skipped
    assert counts == expected + Counter({PENDING: others, SKIPPED: 1})
    assert variants["d00"] == 1 and variants["d01"] == 1 and variants["d03"] == 2 and variants["d06"] == 2
    assert sum(variants.values()) == counts[PENDING] and "d05" not in variants and "d02" not in variants


# -- Filling ---------------------------------------------------------------------------------


def test_more_waits_for_the_next_part_then_for_the_end() -> None:
    go = [threading.Event() for _ in range(3)]

    def fill(*, on_part: object) -> None:
        assert callable(on_part)
        for step in go[:2]:
            step.wait(5)
            on_part()
        go[2].wait(5)

    filling = Filling(fill)
    assert not filling.started
    filling.start()
    try:
        assert filling.started and filling.parts == 0 and not filling.over
        go[0].set()
        assert filling.more(0) is True and filling.parts == 1
        go[1].set()
        assert filling.more(1) is True
        go[2].set()
        assert filling.more(2) is False and filling.over
    finally:
        for step in go:
            step.set()
        filling.close()


def test_the_fills_error_is_raised_by_more_and_wait() -> None:
    def fill(*, on_part: object) -> None:
        raise RuntimeError("server gone")

    filling = Filling(fill)
    filling.start()
    with pytest.raises(RuntimeError, match="server gone"):
        filling.more(0)
    with pytest.raises(RuntimeError, match="server gone"):
        filling.wait()
    filling.close()


def test_a_fill_run_now_is_over_and_told_nothing() -> None:
    told: list[object] = []
    filling = Filling(lambda *, on_part: told.append(on_part))
    filling.run()
    assert told == [None] and filling.over and filling.more(0) is False and not filling.started
    failing = Filling(lambda *, on_part: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.run()
    with pytest.raises(ZeroDivisionError):
        failing.wait()


# -- a send while the ledger fills -----------------------------------------------------------


def test_a_send_on_postgresql_sends_the_first_part_while_the_rest_fills(
    make_project: MakeProject, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(replace={'url = "sqlite:///state/digest.sqlite3"': f'url = "{postgres_url}"'})
    (project.parent / "subscribers" / "daily.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    sent_while_filling: list[int] = []

    def slow_fill(*args: Any, on_part: Callable[[], None] | None, **kwargs: Any) -> None:
        def part_in() -> None:
            assert on_part is not None
            on_part()
            if not sent_while_filling:  # after the first part: wait for the sender to send it
                with Store(postgres_url) as store:
                    wait_for(lambda: store.ledger.counts(EDITION).get(SENT, 0) > 0, timeout=30)
                    sent_while_filling.append(store.ledger.counts(EDITION)[SENT])

        fill_from(*args, on_part=part_in, **kwargs)

    # A first import: the ledger fills from its staged rows before they go in as readers.
    monkeypatch.setattr(digest.send.recipients, "fill_from", slow_fill)
    progress: list[tuple[int, int]] = []
    monkeypatch.setattr(_ProgressLine, "__call__", lambda _self, done, total: progress.append((done, total)))
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    with Store(postgres_url).migrate() as store:
        counts = store.ledger.counts(EDITION)
    assert counts == {SENT: 4, "suppressed": 1}
    assert sent_while_filling and 0 < sent_while_filling[0] < 4
    # The total, while the ledger fills, is the active readers of the variants with stories.
    assert progress and {total for _, total in progress} == {4} and progress[-1][0] == 4
