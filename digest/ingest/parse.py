"""Feed bytes → raw entries. RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed here.

A raw entry is what the feed says, unsanitized; ``digest.ingest.items`` turns it into an Item.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import feedparser

from digest.errors import FeedError

_IMG_TAG = re.compile(r"<img\b[^>]*>", re.I)
_ATTR = re.compile(r"""\b(src|alt)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_READ_TIME_KEYS = ("readtime", "read_time", "readingtime", "reading_time")


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
    images: list[tuple[str, str]] = field(default_factory=list)
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
    return Parsed([_from_feedparser(entry) for entry in result.entries], warnings, base)


def _bozo_message(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown problem"
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _struct_time(value: time.struct_time | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromtimestamp(calendar.timegm(value), tz=dt.UTC)


def _from_feedparser(entry: Any) -> RawEntry:
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
    for enclosure in entry.get("enclosures", []):
        if enclosure.get("type", "").startswith("image/"):
            raw.images.append((enclosure.get("href", ""), ""))
    for media in entry.get("media_content", []):
        if media.get("medium") == "image" or media.get("type", "").startswith("image/"):
            raw.images.append((media.get("url", ""), ""))
    for thumbnail in entry.get("media_thumbnail", []):
        raw.images.append((thumbnail.get("url", ""), ""))
    raw.images.extend(first_image(raw.content or raw.summary))
    for key, value in entry.items():
        if key.lower().endswith(_READ_TIME_KEYS):
            raw.read_time = value
            break
    return raw


def first_image(fragment: str) -> list[tuple[str, str]]:
    """(src, alt) of the first <img> in an HTML fragment, if any."""
    tag = _IMG_TAG.search(fragment or "")
    if not tag:
        return []
    attributes = {
        m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or "" for m in _ATTR.finditer(tag.group())
    }
    return [(attributes["src"], attributes.get("alt", ""))] if "src" in attributes else []


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
    for key in ("image", "banner_image"):
        if isinstance(item.get(key), str):
            raw.images.append((item[key], ""))
    raw.images.extend(first_image(raw.content))
    extension = item.get("_digest")
    if isinstance(extension, dict):
        raw.read_time = extension.get("read_time")
    return raw
