"""The branded sign-up page in Chromium: readable in light and dark mode whatever the accent,
and its logo, from another origin, let in by the page's own CSP while no other origin is.

The logo is served by a second local server (127.0.0.1 on another port: another origin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from playwright.sync_api import Browser, Page
from werkzeug.wrappers import Request, Response

from digest.brand import Palette, Scheme
from digest.config import load_config
from digest.state import Store
from digest.web import make_app
from tests.browser import audit, auditable_page
from tests.conftest import MakeProject, in_newsroom
from tests.localhttp import wsgi_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

pytest_plugins = ["tests.browser"]

SECRET = b"0123456789abcdef-test-secret"

# Dark type on a transparent ground, as most logos are: in dark mode it needs its plate.
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="360" height="72" viewBox="0 0 360 72">'
    '<text x="0" y="54" font-family="Georgia,serif" font-size="52" fill="#1f1f1f">The Ledger</text></svg>'
)


@dataclass
class Brand:
    signup: str
    logo_host: str
    fetched: list[str] = field(default_factory=list)


def _logo_server(fetched: list[str]) -> Callable[..., Any]:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        fetched.append(Request(environ).path)
        return Response(LOGO_SVG, mimetype="image/svg+xml")(environ, start_response)

    return app


@pytest.fixture
def branded(make_project: MakeProject, tmp_path: Path) -> Iterator[Callable[..., Brand]]:
    """``branded(accent, lang)``: `digest serve` for that brand, its logo on another origin."""
    with ExitStack() as stack:

        def make(accent: str, lang: str = "en") -> Brand:
            fetched: list[str] = []
            logo_host = stack.enter_context(wsgi_server(_logo_server(fetched)))
            keys = {"logo_url": f"{logo_host}/ledger.svg", "logo_width": 180, "logo_height": 36}
            config = load_config(make_project(replace=in_newsroom(**keys, accent_color=accent, lang=lang)))
            store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
            stack.callback(store.close)
            base = stack.enter_context(wsgi_server(make_app(config, lambda: store, SECRET)))
            return Brand(f"{base}/subscribe/daily", logo_host, fetched)

        yield make


def _rgb(color: str) -> str:
    """``#rrggbb`` as a computed style gives it back."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def _computed(page: Page, selector: str, prop: str) -> str:
    return str(page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}"))


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize(
    ("accent", "lang"),
    # A pale accent (too light for links on white) and a dark one (too dark on black), right to left.
    [("#ffd400", "en"), ("#0b1f4d", "ar")],
    ids=["pale-ltr", "dark-rtl"],
)
def test_the_branded_sign_up_page_passes_axe_in_light_and_dark_mode(
    chromium: Browser,
    branded: Callable[..., Brand],
    screenshot: Callable[..., Path],
    accent: str,
    lang: str,
    mode: Literal["light", "dark"],
) -> None:
    brand = branded(accent, lang)
    scheme: Scheme = getattr(Palette.of(accent), mode)
    with auditable_page(chromium, color_scheme=mode) as page:
        page.goto(brand.signup)
        page.wait_for_function("document.querySelector('header img').complete")
        # The mode's own colours are the ones in use, not just written in the CSS.
        assert _computed(page, "body", "backgroundColor") == _rgb(scheme.background)
        assert _computed(page, "button[type=submit]", "backgroundColor") == _rgb(scheme.button)
        assert _computed(page, "main", "direction") == ("rtl" if lang == "ar" else "ltr")
        audit(page)
        screenshot(page, f"pages-brand-{accent[1:]}-{lang}-{mode}.png", full_page=True)


def test_the_pages_csp_lets_the_logo_in_and_no_other_origin(
    browser_page: Page, branded: Callable[..., Brand]
) -> None:
    brand = branded("#0b57a4")
    page = browser_page  # a context that keeps the page's CSP
    page.goto(brand.signup)
    page.wait_for_function("document.querySelector('header img').complete")
    assert page.eval_on_selector("header img", "img => img.naturalWidth") > 0
    # The same server under another name is another origin: the policy must stop it unasked.
    elsewhere = brand.logo_host.replace("127.0.0.1", "localhost") + "/elsewhere.svg"
    outcome = page.evaluate(
        """url => new Promise(done => {
            const img = new Image();
            img.onload = () => done('loaded');
            img.onerror = () => done('blocked');
            img.src = url;
        })""",
        elsewhere,
    )
    assert outcome == "blocked"
    assert brand.fetched == ["/ledger.svg"]
