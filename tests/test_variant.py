"""Variants: one key for the same desks, one encoding that no desk name breaks, and old keys read."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from digest.config import Config
from digest.model import ALL_DESKS, DeskSection, Edition, Variant, Window
from tests.conftest import MakeProject

LIST = ("Ukraine", "Arts+Culture", "Культура", "Film/TV, Books & more", "all", '["x"]', "100%")
NAMES = [*LIST, "A+B+C", "[", "[Bracket", "", " spaced "]


def test_every_desk_or_none_chosen_is_the_whole_list() -> None:
    assert Variant.of(None, LIST) == Variant() and Variant().key == ALL_DESKS == "all"
    assert Variant.of(reversed(LIST), LIST) == Variant()
    assert Variant.of(LIST[:-1], LIST) == Variant(frozenset(LIST[:-1]))


def test_the_same_desks_in_any_order_are_the_same_variant() -> None:
    assert Variant.of(["Культура", "Ukraine"], LIST).key == Variant.of(["Ukraine", "Культура"], LIST).key


@pytest.mark.parametrize(
    "desks", [[name] for name in NAMES] + [NAMES, ["A+B", "C"], ["A", "B+C"], ["all", "x"]]
)
def test_a_key_gives_back_its_desks_whatever_their_names(desks: list[str]) -> None:
    variant = Variant(frozenset(desks))
    assert Variant.from_key(variant.key) == variant
    assert variant.key == json.dumps(sorted(desks), ensure_ascii=False, separators=(",", ":"))


def test_keys_of_different_desks_differ() -> None:
    keys = {Variant(frozenset(desks)).key for desks in (["A+B", "C"], ["A", "B+C"], ["A", "B", "C"], ["all"])}
    assert len(keys) == 4 and ALL_DESKS not in keys


@pytest.mark.parametrize(
    ("key", "desks"),
    [
        ("Ukraine+Culture", {"Ukraine", "Culture"}),
        ("Business", {"Business"}),
        ("North America+Europe", {"North America", "Europe"}),
        ("[Live]+Culture", {"[Live]", "Culture"}),  # looks like JSON, is not
        ('["Live"]x', {'["Live"]x'}),
        ("[1]", {"[1]"}),  # JSON, but not a list of names
        ('["a", 1]', {'["a", 1]'}),
    ],
)
def test_keys_of_earlier_ledgers_still_decode(key: str, desks: set[str]) -> None:
    assert Variant.from_key(key) == Variant(frozenset(desks))


def test_all_decodes_to_every_desk() -> None:
    assert Variant.from_key("all") == Variant() and Variant().desks is None


def test_desks_and_label_follow_the_list_order() -> None:
    variant = Variant(frozenset({"Культура", "Ukraine", "Arts+Culture"}))
    assert variant.desks_of(LIST) == ("Ukraine", "Arts+Culture", "Культура")
    assert variant.label(LIST) == "Ukraine;Arts+Culture;Культура"
    assert Variant().desks_of(LIST) == LIST and Variant().label(LIST) == "all"


def _edition(*names: str) -> Edition:
    moment = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    desks = tuple(DeskSection(name, name.lower(), "https://example.org", ()) for name in names)
    return Edition("daily", moment.date(), "UTC", Window(moment, moment), desks)


def test_select_keeps_the_chosen_desks_in_the_edition_order() -> None:
    edition = _edition("Ukraine", "Arts+Culture", "Arts", "Culture")
    chosen = Variant(frozenset({"Culture", "Arts+Culture"})).select(edition)
    assert [desk.name for desk in chosen.desks] == ["Arts+Culture", "Culture"]
    assert Variant().select(edition) is edition


def test_a_lists_desks_come_in_the_newsrooms_order(make_project: MakeProject) -> None:
    from digest.config import load_config

    config: Config = load_config(
        make_project(
            replace={'transport = "outbox"\n': 'transport = "outbox"\ndesks = ["Culture", "Ukraine"]\n'}
        )
    )
    (daily,) = config.settings.lists
    assert config.list_desks(daily) == ("Ukraine", "Culture")
    everything = daily.model_copy(update={"desks": None})
    assert config.list_desks(everything) == ("Ukraine", "North America", "Business", "Europe", "Culture")


def test_display_title_is_the_title_else_the_name(config: Config) -> None:
    (daily,) = config.settings.lists
    assert daily.display_title == "daily"
    assert daily.model_copy(update={"title": "Morning"}).display_title == "Morning"
