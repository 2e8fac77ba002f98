"""Feed text is hostile until it has been through here.

HTML is cleaned with nh3 (ammonia) against an allowlist; plain text has tags and control
characters removed and whitespace folded, so it can go into a header or a template as is.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "blockquote",
        "br",
        "cite",
        "code",
        "em",
        "i",
        "li",
        "ol",
        "p",
        "q",
        "small",
        "strong",
        "sub",
        "sup",
        "ul",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Elements whose text is not content: dropping the tag must drop what is inside it too.
_DROP_WITH_CONTENT = frozenset({"script", "style", "template", "noscript", "iframe", "object", "svg", "math"})
_TRACKING_PARAMS = re.compile(
    r"^(utm_.*|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|_hsenc|_hsmi|ref_src)$", re.I
)
_BLOCK_END = re.compile(r"</(p|li|blockquote|ul|ol)>|<br\s*/?>", re.I)
# Block elements outside the allowlist are removed; a space in their place keeps words apart.
_DROPPED_BLOCK = re.compile(
    r"(?=</?(?:address|article|aside|caption|dd|div|dl|dt|figcaption|figure|footer|h[1-6]|header|hr|"
    r"main|nav|pre|section|table|tbody|td|tfoot|th|thead|tr)\b)",
    re.I,
)


def clean_html(fragment: str, base_url: str | None = None) -> str:
    """Sanitized HTML: allowlisted tags, only http/https/mailto links, no scripts or handlers.

    Relative links are made absolute against ``base_url``, or dropped when there is none.
    """
    relative: Literal["deny"] | tuple[Literal["rewrite_with_base"], str] = (
        ("rewrite_with_base", base_url) if base_url is not None and web_url(base_url) else "deny"
    )
    cleaned = nh3.clean(
        _DROPPED_BLOCK.sub(" ", fragment),
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
        url_relative=relative,
    )
    return one_line(cleaned)


def plain_text(fragment: str) -> str:
    """Text with no markup, no control characters and whitespace folded to single spaces."""
    spaced = _DROPPED_BLOCK.sub(" ", _BLOCK_END.sub(" ", fragment))
    stripped = nh3.clean(spaced, tags=set(), clean_content_tags=set(_DROP_WITH_CONTENT))
    return one_line(html.unescape(stripped))


def one_line(text: str) -> str:
    """Fold all whitespace (CR and LF included) to single spaces: safe for a header value."""
    # isprintable() is False for every character _strip_controls drops (and for all
    # whitespace but the space), so most names skip the character-by-character pass.
    return " ".join((text if text.isprintable() else _strip_controls(text)).split())


def _strip_controls(text: str) -> str:
    # Keep ordinary whitespace (folded later), drop every other control or format character.
    return "".join(
        ch for ch in text if ch in "\t\n\r " or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co")
    )


def web_url(url: str | None, base: str | None = None) -> str | None:
    """``url`` if it is an absolute http(s) URL with a host (resolved against ``base``), else None."""
    if not url:
        return None
    url = url.strip()
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    try:
        if base and not urlsplit(url).scheme:
            url = urljoin(base, url)
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
    except ValueError:  # e.g. "http://[broken" : urllib cannot even split it
        return None
    return url


def canonical_url(url: str) -> str:
    """The link with tracking parameters and the fragment removed, scheme and host lowercased."""
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k)
    ]
    netloc = parts.netloc.lower()
    path = parts.path or "/"
    return urlunsplit((parts.scheme.lower(), netloc, path, urlencode(query, doseq=True), ""))


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"sha256:{digest[:32]}"


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary and ending with an ellipsis when cut.

    A single word longer than the whole limit (a run of characters with no space) is cut in it.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]  # one character is left for the ellipsis
    if not text[limit - 1].isspace():  # the cut falls inside a word: that word goes
        space = cut.rfind(" ")
        if space > 0:
            cut = cut[:space]
    return cut.rstrip(",;:.-–— ·") + "…"


def truncate_words(text: str, limit: int) -> str:
    """At most ``limit`` words, ending with an ellipsis when cut."""
    words = text.split()
    if len(words) <= limit:
        return text
    return " ".join(words[:limit]).rstrip(",;:.-–— ") + "…"
