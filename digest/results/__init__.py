"""An edition's results for editors: what the ledger sent, and what came back after sending.

``edition_results(store, edition_id)`` counts from the ledger (recipients, sent, failed), the
delivery events every source records (deliveries, bounces, complaints, opens, clicks,
provider unsubscribes) and the unsubscribes made on digest's own pages; clicks are matched to
the frozen edition's stories to count them per desk and per story.

Rates, and why these denominators:

- complaint rate = complaints / delivered when the provider reports deliveries (Gmail's
  0.3% is of mail that reached the inbox), else / sent (SMTP learns of no delivery);
- bounce rate = hard bounces / sent (a bounced message was never delivered, so it can only
  be a share of what was sent). Soft bounces pass by themselves and are not in the rate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from digest.edition.frozen import frozen_edition
from digest.errors import DigestError
from digest.ingest.sanitize import canonical_url
from digest.model import Edition
from digest.state import Store
from digest.state.events import Kind
from digest.state.ledger_types import FAILED, SENT
from digest.state.outcomes import Tally

# Gmail's line for spam complaints, and the bounce rate ESPs treat as a list gone stale.
COMPLAINT_LINE = 0.003
BOUNCE_LINE = 0.02
# Sources that report deliveries, opens and clicks; an edition without any of their events
# (sent by SMTP or the outbox) says "not reported" rather than a misleading 0.
TRACKING_SOURCES = frozenset({"sendgrid"})
TOP_STORIES = 10
# How the report groups unsubscribes, by the source they were recorded with.
UNSUBSCRIBE_SOURCES = {"web": "link", "preferences": "link", "one-click": "one-click", "mailto": "mailto"}
UNSUBSCRIBE_GROUPS = ("link", "one-click", "mailto", "provider")


@dataclass(frozen=True, slots=True)
class DeskClicks:
    desk: str
    clicks: int


@dataclass(frozen=True, slots=True)
class StoryClicks:
    title: str
    url: str
    desk: str
    clicks: int
    readers: int


@dataclass(frozen=True, slots=True)
class EditionResults:
    """One edition's results; ``None`` where no source reports the figure (SMTP: deliveries,
    opens and clicks)."""

    edition_id: str
    list_name: str
    date: dt.date | None
    recipients: int
    sent: int
    failed: int
    delivered: int | None
    hard_bounces: int
    soft_bounces: int
    dropped: int
    complaints: int
    unsubscribes: Mapping[str, int]
    opens: int | None  # readers who opened
    clicks: int | None  # clicks, every one
    click_readers: int | None
    desks: tuple[DeskClicks, ...] = ()
    top_stories: tuple[StoryClicks, ...] = ()
    other_clicks: int = 0  # clicks on links that are no story or desk (archive, preferences…)

    @property
    def complaint_base(self) -> int:
        """What the complaint rate is a share of: delivered where reported, else sent."""
        return self.delivered if self.delivered is not None else self.sent

    @property
    def complaint_rate(self) -> float | None:
        return self.complaints / self.complaint_base if self.complaint_base else None

    @property
    def bounce_rate(self) -> float | None:
        return self.hard_bounces / self.sent if self.sent else None

    @property
    def unsubscribed(self) -> int:
        return sum(self.unsubscribes.values())


def edition_results(store: Store, edition_id: str) -> EditionResults:
    """The results of a frozen edition; DigestError when the store has no such edition."""
    edition = frozen_edition(store.editions, edition_id)
    if edition is None:
        raise DigestError(
            f"no edition {edition_id} in the state database",
            hint="`digest report` without --edition shows each list's latest",
        )
    ledger = store.ledger.counts(edition_id)
    events = store.outcomes.events(edition_id)
    tracked = bool(store.outcomes.sources(edition_id) & TRACKING_SOURCES) or any(
        kind in events for kind in (Kind.DELIVERED, Kind.OPEN, Kind.CLICK)
    )

    def count(kind: Kind) -> int:
        return events.get(kind.value, Tally()).recipients

    clicks = events.get(Kind.CLICK.value, Tally())
    desks, stories, other = _clicks_by_story(edition, store.outcomes.clicks(edition_id))
    return EditionResults(
        edition_id=edition_id,
        list_name=edition.list_name,
        date=edition.date,
        recipients=sum(ledger.values()),
        sent=ledger.get(SENT, 0),
        failed=ledger.get(FAILED, 0),
        delivered=count(Kind.DELIVERED) if tracked else None,
        hard_bounces=count(Kind.HARD_BOUNCE),
        soft_bounces=count(Kind.SOFT_BOUNCE),
        dropped=count(Kind.DROPPED),
        complaints=count(Kind.COMPLAINT),
        unsubscribes=_grouped(store.outcomes.unsubscribes(edition.list_name, edition_id)),
        opens=count(Kind.OPEN) if tracked else None,
        clicks=clicks.events if tracked else None,
        click_readers=clicks.recipients if tracked else None,
        desks=desks if tracked else (),
        top_stories=stories if tracked else (),
        other_clicks=other,
    )


def _grouped(by_source: Mapping[str, int]) -> dict[str, int]:
    """Unsubscribes by how the reader left: our link, one-click, the mailto address, a provider."""
    groups = dict.fromkeys(UNSUBSCRIBE_GROUPS, 0)
    for source, count in by_source.items():
        groups[UNSUBSCRIBE_SOURCES.get(source, "provider")] += count
    return groups


def _clicks_by_story(
    edition: Edition, clicked: list[tuple[str, str, int]]
) -> tuple[tuple[DeskClicks, ...], tuple[StoryClicks, ...], int]:
    """Clicks per desk (its stories and its "More from" link) and per story, and the rest.

    A click is matched by its URL, both sides without tracking parameters or fragment, since
    a provider reports the link as the email carried it and a newsroom may tag its links.
    """
    stories = {canonical_url(item.url): (item, desk.name) for desk in edition.desks for item in desk.items}
    more = {canonical_url(desk.more_url): desk.name for desk in edition.desks if desk.more_url}
    per_desk = {desk.name: 0 for desk in edition.desks}
    story_clicks: dict[str, int] = {}
    story_readers: dict[str, set[str]] = {}
    other = 0
    for url, reader, clicks in clicked:
        key = canonical_url(url)
        if key in stories:
            desk = stories[key][1]
            story_clicks[key] = story_clicks.get(key, 0) + clicks
            story_readers.setdefault(key, set()).add(reader)
        elif key in more:
            desk = more[key]
        else:
            other += clicks
            continue
        per_desk[desk] += clicks
    top = sorted(
        (
            StoryClicks(
                stories[key][0].title, stories[key][0].url, stories[key][1], count, len(story_readers[key])
            )
            for key, count in story_clicks.items()
        ),
        key=lambda story: (-story.clicks, -story.readers, story.title),
    )
    desks = tuple(DeskClicks(name, clicks) for name, clicks in per_desk.items())
    return desks, tuple(top[:TOP_STORIES]), other


def latest_edition(store: Store, list_name: str) -> str | None:
    """The id of the list's latest frozen edition, None when it has none yet."""
    found = store.editions.last(list_name)
    return found[0] if found else None


def report(
    store: Store | None, list_names: Sequence[str], edition_ids: Sequence[str]
) -> list[EditionResults | str]:
    """`digest report`: the results of ``edition_ids``, else of each list's latest edition.

    A list with no edition yet is given by its name alone (a str), so a report of every list
    says which have none rather than leave them out.
    """
    if edition_ids:
        if store is None:
            raise DigestError(f"no edition {edition_ids[0]} in the state database: there is none yet")
        return [edition_results(store, edition_id) for edition_id in edition_ids]
    found: list[EditionResults | str] = []
    for name in list_names:
        latest = latest_edition(store, name) if store else None
        found.append(edition_results(store, latest) if store and latest else name)
    return found
