"""Content checks an editor wants before a send: links, images, preheader, text, size, feeds, spam.

Each check is a ``Check``: ``ok`` True (passed), False (failed) or None (not run). The HTML
is walked with the standard library's parser, never with regexes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from html.parser import HTMLParser
from typing import TypedDict
from urllib.parse import urlsplit

from digest.errors import SpamAssassinError, SpamAssassinMissing
from digest.preview import spamassassin
from digest.preview.model import Preview

GMAIL_CLIP = 102_000  # bytes of HTML after which Gmail hides the rest behind "View entire message"
SPAM_TIMEOUT = 30.0
SPAM_NOT_INSTALLED = "SpamAssassin is not installed (apt-get install spamassassin)"
_SHOWN = 10  # bad links or images named in a detail


class Check(TypedDict):
    id: str
    name: str
    ok: bool | None
    detail: str


def check(ident: str, name: str, ok: bool | None, detail: str) -> Check:
    return {"id": ident, "name": name, "ok": ok, "detail": detail}


class _Walker(HTMLParser):
    """Collects every ``<a href>`` and every ``<img>`` (src, alt) of a document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[tuple[str, str | None]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a" and "href" in values:
            self.links.append(values["href"] or "")
        elif tag == "img":
            self.images.append((values.get("src") or "", values.get("alt")))


def walk(html: str) -> tuple[list[str], list[tuple[str, str | None]]]:
    """The document's link targets, but for those to its own sections, and its images
    (attribute values unescaped)."""
    walker = _Walker()
    walker.feed(html)
    walker.close()
    # A link to a section of the email itself (the contents line's) is checked here, where the
    # ids are known: one to a missing id would go nowhere.
    links = [href for href in walker.links if not (href.startswith("#") and href[1:] in walker.ids)]
    return links, walker.images


def is_web_link(href: str) -> bool:
    """A well-formed http(s) URL with a host (or a mailto: with an address, which feeds may carry)."""
    if not href or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in href):
        return False
    try:
        parts = urlsplit(href)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    if parts.scheme == "mailto":
        return "@" in parts.path
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _listed(values: list[str]) -> str:
    shown = ", ".join(repr(value[:200]) for value in values[:_SHOWN])
    return shown + (f" … and {len(values) - _SHOWN} more" if len(values) > _SHOWN else "")


def link_check(links: list[str]) -> Check:
    bad = [href for href in links if not is_web_link(href)]
    if bad:
        return check("links", "Links", False, f"{len(bad)} of {len(links)} not http(s) URLs: {_listed(bad)}")
    return check("links", "Links", True, f"{len(links)} links, all well-formed http(s) URLs")


def image_check(images: list[tuple[str, str | None]]) -> Check:
    missing = [src or "(no src)" for src, alt in images if not (alt or "").strip()]
    if missing:
        detail = f"{len(missing)} of {len(images)} images without alt text: {_listed(missing)}"
        return check("images", "Image alt text", False, detail)
    detail = f"{len(images)} images, all with alt text" if images else "no images"
    return check("images", "Image alt text", True, detail)


def unsubscribe_check(preview: Preview, links: list[str]) -> Check:
    url = preview.recipient.unsubscribe_url
    places = [name for name, found in (("HTML", url in links), ("text", url in preview.text)) if not found]
    if places:
        return check(
            "unsubscribe",
            "Unsubscribe link",
            False,
            f"the recipient's unsubscribe link is missing from the {' and '.join(places)} part; "
            "use {{ placeholders.unsubscribe_url }} in the template",
        )
    return check("unsubscribe", "Unsubscribe link", True, f"{url} in both parts")


def size_check(size: int) -> Check:
    ok = size < GMAIL_CLIP
    detail = f"{size:,} bytes of HTML; Gmail clips at {GMAIL_CLIP:,}"
    if not ok:
        detail += ": it hides the rest of the message, the unsubscribe link included"
    return check("size", "HTML size", ok, detail)


def feed_check(warnings: tuple[str, ...]) -> Check:
    if warnings:
        return check("feeds", "Feeds", False, "; ".join(warnings))
    return check("feeds", "Feeds", True, "every feed was read without warnings")


# -- SpamAssassin ---------------------------------------------------------------------------


class SpamResults:
    """SpamAssassin's verdicts by content, so a reload of an unchanged edition does not run it
    again; bounded, and safe for the preview's threads."""

    def __init__(self, limit: int = 64) -> None:
        self._lock = threading.Lock()
        self._results: dict[str, Check] = {}
        self._limit = limit

    def get(self, key: str) -> Check | None:
        with self._lock:
            return self._results.get(key)

    def put(self, key: str, result: Check) -> None:
        with self._lock:
            if len(self._results) >= self._limit:
                self._results.clear()
            self._results[key] = result


# The preview server's: one process, reloaded many times.
PREVIEW_SPAM_RESULTS = SpamResults()

Scorer = Callable[[bytes], spamassassin.Verdict]


def machine_score(message: bytes) -> spamassassin.Verdict:
    """The verdict of the machine's own SpamAssassin setup (its rules, sa-update's, local.cf):
    what the editor's mail server would say."""
    return spamassassin.score(message, spamassassin.MACHINE, timeout=SPAM_TIMEOUT)


def spam_check(
    message: bytes,
    *,
    key: str | None = None,
    scorer: Scorer = machine_score,
    results: SpamResults | None = None,
) -> Check:
    """SpamAssassin's score, local tests only, with the rules that hit; ok None when not run.

    With ``results``, verdicts are remembered there by ``key`` (the content, not the Date
    header), so a reload of an unchanged edition does not run SpamAssassin again. Only
    verdicts: a scan that failed or timed out is tried again on the next reload.
    """
    name = "Spam score"
    key = key or hashlib.sha256(message).hexdigest()
    known = results.get(key) if results is not None else None
    if known is not None:
        return known
    try:
        verdict = scorer(message)
    except SpamAssassinMissing:
        return check("spam", name, None, SPAM_NOT_INSTALLED)
    except SpamAssassinError as error:
        return check("spam", name, None, str(error))
    result = check("spam", name, not verdict.spam, spam_detail(verdict))
    if results is not None:
        results.put(key, result)
    return result


def spam_detail(verdict: spamassassin.Verdict) -> str:
    """The total, the threshold and each rule that hit with its score, e.g. "score 0.101, spam
    at 5 (MIME_HTML_ONLY 0.1, HTML_MESSAGE 0.001)": exact, where the X-Spam-Status header
    rounds to one decimal, so the editor sees which rules a change moved."""
    detail = f"score {verdict.score:g}, spam at {verdict.required:g}"
    if verdict.hits:
        detail += " (" + ", ".join(f"{hit.name} {hit.score:g}" for hit in verdict.hits) + ")"
    return detail


# -- all of them ------------------------------------------------------------------------------


def run_checks(preview: Preview, *, spam: Callable[[bytes, str], Check] | None = None) -> list[Check]:
    """Every check of a preview, in the order an editor reads them."""
    links, images = walk(preview.html)
    text_lines = len(preview.text.strip().splitlines())
    headers = {name: value for name, value in preview.headers.items() if name != "Date"}
    key = hashlib.sha256(repr((preview.html, preview.text, sorted(headers.items()))).encode()).hexdigest()
    return [
        link_check(links),
        unsubscribe_check(preview, links),
        image_check(images),
        check(
            "preheader",
            "Preheader",
            bool(preview.rendered.preheader.strip()),
            preview.rendered.preheader or "empty: inboxes show the start of the body instead",
        ),
        check(
            "text",
            "Text part",
            bool(text_lines),
            f"{text_lines} lines" if text_lines else "the plain-text part is empty",
        ),
        size_check(preview.html_bytes),
        feed_check(preview.warnings),
        (spam or (lambda message, k: spam_check(message, key=k, results=PREVIEW_SPAM_RESULTS)))(
            preview.message, key
        ),
    ]
