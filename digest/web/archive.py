"""The web archive: every frozen edition at ``/archive/<list>/<YYYY-MM-DD>``, an index, an Atom feed.

An edition is published when ``digest send`` freezes it (the ``editions`` table keeps its
content): the page is the whole edition (every desk of the list) rendered by the email's own
templates with ``web=True``, so it names nobody: the greeting is the one without a name, and
the reader's links become the list's sign-up page. A list with ``archive = false`` has no
pages (404), and its emails no link to them.

Rendering MJML takes far longer than answering a request, so rendered pages are kept in a
small in-process cache keyed by the edition, its content and the config; a frozen edition never
changes, so nothing needs invalidating (a changed template shows after a restart).
Every answer carries an ETag and Last-Modified and is answered 304 when the client has it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from werkzeug.exceptions import NotFound
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from digest.config import Config, MailingList
from digest.edition.frozen import load_edition
from digest.model import Edition
from digest.render import render_edition, render_greeting
from digest.render.context import archive_path, date_label, web_url
from digest.render.message import Recipient, personalize
from digest.state.editions import Published
from digest.web import pages
from digest.web.app import Site, WebRequest

ATOM = "http://www.w3.org/2005/Atom"
# Atom as the default namespace, so the feed reads <feed>, not <ns0:feed> (ElementTree's own prefix).
ET.register_namespace("", ATOM)
# Public, and the same for everyone: proxies and browsers may keep them a while.
CACHE_CONTROL = "public, max-age=300"
FEED_ENTRIES = 20
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

K = TypeVar("K")
V = TypeVar("V")


class _Bounded(Generic[K, V]):
    """A thread-safe LRU mapping of at most ``size`` entries (WSGI servers answer in threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        # Made outside the lock: a slow render must not hold up the other threads (two threads
        # may render the same page once each; both results are the same).
        found = self.get(key)
        return found if found is not None else self.put(key, make())


@dataclass(frozen=True, slots=True)
class _Summary:
    """What the index and the feed show of an edition, read once from its frozen content."""

    label: str
    headline: str
    stories: tuple[tuple[str, str, str], ...]  # (title, url, desk)


# Rendered pages are ~100 KB each: 64 of them bound the memory; summaries are tiny.
_PAGES: _Bounded[tuple[str, str, str], bytes] = _Bounded(64)
_SUMMARIES: _Bounded[str, _Summary] = _Bounded(4096)


def _archived_list(site: Site, name: str) -> MailingList:
    mailing_list = site.mailing_list(name)
    if mailing_list is None or not mailing_list.archive:
        raise NotFound()
    return mailing_list


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _config_key(config: Config) -> str:
    # Everything a page shows comes from the settings (names, links, templates folder).
    return _digest(config.settings.model_dump_json())


def _answer(
    request: WebRequest, body: bytes, mimetype: str, modified: dt.datetime | None, headers: Mapping[str, str]
) -> Response:
    response = Response(body, 200, mimetype=mimetype, headers=dict(headers))
    response.headers["Cache-Control"] = CACHE_CONTROL
    # Published for anyone: unlike the pages that carry a token, search engines may list these.
    del response.headers["X-Robots-Tag"]
    response.add_etag()
    if modified is not None:
        response.last_modified = modified
    return response.make_conditional(request)


def edition_page(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    mailing_list = _archived_list(site, values["list"])
    try:
        if not _DATE.fullmatch(values["date"]):
            raise ValueError(values["date"])
        day = dt.date.fromisoformat(values["date"])
    except ValueError:
        raise NotFound() from None
    found = site.store().editions.published_on(mailing_list.name, day)
    if found is None:
        raise NotFound()
    published, content = found
    key = (published.id, _digest(content), _config_key(site.config))
    body = _PAGES.get_or_make(key, lambda: _render_page(site.config, load_edition(content)).encode("utf-8"))
    # The email's own pictures: the stories' images come from whatever hosts the feeds name.
    return _answer(request, body, "text/html", published.frozen_at, pages.with_images("https: data:"))


def _render_page(config: Config, edition: Edition) -> str:
    """The whole edition as a web page: the 'all' variant, its placeholders given neutral values."""
    env = pages.environment(config)
    rendered = render_edition(config, edition, env, web=True)
    signup = web_url(config, f"/subscribe/{edition.list_name}")
    # Nobody's page: the greeting without a name, the sign-up page for the reader's links.
    html, _text = personalize(rendered, Recipient("", "", signup, render_greeting(env).to(""), signup))
    return html


def _summary(content: str) -> _Summary:
    edition = load_edition(content)
    stories = tuple((item.title, item.url, desk.name) for desk in edition.desks for item in desk.items)
    return _Summary(date_label(edition), stories[0][0] if stories else "", stories)


def _summaries(site: Site, editions: list[Published]) -> list[tuple[Published, _Summary]]:
    """Each edition with its summary, reading from the store only the contents not summarised yet.

    A frozen edition never changes, so its id is key enough for what the index shows of it.
    """
    known = {edition.id: _SUMMARIES.get(edition.id) for edition in editions}
    missing = [edition_id for edition_id, summary in known.items() if summary is None]
    if missing:
        for edition_id, content in site.store().editions.contents(missing).items():
            known[edition_id] = _SUMMARIES.put(edition_id, _summary(content))
    return [
        (edition, known[edition.id] or _Summary(edition.date.isoformat(), "", ())) for edition in editions
    ]


def index(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    mailing_list = _archived_list(site, values["list"])
    editions = _summaries(site, site.store().editions.published(mailing_list.name))
    root = f"{request.script_root}/archive/{mailing_list.name}"
    page = pages.render(
        site,
        "archive",
        title=f"{mailing_list.display_title}: past editions",
        editions=[
            (f"{root}/{e.date.isoformat()}", summary.label, summary.headline) for e, summary in editions
        ],
        feed=f"{root}/feed.atom",
    )
    newest = editions[0][0].frozen_at if editions else None
    return _answer(request, page.get_data(), "text/html", newest, pages.page_headers(site.config.settings))


def feed(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    mailing_list = _archived_list(site, values["list"])
    editions = _summaries(site, site.store().editions.published(mailing_list.name, FEED_ENTRIES))
    updated = editions[0][0].frozen_at if editions else None
    body = atom_feed(site.config, mailing_list, editions, updated or site.clock())
    return _answer(request, body, "application/atom+xml", updated, pages.SECURITY_HEADERS)


def _when(moment: dt.datetime) -> str:
    """RFC 3339, in UTC, as Atom wants it."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    element.text = text
    return element


def atom_feed(
    config: Config,
    mailing_list: MailingList,
    editions: list[tuple[Published, _Summary]],
    updated: dt.datetime,
) -> bytes:
    """An Atom feed (RFC 4287) of the editions: each entry links to its page and lists its stories."""
    newsroom = config.settings.newsroom
    home = web_url(config, f"/archive/{mailing_list.name}/")
    root = ET.Element(f"{{{ATOM}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": newsroom.lang})
    _add(root, "id", home)
    _add(root, "title", f"{mailing_list.display_title} · {newsroom.name}")
    _add(root, "updated", _when(updated))
    author = _add(root, "author")
    _add(author, "name", newsroom.name)
    _add(author, "uri", newsroom.site_url)
    _add(root, "link", rel="alternate", type="text/html", href=home)
    _add(root, "link", rel="self", type="application/atom+xml", href=f"{home}feed.atom")
    _add(root, "generator", "digest")
    for edition, summary in editions:
        url = web_url(config, archive_path(mailing_list.name, edition.date))
        entry = _add(root, "entry")
        _add(entry, "id", url)
        _add(entry, "title", f"{summary.label}: {summary.headline}" if summary.headline else summary.label)
        _add(entry, "updated", _when(edition.frozen_at))
        _add(entry, "published", _when(edition.frozen_at))
        _add(entry, "link", rel="alternate", type="text/html", href=url)
        # Escaped HTML (type="html"): the stories as links, for readers that show the entry.
        items = "".join(
            f'<li><a href="{_escape(link)}">{_escape(title)}</a> ({_escape(desk)})</li>'
            for title, link, desk in summary.stories
        )
        _add(entry, "content", f"<ul>{items}</ul>", type="html")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


ROUTES = [
    (Rule("/archive/<list>/", endpoint="archive-index", methods=["GET"]), index),
    (Rule("/archive/<list>/feed.atom", endpoint="archive-feed", methods=["GET"]), feed),
    (Rule("/archive/<list>/<date>", endpoint="archive-edition", methods=["GET"]), edition_page),
]
