"""The web archive (/archive/<list>/…) and the links every email carries to it and to the reader's desks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import feedparser
import pytest
from werkzeug.http import http_date
from werkzeug.test import Client

from digest.config import Config, load_config
from digest.edition.build import build_edition
from digest.edition.frozen import freeze_edition
from digest.model import Edition
from digest.render import environment, render_edition, render_greeting
from digest.render.message import compose
from digest.send.unsubscribe import Addresser, Purpose, read_token
from digest.state import Store
from digest.web import archive, make_app
from tests.conftest import NOW, MakeProject

SECRET = b"0123456789abcdef-test-secret"
BASE = "https://news.example.org/digest"
SERVER = f'[server]\nbase_url = "{BASE}"\n'
EMAIL = "anna.kovalenko@example.org"
ARCHIVE_OFF = {'transport = "outbox"\n\n': 'transport = "outbox"\narchive = false\n\n'}
LATER = NOW + dt.timedelta(days=1)


@dataclass
class Site:
    client: Client
    store: Store
    config: Config
    first: Edition
    second: Edition


def _editions(config: Config) -> tuple[Edition, Edition]:
    first = build_edition(config, "daily", now=NOW)
    # The next day's edition, its desks the other way round, so its top headline differs.
    second = dataclasses.replace(first, date=first.date + dt.timedelta(days=1), desks=first.desks[::-1])
    return first, second


def _site(tmp_path: Path, config: Config) -> Site:
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    first, second = _editions(config)
    freeze_edition(store.editions, first, now=NOW)
    freeze_edition(store.editions, second, now=LATER)
    store.readers.add("daily", EMAIL, name="Anna", desks=None, now=NOW)
    return Site(
        Client(make_app(config, lambda: store, SECRET, clock=lambda: LATER)), store, config, first, second
    )


@pytest.fixture
def site(tmp_path: Path, make_project: MakeProject) -> Iterator[Site]:
    made = _site(tmp_path, load_config(make_project(extra=SERVER)))
    yield made
    made.store.close()


def _email(config: Config, edition: Edition) -> EmailMessage:
    """The message `digest send` would send EMAIL, as its transports compose it."""
    mailing_list = config.mailing_list("daily")
    addresser = Addresser(config, mailing_list, env={"DIGEST_SECRET": SECRET.decode()}, backend="outbox")
    rendered = render_edition(config, edition)
    recipient, headers = addresser.message(EMAIL, "Anna", render_greeting(environment(config)).to("Anna"))
    sender = config.settings.newsroom.sender
    return compose(rendered, recipient, sender=sender, edition_id=edition.id, date=NOW, headers=headers)


def _parts(message: EmailMessage) -> tuple[str, str]:
    text, html = (part.get_content() for part in message.iter_parts())  # type: ignore[attr-defined]
    return html, text


def test_every_email_links_to_the_readers_desks_and_the_editions_page(site: Site) -> None:
    html, text = _parts(_email(site.config, site.first))
    page = f"{BASE}/archive/daily/2026-11-25"
    assert f'<a href="{page}"' in html and "View this edition in your browser</a>" in html
    assert f"View this edition in your browser:\n{page}\n" in text
    [html_token] = re.findall(rf'href="{BASE}/preferences/([^"]+)"[^>]*>Manage your desks', html)
    [text_token] = re.findall(rf"Manage your desks: {BASE}/preferences/(\S+)", text)
    assert html_token == text_token
    assert read_token(SECRET, text_token, purpose=Purpose.PREFERENCES) == ("daily", EMAIL)
    assert read_token(SECRET, text_token, purpose=Purpose.UNSUBSCRIBE) is None
    [unsubscribe] = re.findall(rf"Unsubscribe: {BASE}/unsubscribe/(\S+)", text)
    assert unsubscribe != text_token
    # The link works: it opens this reader's own page.
    assert "Your desks in daily" in site.client.get(f"/preferences/{text_token}").get_data(as_text=True)


def test_the_view_in_browser_link_is_the_same_for_every_reader(site: Site) -> None:
    rendered = render_edition(site.config, site.first)
    assert f"{BASE}/archive/daily/2026-11-25" in rendered.html and "%%preferences_url%%" in rendered.html


def test_the_archive_page_has_the_whole_edition_and_nobodys_data(site: Site) -> None:
    response = site.client.get("/archive/daily/2026-11-25")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for desk in site.first.desks:
        assert desk.name in page
        for item in desk.items:
            assert item.url in page
    assert "Overnight drone attack leaves parts of Kharkiv without power" in page
    for personal in (
        "Anna",
        EMAIL,
        "example.invalid",
        "/preferences/",
        "/unsubscribe/",
        "%%",
        "in your browser",
    ):
        assert personal not in page, personal
    assert f'href="{BASE}/subscribe/daily"' in page and "Hello," in page
    assert "<script" not in page.lower()
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    # Nothing from elsewhere but the stories' images (and the links a reader follows), which
    # come from whatever hosts the feeds name: unlike our own pages, not the logo's alone.
    assert "img-src https: data:;" in response.headers["Content-Security-Policy"]
    loaded = re.findall(r'<(?:img|link|iframe|object|embed|source)\b[^>]*?(?:src|href)="([^"]+)"', page)
    assert all(url.startswith("https://") for url in loaded)
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    assert response.headers["ETag"] and response.headers["Last-Modified"] == http_date(NOW)
    # Public, so listable by search engines; the pages with a token are not.
    assert "X-Robots-Tag" not in response.headers and 'content="noindex"' not in page


def test_pages_are_rendered_once(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = archive.render_edition

    def counting(*args: object, **kwargs: object) -> object:
        calls.append("render")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(archive, "render_edition", counting)
    monkeypatch.setattr(archive, "_PAGES", archive._Bounded(2))
    bodies = {site.client.get("/archive/daily/2026-11-26").get_data() for _ in range(3)}
    assert calls == ["render"] and len(bodies) == 1


@pytest.mark.parametrize(
    "path",
    ["/archive/daily/2026-11-24", "/archive/daily/2026-13-01", "/archive/daily/20261125", "/archive/weekly/"],
)
def test_what_was_never_published_is_not_found(site: Site, path: str) -> None:
    assert site.client.get(path).status_code == 404


def test_the_index_lists_editions_newest_first_with_their_top_headline(site: Site) -> None:
    for path in ("/archive/daily/", "/archive/daily"):
        response = site.client.get(path)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        rows = re.findall(r'<li><a href="([^"]+)">([^<]+)</a>: ([^<]+)</li>', page)
        assert [(url, label) for url, label, _ in rows] == [
            ("/archive/daily/2026-11-26", "Thursday, 26 November 2026"),
            ("/archive/daily/2026-11-25", "Wednesday, 25 November 2026"),
        ]
        assert [headline for _, _, headline in rows] == [
            site.second.desks[0].items[0].title,
            site.first.desks[0].items[0].title,
        ]
        assert 'href="/archive/daily/feed.atom"' in page
        assert response.headers["Last-Modified"] == http_date(LATER)


def test_the_atom_feed_is_valid_and_parses_cleanly(site: Site) -> None:
    response = site.client.get("/archive/daily/feed.atom")
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    parsed = feedparser.parse(response.get_data())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    feed = parsed.feed
    assert feed.title == "daily · The Morning Ledger" and feed.id == f"{BASE}/archive/daily/"
    assert feed.author_detail.name == "The Morning Ledger"
    assert {(link.rel, link.href) for link in feed.links} == {
        ("alternate", f"{BASE}/archive/daily/"),
        ("self", f"{BASE}/archive/daily/feed.atom"),
    }
    assert feed.updated == "2026-11-26T04:30:00Z"
    assert [entry.link for entry in parsed.entries] == [
        f"{BASE}/archive/daily/2026-11-26",
        f"{BASE}/archive/daily/2026-11-25",
    ]
    first = parsed.entries[1]
    assert first.id == first.link and first.updated == "2026-11-25T04:30:00Z"
    assert first.title == f"Wednesday, 25 November 2026: {site.first.desks[0].items[0].title}"
    story = site.first.desks[0].items[0]
    assert story.url in first.content[0].value and first.content[0].type == "text/html"


@pytest.mark.parametrize("path", ["/archive/daily/2026-11-25", "/archive/daily/", "/archive/daily/feed.atom"])
def test_etag_and_last_modified_answer_304(site: Site, path: str) -> None:
    first = site.client.get(path)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = site.client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == etag
    since = site.client.get(path, headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    before = http_date(NOW - dt.timedelta(days=3))
    assert site.client.get(path, headers={"If-Modified-Since": before}).status_code == 200
    assert site.client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_archive_off_means_no_link_and_no_pages(tmp_path: Path, make_project: MakeProject) -> None:
    config = load_config(make_project(replace=ARCHIVE_OFF, extra=SERVER))
    assert config.mailing_list("daily").archive is False
    off = _site(tmp_path, config)
    html, text = _parts(_email(config, off.first))
    assert "in your browser" not in html and "in your browser" not in text and "/archive/" not in html + text
    assert "Manage your desks" in html and "Manage your desks" in text  # the reader's own links stay
    for path in ("/archive/daily/2026-11-25", "/archive/daily/", "/archive/daily/feed.atom"):
        assert off.client.get(path).status_code == 404
    off.store.close()
