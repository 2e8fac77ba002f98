"""Edition → the values the templates see. Everything here is already safe text."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from digest.config import Config
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


def _item(item: Item, zone: ZoneInfo) -> SimpleNamespace:
    return SimpleNamespace(
        **{
            "id": item.id,
            "title": item.title,
            "url": item.url,
            "author": item.author,
            "published": item.published,
            "published_label": item.published.astimezone(zone).strftime("%H:%M"),
            # Sanitized by digest.ingest.sanitize.clean_html: safe to place unescaped.
            "summary_html": Markup(item.summary_html),
            "summary_text": item.summary_text,
            "image": item.image,
            "image_alt": item.image_alt,
            "read_time": item.read_time,
            "categories": list(item.categories),
        }
    )


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
    # Namespaces, not dicts: in a template `desk.items` must be the stories, not dict.items().
    desks = [
        SimpleNamespace(
            name=desk.name,
            slug=desk.slug,
            more_url=desk.more_url,
            more_count=desk.more_count,
            items=[_item(item, zone) for item in desk.items],
        )
        for desk in edition.desks
    ]
    return {
        "newsroom": {
            "name": newsroom.name,
            "site_url": newsroom.site_url,
            "postal_address": newsroom.postal_address,
        },
        "list": {"name": mailing_list.display_title},
        "edition": {"date": edition.date, "date_label": date_label(edition), "lang": newsroom.lang},
        "desks": desks,
        "item_count": len(edition.items),
        "top_headline": edition.desks[0].items[0].title if edition.desks else "",
        "placeholders": dict(PLACEHOLDERS),
        "archive_url": archive_url if mailing_list.archive and not web else "",
        "signup_url": web_url(config, f"/subscribe/{mailing_list.name}"),
        "web": web,
    }
