"""The preview page in a real browser, against the real preview server.

The server runs in-process (the WSGI app from digest.preview.app behind werkzeug's server, on a
free port) over a throwaway project built from the example stories, with its clock fixed at
NOW and the page asked for the edition of DATE. Chromium drives the page; the tests edit the
project's templates and feeds on disk and watch the open page follow without a reload.

Screenshots of the desktop and phone views go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from digest.config import load_config
from digest.edition import build_edition
from digest.edition.frozen import freeze_edition
from digest.ingest.collect import collect
from digest.preview.app import make_app
from digest.preview.watch import Watcher
from digest.render.templates import default_template_dir
from digest.state import Store
from digest.statefile import state_url
from tests.conftest import NOW, MakeProject

# The fixtures chromium, browser_page and screenshot.
pytest_plugins = ["tests.browser"]

DATE = "2026-11-25"
FIRST_HEADLINE = "Overnight drone attack leaves parts of Kharkiv without power"
# Every story's headline: the lead's is an <h2>, the others' <h3>s.
HEADLINES = "h2.lead, h3"
# The desks' headings (the lead's headline is an <h2> too, without an id).
DESKS = "h2[id]"
HOSTILE = "Hostile headline"


@dataclasses.dataclass(frozen=True)
class PreviewServer:
    url: str
    root: Path

    def page(self, **params: str) -> str:
        """The page's URL, showing the edition of DATE (the page keeps its choices in the hash)."""
        return f"{self.url}/#{urlencode({'date': DATE, **params})}"

    def template(self, name: str, text: str) -> None:
        """Write a user template (it overrides the packaged one of the same name)."""
        (self.root / "templates" / name).write_text(text, encoding="utf-8")


@contextlib.contextmanager
def running(config: Path) -> Iterator[PreviewServer]:
    """The preview server for ``config`` on a free port, its clock at NOW, files polled 10×/s."""
    watcher = Watcher(config, interval=0.1)
    watcher.start()
    app = make_app(config, watcher, now=lambda: NOW, keepalive=1.0)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="preview-test", daemon=True)
    thread.start()
    try:
        yield PreviewServer(f"http://127.0.0.1:{server.server_port}", config.parent)
    finally:
        app.close()  # ends the pages' event streams
        watcher.stop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def preview(make_project: MakeProject) -> Iterator[PreviewServer]:
    with running(make_project()) as server:
        yield server


def eventually(read: Callable[[], object], expected: object, timeout: float = 5.0) -> None:
    """Wait until ``read()`` returns ``expected`` (for values expect() cannot watch)."""
    deadline = time.monotonic() + timeout
    while (value := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value == expected


def in_frame(page: Page, frame: str, script: str) -> Callable[[], object]:
    """A reader of ``script``'s value in the document of ``frame`` (None while it navigates)."""

    def read() -> object:
        try:
            return page.frame_locator(frame).locator("html").evaluate(script, timeout=2000)
        except PlaywrightError:  # the frame was reloading: its document went away
            return None

    return read


def open_page(page: Page, preview: PreviewServer, **params: str) -> None:
    page.goto(preview.page(**params))
    expect(page.locator("#subject")).to_contain_text("The Morning Ledger")
    expect(page.frame_locator("#frame-desktop").locator(HEADLINES).first).to_have_text(FIRST_HEADLINE)


def test_the_page_shows_the_edition(
    preview: PreviewServer, browser_page: Page, screenshot: Callable[..., Path]
) -> None:
    page = browser_page
    open_page(page, preview)
    expect(page.locator("#list")).to_have_value("daily")
    expect(page.locator("#date")).to_have_value(DATE)
    expect(page.locator("#subject")).to_have_text(
        f"The Morning Ledger · Wednesday, 25 November 2026: {FIRST_HEADLINE}"
    )
    expect(page.locator("#preheader")).to_contain_text("30 stories today")
    expect(page.locator("#desks input[type=checkbox]:checked")).to_have_count(5)
    expect(page.locator("#size")).to_have_text(re.compile(r"\d+\.\d KB of 102 KB"))
    expect(page.locator("#size")).not_to_have_class(re.compile(r"\bover\b"))
    expect(page.locator("#checks li[data-check=unsubscribe][data-status=ok]")).to_have_count(1)
    expect(page.locator("#checks li[data-check=spam]")).to_contain_text("Spam score")
    expect(page.locator("#error")).to_be_hidden()
    box = page.locator("#frame-desktop").bounding_box()
    assert box is not None and 600 <= box["width"] <= 660
    screenshot(page, "preview-desktop.png")

    page.click("#tab-headers")
    headers = page.locator("#headers tbody tr")
    expect(headers.nth(0)).to_contain_text("The Morning Ledger <digest@news.example.org>")
    names = headers.locator("th").all_text_contents()
    assert names[:6] == ["From", "To", "Subject", "Preheader", "List-Unsubscribe", "List-Unsubscribe-Post"]
    assert {"List-Id", "Message-ID", "Date"} <= set(names)
    expect(headers.nth(4)).to_contain_text("/unsubscribe/")

    page.click("#tab-source")
    expect(page.locator("#source")).to_contain_text(FIRST_HEADLINE)
    assert page.locator("#source").text_content().lstrip().lower().startswith("<!doctype html")  # type: ignore[union-attr]


def test_the_phone_view_fits_375_pixels(
    preview: PreviewServer, browser_page: Page, screenshot: Callable[..., Path]
) -> None:
    page = browser_page
    open_page(page, preview)
    page.click("#tab-phone")
    expect(page.locator("#tab-phone")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#frame-desktop")).to_be_hidden()
    html = page.frame_locator("#frame-phone").locator("html")
    expect(html.locator(HEADLINES).first).to_have_text(FIRST_HEADLINE)
    inner, scroll = html.evaluate("() => [window.innerWidth, document.documentElement.scrollWidth]")
    assert inner == 375
    assert scroll <= 375, f"the email scrolls sideways on a phone: {scroll} px wide"
    screenshot(page, "preview-phone.png")


def test_the_text_tab_shows_the_text_part(preview: PreviewServer, browser_page: Page) -> None:
    page = browser_page
    open_page(page, preview)
    page.click("#tab-text")
    text = page.locator("#text")
    expect(text).to_be_visible()
    expect(text).to_contain_text("Ukraine\n=======\n")
    expect(text).to_contain_text(f"Top story · Ukraine\n===================\n\n{FIRST_HEADLINE}")
    expect(text).to_contain_text("Unsubscribe: http")


def test_a_template_change_shows_without_a_reload(preview: PreviewServer, browser_page: Page) -> None:
    page = browser_page
    open_page(page, preview)
    page.evaluate("() => { window.__same_page = true; }")
    desktop = page.frame_locator("#frame-desktop")
    desktop.locator("html").evaluate("() => window.scrollTo(0, 600)")

    started = time.monotonic()
    preview.template("subject.txt.j2", "Edited: {{ top_headline }}\n")
    expect(page.locator("#subject")).to_have_text(f"Edited: {FIRST_HEADLINE}", timeout=5000)
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"the page took {elapsed:.1f} s to follow the template"
    # The email in the frame was reloaded too (its <title> is the subject), at the same scroll.
    eventually(in_frame(page, "#frame-desktop", "() => document.title"), f"Edited: {FIRST_HEADLINE}")
    eventually(in_frame(page, "#frame-desktop", "() => window.scrollY"), 600)
    assert page.evaluate("() => window.__same_page") is True, "the page reloaded itself"
    expect(page.locator("#tab-desktop")).to_have_attribute("aria-selected", "true")

    # The tab in use stays in use through a reload.
    page.click("#tab-text")
    preview.template("digest.txt.j2", "Plain and simple: {{ item_count }} stories\n")
    expect(page.locator("#text")).to_have_text("Plain and simple: 30 stories\n")
    expect(page.locator("#tab-text")).to_have_attribute("aria-selected", "true")


def test_a_broken_template_shows_its_error_and_recovers(
    preview: PreviewServer, browser_page: Page, screenshot: Callable[..., Path]
) -> None:
    page = browser_page
    open_page(page, preview)
    error = page.locator("#error")
    preview.template("subject.txt.j2", "Fine so far\n{% if %}\n")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Template error")
    expect(page.locator("#error-where")).to_have_text(re.compile(r"subject\.txt\.j2, line 2$"))
    expect(page.locator("#error-message")).to_contain_text("syntax error")
    expect(page.locator("#preview")).to_have_class(re.compile(r"\bis-error\b"))
    screenshot(page, "preview-error.png")

    preview.template("subject.txt.j2", "Fixed: {{ top_headline }}\n")
    expect(page.locator("#subject")).to_have_text(f"Fixed: {FIRST_HEADLINE}")
    expect(error).to_be_hidden()
    expect(page.locator("#preview")).not_to_have_class(re.compile(r"\bis-error\b"))
    desktop = page.frame_locator("#frame-desktop")
    eventually(in_frame(page, "#frame-desktop", "() => document.title"), f"Fixed: {FIRST_HEADLINE}")
    expect(desktop.locator(HEADLINES).first).to_be_visible()


def test_a_config_with_several_mistakes_shows_each_on_its_line(
    preview: PreviewServer, browser_page: Page
) -> None:
    page = browser_page
    open_page(page, preview)
    config = preview.root / "config.toml"
    good = config.read_text()
    config.write_text(
        good.replace("max_items = 8", 'max_items = "8"').replace('desk = "Business"', 'desk = "Sport"')
    )
    lines = config.read_text().splitlines()
    max_items, desk = lines.index('max_items = "8"') + 1, lines.index('desk = "Sport"') + 1

    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error-where")).to_have_text(str(config))
    message = page.locator("#error-message")
    expect(message).to_contain_text(f'line {max_items}: desks.max_items: must be a whole number, not "8"')
    expect(message).to_contain_text(f"line {desk}: feeds[1].desk: desk 'Sport' is not in [desks] order")
    assert len(message.inner_text().splitlines()) == 2

    config.write_text(good)
    expect(page.locator("#error")).to_be_hidden()


def test_the_size_meter_turns_red_above_the_limit(
    preview: PreviewServer, browser_page: Page, screenshot: Callable[..., Path]
) -> None:
    page = browser_page
    open_page(page, preview)
    size = page.locator("#size")
    expect(size).not_to_have_class(re.compile(r"\bover\b"))
    # About 120 KB of text in the HTML part: Gmail would clip it.
    preview.template(
        "digest.mjml.j2",
        "<mjml><mj-body><mj-section><mj-column><mj-text>"
        '<p>{{ "Padding the edition well past the limit. " * 2900 }}</p>'
        '<a href="{{ placeholders.unsubscribe_url }}">Unsubscribe</a>'
        "</mj-text></mj-column></mj-section></mj-body></mjml>\n",
    )
    expect(size).to_have_class(re.compile(r"\bover\b"))
    expect(page.frame_locator("#frame-desktop").locator("body")).to_contain_text("Padding the edition")
    label = page.locator("#size-label").text_content() or ""
    match = re.match(r"(\d+\.\d) KB of 102 KB", label)
    assert match and float(match.group(1)) > 102, label
    expect(page.locator("#checks li[data-check=size]")).to_have_attribute("data-status", "failed")
    screenshot(page, "preview-over-size.png")


def hostile_project(make_project: MakeProject) -> Path:
    """A feed story full of markup, and a template that even puts a script into the email."""
    config = make_project()
    feed = config.parent / "feeds" / "culture.json"
    data = json.loads(feed.read_text(encoding="utf-8"))
    data["items"].insert(
        0,
        {
            "id": "https://news.example.org/culture/hostile",
            "url": "https://news.example.org/culture/hostile",
            "title": f'<script>window.__pwned = 1; alert("title")</script>{HOSTILE} '
            '<img src=x onerror="window.__pwned = 2; alert(2)">',
            "content_html": '<p>Summary <script>alert("summary")</script><img src="x" onerror="alert(3)">'
            '<a href="javascript:alert(4)">link</a></p>',
            "date_published": "2026-11-25T03:00:00+00:00",
            "authors": [{"name": '<b onmouseover="alert(5)">Mallory</b>'}],
            "tags": ["Culture"],
        },
    )
    feed.write_text(json.dumps(data), encoding="utf-8")
    default = (default_template_dir() / "digest.mjml.j2").read_text(encoding="utf-8")
    scripted = default.replace(
        "</mj-body>",
        '<mj-raw><script>window.__pwned = 3; alert("template")</script>'
        '<img src="x" onerror="window.__pwned = 4; alert(6)"></mj-raw></mj-body>',
    )
    assert scripted != default
    (config.parent / "templates" / "digest.mjml.j2").write_text(scripted, encoding="utf-8")
    return config


def test_nothing_from_a_feed_or_the_email_runs(make_project: MakeProject, browser_page: Page) -> None:
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    with running(hostile_project(make_project)) as preview:
        open_page(page, preview)
        for frame in ("#frame-desktop", "#frame-phone"):
            sandbox = page.get_attribute(frame, "sandbox")
            assert sandbox is not None and "allow-scripts" not in sandbox.split()
        desktop = page.frame_locator("#frame-desktop")
        expect(desktop.locator(HEADLINES, has_text=HOSTILE)).to_have_count(1)
        expect(page.locator("#items")).to_contain_text(HOSTILE)
        page.click("#tab-phone")
        expect(page.frame_locator("#frame-phone").locator(HEADLINES, has_text=HOSTILE)).to_have_count(1)
        page.click("#tab-source")
        # The template's script did reach the email: only the frame keeps it from running.
        expect(page.locator("#source")).to_contain_text(
            '<script>window.__pwned = 3; alert("template")</script>'
        )
        page.click("#tab-text")
        expect(page.locator("#text")).to_contain_text(HOSTILE)
        page.wait_for_timeout(300)  # time for anything that was going to run

        assert dialogs == []
        assert page.evaluate("() => typeof window.__pwned") == "undefined"
        for frame in ("#frame-desktop", "#frame-phone"):
            pwned = page.frame_locator(frame).locator("html").evaluate("() => typeof window.__pwned")
            assert pwned == "undefined", frame
        # Nothing from the API became markup in the page itself.
        assert page.locator("main script, main img, main [onerror], main [onmouseover]").count() == 0
        hrefs = page.locator("#items a").evaluate_all("links => links.map((a) => a.href)")
        assert hrefs and all(href.startswith("https://") for href in hrefs)


def test_new_stories_are_marked(make_project: MakeProject, browser_page: Page) -> None:
    config_path = make_project()
    config = load_config(config_path)
    # An earlier edition already carried the Ukraine desk's stories.
    edition = build_edition(
        config, "daily", now=NOW, date=dt.date(2026, 11, 25), feeds=collect(config, now=NOW)
    )
    earlier = dataclasses.replace(edition, date=dt.date(2026, 11, 24), desks=edition.desks[:1])
    seen = len(earlier.items)
    assert earlier.desks[0].name == "Ukraine" and 0 < seen < len(edition.items)
    with Store(state_url(config)).migrate() as store:
        freeze_edition(store.editions, earlier, now=NOW)

    page = browser_page
    with running(config_path) as preview:
        open_page(page, preview)
        items = page.locator("#items li")
        expect(items).to_have_count(len(edition.items))
        fresh = len(edition.items) - seen
        expect(page.locator("#items li[data-new=true]")).to_have_count(fresh)
        expect(page.locator("#items li[data-new=true] .badge")).to_have_count(fresh)
        expect(page.locator("#items li[data-new=false] .badge")).to_have_count(0)
        expect(page.locator("#items li", has_text=FIRST_HEADLINE)).to_have_attribute("data-new", "false")
        expect(page.locator("#new-count")).to_contain_text(f"{fresh} new since the last sent edition")


def test_a_variant_by_desks_or_by_subscriber(preview: PreviewServer, browser_page: Page) -> None:
    page = browser_page
    open_page(page, preview)
    page.uncheck("#desks input[value=Ukraine]")
    expect(page.frame_locator("#frame-desktop").locator(DESKS).first).to_have_text("North America")
    expect(page.locator("#subject")).not_to_contain_text(FIRST_HEADLINE)
    assert "desks=" in page.url

    page.click("label:has(#mode-subscriber)")
    page.fill("#subscriber", "reader@example.org")
    page.press("#subscriber", "Enter")
    expect(page.locator("#subscriber-info")).to_contain_text("Reader")
    expect(page.frame_locator("#frame-desktop").locator("body")).to_contain_text("Reader,")

    page.fill("#subscriber", "nobody@example.org")
    page.press("#subscriber", "Enter")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error-message")).to_contain_text("not a subscriber")

    page.click("label:has(#mode-desks)")
    expect(page.locator("#error")).to_be_hidden()


def test_send_test_sends_one_message_to_the_outbox(preview: PreviewServer, browser_page: Page) -> None:
    page = browser_page
    open_page(page, preview)
    page.fill("#send-to", "editor@example.org")
    page.click("#send-button")
    result = page.locator("#send-result")
    expect(result).to_have_class(re.compile(r"\bok\b"))
    expect(result).not_to_be_empty()
    sent = list((preview.root / "outbox").rglob("*.eml"))
    assert len(sent) == 1
    assert b"editor@example.org" in sent[0].read_bytes()
