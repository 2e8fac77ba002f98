"""Edition → the values the templates see. Everything here is already safe text."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from digest.brand import brand_context
from digest.config import Config
from digest.edition.lead import lead_story
from digest.model import Edition, Item

# Per-recipient values are left as these markers in the rendered variant and filled in per
# subscriber by plain substitution, so each variant is rendered once, not once per subscriber.
PLACEHOLDERS = {
    "greeting": "%%greeting%%",
    "unsubscribe_url": "%%unsubscribe_url%%",
    "preferences_url": "%%preferences_url%%",
}
# Where the subscriber's name goes in the greeting's wording (greeting.txt.j2).
NAME_MARK = "%%name%%"


@dataclass(frozen=True, slots=True)
class Greeting:
    """The greeting's wording from the templates, rendered once with a stand-in for the name
    and once without a name; a recipient's greeting is then one replacement, not a render."""

    named: str
    anonymous: str

    def to(self, name: str) -> str:
        """The greeting of a recipient called ``name`` (empty: the greeting without a name)."""
        return self.named.replace(NAME_MARK, name) if name else self.anonymous


# Display widths in the 600px email (24px gutters): the lead's picture fills the column, the
# other stories' pictures are thumbnails beside their text. No picture is drawn wider than
# LEAD_WIDTH, on a phone (where thumbnails go full width, at most 480 - 48 px) or elsewhere.
LEAD_WIDTH = 552
THUMB_WIDTH = 120


def _item(item: Item, zone: ZoneInfo, slot: int) -> SimpleNamespace:
    published = item.published.astimezone(zone).strftime("%H:%M")
    # Only a later time than the one shown: feeds often stamp both alike, or seconds apart.
    updated = (
        item.updated.astimezone(zone).strftime("%H:%M")
        if item.updated and item.updated > item.published
        else None
    )
    width = _drawn_width(item, slot)
    return SimpleNamespace(
        **{
            "id": item.id,
            "title": item.title,
            "url": item.url,
            "author": item.author,
            "published": item.published,
            "published_label": published,
            "updated_label": updated if updated != published else None,
            # Sanitized by digest.ingest.sanitize.clean_html: safe to place unescaped.
            "summary_html": Markup(item.summary_html),
            "summary_text": item.summary_text,
            "image": item.image,
            "image_alt": item.image_alt,
            "image_credit": item.image_credit,
            # The slot keeps its width when a picture is narrower: the text beside it starts where
            # every other story's does.
            "image_slot": slot,
            "image_width": width,
            "image_height": _scaled_height(item, width),
            # The cap for a phone's full-width thumbnail: the picture's own width, when it has one
            # narrower than any slot (None: the thumbnail may fill the phone's column).
            "image_max_width": item.image_width
            if item.image_width and item.image_width < LEAD_WIDTH
            else None,
            "read_time": item.read_time,
            "categories": list(item.categories),
            "desk": item.desk,
        }
    )


def _drawn_width(item: Item, slot: int) -> int:
    """The width a picture is drawn at in a ``slot`` that wide: the slot's, or the picture's own
    when the feed says it is narrower (a small picture is never stretched); the slot's when the
    feed gives no size."""
    return min(slot, item.image_width) if item.image_width else slot


def _anchors(slugs: list[str]) -> list[str]:
    """The id of each desk's heading, ``desk-<slug>``, numbered where two would be the same
    (``Arts & Culture`` and ``Arts, Culture``). A slug in another script is left out: the
    link to it goes percent-encoded, which not every mail program matches with the id."""
    anchors: list[str] = []
    for slug in slugs:
        base = f"desk-{slug}" if slug.isascii() else "desk"
        anchor, number = base, 1
        while anchor in anchors:
            number += 1
            anchor = f"{base}-{number}"
        anchors.append(anchor)
    return anchors


def _scaled_height(item: Item, width: int) -> int | None:
    """The picture's height at ``width``, when the feed gave its size (else the client sizes it)."""
    if not item.image_width or not item.image_height:
        return None
    return max(1, round(width * item.image_height / item.image_width))


def date_label(edition: Edition) -> str:
    """'Wednesday, 25 November 2026' (Python keeps the C locale for dates unless told otherwise)."""
    day = edition.date
    return f"{day:%A}, {day.day} {day:%B} {day.year}"


def web_url(config: Config, path: str) -> str:
    """``path`` (starting with /) on `digest serve`, where [server] base_url points."""
    return config.settings.server.base_url.rstrip("/") + path


def archive_path(list_name: str, date: dt.date) -> str:
    """Where `digest serve` publishes the list's edition of ``date`` (list names are URL-safe)."""
    return f"/archive/{list_name}/{date.isoformat()}"


def template_context(config: Config, edition: Edition, *, web: bool = False) -> dict[str, Any]:
    """The context for every template; subject and preheader are added once rendered.

    ``web``: the edition as the web archive shows it, to nobody in particular: no "View in
    browser" link (it is the browser), and a sign-up link where an email has its reader's links.
    """
    newsroom = config.settings.newsroom
    mailing_list = config.mailing_list(edition.list_name)
    # Shared by every reader of the variant (not a placeholder): it names no one.
    archive_url = web_url(config, archive_path(mailing_list.name, edition.date))
    zone = ZoneInfo(edition.timezone)
    lead = lead_story(edition, config.settings.desks.lead_category)
    # Namespaces, not dicts: in a template `desk.items` must be the stories, not dict.items().
    desks = []
    anchors = _anchors([desk.slug for desk in edition.desks])
    for desk, anchor in zip(edition.desks, anchors, strict=True):
        items = [_item(item, zone, THUMB_WIDTH) for item in desk.items if item is not lead]
        desks.append(
            SimpleNamespace(
                name=desk.name,
                slug=desk.slug,
                anchor=anchor,
                more_url=desk.more_url,
                more_count=desk.more_count,
                items=items,
                # The stories its section lists, and those behind its "More from" link.
                count=len(items) + desk.more_count,
            )
        )
    return {
        "newsroom": {
            "name": newsroom.name,
            "site_url": newsroom.site_url,
            "postal_address": newsroom.postal_address,
        },
        "brand": brand_context(config.settings),
        "list": {"name": mailing_list.display_title},
        "edition": {
            "date": edition.date,
            "date_label": date_label(edition),
            "lang": newsroom.lang,
            "dir": newsroom.direction,
        },
        "lead": _item(lead, zone, LEAD_WIDTH) if lead else None,
        "desks": desks,
        # What the contents line lists: the desks with a section below, and how many stories each shows.
        "contents": [desk for desk in desks if desk.items or desk.more_count > 0],
        "item_count": len(edition.items),
        "top_headline": lead.title if lead else "",
        "placeholders": dict(PLACEHOLDERS),
        "archive_url": archive_url if mailing_list.archive and not web else "",
        "signup_url": web_url(config, f"/subscribe/{mailing_list.name}"),
        "web": web,
    }
