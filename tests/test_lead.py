"""The lead story: the newest story carrying `[desks] lead_category`, else the first desk's newest."""

from __future__ import annotations

import datetime as dt

import pytest

from digest.config import load_config
from digest.edition import build_edition
from digest.edition.lead import lead_story
from digest.model import DeskSection, Edition, Item, Variant, Window
from digest.render import render_edition
from tests.conftest import NOW, MakeProject
from tests.test_edition import story as edition_story


def story(name: str, desk: str, hours_ago: int, *categories: str) -> Item:
    url = f"https://news.example.org/{name}"
    return edition_story(
        0, desk, hours_ago, id=name, title=name, url=url, canonical_url=url, categories=categories
    )


def edition(*desks: tuple[str, list[Item]]) -> Edition:
    """Desks in the order given, their stories newest first as an edition keeps them."""
    sections = tuple(
        DeskSection(
            name, name.lower(), "", tuple(sorted(items, key=lambda item: item.published, reverse=True))
        )
        for name, items in desks
    )
    return Edition("daily", NOW.date(), "UTC", Window(NOW - dt.timedelta(days=1), NOW), sections)


WORLD = edition(
    (
        "Ukraine",
        [story("kharkiv", "Ukraine", 1, "War"), story("grain", "Ukraine", 5, "War", "Lead")],
    ),
    (
        "Business",
        [story("chips", "Business", 2, "Markets", "lead"), story("rates", "Business", 7, "LEAD")],
    ),
    ("Culture", [story("opera", "Culture", 3, "Music"), story("film", "Culture", 9, "Film", "Top")]),
)


@pytest.mark.parametrize(
    ("lead_category", "lead"),
    [
        # No category, or one no story carries: the first desk's newest story.
        (None, "kharkiv"),
        ("", "kharkiv"),
        ("Sport", "kharkiv"),
        # The newest story so marked, from any desk, the category in any case.
        ("Lead", "chips"),
        ("lead", "chips"),
        ("LEAD", "chips"),
        # Marked once, however far down its desk and however old.
        ("Top", "film"),
        ("tOP", "film"),
        # A story's other categories do not hide the one asked for.
        ("Film", "film"),
        ("Markets", "chips"),
    ],
)
def test_the_lead_is_the_newest_marked_story_else_the_first_desks_newest(
    lead_category: str | None, lead: str
) -> None:
    chosen = lead_story(WORLD, lead_category)
    assert chosen is not None and chosen.id == lead


def test_a_variant_leads_with_a_story_of_its_own_desks() -> None:
    culture = Variant(frozenset({"Culture"})).select(WORLD)
    chosen = lead_story(culture, "Lead")  # both marked stories are on other desks
    assert chosen is not None and chosen.id == "opera"
    chosen = lead_story(Variant(frozenset({"Business", "Culture"})).select(WORLD))
    assert chosen is not None and chosen.id == "chips"


def test_a_first_desk_without_stories_passes_the_lead_to_the_next() -> None:
    chosen = lead_story(edition(("Ukraine", []), ("Culture", [story("opera", "Culture", 3)])))
    assert chosen is not None and chosen.id == "opera"


@pytest.mark.parametrize("lead_category", [None, "Lead"])
def test_an_empty_edition_has_no_lead(lead_category: str | None) -> None:
    assert lead_story(edition(), lead_category) is None
    assert lead_story(edition(("Ukraine", [])), lead_category) is None


def test_marked_stories_published_together_lead_the_same_whatever_their_order() -> None:
    # Two feeds stamp the same minute: the lead must not depend on which desk or feed came first.
    one = story("alpha", "Ukraine", 1, "Lead")
    other = story("beta", "Culture", 1, "Lead")
    leads = {
        lead_story(edition(("Ukraine", [first]), ("Culture", [second])), "Lead")
        for first, second in ((one, other), (other, one))
    }
    assert len(leads) == 1


def test_the_configured_category_picks_the_emails_top_story(make_project: MakeProject) -> None:
    path = make_project(replace={"max_items = 8": 'max_items = 8\nlead_category = "documentary"'})
    config = load_config(path)
    edition = build_edition(config, "daily", now=NOW)
    (documentary,) = (item for item in edition.items if "Documentary" in item.categories)
    text = render_edition(config, edition).text
    # The example feeds mark one Culture story "Documentary": it leads, above the first desk,
    # and is not listed again in its own desk.
    top = f"Top story · {documentary.desk}"
    assert f"\n\n{top}\n{'=' * len(top)}\n\n{documentary.title}\n{documentary.url}\n" in text
    assert text.index(top) < text.index("\nUkraine\n=======\n")
    assert text.count(documentary.url) == 1
