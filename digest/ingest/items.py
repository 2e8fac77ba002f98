"""Raw entries → Items: sanitized text, a stable id, a desk, a date, an image, a read time."""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Container
from dataclasses import dataclass

from digest.ingest.parse import RawEntry
from digest.ingest.sanitize import (
    canonical_url,
    clean_html,
    content_hash,
    one_line,
    plain_text,
    shorten,
    truncate_words,
    web_url,
)
from digest.model import Item

SUMMARY_WORDS = 60
WORDS_PER_MINUTE = 230
MAX_READ_TIME = 180
# Clocks differ; a story stamped a few minutes ahead of ours is not from the future.
FUTURE_TOLERANCE = dt.timedelta(minutes=10)
# Older than this, a date is more likely bogus (1970, a CMS default) than a story for today's
# edition: skipped with a word, while a feed's archive of recent weeks stays quiet.
MAX_AGE = dt.timedelta(days=365)
# Longer than this, a title is no headline: shortened, at a word boundary, everywhere it shows.
TITLE_LIMIT = 200
# A warning names an item by the start of its title.
LABEL_WORDS = 8
# A credit is one line under the picture; alt text stands in for the picture, no longer than
# a headline may be.
CREDIT_LIMIT = 120
ALT_LIMIT = TITLE_LIMIT
# Pixels: larger than this, a side is more likely a typo or a trap than a picture for an email.
MAX_IMAGE_SIDE = 10_000
_PIXELS = re.compile(r"[0-9]{1,5}")
_BLOCK = re.compile(r"<(p|ul|ol|blockquote)\b", re.I)


@dataclass(frozen=True, slots=True)
class DeskRules:
    """How a story finds its desk: its first category naming one, else its feed's desk."""

    order: tuple[str, ...]
    categories: dict[str, str]

    def desk_for(self, categories: tuple[str, ...], default: str) -> str:
        by_name = {desk.casefold(): desk for desk in self.order}
        mapped = {category.casefold(): desk for category, desk in self.categories.items()}
        for category in categories:
            key = category.casefold()
            if key in by_name:
                return by_name[key]
            if key in mapped:
                return mapped[key]
        return default


def build_items(
    entries: list[RawEntry],
    *,
    feed: str,
    default_desk: str,
    rules: DeskRules,
    base_url: str | None,
    now: dt.datetime,
) -> tuple[list[Item], list[str]]:
    """Items worth keeping, and a warning for each entry that was skipped or repaired."""
    items: list[Item] = []
    warnings: list[str] = []
    seen_ids: set[str] = set()
    for position, raw in enumerate(entries, start=1):
        item, notes = _entry_item(
            raw,
            position,
            seen_ids,
            feed=feed,
            default_desk=default_desk,
            rules=rules,
            base_url=base_url,
            now=now,
        )
        warnings.extend(notes)
        if item is not None:
            seen_ids.add(item.id)
            items.append(item)
    return items, warnings


def _entry_item(
    raw: RawEntry,
    position: int,
    seen_ids: Container[str],
    *,
    feed: str,
    default_desk: str,
    rules: DeskRules,
    base_url: str | None,
    now: dt.datetime,
) -> tuple[Item | None, list[str]]:
    """One entry's item (None: skipped), and the warnings it earns either way."""
    # Always stripped: feedparser calls a title "text/plain" even when it holds <script>.
    title = plain_text(raw.title)
    label = f"item {position}" + (f" ({_label(title)!r})" if title else "")
    checked = _link_and_date(raw, title, base_url, now)
    if isinstance(checked, str):
        return None, [f"{label} {checked}; skipped"]
    url, published = checked
    warnings: list[str] = []
    if len(title) > TITLE_LIMIT:
        warnings.append(f"{label} has a title of {len(title):,} characters; shortened to {TITLE_LIMIT}")
        title = shorten(title, TITLE_LIMIT)
    canonical = canonical_url(url)
    summary_html, summary_text = _summary(raw.summary, base_url)
    guid = one_line(raw.guid or "")[:500]
    item_id = guid or canonical or content_hash(title, summary_text)
    if item_id in seen_ids:
        warnings.append(f"{label} repeats the id {item_id!r} of an earlier item; skipped")
        return None, warnings
    categories = tuple(c for c in (one_line(c) for c in raw.categories) if c)
    image = _image(raw, base_url, title)
    item = Item(
        id=item_id,
        title=title,
        url=url,
        canonical_url=canonical,
        summary_html=summary_html,
        summary_text=summary_text,
        author=one_line(raw.author or "") or None,
        categories=categories,
        desk=rules.desk_for(categories, default_desk),
        published=published,
        updated=raw.updated if raw.updated and raw.updated != published else None,
        image=image.url,
        image_alt=image.alt,
        read_time=_read_time(raw),
        feed=feed,
        image_width=image.width,
        image_height=image.height,
        image_credit=image.credit,
    )
    return item, warnings


def _link_and_date(
    raw: RawEntry, title: str, base_url: str | None, now: dt.datetime
) -> tuple[str, dt.datetime] | str:
    """The entry's web link and date, or why it is skipped (checked in this order)."""
    url = web_url(raw.link, base_url)
    if not url:
        return "has no http(s) link"
    if not title:
        return "has no title"
    published = raw.published or raw.updated
    if published is None:
        return "has no date"
    if published > now + FUTURE_TOLERANCE:
        return f"is dated in the future ({published:%Y-%m-%d %H:%M} UTC)"
    if published < now - MAX_AGE:
        return f"is dated {published:%Y-%m-%d}, more than a year ago"
    return url, published


def _summary(summary: str, base_url: str | None) -> tuple[str, str]:
    """The summary as safe HTML and as text, both cut to SUMMARY_WORDS."""
    summary_html = clean_html(summary, base_url)
    summary_text = plain_text(summary_html)
    if len(summary_text.split()) > SUMMARY_WORDS:
        # A long summary cannot be cut safely as HTML; its shortened text stands in for it.
        summary_text = truncate_words(summary_text, SUMMARY_WORDS)
        summary_html = html.escape(summary_text, quote=False)
    return _paragraphs(summary_html), summary_text


def _label(title: str) -> str:
    # Words, then characters: a title with no spaces must not fill the warning either.
    return shorten(truncate_words(title, LABEL_WORDS), TITLE_LIMIT // 2)


def _paragraphs(fragment: str) -> str:
    """Bare text before the first block gets a paragraph, so every story is spaced alike."""
    block = _BLOCK.search(fragment)
    lead = fragment[: block.start()] if block else fragment
    if not lead.strip():
        return fragment
    return f"<p>{lead.strip()}</p>" + (fragment[block.start() :] if block else "")


@dataclass(frozen=True, slots=True)
class _Image:
    """The story's image as an Item carries it; by default none, so no alt, size or credit."""

    url: str | None = None
    alt: str = ""
    width: int | None = None
    height: int | None = None
    credit: str = ""


def _image(raw: RawEntry, base_url: str | None, title: str) -> _Image:
    """The first image with a web URL: its alt (else the headline), credit and plausible size."""
    for candidate in raw.images:
        url = web_url(candidate.url, base_url)
        if not url:
            continue
        width = _pixels(candidate.width)
        # A width alone still sizes the picture (its height follows); a height alone does not.
        height = _pixels(candidate.height) if width else None
        alt = shorten(plain_text(candidate.alt), ALT_LIMIT) or title
        return _Image(url, alt, width, height, shorten(plain_text(candidate.credit), CREDIT_LIMIT))
    return _Image()


def _pixels(value: object) -> int | None:
    """A side in pixels when the feed gives a plausible one; not "100%", "-5", "0", "800px"."""
    if isinstance(value, str) and _PIXELS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_IMAGE_SIDE:
        return value
    return None


def _read_time(raw: RawEntry) -> int:
    """Minutes to read: the feed's figure when it gives a sane one, else estimated from the words."""
    given = raw.read_time
    if isinstance(given, str):
        given = given.strip().split(" ")[0]
    try:
        minutes = int(float(given)) if given is not None else 0
    except (TypeError, ValueError, OverflowError):  # "inf", "1e999": one bad entry, not the feed
        minutes = 0
    if 1 <= minutes <= MAX_READ_TIME:
        return minutes
    # The whole text the feed gave, not the shortened summary.
    words = len(plain_text(raw.content or raw.summary).split())
    return max(1, math.ceil(words / WORDS_PER_MINUTE))
