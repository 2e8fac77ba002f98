"""An image's alt text, size and credit in the frozen edition and in the editors' JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from digest.edition.export import edition_json
from digest.edition.frozen import dump_edition, load_edition
from digest.model import DeskSection, Edition, Item, Window

PUBLISHED = dt.datetime(2026, 11, 24, 17, 0, tzinfo=dt.UTC)
STORY = Item(
    id="ml-eu-77",
    title="The last lighthouse keeper signs off",
    url="https://news.example.org/europe/lighthouse-keeper",
    canonical_url="https://news.example.org/europe/lighthouse-keeper",
    summary_html="<p>A computer takes over the lamp.</p>",
    summary_text="A computer takes over the lamp.",
    author="Ines Varga",
    categories=("Europe",),
    desk="Europe",
    published=PUBLISHED,
    updated=None,
    image="https://images.example.org/2026/11/lighthouse-keeper.jpg",
    image_alt="A keeper climbs the spiral stairs at dusk",
    read_time=3,
    feed="feeds/world.xml",
)
WINDOW = Window(
    dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC), dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC)
)


def edition_of(item: Item) -> Edition:
    section = DeskSection("Europe", "europe", "https://news.example.org/europe/", (item,))
    return Edition("daily", dt.date(2026, 11, 25), "Europe/Kyiv", WINDOW, (section,))


# As dump_edition wrote an edition before items had an image size and credit.
FROZEN_BEFORE_IMAGE_SIZES = json.dumps(
    {
        "format": 1,
        "list": "daily",
        "date": "2026-11-25",
        "timezone": "Europe/Kyiv",
        "window": ["2026-11-24T06:00:00+00:00", "2026-11-25T06:00:00+00:00"],
        "warnings": [],
        "missing_feeds": [],
        "desks": [
            {
                "name": "Europe",
                "slug": "europe",
                "more_url": "https://news.example.org/europe/",
                "more_count": 0,
                "items": [
                    {
                        "id": "ml-eu-77",
                        "title": "The last lighthouse keeper signs off",
                        "url": "https://news.example.org/europe/lighthouse-keeper",
                        "canonical_url": "https://news.example.org/europe/lighthouse-keeper",
                        "summary_html": "<p>A computer takes over the lamp.</p>",
                        "summary_text": "A computer takes over the lamp.",
                        "author": "Ines Varga",
                        "categories": ["Europe"],
                        "desk": "Europe",
                        "published": "2026-11-24T17:00:00+00:00",
                        "updated": None,
                        "image": "https://images.example.org/2026/11/lighthouse-keeper.jpg",
                        "image_alt": "A keeper climbs the spiral stairs at dusk",
                        "read_time": 3,
                        "feed": "feeds/world.xml",
                    }
                ],
            }
        ],
    }
)


def test_an_edition_frozen_before_image_sizes_loads_without_them() -> None:
    loaded = load_edition(FROZEN_BEFORE_IMAGE_SIZES)
    assert loaded == edition_of(STORY)
    (item,) = loaded.items
    assert (item.image_width, item.image_height, item.image_credit) == (None, None, "")


def test_a_frozen_edition_keeps_the_image_size_and_credit() -> None:
    sized = dataclasses.replace(
        STORY, image_width=1600, image_height=900, image_credit="Ines Varga / Coastal"
    )
    text = dump_edition(edition_of(sized))
    stored = json.loads(text)["desks"][0]["items"][0]
    assert (stored["image_width"], stored["image_height"], stored["image_credit"]) == (
        1600,
        900,
        "Ines Varga / Coastal",
    )
    (item,) = load_edition(text).items
    assert item == sized


def test_the_editors_json_describes_the_image() -> None:
    sized = dataclasses.replace(STORY, image_width=1600, image_height=None, image_credit="Ines Varga")
    document = edition_json(edition_of(sized), subject="Today", preheader="The lighthouse")
    (item,) = document["desks"][0]["items"]
    assert {
        key: item[key] for key in ("image", "image_alt", "image_width", "image_height", "image_credit")
    } == {
        "image": "https://images.example.org/2026/11/lighthouse-keeper.jpg",
        "image_alt": "A keeper climbs the spiral stairs at dusk",
        "image_width": 1600,
        "image_height": None,
        "image_credit": "Ines Varga",
    }
