"""Feed bytes → raw entries. RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed here.

A raw entry is what the feed says, unsanitized; ``digest.ingest.items`` turns it into an Item.
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import feedparser

from digest.errors import FeedError
from digest.ingest.mediarss import MediaText, media_texts

_IMG_TAG = re.compile(r"<img\b[^>]*>", re.I)
# Not preceded by a word or a hyphen: data-src or data-width are not the image's own.
_ATTR = re.compile(r"""(?<![\w-])(src|alt|width|height)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_FIGURE = re.compile(r"<(/?)figure\b[^>]*>", re.I)
_FIGCAPTION = re.compile(r"<figcaption\b[^>]*>(.*?)</figcaption\s*>", re.I | re.S)
_READ_TIME_KEYS = ("readtime", "read_time", "readingtime", "reading_time")


@dataclass(frozen=True, slots=True)
class RawImage:
    """An image as the feed describes it: alt and credit may hold markup, the sizes are unchecked."""

    url: str
    alt: str = ""
    width: object = None
    height: object = None
    credit: str = ""


@dataclass(slots=True)
class RawEntry:
    """One entry as the feed gave it; strings may hold hostile markup."""

    guid: str | None = None
    link: str | None = None
    title: str = ""
    summary: str = ""
    content: str = ""
    author: str | None = None
    categories: list[str] = field(default_factory=list)
    published: dt.datetime | None = None
    updated: dt.datetime | None = None
    images: list[RawImage] = field(default_factory=list)
    """In the order of preference: enclosure, media:content, media:thumbnail, the first <img>."""
    read_time: str | int | None = None


@dataclass(slots=True)
class Parsed:
    entries: list[RawEntry]
    warnings: list[str]
    base_url: str | None = None


def parse_feed(body: bytes, headers: dict[str, str]) -> Parsed:
    """Parse any supported format; raise FeedError when the bytes are not a feed at all."""
    content_type = headers.get("content-type", "").lower()
    if "json" in content_type or body.lstrip()[:1] == b"{":
        return parse_json_feed(body)
    return parse_xml_feed(body, headers)


def parse_xml_feed(body: bytes, headers: dict[str, str]) -> Parsed:
    # Bytes and headers only: given a string, feedparser would treat it as a URL or a path.
    result = feedparser.parse(body, response_headers=headers or None, sanitize_html=True)
    warnings: list[str] = []
    if result.bozo:
        problem = _bozo_message(result.get("bozo_exception"))
        if not result.entries:
            raise FeedError(f"is not a readable feed: {problem}")
        warnings.append(f"is malformed ({problem}); {len(result.entries)} items were still read")
    if not result.entries and not result.get("version"):
        raise FeedError("is not an RSS, Atom or JSON feed")
    base = headers.get("content-location") or result.feed.get("link")
    found = media_texts(body)
    # Unread, or entries counted otherwise: a wrong pairing would credit another's picture.
    paired = found is not None and len(found) == len(result.entries)
    texts: list[dict[str, MediaText] | None] = (
        list(found) if found and paired else [None] * len(result.entries)
    )
    entries = [_from_feedparser(e, t) for e, t in zip(result.entries, texts, strict=True)]
    return Parsed(entries, warnings, base)


def _bozo_message(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown problem"
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _struct_time(value: time.struct_time | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromtimestamp(calendar.timegm(value), tz=dt.UTC)


def _from_feedparser(entry: Any, texts: dict[str, MediaText] | None) -> RawEntry:
    raw = RawEntry()
    raw.guid = entry.get("id") or None
    raw.link = entry.get("link")
    raw.title = entry.get("title", "")
    raw.summary = entry.get("summary", "")
    contents = [c.get("value", "") for c in entry.get("content", []) if "html" in c.get("type", "")]
    raw.content = contents[0] if contents else ""
    author = entry.get("author_detail", {}).get("name") or entry.get("author")
    raw.author = author or None
    raw.categories = [tag.get("term") or tag.get("label") or "" for tag in entry.get("tags", [])]
    raw.published = _struct_time(entry.get("published_parsed"))
    # Plain dict lookup: FeedParserDict would fall back to published_parsed (with a warning).
    raw.updated = _struct_time(dict.get(entry, "updated_parsed"))
    raw.images = _feedparser_images(entry, texts)
    raw.images.extend(first_image(raw.content or raw.summary))
    for key, value in entry.items():
        if key.lower().endswith(_READ_TIME_KEYS):
            raw.read_time = value
            break
    return raw


def _feedparser_images(entry: Any, texts: dict[str, MediaText] | None) -> list[RawImage]:
    """The entry's enclosed and Media RSS images; ``texts`` from media_texts, None if unread."""
    images = [
        RawImage(enclosure.get("href", ""))
        for enclosure in entry.get("enclosures", [])
        if enclosure.get("type", "").startswith("image/")
    ]
    media = [
        found
        for found in entry.get("media_content", [])
        if found.get("medium") == "image" or found.get("type", "").startswith("image/")
    ]
    # Without the XML pass only feedparser's list of credits is left: the entry's first.
    fallback = MediaText(
        credit=next((c.get("content") for c in entry.get("media_credit", []) if c.get("content")), "")
    )
    for found in (*media, *entry.get("media_thumbnail", [])):
        url = found.get("url", "")
        text = fallback if texts is None else texts.get(url.strip(), MediaText())
        alt = text.description or text.title
        images.append(RawImage(url, alt, found.get("width"), found.get("height"), text.credit))
    return images


def first_image(fragment: str) -> list[RawImage]:
    """The first <img> of an HTML fragment, if any; the caption of its <figure> is its credit."""
    tag = _IMG_TAG.search(fragment or "")
    if not tag:
        return []
    attributes = {
        m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or "" for m in _ATTR.finditer(tag.group())
    }
    if "src" not in attributes:
        return []
    return [
        RawImage(
            # An attribute holds HTML: "&amp;" in a URL is "&". The alt stays as HTML for plain_text.
            html.unescape(attributes["src"]),
            attributes.get("alt", ""),
            attributes.get("width"),
            attributes.get("height"),
            _caption(fragment, tag.start(), tag.end()),
        )
    ]


def _caption(fragment: str, start: int, end: int) -> str:
    """The <figcaption> (as HTML) of the <figure> that holds fragment[start:end], if one does."""
    opening: int | None = None
    for mark in _FIGURE.finditer(fragment, 0, start):
        opening = None if mark.group(1) else mark.end()
    if opening is None:
        return ""
    # The figure ends at its </figure>, or where another begins (this one was left open).
    after = _FIGURE.search(fragment, end)
    caption = _FIGCAPTION.search(fragment, opening, after.start() if after else len(fragment))
    return caption.group(1) if caption else ""


def _rfc3339(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_json_feed(body: bytes) -> Parsed:
    """JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1)."""
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise FeedError(f"is not UTF-8 JSON: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise FeedError(f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        raise FeedError('is JSON but not a JSON Feed (no "version": "https://jsonfeed.org/version/1.1")')
    items = document.get("items")
    if not isinstance(items, list):
        raise FeedError('is a JSON Feed without an "items" array')
    warnings: list[str] = []
    entries = []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            warnings.append(f"item {position} is not an object; skipped")
            continue
        entries.append(_from_json_item(item))
    return Parsed(
        entries, warnings, _text(document.get("home_page_url")) or _text(document.get("feed_url")) or None
    )


def _from_json_item(item: dict[str, Any]) -> RawEntry:
    raw = RawEntry()
    if item.get("id") is not None:
        raw.guid = str(item["id"])
    raw.link = _text(item.get("url")) or _text(item.get("external_url")) or None
    raw.title = _text(item.get("title"))
    raw.content = _text(item.get("content_html"))
    raw.summary = _text(item.get("summary")) or raw.content or _text(item.get("content_text"))
    listed = item.get("authors")
    authors: list[Any] = listed if isinstance(listed, list) else [item.get("author")]
    names: list[str] = [a["name"] for a in authors if isinstance(a, dict) and isinstance(a.get("name"), str)]
    raw.author = ", ".join(names) or None
    raw.categories = (
        [tag for tag in item.get("tags", []) if isinstance(tag, str)]
        if isinstance(item.get("tags"), list)
        else []
    )
    raw.published = _rfc3339(item.get("date_published"))
    raw.updated = _rfc3339(item.get("date_modified"))
    extension = item.get("_digest")
    if not isinstance(extension, dict):
        extension = {}
    raw.images = _json_images(item, extension)
    raw.images.extend(first_image(raw.content))
    raw.read_time = extension.get("read_time")
    return raw


def _json_images(item: dict[str, Any], extension: dict[str, Any]) -> list[RawImage]:
    """The item's image, then its banner; ``_digest`` describes the first of them."""
    urls = [item[key] for key in ("image", "banner_image") if isinstance(item.get(key), str)]
    if not urls:
        return []
    described = RawImage(
        urls[0],
        _text(extension.get("image_alt")),
        extension.get("image_width"),
        extension.get("image_height"),
        _text(extension.get("image_credit")),
    )
    return [described, *(RawImage(url) for url in urls[1:])]
