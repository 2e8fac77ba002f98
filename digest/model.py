"""The frozen records passed between the stages: ingest → edition → render."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# FeedResult.status: read, unchanged since the last fetch (served from the cache), or unreadable.
OK, NOT_MODIFIED, FAILED = "ok", "not modified", "failed"


@dataclass(frozen=True, slots=True)
class Item:
    """One story, sanitized: every string is safe to template and free of control characters."""

    id: str
    title: str
    url: str
    canonical_url: str
    summary_html: str
    summary_text: str
    author: str | None
    categories: tuple[str, ...]
    desk: str
    published: dt.datetime
    updated: dt.datetime | None
    image: str | None
    image_alt: str
    read_time: int
    feed: str


@dataclass(frozen=True, slots=True)
class FeedResult:
    """What one feed gave: its items and what went wrong with it (for editors, not subscribers)."""

    source: str
    status: str
    items: tuple[Item, ...] = ()
    warnings: tuple[str, ...] = ()
    transient: bool = False
    """A failure that may pass by itself (worth another try); false for a feed read fine."""

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @property
    def newest(self) -> dt.datetime | None:
        return max((item.published for item in self.items), default=None)


@dataclass(frozen=True, slots=True)
class Window:
    """Stories published in [start, end) go into the edition."""

    start: dt.datetime
    end: dt.datetime

    def __contains__(self, moment: dt.datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class DeskSection:
    name: str
    slug: str
    more_url: str
    items: tuple[Item, ...]
    more_count: int = 0


@dataclass(frozen=True, slots=True)
class Edition:
    """One list's stories for one day, grouped by desk, before any rendering."""

    list_name: str
    date: dt.date
    timezone: str
    window: Window
    desks: tuple[DeskSection, ...]
    warnings: tuple[str, ...] = ()
    feeds: tuple[FeedResult, ...] = field(default=(), repr=False)
    missing_feeds: tuple[str, ...] = ()
    """Feeds that could not be read: their stories wait for a later edition (catch-up)."""

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(item for desk in self.desks for item in desk.items)

    @property
    def is_empty(self) -> bool:
        return not self.desks

    @property
    def id(self) -> str:
        return f"{self.list_name}-{self.date.isoformat()}"


@dataclass(frozen=True, slots=True)
class CachedFeed:
    """A remote feed's last body and the validators (ETag, Last-Modified) it came with."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rendered:
    """One variant of an edition, with per-recipient placeholders still in it."""

    subject: str
    preheader: str
    html: str
    text: str
