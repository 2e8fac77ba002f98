"""The frozen records passed between the stages: ingest → edition → render."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

# FeedResult.status: read, unchanged since the last fetch (served from the cache), or unreadable.
OK, NOT_MODIFIED, FAILED = "ok", "not modified", "failed"
# The key of the variant with every desk of the list, in the ledger and the frozen variants.
ALL_DESKS = "all"


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
    # Added after editions were first frozen: defaults, so those still load.
    image_width: int | None = None
    image_height: int | None = None
    image_credit: str = ""
    """Who took the picture (``media:credit``), else its caption; empty when the feed says neither."""


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


@dataclass(frozen=True, slots=True)
class Variant:
    """The desks one subscriber gets of their list's edition: ``desks`` None means all of them.

    Every subscriber who gets the same desks gets the same variant, rendered once. Its ``key``
    is how the ledger and the frozen variants store it: ``all`` for the whole list (as since
    the first ledger), else the JSON array of its desks, sorted, which no desk name can break.
    """

    desks: frozenset[str] | None = None

    @classmethod
    def of(cls, chosen: Iterable[str] | None, list_desks: Iterable[str]) -> Variant:
        """The variant of a subscriber who chose ``chosen`` (None: every desk) of ``list_desks``."""
        if chosen is None or frozenset(chosen) == frozenset(list_desks):
            return cls()
        return cls(frozenset(chosen))

    @property
    def key(self) -> str:
        if self.desks is None:
            return ALL_DESKS
        return json.dumps(sorted(self.desks), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_key(cls, key: str) -> Variant:
        """The variant a stored key names, new keys and the ``+``-joined ones of earlier ledgers alike."""
        if key == ALL_DESKS:
            return cls()
        if key.startswith("["):
            try:
                desks = json.loads(key)
            except ValueError:
                desks = None  # an earlier key whose first desk starts with "["
            if isinstance(desks, list) and all(isinstance(desk, str) for desk in desks):
                return cls(frozenset(desks))
        # Keys written before desk names could hold "+": the desks joined by "+".
        return cls(frozenset(key.split("+")))

    def desks_of(self, list_desks: Iterable[str]) -> tuple[str, ...]:
        """The variant's desks among ``list_desks``, in their order."""
        return tuple(desk for desk in list_desks if self.desks is None or desk in self.desks)

    def label(self, list_desks: Iterable[str]) -> str:
        """For editors: ``all``, or the desks in the list's order as a subscriber file writes them."""
        return ALL_DESKS if self.desks is None else ";".join(self.desks_of(list_desks))

    def select(self, edition: Edition) -> Edition:
        """The edition as a subscriber of this variant gets it."""
        if self.desks is None:
            return edition
        return dataclasses.replace(edition, desks=tuple(d for d in edition.desks if d.name in self.desks))
