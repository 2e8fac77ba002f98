"""Whether a list waits for a feed it must not go without (`[[lists]] required_feeds`).

Deciding is kept apart from doing: ``decide_hold`` takes the edition's unreadable feeds, the
list's required ones and the clock, and says whether to hold and until when; the sender and
the scheduled job act on that.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from digest.config import Config, MailingList
from digest.cron import fire_time_on, parse_cron


@dataclass(frozen=True, slots=True)
class Hold:
    """The list waits: these required feeds are unreadable, and it may wait until ``until``."""

    feeds: tuple[str, ...]
    until: dt.datetime

    def describe(self, timezone: str) -> str:
        names = ", ".join(repr(feed) for feed in self.feeds)
        local = self.until.astimezone(ZoneInfo(timezone))
        return (
            f"held: required feed{'s' * (len(self.feeds) > 1)} {names} could not be read; "
            f"it goes out when {'they read' if len(self.feeds) > 1 else 'it reads'} again, or without "
            f"{'them' if len(self.feeds) > 1 else 'it'} after {local:%Y-%m-%d %H:%M %Z} "
            "(the scheduled time + [schedule] misfire_grace)"
        )


def required_labels(config: Config, mailing_list: MailingList) -> frozenset[str]:
    """The labels (as feed results carry them) of the feeds the list must not go without."""
    labels = set()
    for reference in mailing_list.required_feeds:
        feed = config.settings.feed(reference)
        if feed is not None:  # the config refuses unknown references; this keeps mypy honest
            labels.add(feed.label)
    return frozenset(labels)


def hold_deadline(config: Config, mailing_list: MailingList, day: dt.date) -> dt.datetime | None:
    """How long the list's edition of ``day`` may wait: its scheduled time + the send grace.

    None when the list is not scheduled that day (a manual send): there is no grace to wait in.
    """
    timezone = config.list_timezone(mailing_list)
    fire = fire_time_on(parse_cron(mailing_list.schedule, timezone), day, timezone)
    if fire is None:
        return None
    return fire.astimezone(dt.UTC) + dt.timedelta(seconds=config.settings.schedule.misfire_grace)


def decide_hold(
    missing: Collection[str], required: Collection[str], deadline: dt.datetime | None, now: dt.datetime
) -> Hold | None:
    """Hold while a required feed is missing and the deadline has not passed."""
    down = tuple(feed for feed in missing if feed in required)
    if not down or deadline is None or now >= deadline:
        return None
    return Hold(down, deadline)


class Held(Exception):
    """Raised inside a send whose list waits for a required feed; ``send`` reports it."""

    def __init__(self, hold: Hold) -> None:
        super().__init__(hold.feeds)
        self.hold = hold


def say_missing(
    config: Config, mailing_list: MailingList, edition_id: str, missing_feeds: Collection[str]
) -> None:
    """Log each feed an edition goes out without: a scheduled run has no one to tell but the log."""
    required = required_labels(config, mailing_list)
    for feed in missing_feeds:
        logging.getLogger("digest.send.run").warning(
            "edition %s goes out without feed %s%s; its stories follow in the next edition that reads it",
            edition_id,
            feed,
            " (required, but the send grace has run out)" if feed in required else "",
            extra={"event": "feed_missing", "list": mailing_list.name, "feed": feed, "edition": edition_id},
        )
