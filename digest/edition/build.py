"""Which stories go into a list's edition, under which desk, in which order."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from digest.config import Config, MailingList, slugify
from digest.cron import fire_time_on, parse_cron
from digest.errors import DigestError
from digest.ingest.collect import Retry, collect
from digest.ingest.fetch import FeedCache
from digest.model import DeskSection, Edition, FeedResult, Item, Window

FIRST_WINDOW = dt.timedelta(hours=24)


def edition_window(
    config: Config,
    mailing_list: MailingList,
    *,
    now: dt.datetime,
    date: dt.date | None = None,
    last_end: dt.datetime | None = None,
) -> Window:
    """The regular run: since the previous edition (first run: 24 hours) until now.

    With ``date``: the 24 hours up to the list's scheduled time on that day, in its timezone.
    """
    if date is None:
        return regular_window(now, last_end)
    timezone = config.list_timezone(mailing_list)
    fire = fire_time_on(parse_cron(mailing_list.schedule, timezone), date, timezone)
    if fire is None:
        raise DigestError(
            f"list {mailing_list.name!r} is not scheduled on {date:%A %Y-%m-%d} "
            f"(schedule {mailing_list.schedule!r}, {timezone})",
            hint="pick a day the list goes out",
        )
    end = fire.astimezone(dt.UTC)
    return Window(end - FIRST_WINDOW, end)


def regular_window(now: dt.datetime, last_end: dt.datetime | None) -> Window:
    """Since the previous edition ended (first run, or a clock set back: 24 hours) until now."""
    start = last_end if last_end is not None and last_end < now else now - FIRST_WINDOW
    return Window(start, now)


def assemble(
    config: Config,
    mailing_list: MailingList,
    feeds: Iterable[FeedResult],
    window: Window,
    *,
    date: dt.date,
    seen: Collection[str] = (),
    reach: Mapping[str, dt.datetime] | None = None,
) -> Edition:
    """Group the window's unseen stories by desk: desks in order, newest first, capped.

    ``reach`` gives feeds an earlier edition went out without an earlier start: their stories
    from then on that the list never carried are caught up. They take their place in their desk
    by publication time and count against ``max_items`` like any other story.
    """
    feeds = tuple(feeds)
    wanted = config.list_desks(mailing_list)
    by_desk = _by_desk(feeds, wanted, window, seen, reach)
    limit = config.settings.desks.max_items
    sections = []
    for desk in wanted:
        items = sorted(by_desk[desk], key=lambda item: (item.published, item.title), reverse=True)
        if items:
            sections.append(
                DeskSection(
                    name=desk,
                    slug=slugify(desk),
                    more_url=config.desk_url(desk),
                    items=tuple(items[:limit]),
                    more_count=max(0, len(items) - limit),
                )
            )
    warnings = tuple(f"feed {feed.source}: {warning}" for feed in feeds for warning in feed.warnings)
    return Edition(
        list_name=mailing_list.name,
        date=date,
        timezone=config.list_timezone(mailing_list),
        window=window,
        desks=tuple(sections),
        warnings=warnings,
        feeds=feeds,
        missing_feeds=tuple(feed.source for feed in feeds if feed.failed),
    )


def _by_desk(
    feeds: tuple[FeedResult, ...],
    wanted: tuple[str, ...],
    window: Window,
    seen: Collection[str],
    reach: Mapping[str, dt.datetime] | None,
) -> dict[str, list[Item]]:
    """The stories each wanted desk may carry: in the window (or a feed's reach), unseen, once."""
    rank = {desk: position for position, desk in enumerate(wanted)}
    starts = {feed: min(start, window.start) for feed, start in (reach or {}).items()}
    candidates = [
        item
        for feed in feeds
        for item in feed.items
        if item.desk in rank
        and starts.get(feed.source, window.start) <= item.published < window.end
        and item.id not in seen
        and item.canonical_url not in seen
    ]
    # The same story in two feeds appears once, under the desk that comes first in `order`.
    candidates.sort(key=lambda item: rank[item.desk])
    claimed: set[str] = set()
    by_desk: dict[str, list[Item]] = {desk: [] for desk in wanted}
    for item in candidates:
        if item.id in claimed or item.canonical_url in claimed:
            continue
        claimed.update((item.id, item.canonical_url))
        by_desk[item.desk].append(item)
    return by_desk


class StateReader(Protocol):
    """The part of the state store an edition build reads (see digest.state.Store)."""

    def last_window_end(self, list_name: str) -> dt.datetime | None: ...

    def seen(self, list_name: str, keys: Iterable[str]) -> set[str]: ...

    def feed_gaps(self, list_name: str) -> dict[str, dt.datetime]: ...


def build_edition(
    config: Config,
    list_name: str,
    *,
    now: dt.datetime,
    date: dt.date | None = None,
    store: StateReader | None = None,
    cache: FeedCache | None = None,
    feeds: tuple[FeedResult, ...] | None = None,
    retry: Retry | None = None,
) -> Edition:
    """Collect the feeds (unless given) and assemble the named list's edition.

    The regular run (no ``date``) starts where the list's previous edition ended, leaves out
    stories it already carried, and catches up the stories of feeds an earlier edition went
    out without; a ``date`` build reads no such state.
    """
    mailing_list = config.mailing_list(list_name)
    if feeds is None:
        feeds = collect(config, now=now, cache=cache, retry=retry)
    if store is None or date is not None:
        window = edition_window(config, mailing_list, now=now, date=date)
        return assemble(
            config, mailing_list, feeds, window, date=date or _local_date(config, mailing_list, now)
        )
    window = regular_window(now, store.last_window_end(mailing_list.name))
    keys = {key for feed in feeds for item in feed.items for key in (item.id, item.canonical_url)}
    seen = store.seen(mailing_list.name, keys)
    catch_up = CatchUp.plan(
        store.feed_gaps(mailing_list.name),
        feeds,
        seen,
        now - dt.timedelta(seconds=config.settings.fetch.catch_up),
    )
    edition = assemble(
        config,
        mailing_list,
        feeds,
        window,
        date=_local_date(config, mailing_list, now),
        seen=seen,
        reach=catch_up.reach,
    )
    return dataclasses.replace(edition, warnings=edition.warnings + catch_up.report(edition))


def _local_date(config: Config, mailing_list: MailingList, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(config.list_timezone(mailing_list))).date()


@dataclass(frozen=True, slots=True)
class CatchUp:
    """How far back each feed that an earlier edition went out without reaches, and what is lost.

    A gap older than ``[fetch] catch_up`` reaches back only that far; the unseen stories it
    leaves behind are counted, so none is dropped without a word.
    """

    reach: Mapping[str, dt.datetime]
    since: Mapping[str, dt.datetime]
    too_old: Mapping[str, int]

    @classmethod
    def plan(
        cls,
        gaps: Mapping[str, dt.datetime],
        feeds: Iterable[FeedResult],
        seen: Collection[str],
        bound: dt.datetime,
    ) -> CatchUp:
        reach = {feed: max(since, bound) for feed, since in gaps.items()}
        too_old = {
            feed.source: count
            for feed in feeds
            if feed.source in gaps
            and (
                count := sum(
                    1
                    for item in feed.items
                    if gaps[feed.source] <= item.published < bound
                    and item.id not in seen
                    and item.canonical_url not in seen
                )
            )
        }
        return cls(reach, dict(gaps), too_old)

    def report(self, edition: Edition) -> tuple[str, ...]:
        """Editors' notes: stories caught up, and stories too old to catch up."""
        caught = Counter(
            item.feed
            for item in edition.items
            if item.feed in self.reach and item.published < edition.window.start
        )
        notes = [
            f"feed {feed}: caught up {count} {'story' if count == 1 else 'stories'} from while it was "
            f"unreadable (since {self.since[feed]:%Y-%m-%d %H:%M} UTC)"
            for feed, count in caught.items()
        ]
        notes += [
            f"feed {feed}: {count} {'story' if count == 1 else 'stories'} from while it was unreadable "
            f"{'is' if count == 1 else 'are'} older than [fetch] catch_up and left out"
            for feed, count in self.too_old.items()
        ]
        return tuple(notes)
