"""An edition as stored when it is frozen for sending, and read back to resume or re-render.

Every field is kept (unlike the editors' JSON), so a variant first needed on a resumed run
renders exactly as it would have when the edition was frozen.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, Protocol

from digest.model import DeskSection, Edition, Item, Window

FORMAT = 1


class FrozenEditions(Protocol):
    """Where frozen editions are kept as text (digest.state.editions.Editions)."""

    def frozen(self, edition_id: str) -> str | None: ...

    def record(self, edition: Edition, content: str, *, now: dt.datetime | None = None) -> bool: ...


def freeze_edition(editions: FrozenEditions, edition: Edition, *, now: dt.datetime) -> bool:
    """Freeze the edition and mark its stories seen; False if it was frozen before."""
    return editions.record(edition, dump_edition(edition), now=now)


def frozen_edition(editions: FrozenEditions, edition_id: str) -> Edition | None:
    """The edition frozen under ``edition_id``, as it was frozen."""
    content = editions.frozen(edition_id)
    return load_edition(content) if content else None


def _when(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _moment(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def dump_edition(edition: Edition) -> str:
    def item(entry: Item) -> dict[str, Any]:
        data = dataclasses.asdict(entry)
        data.update(
            published=_when(entry.published), updated=_when(entry.updated), categories=list(entry.categories)
        )
        return data

    return json.dumps(
        {
            "format": FORMAT,
            "list": edition.list_name,
            "date": edition.date.isoformat(),
            "timezone": edition.timezone,
            "window": [_when(edition.window.start), _when(edition.window.end)],
            "warnings": list(edition.warnings),
            "missing_feeds": list(edition.missing_feeds),
            "desks": [
                {
                    "name": desk.name,
                    "slug": desk.slug,
                    "more_url": desk.more_url,
                    "more_count": desk.more_count,
                    "items": [item(entry) for entry in desk.items],
                }
                for desk in edition.desks
            ],
        },
        ensure_ascii=False,
    )


def load_edition(text: str) -> Edition:
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f"frozen edition format {data.get('format')!r} is not {FORMAT}")

    def item(entry: dict[str, Any]) -> Item:
        return Item(
            **{
                **entry,
                "categories": tuple(entry["categories"]),
                "published": _moment(entry["published"]),
                "updated": _moment(entry["updated"]),
            }
        )

    start, end = (_moment(moment) for moment in data["window"])
    assert start is not None and end is not None
    return Edition(
        list_name=data["list"],
        date=dt.date.fromisoformat(data["date"]),
        timezone=data["timezone"],
        window=Window(start, end),
        desks=tuple(
            DeskSection(
                name=desk["name"],
                slug=desk["slug"],
                more_url=desk["more_url"],
                more_count=desk["more_count"],
                items=tuple(item(entry) for entry in desk["items"]),
            )
            for desk in data["desks"]
        ),
        warnings=tuple(data["warnings"]),
        missing_feeds=tuple(data.get("missing_feeds", ())),  # editions frozen before schema 5 have none
    )
