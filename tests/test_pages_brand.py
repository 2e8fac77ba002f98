"""The pages of `digest serve` wear the newsroom's brand: its logo (or its name in type), its
accent, its fonts, its language and direction; their CSP lets in the logos' origins and no other.

The browser's view of the same (axe-core in light and dark mode, the CSP enforced) is in
test_pages_brand_browser.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import lxml.html
import pytest
from werkzeug.test import Client, TestResponse

from digest.brand import DEFAULT_ACCENT, Palette
from digest.config import load_config
from digest.send.unsubscribe import Purpose, make_token
from digest.state import Store
from digest.web import make_app
from digest.web.pages import origin
from tests.conftest import MakeProject, in_newsroom

SECRET = b"0123456789abcdef-test-secret"
EMAIL = "anna.kovalenko@example.org"
NOW = dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC)
NAME = "The Morning Ledger"
LOGO = "https://cdn.example.net/brand/ledger.png"
DARK_LOGO = "https://img.example.com:8443/ledger-light-type.png"
PALE = "#ffd400"
BRAND = {
    "logo_url": LOGO,
    "logo_width": 180,
    "logo_height": 36,
    "accent_color": PALE,
    "font_stack": "Georgia, serif",
}
# The sign-up page, a reader's preferences, the archive's index: the pages a reader sees most.
PATHS = (
    "/subscribe/daily",
    "/preferences/" + make_token(SECRET, "daily", EMAIL, purpose=Purpose.PREFERENCES),
    "/archive/daily/",
)

Get = Callable[..., TestResponse]


@pytest.fixture
def site(make_project: MakeProject, tmp_path: Path) -> Iterator[Callable[..., Get]]:
    """``site(**newsroom_keys)``: a client of `digest serve` for that brand, one reader on the list."""
    stores: list[Store] = []

    def make(**keys: object) -> Get:
        config = load_config(make_project(replace=in_newsroom(**keys)))
        store = Store(f"sqlite:///{tmp_path}/s{len(stores)}.db").migrate()
        stores.append(store)
        store.readers.add("daily", EMAIL, name="Anna", desks=None, now=NOW)
        return Client(make_app(config, lambda: store, SECRET, clock=lambda: NOW)).get

    yield make
    for store in stores:
        store.close()


def _page(response: TestResponse) -> lxml.html.HtmlElement:
    assert response.status_code == 200, response.get_data(as_text=True)
    return lxml.html.document_fromstring(response.get_data(as_text=True))


def _img_src(response: TestResponse) -> str:
    (directive,) = (
        d for d in response.headers["Content-Security-Policy"].split("; ") if d.startswith("img-src ")
    )
    return directive.removeprefix("img-src ")


def test_sign_up_preferences_and_archive_show_the_logo_the_accent_and_the_fonts(
    site: Callable[..., Get],
) -> None:
    get = site(**BRAND)
    palette = Palette.of(PALE)
    for path in PATHS:
        page = _page(get(path))
        (img,) = page.xpath("//header//img")
        assert (img.get("src"), img.get("width"), img.get("height"), img.get("alt")) == (
            LOGO,
            "180",
            "36",
            NAME,
        )
        # No dark version: the logo keeps a light plate in dark mode.
        assert img.get("class") == "plate" and not page.xpath("//source")
        style = page.xpath("//style")[0].text
        for scheme in (palette.light, palette.dark):
            assert f"--accent:{PALE};--link:{scheme.link};--button:{scheme.button}" in style, path
        # The pale accent is too light for links on white: a darker shade of it stands in.
        assert palette.light.link != PALE
        assert "font:17px/1.5 Georgia, serif;" in style
        assert (page.get("lang"), page.get("dir")) == ("en", "ltr")


def test_a_dark_logo_is_the_dark_mode_source_and_needs_no_plate(site: Callable[..., Get]) -> None:
    get = site(**BRAND, logo_dark_url=DARK_LOGO, logo_alt="The Ledger, since 1991")
    page = _page(get(PATHS[0]))
    # libxml2 does not know <source> is empty and puts the <img> in it: look them up alone.
    (source,) = page.xpath("//header/picture//source")
    (img,) = page.xpath("//header/picture//img")
    assert (source.tag, source.get("media"), source.get("srcset")) == (
        "source",
        "(prefers-color-scheme: dark)",
        DARK_LOGO,
    )
    assert (img.get("src"), img.get("alt"), img.get("class")) == (LOGO, "The Ledger, since 1991", None)


def test_without_a_logo_the_masthead_is_the_name_in_type_and_no_image_may_load(
    site: Callable[..., Get],
) -> None:
    get = site()
    for path in PATHS:
        response = get(path)
        page = _page(response)
        (header,) = page.xpath("//header")
        assert header.text_content().strip() == NAME and not header.xpath(".//img")
        assert f"--accent:{DEFAULT_ACCENT};" in page.xpath("//style")[0].text
        assert _img_src(response) == "'none'"


@pytest.mark.parametrize(
    ("keys", "direction"),
    [
        ({}, "ltr"),
        ({"lang": "ar"}, "rtl"),
        ({"lang": "he-IL"}, "rtl"),
        ({"lang": "en", "dir": "rtl"}, "rtl"),
        ({"lang": "ar", "dir": "ltr"}, "ltr"),
    ],
)
def test_the_page_takes_its_language_and_direction_from_the_config(
    site: Callable[..., Get], keys: dict[str, str], direction: str
) -> None:
    page = _page(site(**keys)(PATHS[0]))
    assert (page.get("lang"), page.get("dir")) == (keys.get("lang", "en"), direction)


def test_the_csp_lets_in_images_from_the_logos_origins_and_nowhere_else(site: Callable[..., Get]) -> None:
    get = site(**BRAND, logo_dark_url=DARK_LOGO)
    for path in (*PATHS, "/no-such-page"):
        response = get(path)
        policy = response.headers["Content-Security-Policy"]
        assert _img_src(response) == "https://cdn.example.net https://img.example.com:8443", path
        assert "default-src 'none'" in policy and "script-src" not in policy and "*" not in policy
    # What is no page has no image to show.
    assert _img_src(get("/archive/daily/feed.atom")) == "'none'"


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://cdn.example.net/a/logo.png?v=2", "https://cdn.example.net"),
        ("http://CDN.Example.NET:8080/logo.png", "http://cdn.example.net:8080"),
        ("https://user:secret@cdn.example.net/logo.png", "https://cdn.example.net"),
        ("https://bücher.example/logo.png", "https://xn--bcher-kva.example"),
        # Would end the directive and start one of its own.
        ("https://cdn.example.net;script-src:*/logo.png", None),
        ("https://cdn example.net/logo.png", None),
    ],
)
def test_a_logos_origin_as_a_csp_source(url: str, source: str | None) -> None:
    assert origin(url) == source
