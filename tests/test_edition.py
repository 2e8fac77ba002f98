"""The edition: window, de-duplication, desks, limits, seen stories, and --date builds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import pytest

from digest.config import Config, load_config
from digest.edition import assemble, build_edition, edition_window
from digest.edition.build import CatchUp
from digest.edition.frozen import freeze_edition
from digest.errors import DigestError
from digest.ingest.collect import Retry, collect
from digest.model import DeskSection, Edition, FeedResult, Item, Window
from digest.statefile import open_store
from tests.conftest import NOW, STORIES, MakeProject
from tests.httpfeeds import FeedServer, Route


def story(n: int, desk: str, hours_ago: float, **changes: object) -> Item:
    item = Item(
        id=f"story-{n}",
        title=f"Story {n}",
        url=f"https://news.example.org/s/{n}",
        canonical_url=f"https://news.example.org/s/{n}",
        summary_html="<p>Summary.</p>",
        summary_text="Summary.",
        author="Reporter",
        categories=(),
        desk=desk,
        published=NOW - dt.timedelta(hours=hours_ago),
        updated=None,
        image=None,
        image_alt="",
        read_time=2,
        feed="test",
    )
    return dataclasses.replace(item, **changes)


def feed(*items: Item) -> FeedResult:
    return FeedResult("test", "ok", items)


WINDOW = Window(NOW - dt.timedelta(hours=24), NOW)


def test_example_feeds_fill_every_desk_once(config: Config) -> None:
    edition = build_edition(config, "daily", now=NOW)
    assert [desk.name for desk in edition.desks] == [
        "Ukraine",
        "North America",
        "Business",
        "Europe",
        "Culture",
    ]
    assert all(len(desk.items) == 6 for desk in edition.desks)
    # The loan story is in two feeds (once with utm_* parameters): it appears once.
    loans = [item for item in edition.items if "frozen Russian assets" in item.title]
    assert len(loans) == 1
    # "War" maps to Ukraine, "Film" to Culture; categories naming a desk win over the feed's desk.
    by_title = {item.title: item.desk for item in edition.items}
    assert all(desk for desk in by_title.values())
    assert edition.warnings == ()


def test_desks_in_order_newest_first_capped_with_more_link(config: Config) -> None:
    items = [story(n, "Business", hours_ago=n) for n in range(1, 12)] + [story(99, "Ukraine", 5)]
    edition = assemble(config, config.mailing_list("daily"), [feed(*items)], WINDOW, date=NOW.date())
    assert [desk.name for desk in edition.desks] == ["Ukraine", "Business"]
    business = edition.desks[1]
    assert [item.id for item in business.items] == [f"story-{n}" for n in range(1, 9)]
    assert business.more_count == 3
    assert business.more_url == "https://news.example.org/business"
    assert [desk.slug for desk in edition.desks] == ["ukraine", "business"]


def test_same_story_in_two_desks_goes_to_the_first_in_order(config: Config) -> None:
    europe = story(1, "Europe", 2)
    # Same canonical link, another id: the copy from the earlier desk wins.
    business = story(2, "Business", 2, canonical_url=europe.canonical_url)
    same_id = story(1, "Culture", 1)
    edition = assemble(
        config, config.mailing_list("daily"), [feed(europe), feed(business, same_id)], WINDOW, date=NOW.date()
    )
    assert [(d.name, [i.id for i in d.items]) for d in edition.desks] == [("Business", ["story-2"])]


def test_window_and_seen_stories_are_left_out(config: Config) -> None:
    old = story(1, "Europe", 30)
    fresh = story(2, "Europe", 1)
    seen = story(3, "Europe", 1)
    seen_by_link = story(4, "Europe", 1, canonical_url="https://news.example.org/seen")
    edition = assemble(
        config,
        config.mailing_list("daily"),
        [feed(old, fresh, seen, seen_by_link)],
        WINDOW,
        date=NOW.date(),
        seen={"story-3", "https://news.example.org/seen"},
    )
    assert [item.id for item in edition.items] == ["story-2"]


def test_list_desk_subset(make_project: MakeProject) -> None:
    path = make_project(
        replace={'transport = "outbox"': 'transport = "outbox"\ndesks = ["Culture", "Ukraine"]'}
    )
    config = load_config(path)
    edition = build_edition(config, "daily", now=NOW)
    # The subset keeps the newsroom's order, not the list's.
    assert [desk.name for desk in edition.desks] == ["Ukraine", "Culture"]


def test_empty_edition(config: Config) -> None:
    edition = assemble(
        config, config.mailing_list("daily"), [feed(story(1, "Europe", 40))], WINDOW, date=NOW.date()
    )
    assert edition.is_empty
    assert edition.items == ()


def test_first_run_window_is_24_hours_then_since_previous_edition(config: Config) -> None:
    mailing_list = config.mailing_list("daily")
    assert edition_window(config, mailing_list, now=NOW) == Window(NOW - dt.timedelta(hours=24), NOW)
    last = NOW - dt.timedelta(hours=30)
    assert edition_window(config, mailing_list, now=NOW, last_end=last) == Window(last, NOW)


@pytest.mark.parametrize(
    ("day", "utc_end"),
    [
        (dt.date(2026, 11, 25), dt.datetime(2026, 11, 25, 5, 0, tzinfo=dt.UTC)),  # winter: UTC+2
        (dt.date(2026, 7, 1), dt.datetime(2026, 7, 1, 4, 0, tzinfo=dt.UTC)),  # summer: UTC+3
        (dt.date(2026, 3, 29), dt.datetime(2026, 3, 29, 4, 0, tzinfo=dt.UTC)),  # the spring change
    ],
)
def test_date_window_ends_at_the_lists_local_time(config: Config, day: dt.date, utc_end: dt.datetime) -> None:
    window = edition_window(config, config.mailing_list("daily"), now=NOW, date=day)
    assert window.end == utc_end
    assert window.start == utc_end - dt.timedelta(hours=24)


def test_date_build_on_a_day_the_list_does_not_go_out(make_project: MakeProject) -> None:
    config = load_config(make_project(replace={'schedule = "0 7 * * *"': 'schedule = "0 7 * * mon-fri"'}))
    with pytest.raises(DigestError, match="not scheduled on Saturday 2026-11-28") as caught:
        edition_window(config, config.mailing_list("daily"), now=NOW, date=dt.date(2026, 11, 28))
    assert caught.value.hint == "pick a day the list goes out"


def test_regular_build_skips_what_an_earlier_edition_carried_but_date_build_does_not(config: Config) -> None:
    with open_store(config).migrate() as store:
        feeds = collect(config, now=NOW)
        first = build_edition(config, "daily", now=NOW, store=store, feeds=feeds)
        assert len(first.items) == 30
        freeze_edition(store.editions, first, now=NOW)
        later = NOW + dt.timedelta(hours=1)
        # A story edited after it went out (same id, new `updated`) is not repeated.
        edited = tuple(
            dataclasses.replace(f, items=tuple(dataclasses.replace(i, updated=later) for i in f.items))
            for f in feeds
        )
        again = build_edition(config, "daily", now=later, store=store, feeds=edited)
        assert again.is_empty
        assert again.window.start == NOW
        by_date = build_edition(
            config, "daily", now=later, date=dt.date(2026, 11, 25), store=store, feeds=feeds
        )
        assert len(by_date.items) == 30


# -- exact edges of the window, and catch-up of feeds an edition went out without -----------


def at(moment: dt.datetime, n: int, desk: str = "Europe", **changes: object) -> Item:
    """Story ``n`` published at ``moment`` exactly."""
    return story(n, desk, (NOW - moment) / dt.timedelta(hours=1), **changes)


def ids(edition: Edition) -> list[str]:
    return sorted(item.id for item in edition.items)


@pytest.mark.parametrize(
    ("last_end", "start"),
    [
        (NOW - dt.timedelta(hours=30), NOW - dt.timedelta(hours=30)),
        (NOW - dt.timedelta(seconds=1), NOW - dt.timedelta(seconds=1)),
        (NOW, NOW - dt.timedelta(hours=24)),  # an edition that ended now: not an empty window
        (NOW + dt.timedelta(hours=1), NOW - dt.timedelta(hours=24)),  # a clock set back
    ],
)
def test_the_window_starts_at_the_previous_end_only_if_that_is_before_now(
    config: Config, last_end: dt.datetime, start: dt.datetime
) -> None:
    window = edition_window(config, config.mailing_list("daily"), now=NOW, last_end=last_end)
    assert window == Window(start, NOW)


def test_the_window_takes_its_start_and_leaves_out_its_end(config: Config) -> None:
    items = [
        at(WINDOW.start - dt.timedelta(microseconds=1), 1),
        at(WINDOW.start, 2),
        at(WINDOW.end - dt.timedelta(microseconds=1), 3),
        at(WINDOW.end, 4),
    ]
    edition = assemble(config, config.mailing_list("daily"), [feed(*items)], WINDOW, date=NOW.date())
    assert ids(edition) == ["story-2", "story-3"]


def test_a_desk_over_the_limit_keeps_the_newest_and_counts_the_rest(config: Config) -> None:
    limit = config.settings.desks.max_items
    exactly = [story(n, "Europe", hours_ago=n) for n in range(1, limit + 1)]
    edition = assemble(config, config.mailing_list("daily"), [feed(*exactly)], WINDOW, date=NOW.date())
    assert [(len(d.items), d.more_count) for d in edition.desks] == [(limit, 0)]
    # Two stories at the same moment: the title breaks the tie, in reverse.
    tied = [story(1, "Europe", 2, title="Alpha"), story(2, "Europe", 2, title="Beta")]
    edition = assemble(config, config.mailing_list("daily"), [feed(*tied)], WINDOW, date=NOW.date())
    assert [item.title for item in edition.items] == ["Beta", "Alpha"]


def test_an_edition_names_its_missing_feeds_and_their_warnings(config: Config) -> None:
    down = FeedResult("Wire", "failed", (), ("the server answered HTTP 500",))
    up = FeedResult("Ledger", "ok", (story(1, "Business", 1),), ("1 entry without a date",))
    edition = assemble(config, config.mailing_list("daily"), [down, up], WINDOW, date=NOW.date())
    assert edition.missing_feeds == ("Wire",)
    assert edition.warnings == (
        "feed Wire: the server answered HTTP 500",
        "feed Ledger: 1 entry without a date",
    )
    assert (edition.list_name, edition.date, edition.timezone) == ("daily", NOW.date(), "Europe/Kyiv")
    assert edition.feeds == (down, up)


GAP = WINDOW.start - dt.timedelta(hours=10)  # the feed went unread from here on


def test_reach_takes_a_feed_back_to_its_start_and_no_further(config: Config) -> None:
    wire = [
        at(GAP - dt.timedelta(microseconds=1), 1),
        at(GAP, 2),
        at(WINDOW.start, 3),
        at(WINDOW.end, 4),
    ]
    other = [at(GAP, 5, feed="other"), at(WINDOW.start, 6, feed="other")]
    feeds = [FeedResult("test", "ok", tuple(wire)), FeedResult("other", "ok", tuple(other))]
    edition = assemble(
        config, config.mailing_list("daily"), feeds, WINDOW, date=NOW.date(), reach={"test": GAP}
    )
    # Only the feed with a gap reaches back; the window's end still holds for it.
    assert ids(edition) == ["story-2", "story-3", "story-6"]


def test_a_reach_inside_the_window_never_narrows_it(config: Config) -> None:
    items = [at(WINDOW.start, 1), at(WINDOW.start + dt.timedelta(hours=2), 2)]
    edition = assemble(
        config,
        config.mailing_list("daily"),
        [feed(*items)],
        WINDOW,
        date=NOW.date(),
        reach={"test": WINDOW.start + dt.timedelta(hours=1)},
    )
    assert ids(edition) == ["story-1", "story-2"]


def test_caught_up_stories_leave_out_what_the_list_carried_and_take_their_place(config: Config) -> None:
    caught = at(GAP + dt.timedelta(hours=1), 1, "Europe")
    carried = at(GAP + dt.timedelta(hours=2), 2, "Europe")
    fresh = at(WINDOW.start + dt.timedelta(hours=1), 3, "Europe")
    edition = assemble(
        config,
        config.mailing_list("daily"),
        [feed(caught, carried, fresh)],
        WINDOW,
        date=NOW.date(),
        seen={"story-2"},
        reach={"test": GAP},
    )
    assert [item.id for item in edition.items] == ["story-3", "story-1"]  # newest first


BOUND = GAP + dt.timedelta(hours=4)  # [fetch] catch_up reaches back this far


@pytest.mark.parametrize(
    ("item", "too_old"),
    [
        (at(GAP - dt.timedelta(microseconds=1), 1), 0),  # before the gap: carried before it
        (at(GAP, 1), 1),  # the gap's first moment counts
        (at(BOUND - dt.timedelta(microseconds=1), 1), 1),
        (at(BOUND, 1), 0),  # within catch_up: caught up, not lost
        (at(GAP, 1, id="seen-id"), 0),  # carried (by id)
        (at(GAP, 1, canonical_url="https://news.example.org/seen"), 0),  # carried (by link)
    ],
)
def test_catch_up_counts_the_unseen_stories_between_the_gap_and_the_bound(item: Item, too_old: int) -> None:
    plan = CatchUp.plan({"test": GAP}, [feed(item)], {"seen-id", "https://news.example.org/seen"}, BOUND)
    assert plan.too_old == ({"test": too_old} if too_old else {})


def test_catch_up_plans_each_feed_with_a_gap_and_no_other() -> None:
    later_gap = BOUND + dt.timedelta(hours=1)
    feeds = [
        FeedResult("old", "ok", (at(GAP, 1), at(GAP, 2, id="b", canonical_url="https://x.org/b"))),
        FeedResult("recent", "ok", (at(later_gap, 3),)),
        FeedResult("never-down", "ok", (at(GAP, 4),)),
    ]
    plan = CatchUp.plan({"old": GAP, "recent": later_gap}, feeds, (), BOUND)
    assert plan.reach == {"old": BOUND, "recent": later_gap}  # the later of the gap and the bound
    assert plan.since == {"old": GAP, "recent": later_gap}
    assert plan.too_old == {"old": 2}


def _edition_of(*items: Item) -> Edition:
    return Edition(
        "daily",
        NOW.date(),
        "Europe/Kyiv",
        WINDOW,
        (DeskSection("Europe", "europe", "https://news.example.org/europe", items),),
    )


@pytest.mark.parametrize(
    ("items", "too_old", "notes"),
    [
        (
            [at(WINDOW.start - dt.timedelta(hours=1), 1)],
            {},
            ["feed test: caught up 1 story from while it was unreadable (since 2026-11-23 18:30 UTC)"],
        ),
        (
            [at(GAP, 1), at(GAP, 2)],
            {},
            ["feed test: caught up 2 stories from while it was unreadable (since 2026-11-23 18:30 UTC)"],
        ),
        ([at(WINDOW.start, 1), at(GAP, 2, feed="other")], {}, []),  # in the window, or no gap
        (
            [],
            {"test": 1},
            ["feed test: 1 story from while it was unreadable is older than [fetch] catch_up and left out"],
        ),
        (
            [],
            {"test": 3},
            [
                "feed test: 3 stories from while it was unreadable are older than [fetch] catch_up and left out"
            ],
        ),
    ],
)
def test_catch_up_reports_what_it_caught_and_what_it_left(
    items: list[Item], too_old: dict[str, int], notes: list[str]
) -> None:
    plan = CatchUp(reach={"test": GAP}, since={"test": GAP}, too_old=too_old)
    assert list(plan.report(_edition_of(*items))) == notes


class FakeStore:
    """The state a regular build reads: where the last edition ended, what it carried, the gaps."""

    def __init__(self, last_end: dt.datetime | None, seen: set[str], gaps: dict[str, dt.datetime]) -> None:
        self.last_end, self._seen, self.gaps = last_end, seen, gaps
        self.asked: list[str] = []

    def last_window_end(self, list_name: str) -> dt.datetime | None:
        self.asked.append(list_name)
        return self.last_end

    def seen(self, list_name: str, keys: Iterable[str]) -> set[str]:
        self.asked.append(list_name)
        return self._seen & set(keys)

    def feed_gaps(self, list_name: str) -> dict[str, dt.datetime]:
        self.asked.append(list_name)
        return self.gaps


def test_a_regular_build_catches_up_as_far_as_fetch_catch_up_allows(config: Config) -> None:
    catch_up = dt.timedelta(seconds=config.settings.fetch.catch_up)
    bound = NOW - catch_up
    items = (
        at(bound - dt.timedelta(microseconds=1), 1),  # too old
        at(bound, 2),  # just caught up
        at(bound + dt.timedelta(hours=1), 3, id="carried"),  # the list carried it
        at(NOW - dt.timedelta(hours=1), 4),  # this edition's own
    )
    store = FakeStore(NOW - dt.timedelta(hours=20), {"carried"}, {"test": bound - dt.timedelta(hours=5)})
    edition = build_edition(config, "daily", now=NOW, store=store, feeds=(feed(*items),))
    assert store.asked == ["daily", "daily", "daily"]
    assert edition.window == Window(NOW - dt.timedelta(hours=20), NOW)
    assert ids(edition) == ["story-2", "story-4"]
    assert edition.date == dt.date(2026, 11, 25)
    since = f"{bound - dt.timedelta(hours=5):%Y-%m-%d %H:%M}"
    assert edition.warnings == (
        f"feed test: caught up 1 story from while it was unreadable (since {since} UTC)",
        "feed test: 1 story from while it was unreadable is older than [fetch] catch_up and left out",
    )


def test_a_date_build_reads_no_state(config: Config) -> None:
    store = FakeStore(NOW, {"story-1"}, {"test": NOW - dt.timedelta(days=3)})
    day = dt.date(2026, 11, 25)
    edition = build_edition(
        config, "daily", now=NOW, date=day, store=store, feeds=(feed(at(NOW - dt.timedelta(hours=2), 1)),)
    )
    assert store.asked == []
    assert edition.date == day and ids(edition) == ["story-1"]
    end = dt.datetime(2026, 11, 25, 5, 0, tzinfo=dt.UTC)  # 07:00 in Kyiv on that day, not `now`
    assert edition.window == Window(end - dt.timedelta(hours=24), end)


@pytest.mark.parametrize("stored", [False, True], ids=["first run", "with state"])
def test_the_edition_is_dated_in_the_list_timezone_not_the_machines(config: Config, stored: bool) -> None:
    # 23:30 UTC on the 25th is already 01:30 on the 26th in Kyiv (the list's timezone).
    late = dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.UTC)
    store = FakeStore(late - dt.timedelta(hours=20), set(), {}) if stored else None
    edition = build_edition(
        config, "daily", now=late, store=store, feeds=(feed(at(late - dt.timedelta(hours=1), 1)),)
    )
    assert edition.date == dt.date(2026, 11, 26)
    assert edition.id == "daily-2026-11-26"


# --- build_edition hands its caller's cache and retry policy to the fetch --------------------


class MemoryCache:
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}

    def cached_feed(self, source: str) -> None:
        return None

    def remember_feed(self, source: str, body: bytes, headers: dict[str, str]) -> None:
        self.bodies[source] = body


def test_a_build_retries_a_feed_that_was_down_and_remembers_what_it_read(make_project: MakeProject) -> None:
    world = (STORIES / "world.xml").read_bytes()
    answers = iter(
        [Route(status=503, body=b"down for a minute"), Route(body=world, headers={"ETag": '"v1"'})]
    )
    waits: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    with FeedServer() as server:
        url = server.route("/world.xml", lambda request: next(answers))
        project = make_project(
            replace={'source = "feeds/world.xml"': f'source = "{url}"'}, extra="\n[fetch]\nretry_for = 300\n"
        )
        config = load_config(project)
        cache = MemoryCache()
        edition = build_edition(
            config, "daily", now=NOW, cache=cache, retry=Retry(300, clock=lambda: clock[0], sleep=sleep)
        )
        assert len(server.requests) == 2
    assert len(waits) == 1  # one wait, then the feed read
    assert cache.bodies == {url: world}
    assert edition.missing_feeds == ()
    assert next(feed.source for feed in edition.feeds if feed.items and not feed.failed) == url
