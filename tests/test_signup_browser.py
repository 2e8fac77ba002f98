"""The sign-up pages in a real browser (Chromium): what it sends is what the cross-site check reads.

Our pages send ``Referrer-Policy: no-referrer``, so Chromium posts our own forms with
``Origin: null``; the check must let them through on ``Sec-Fetch-Site`` alone. A form embedded
on the newsroom's site (another origin, listed in ``signup_origins``) must work too, and the
same form on any other site must not, whatever its own referrer policy.
"""

from __future__ import annotations

import email
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

from digest.config import load_config
from digest.state import Store
from digest.state.readers import ReaderStatus
from digest.web import make_app
from tests.conftest import MakeProject

pytest_plugins = ["tests.browser"]

SECRET = b"0123456789abcdef-test-secret"
ANNA = "anna@example.org"
EMBED = """<!doctype html><title>Newsroom</title>
<form method="post" action="{action}">
<label for="e">Email</label><input id="e" type="email" name="email">
<input type="checkbox" name="desks" value="Culture" checked>
<div style="position:absolute;left:-10000px" aria-hidden="true"><input name="website" tabindex="-1"></div>
<button type="submit">Subscribe</button></form>"""


@dataclass
class Sites:
    digest: str
    newsroom: str
    evil: str
    store: Store
    outbox: Path


def _listen(app: Callable[..., Any]) -> BaseWSGIServer:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _page_with_form(action: str, referrer_policy: str | None) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        headers = {"Referrer-Policy": referrer_policy} if referrer_policy else {}
        response = Response(EMBED.format(action=action), mimetype="text/html", headers=headers)
        return response(environ, start_response)

    return app


@pytest.fixture
def sites(make_project: MakeProject, tmp_path: Path) -> Iterator[Sites]:
    holder: dict[str, Any] = {}
    digest = _listen(lambda environ, start: holder["app"](environ, start))
    base = f"http://127.0.0.1:{digest.server_port}"
    newsroom = _listen(_page_with_form(f"{base}/subscribe/daily", None))
    # Another site (localhost is not 127.0.0.1 to a browser) that hides its origin, too.
    evil = _listen(_page_with_form(f"{base}/subscribe/daily", "no-referrer"))
    newsroom_url = f"http://127.0.0.1:{newsroom.server_port}"
    project = make_project(extra=f'\n[server]\nbase_url = "{base}"\nsignup_origins = ["{newsroom_url}"]\n')
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    holder["app"] = make_app(load_config(project), lambda: store, SECRET)
    try:
        yield Sites(
            base, newsroom_url, f"http://localhost:{evil.server_port}", store, project.parent / "outbox"
        )
    finally:
        for server in (digest, newsroom, evil):
            server.shutdown()
            server.server_close()
        store.close()


def _confirm_link(outbox: Path, address: str) -> str:
    import time

    for _ in range(100):  # the email is sent off the request's thread
        found = list((outbox / "daily-confirm").glob(f"{address}.*.eml"))
        if found:
            message = email.message_from_bytes(found[0].read_bytes(), policy=policy.default)
            text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            return (
                "http"
                + text.split("http", 1)[1].split("/confirm/", 1)[0]
                + "/confirm/"
                + text.split("/confirm/", 1)[1].split()[0]
            )
        time.sleep(0.05)
    raise AssertionError(f"no confirmation email for {address}")


def test_sign_up_and_confirm_in_chromium(sites: Sites, browser_page: Page) -> None:
    page = browser_page
    page.goto(f"{sites.digest}/subscribe/daily")
    page.get_by_label("Email address").fill(ANNA)
    page.get_by_label("Name").fill("Anna")
    page.get_by_label("Business").uncheck()
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    reader = sites.store.readers.get("daily", ANNA)
    assert reader is not None and reader.status is ReaderStatus.PENDING
    assert reader.desks == ("Ukraine", "North America", "Europe", "Culture")

    page.goto(_confirm_link(sites.outbox, ANNA))
    page.get_by_role("button", name="Confirm my subscription").wait_for()
    assert sites.store.readers.get("daily", ANNA).status is ReaderStatus.PENDING  # type: ignore[union-attr]
    page.get_by_role("button", name="Confirm my subscription").click()
    page.get_by_role("heading", name="You are subscribed").wait_for()
    assert (
        page.get_by_role("link", name="Manage your desks")
        .get_attribute("href")
        .startswith(  # type: ignore[union-attr]
            f"{sites.digest}/preferences/"
        )
    )
    assert sites.store.readers.get("daily", ANNA).status is ReaderStatus.ACTIVE  # type: ignore[union-attr]


def test_the_newsrooms_embedded_form_works_and_another_sites_does_not(
    sites: Sites, browser_page: Page
) -> None:
    page = browser_page
    page.goto(sites.newsroom)
    page.get_by_label("Email").fill("bob@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    reader = sites.store.readers.get("daily", "bob@example.org")
    assert reader is not None and reader.desks == ("Culture",)
    assert reader.consent.signup_url == f"{sites.newsroom}/"

    page.goto(sites.evil)
    page.get_by_label("Email").fill("victim@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Not allowed").wait_for()
    assert sites.store.readers.get("daily", "victim@example.org") is None
