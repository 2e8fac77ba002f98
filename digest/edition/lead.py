"""Which story leads an edition: one the feed marks, else the first desk's newest."""

from __future__ import annotations

from digest.model import Edition, Item


def lead_story(edition: Edition, lead_category: str | None = None) -> Item | None:
    """The newest story carrying ``lead_category`` (any case), else the first story of the
    first desk that has one (desks keep their stories newest first); None for an empty edition.

    Chosen from the edition as given, so each variant leads with a story of its own desks.
    """
    items = [item for desk in edition.desks for item in desk.items]
    if lead_category:
        wanted = lead_category.casefold()
        marked = [item for item in items if any(c.casefold() == wanted for c in item.categories)]
        if marked:
            return max(marked, key=lambda item: (item.published, item.title))
    return items[0] if items else None
