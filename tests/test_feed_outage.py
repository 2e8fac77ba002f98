"""A feed that is down when the edition freezes: tried again, caught up later, or waited for.

Real `digest send` (click's runner, in process, so the clock can be set) against a real HTTP
feed server (tests/httpfeeds.py) that fails on one day and recovers on the next. The
stories are written here, dated around the list's 07:00 Kyiv sends (05:00 UTC).
"""

from __future__ import annotations

import datetime as dt
import email
import json
import sqlite3
import sys
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.config import load_config
from digest.edition import build_edition
from digest.ingest.collect import Retry, collect
from digest.schedule import job
from tests.conftest import MakeProject
from tests.httpfeeds import FeedServer, Request, Route

# The module, not the function that digest.ingest re-exports under the same name.
collect_module = sys.modules["digest.ingest.collect"]
UTC = dt.UTC
DAY_ONE = dt.datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 07:00 in Kyiv: the list's send
DAY_TWO = DAY_ONE + dt.timedelta(days=1)
DAY_THREE = DAY_TWO + dt.timedelta(days=1)

# The wire feed's stories: id → (title, published). Day one's edition covers the 24 hours
# before DAY_ONE, day two's the 24 hours before DAY_TWO.
WIRE = {
    "wire-1": ("Grain corridor reopens after a week of talks", DAY_ONE - dt.timedelta(hours=17)),
    "wire-2": ("Night shift at the rail depot keeps trains moving", DAY_ONE - dt.timedelta(hours=3)),
    "wire-3": ("Port cranes back in service before the frost", DAY_ONE + dt.timedelta(hours=7)),
}
# The local business feed never fails.
LEDGER = {
    "desk-1": ("Small lenders brace for a cold quarter", DAY_ONE - dt.timedelta(hours=9)),
    "desk-2": ("Bakery chain doubles its night deliveries", DAY_ONE + dt.timedelta(hours=10)),
}


def rss(stories: dict[str, tuple[str, dt.datetime]], category: str) -> bytes:
    items = "".join(
        f"<item><title>{title}</title><link>https://news.example.org/{ident}</link>"
        f'<guid isPermaLink="false">{ident}</guid><category>{category}</category>'
        f"<pubDate>{email.utils.format_datetime(published)}</pubDate>"
        "<description>Written for the outage tests.</description></item>"
        for ident, (title, published) in stories.items()
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{category}</title>{items}</channel></rss>'.encode()


class Wire:
    """The wire feed's server: down (with a given status) or up, switched by the test."""

    def __init__(self, server: FeedServer) -> None:
        self.status = 200
        self.fail_next = 0  # fail this many requests, then answer
        self.url = server.route("/wire.xml", self.answer)
        self.requests = lambda: server.requests_for("/wire.xml")

    def answer(self, _request: Request) -> Route:
        if self.fail_next:
            self.fail_next -= 1
            return Route(status=503, body=b"busy")
        if self.status != 200:
            return Route(status=self.status, body=b"down")
        return Route(body=rss(WIRE, "Ukraine"), headers={"Content-Type": "application/rss+xml"})


@pytest.fixture
def wire() -> Iterator[Wire]:
    with FeedServer() as server:
        yield Wire(server)


def outage_project(
    make_project: MakeProject, wire: Wire, *, fetch: str = "retry_for = 0\n", lists: str = ""
) -> Path:
    """The wire feed over HTTP, a local business feed, and [fetch] lines (default: no retries)."""
    feeds = (
        f'[[feeds]]\nsource = "{wire.url}"\ndesk = "Ukraine"\nname = "Wire"\n\n'
        '[[feeds]]\nsource = "feeds/ledger.xml"\ndesk = "Business"\nname = "Ledger"\n'
    )
    project = make_project(
        replace={
            '[[feeds]]\nsource = "feeds/world.xml"\ndesk = "Europe"\n\n'
            '[[feeds]]\nsource = "feeds/business.atom"\ndesk = "Business"\n\n'
            '[[feeds]]\nsource = "feeds/culture.json"\ndesk = "Culture"\n': feeds,
            'transport = "outbox"\n': f'transport = "outbox"\n{lists}',
        },
        extra=f"\n[fetch]\ntimeout = 2\n{fetch}",
    )
    (project.parent / "feeds" / "ledger.xml").write_bytes(rss(LEDGER, "Business"))
    return project


def run_at(moment: dt.datetime, project: Path, *args: str) -> Result:
    with time_machine.travel(moment, tick=False):
        return CliRunner().invoke(cli, ["--config", str(project), *args])


def frozen(project: Path, edition_id: str) -> dict[str, object]:
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        row = db.execute("SELECT content FROM editions WHERE id = ?", (edition_id,)).fetchone()
    assert row is not None, f"{edition_id} was not frozen"
    return dict(json.loads(row[0]))


def story_ids(edition: dict[str, object]) -> list[str]:
    desks = edition["desks"]
    assert isinstance(desks, list)
    return sorted(item["id"] for desk in desks for item in desk["items"])


def mailed_titles(project: Path, day: str) -> str:
    (message,) = (project.parent / "outbox" / f"daily-{day}").glob("*.eml")
    parsed = email.message_from_bytes(message.read_bytes(), policy=policy.default)
    body = parsed.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def gaps(project: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        return list(db.execute("SELECT feed, edition_id FROM feed_gaps"))


def test_day_two_carries_the_stories_day_one_missed_once(make_project: MakeProject, wire: Wire) -> None:
    project = outage_project(make_project, wire)
    wire.status = 500
    first = run_at(DAY_ONE, project, "send", "--list", "daily")

    assert first.exit_code == 0, first.output + first.stderr
    assert "edition daily-2026-11-25 goes out without feed Wire" in first.stderr
    assert "feed Wire: the server answered HTTP 500" in first.stderr
    day_one = frozen(project, "daily-2026-11-25")
    assert story_ids(day_one) == ["desk-1"]
    assert day_one["missing_feeds"] == ["Wire"]
    assert gaps(project) == [("Wire", "daily-2026-11-25")]
    jobs = run_at(DAY_ONE + dt.timedelta(minutes=5), project, "jobs")
    assert "went out without Wire (caught up once it reads)" in jobs.output

    wire.status = 200
    second = run_at(DAY_TWO, project, "send", "--list", "daily")

    assert second.exit_code == 0, second.output + second.stderr
    day_two = frozen(project, "daily-2026-11-26")
    # wire-1 and wire-2 were published in day one's window: caught up, beside day two's own.
    assert story_ids(day_two) == ["desk-2", "wire-1", "wire-2", "wire-3"]
    assert day_two["missing_feeds"] == []
    assert (
        "feed Wire: caught up 2 stories from while it was unreadable (since 2026-11-24 05:00 UTC)"
        in (day_two["warnings"])
    )
    assert gaps(project) == []  # read again: the gap is closed
    text = mailed_titles(project, "2026-11-26")
    for title, _published in WIRE.values():
        assert text.count(title) == 1

    wire.status = 200
    third = run_at(DAY_THREE, project, "send", "--list", "daily")
    # Nothing new on day three, and the caught-up stories are not carried twice.
    assert "empty edition" in third.output, third.output + third.stderr


def test_a_gap_reaches_back_only_as_far_as_catch_up_and_says_what_it_left(
    make_project: MakeProject, wire: Wire
) -> None:
    project = outage_project(make_project, wire, fetch='retry_for = 0\ncatch_up = "36h"\n')
    wire.status = 500
    assert run_at(DAY_ONE, project, "send", "--list", "daily").exit_code == 0
    assert run_at(DAY_TWO, project, "send", "--list", "daily").exit_code == 0
    assert gaps(project) == [("Wire", "daily-2026-11-25")]  # the first miss keeps its start

    wire.status = 200
    third = run_at(DAY_THREE, project, "send", "--list", "daily")

    # 36 hours before day three is 17:00 UTC on day one: all three wire stories are older than
    # that. None is caught up, the editor is told, and with nothing else new the edition is
    # empty; the feed read, so the gap is closed all the same (no warning every day after).
    assert third.exit_code == 0, third.output + third.stderr
    assert "empty edition" in third.output
    message = "feed Wire: 3 stories from while it was unreadable are older than [fetch] catch_up and left out"
    assert message in third.stderr
    assert gaps(project) == []


def test_a_feed_that_recovers_within_retry_for_is_in_the_edition(
    make_project: MakeProject, wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collect_module, "FIRST_RETRY", 0.05)  # the policy's shape, in milliseconds
    project = outage_project(make_project, wire, fetch='retry_for = "20s"\n')
    wire.fail_next = 2

    sent = run_at(DAY_ONE, project, "send", "--list", "daily")

    assert sent.exit_code == 0, sent.output + sent.stderr
    assert len(wire.requests()) == 3
    assert (
        sent.stderr.count("feed Wire: the server answered HTTP 503 Service Unavailable; trying again in") == 2
    )
    assert story_ids(frozen(project, "daily-2026-11-25")) == ["desk-1", "wire-1", "wire-2"]
    assert "goes out without" not in sent.stderr
    assert gaps(project) == []


@pytest.mark.parametrize(("status", "tries"), [(404, 1), (500, None)])
def test_only_failures_that_may_pass_are_tried_again(
    make_project: MakeProject, wire: Wire, monkeypatch: pytest.MonkeyPatch, status: int, tries: int | None
) -> None:
    monkeypatch.setattr(collect_module, "FIRST_RETRY", 0.05)
    project = outage_project(make_project, wire, fetch='retry_for = "1s"\n')
    wire.status = status

    sent = run_at(DAY_ONE, project, "send", "--list", "daily")

    assert sent.exit_code == 0, sent.output + sent.stderr
    requests = len(wire.requests())
    if tries is not None:
        assert requests == tries  # a 404 says "not here", not "not now"
    else:
        assert requests > 3  # retried with backoff until [fetch] retry_for ran out
    assert "goes out without feed Wire" in sent.stderr


def test_build_and_dry_run_do_not_wait_for_a_feed(make_project: MakeProject, wire: Wire) -> None:
    project = outage_project(make_project, wire, fetch='retry_for = "1h"\n')
    wire.status = 503

    built = run_at(DAY_ONE, project, "build", "--out", str(project.parent / "out"))
    dry = run_at(DAY_ONE, project, "send", "--list", "daily", "--dry-run")

    assert built.exit_code == 0 and dry.exit_code == 0, built.output + dry.output
    assert len(wire.requests()) == 2  # one each: an hour of retries would hang the test
    exported = json.loads((project.parent / "out" / "daily.json").read_text())
    assert exported["missing_feeds"] == ["Wire"]


REQUIRED = 'required_feeds = ["Wire"]\n'


def test_a_required_feed_holds_the_list_until_it_reads(make_project: MakeProject, wire: Wire) -> None:
    project = outage_project(make_project, wire, lists=REQUIRED)
    wire.status = 500

    held = run_at(DAY_ONE + dt.timedelta(minutes=10), project, "send", "--list", "daily")

    assert held.exit_code == 75, held.output + held.stderr
    assert (
        "daily-2026-11-25: held: required feed 'Wire' could not be read; it goes out when it reads "
        "again, or without it after 2026-11-25 10:00 EET" in held.output
    )
    assert not (project.parent / "outbox").exists()
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM editions").fetchone() == (0,)  # nothing frozen

    wire.status = 200
    later = run_at(DAY_ONE + dt.timedelta(hours=1), project, "send", "--list", "daily")

    assert later.exit_code == 0, later.output + later.stderr
    assert story_ids(frozen(project, "daily-2026-11-25")) == ["desk-1", "wire-1", "wire-2"]


def test_a_required_feed_is_gone_without_once_the_grace_runs_out(
    make_project: MakeProject, wire: Wire
) -> None:
    project = outage_project(make_project, wire, lists=REQUIRED)
    project.write_text(project.read_text() + '\n[schedule]\nmisfire_grace = "2h"\n')
    wire.status = 500

    assert run_at(DAY_ONE + dt.timedelta(minutes=119), project, "send", "--list", "daily").exit_code == 75
    late = run_at(DAY_ONE + dt.timedelta(minutes=121), project, "send", "--list", "daily")

    assert late.exit_code == 0, late.output + late.stderr
    assert "goes out without feed Wire (required, but the send grace has run out)" in late.stderr
    assert frozen(project, "daily-2026-11-25")["missing_feeds"] == ["Wire"]


def test_the_dry_run_says_the_list_would_be_held(make_project: MakeProject, wire: Wire) -> None:
    project = outage_project(make_project, wire, lists=REQUIRED)
    wire.status = 500
    dry = run_at(DAY_ONE, project, "send", "--list", "daily", "--dry-run")
    assert dry.exit_code == 0, dry.output + dry.stderr
    assert "daily-2026-11-25: dry run, nothing sent: would be held: required feed 'Wire'" in dry.output


def test_the_scheduled_job_waits_for_a_required_feed_then_sends(
    make_project: MakeProject, wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job, "HOLD_RETRY", 0.05)
    project = outage_project(make_project, wire, lists=REQUIRED)
    wire.fail_next = 3  # down for three tries of the held job, then back

    with time_machine.travel(DAY_ONE + dt.timedelta(seconds=30), tick=True):
        result = job.run_list(str(project), "daily")

    assert result == "sent"
    assert len(wire.requests()) == 4
    assert story_ids(frozen(project, "daily-2026-11-25")) == ["desk-1", "wire-1", "wire-2"]
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        assert db.execute("SELECT result FROM job_runs").fetchall() == [("sent",)]


def test_retries_wait_exactly_retry_for_even_on_a_clock_that_stands_still(
    make_project: MakeProject, wire: Wire
) -> None:
    project = outage_project(make_project, wire)
    wire.status = 503
    waits: list[float] = []

    results = collect(
        load_config(project), now=DAY_ONE, retry=Retry(30, clock=lambda: 1_000.0, sleep=waits.append)
    )

    assert [result.source for result in results if result.failed] == ["Wire"]
    # Backoff from 5 s (doubling, with jitter), the last wait cut to what is left of the 30 s.
    assert abs(sum(waits) - 30) < 1e-9, waits
    assert 2.5 <= waits[0] <= 5 and all(0 < wait <= 60 for wait in waits)
    assert len(wire.requests()) == len(waits) + 1  # a last try at the end of retry_for


class RecordingCache:
    """A feed cache that remembers which feeds were looked up and stored (digest.ingest.fetch)."""

    def __init__(self) -> None:
        self.looked_up: list[str] = []
        self.stored: list[str] = []

    def cached_feed(self, source: str) -> None:
        self.looked_up.append(source)

    def remember_feed(self, source: str, body: bytes, headers: dict[str, str]) -> None:
        self.stored.append(source)


def test_a_regular_build_fetches_through_the_feed_cache(make_project: MakeProject, wire: Wire) -> None:
    project = outage_project(make_project, wire)
    cache = RecordingCache()
    edition = build_edition(load_config(project), "daily", now=DAY_ONE, cache=cache)
    # Conditional GET needs the cache: it is asked for the remote feed (the local file needs none).
    assert cache.looked_up == [wire.url]
    assert [item.id for item in edition.items if item.feed == "Wire"] == ["wire-2", "wire-1"]
