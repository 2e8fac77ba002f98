"""Shared fixtures: a throwaway newsroom project on disk, built from the example stories."""

from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from digest import brand
from digest.config import Config, load_config
from digest.edition import build_edition
from digest.render import Greeting, render_edition, render_greeting
from digest.render.message import Recipient, personalize
from digest.render.templates import make_environment
from digest.state import ledger

# The browser tests import audit() from it as well as load it as a plugin: mark it before either,
# so its asserts still say what failed.
pytest.register_assert_rewrite("tests.browser")

REPO = Path(__file__).resolve().parent.parent
STORIES = REPO / "examples" / "stories"
# 06:30 in Kyiv on the morning the example stories were written for.
NOW = dt.datetime(2026, 11, 25, 4, 30, tzinfo=dt.UTC)


@functools.cache
def packaged_greeting() -> Greeting:
    """The greeting as the packaged templates word it."""
    return render_greeting(make_environment())


def greeted(email: str, name: str = "", unsubscribe_url: str = "", preferences_url: str = "") -> Recipient:
    """A recipient whose greeting is worded by the packaged templates, as `digest send` does."""
    return Recipient(email, name, unsubscribe_url, packaged_greeting().to(name), preferences_url)


def emailed_html(config: Config) -> str:
    """The day's edition's HTML as a subscriber gets it (placeholders filled in)."""
    edition = build_edition(config, "daily", now=NOW)
    recipient = greeted(
        "reader@example.org",
        "Reader",
        unsubscribe_url="https://news.example.org/unsubscribe/token",
        preferences_url="https://news.example.org/preferences/token",
    )
    html, _ = personalize(render_edition(config, edition), recipient)
    return html


BASE_CONFIG = """\
[newsroom]
name = "The Morning Ledger"
site_url = "https://news.example.org"
timezone = "Europe/Kyiv"
sender = "The Morning Ledger <digest@news.example.org>"
postal_address = "The Morning Ledger, 12 Khreshchatyk St, Kyiv 01001, Ukraine"

[desks]
order = ["Ukraine", "North America", "Business", "Europe", "Culture"]
max_items = 8

[desks.categories]
"War" = "Ukraine"
"Film" = "Culture"

[[feeds]]
source = "feeds/world.xml"
desk = "Europe"

[[feeds]]
source = "feeds/business.atom"
desk = "Business"

[[feeds]]
source = "feeds/culture.json"
desk = "Culture"

[[lists]]
name = "daily"
subscribers = "subscribers/daily.csv"
schedule = "0 7 * * *"
timezone = "Europe/Kyiv"
transport = "outbox"

[transports.outbox]
backend = "outbox"
path = "outbox"

[state]
url = "sqlite:///state/digest.sqlite3"
"""

MakeProject = Callable[..., Path]


# A newsroom with every brand key set: a logo with a dark-mode version, a pale accent that
# needs shading to read, and a font stack without a generic family.
BRAND: dict[str, object] = {
    "logo_url": "https://news.example.org/brand/ledger.png",
    "logo_dark_url": "https://news.example.org/brand/ledger-dark.png",
    "logo_width": 180,
    "logo_height": 40,
    "logo_alt": "The Morning Ledger",
    "accent_color": "#f2a900",
    "font_stack": "Georgia, Times New Roman",
}


def in_newsroom(**keys: object) -> dict[str, str]:
    """``make_project``'s ``replace`` that adds ``keys`` to the base config's [newsroom]."""
    # JSON's strings and numbers are TOML's too.
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
    return {"\n[desks]\n": f"{lines}\n[desks]\n"}


@pytest.fixture(autouse=True)
def _no_secrets_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the secrets they need; none leak in from the developer's environment."""
    for name in ("DIGEST_SECRET", "SENDGRID_API_KEY", "DIGEST_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _palettes_worked_out_afresh() -> None:
    """Each test works out the palettes it uses: the cache would hand one test the palette an
    earlier test computed, and hand a mutation run's mutant the unmutated code's palette."""
    brand._palette.cache_clear()


@pytest.fixture(autouse=True)
def _ledger_statements_built_afresh() -> None:
    """The ledger builds its statements once; a mutation run's mutant must build its own."""
    ledger._statements.cache_clear()


def write_project(
    root: Path, replace: dict[str, str] | None = None, extra: str = "", text: str | None = None
) -> Path:
    """Write a project (config.toml, feeds, subscribers, templates/) in ``root``; its config's path.

    ``replace`` maps text of the base config to its replacement; ``extra`` is appended.
    """
    (root / "feeds").mkdir(parents=True, exist_ok=True)
    (root / "subscribers").mkdir(exist_ok=True)
    (root / "templates").mkdir(exist_ok=True)
    for story in STORIES.iterdir():
        shutil.copy(story, root / "feeds" / story.name)
    (root / "subscribers" / "daily.csv").write_text("email,name\nreader@example.org,Reader\n")
    config = BASE_CONFIG if text is None else text
    for old, new in (replace or {}).items():
        assert old in config, f"the base config has no {old!r}"
        config = config.replace(old, new)
    path = root / "config.toml"
    path.write_text(config + extra, encoding="utf-8")
    return path


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """``write_project`` in the test's own folder."""
    return functools.partial(write_project, tmp_path / "project")


@pytest.fixture
def project(make_project: MakeProject) -> Path:
    return make_project()


@pytest.fixture
def branded_config(make_project: MakeProject) -> Config:
    return load_config(make_project(replace=in_newsroom(**BRAND)))


@pytest.fixture
def config(project: Path) -> Config:
    return load_config(project)
