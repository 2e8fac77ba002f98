"""The edition: window, de-duplication, desks, limits, seen stories, and --date builds."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from digest.config import Config, load_config
from digest.edition import assemble, build_edition, edition_window
from digest.edition.frozen import freeze_edition
from digest.errors import DigestError
from digest.ingest import collect
from digest.model import FeedResult, Item, Window
from digest.statefile import open_store
from tests.conftest import NOW, MakeProject


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
    with pytest.raises(DigestError, match="not scheduled on Saturday 2026-11-28"):
        edition_window(config, config.mailing_list("daily"), now=NOW, date=dt.date(2026, 11, 28))


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
