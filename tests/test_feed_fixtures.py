"""Data-driven ingest tests: every file in fixtures/feeds/ is a feed that states what it expects.

XML files open with ``<!-- expect {json} -->`` (right after the XML declaration, if any); JSON
files carry a top-level ``"_expect": {json}``. Keys (all optional but "description"):

- "description": what the fixture exercises
- "error": a substring of the FeedError message; the file is not a feed (nothing else checked)
- "items": how many Items are built
- "titles": the items' titles, in order
- "warnings": substrings each of which must appear in some warning, and every warning must
  contain one of them; [] means no warnings at all
- "fields": {"<index>": {"<Item field>": exact value}} (tuples as lists, datetimes as ISO 8601)
- "absent": substrings (compared case-insensitively) found in no item's text or URL fields
- "xfail": a known bug in digest/ that the fixture exposes (test_feed_fixture is a strict xfail)
- "xfail_invariants": the same for test_every_item_is_safe_to_use, when the bug breaks those too
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from digest.errors import FeedError
from digest.ingest.items import (
    CREDIT_LIMIT,
    FUTURE_TOLERANCE,
    MAX_IMAGE_SIDE,
    MAX_READ_TIME,
    DeskRules,
    build_items,
)
from digest.ingest.parse import parse_feed
from digest.ingest.sanitize import clean_html
from digest.model import Item

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
NOW = dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC)
RULES = DeskRules(
    order=("Ukraine", "North America", "Business", "Europe", "Culture"),
    categories={"War": "Ukraine"},
)
DEFAULT_DESK = "Europe"

KEYS = {
    "description",
    "error",
    "items",
    "titles",
    "warnings",
    "fields",
    "absent",
    "xfail",
    "xfail_invariants",
}
ITEM_FIELDS = {field.name for field in dataclasses.fields(Item)}
# Where hostile text could end up: everything a template or a mail header might show.
TEXT_FIELDS = (
    "id",
    "title",
    "url",
    "canonical_url",
    "summary_html",
    "summary_text",
    "author",
    "image",
    "image_alt",
    "image_credit",
)
_XML_EXPECT = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>\s*)?<!--\s*expect\s+(.*?)\s*-->", re.S)


def fixture_files() -> list[Path]:
    return sorted(path for path in FIXTURES.iterdir() if path.is_file() and not path.name.startswith("."))


def read_expectation(path: Path) -> dict[str, Any]:
    body = path.read_bytes()
    if path.suffix == ".json":
        text = body.decode("utf-8")
        try:
            expect = json.loads(text)["_expect"]
        except json.JSONDecodeError:
            # A fixture of broken JSON still opens with a well-formed "_expect" object.
            found = re.search(r'"_expect"\s*:\s*', text)
            assert found, f'{path.name}: no "_expect" key'
            expect, _ = json.JSONDecoder().raw_decode(text, found.end())
    else:
        found = _XML_EXPECT.match(body)
        assert found, f"{path.name}: does not open with <!-- expect {{...}} -->"
        expect = json.loads(found.group(1).decode("utf-8"))
    assert isinstance(expect, dict), f"{path.name}: the expectation is not an object"
    assert isinstance(expect.get("description"), str) and expect["description"], (
        f"{path.name}: no description"
    )
    assert set(expect) <= KEYS, f"{path.name}: unknown expectation keys {set(expect) - KEYS}"
    for index, fields in expect.get("fields", {}).items():
        assert index.isdigit(), f"{path.name}: fields key {index!r} is not an item index"
        assert set(fields) <= ITEM_FIELDS, f"{path.name}: not Item fields: {set(fields) - ITEM_FIELDS}"
    return expect


def _expectation_or_empty(path: Path) -> dict[str, Any]:
    try:
        return read_expectation(path)
    except Exception:  # a broken expectation fails in the test itself, not at collection
        return {}


def _params(xfail_key: str, *, feeds_only: bool = False) -> list[Any]:
    params = []
    for path in fixture_files():
        expect = _expectation_or_empty(path)
        if feeds_only and "error" in expect:
            continue
        reason = expect.get(xfail_key)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(path, id=path.name, marks=marks))
    return params


def ingest(path: Path) -> tuple[list[Item], list[str]]:
    parsed = parse_feed(path.read_bytes(), {})
    items, item_warnings = build_items(
        parsed.entries,
        feed=path.name,
        default_desk=DEFAULT_DESK,
        rules=RULES,
        base_url=parsed.base_url,
        now=NOW,
    )
    return items, parsed.warnings + item_warnings


def _comparable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_comparable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def test_the_folder_holds_the_fixtures() -> None:
    assert len(fixture_files()) >= 20


@pytest.mark.parametrize("path", _params("xfail"))
def test_feed_fixture(path: Path) -> None:
    expect = read_expectation(path)

    if "error" in expect:
        with pytest.raises(FeedError) as caught:
            parse_feed(path.read_bytes(), {})
        assert expect["error"] in caught.value.message
        return

    items, warnings = ingest(path)

    if "items" in expect:
        assert len(items) == expect["items"], [item.title for item in items]
    if "titles" in expect:
        assert [item.title for item in items] == expect["titles"]
    if "warnings" in expect:
        wanted = expect["warnings"]
        if not wanted:
            assert warnings == []
        for substring in wanted:
            assert any(substring in warning for warning in warnings), (substring, warnings)
        for warning in warnings:
            assert any(substring in warning for substring in wanted), f"unexpected warning {warning!r}"
    for index, fields in expect.get("fields", {}).items():
        assert int(index) < len(items), f"no item {index}"
        item = items[int(index)]
        actual = {name: _comparable(getattr(item, name)) for name in fields}
        assert actual == fields, f"item {index}"
    for substring in expect.get("absent", []):
        for item in items:
            for name in (*TEXT_FIELDS, "categories"):
                value = getattr(item, name)
                text = " ".join(value) if isinstance(value, tuple) else value or ""
                assert substring.lower() not in text.lower(), f"{substring!r} in {name}: {text!r}"


def _is_clean_text(text: str) -> bool:
    return text == text.strip() and not any(
        unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for ch in text
    )


@pytest.mark.parametrize("path", _params("xfail_invariants", feeds_only=True))
def test_every_item_is_safe_to_use(path: Path) -> None:
    """What holds for every item of every fixture, whatever the fixture is about."""
    items, _ = ingest(path)
    assert len({item.id for item in items}) == len(items), "ids repeat"
    for item in items:
        for name in (*TEXT_FIELDS, "desk", "feed"):
            value = getattr(item, name)
            assert value is None or _is_clean_text(value), f"{name}: {value!r}"
            assert value is None or "  " not in value, f"{name} has unfolded spaces: {value!r}"
        assert all(category and _is_clean_text(category) for category in item.categories)
        assert item.title and item.id
        assert re.match(r"https?://[^/\s]+", item.url), item.url
        assert re.match(r"https?://[^/\s]+", item.canonical_url), item.canonical_url
        assert item.image is None or re.match(r"https?://[^/\s]+", item.image), item.image
        assert (item.image is None) == (item.image_alt == "")
        if item.image is None:
            assert (item.image_width, item.image_height, item.image_credit) == (None, None, "")
        assert item.image_width is not None or item.image_height is None, "a height without a width"
        for side in (item.image_width, item.image_height):
            assert side is None or 1 <= side <= MAX_IMAGE_SIDE, side
        assert len(item.image_credit) <= CREDIT_LIMIT
        # Already clean: cleaning it again changes nothing (no markup left to remove).
        assert clean_html(item.summary_html) == item.summary_html
        assert item.desk in RULES.order
        assert 1 <= item.read_time <= MAX_READ_TIME
        assert item.published.tzinfo is not None
        assert item.published <= NOW + FUTURE_TOLERANCE
        assert item.updated is None or item.updated != item.published
        assert item.feed == path.name
