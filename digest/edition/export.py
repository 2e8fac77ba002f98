"""An edition as JSON: what editors and other tools read (`<list>.json`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from digest.model import Edition, Item


def _when(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def _item(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "title": item.title,
        "url": item.url,
        "author": item.author,
        "published": _when(item.published),
        "updated": _when(item.updated),
        "summary": item.summary_html,
        "image": item.image,
        "image_alt": item.image_alt,
        "image_width": item.image_width,
        "image_height": item.image_height,
        "image_credit": item.image_credit,
        "read_time": item.read_time,
        "categories": list(item.categories),
        "feed": item.feed,
    }


def edition_json(edition: Edition, *, subject: str, preheader: str) -> dict[str, Any]:
    return {
        "list": edition.list_name,
        "id": edition.id,
        "date": edition.date.isoformat(),
        "timezone": edition.timezone,
        "window": {"start": _when(edition.window.start), "end": _when(edition.window.end)},
        "subject": subject,
        "preheader": preheader,
        "empty": edition.is_empty,
        "item_count": len(edition.items),
        "warnings": list(edition.warnings),
        "missing_feeds": list(edition.missing_feeds),
        "desks": [
            {
                "name": desk.name,
                "more_url": desk.more_url,
                "more_count": desk.more_count,
                "items": [_item(item) for item in desk.items],
            }
            for desk in edition.desks
        ],
    }
