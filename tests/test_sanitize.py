"""digest.ingest.sanitize: the one place hostile feed text is made safe."""

from __future__ import annotations

import pytest

from digest.ingest.sanitize import (
    ALLOWED_TAGS,
    canonical_url,
    clean_html,
    content_hash,
    one_line,
    plain_text,
    shorten,
    truncate_words,
    web_url,
)

REL = 'rel="noopener noreferrer"'


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        # Scripts and friends go, with everything inside them.
        ("<p>Hello <script>alert(1)</script>world</p>", "<p>Hello world</p>"),
        ('<p>x<SCRIPT SRC="https://evil.example.net/x.js"></SCRIPT></p>', "<p>x</p>"),
        ("<style>p{color:red}</style><p>x</p>", "<p>x</p>"),
        ('<iframe src="https://evil.example.net/">fallback text</iframe>after', "after"),
        ('<object data="https://evil.example.net/x.swf">flash</object>after', "after"),
        ("<noscript>no js</noscript><template>tpl</template>after", "after"),
        ('<svg onload="alert(1)"><text>svg text</text></svg>after', "after"),
        ("<math><mi>x</mi></math>after", "after"),
        ('<form action="https://evil.example.net/"><input name="pw"></form>kept', "kept"),
        ("<!-- a comment --><p>x</p>", "<p>x</p>"),
        # Event handlers and every other attribute off the allowlist.
        ('<p onclick="steal()" class="lead" style="color:red" id="x">x</p>', "<p>x</p>"),
        ('<b onmouseover="steal()">bold</b>', "<b>bold</b>"),
        ('<img src="https://images.example.org/a.jpg" onerror="alert(1)">after', "after"),
        # Links: http(s) and mailto only, target dropped, rel forced.
        ('<a href="javascript:alert(1)">j</a>', f"<a {REL}>j</a>"),
        ('<a href="JaVaScRiPt:alert(1)">j</a>', f"<a {REL}>j</a>"),
        ('<a href=" javascript:alert(1)">j</a>', f"<a {REL}>j</a>"),
        ('<a href="&#106;avascript:alert(1)">j</a>', f"<a {REL}>j</a>"),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">d</a>', f"<a {REL}>d</a>"),
        ('<a href="vbscript:msgbox(1)">v</a>', f"<a {REL}>v</a>"),
        (
            '<a href="https://news.example.org/a" title="T" target="_blank" rel="nofollow" onclick="x()">ok</a>',
            f'<a href="https://news.example.org/a" title="T" {REL}>ok</a>',
        ),
        (
            '<a href="mailto:desk@news.example.org">mail</a>',
            f'<a href="mailto:desk@news.example.org" {REL}>mail</a>',
        ),
        # Allowed tags survive; others are unwrapped, their text kept.
        (
            "<p><b>b</b> <i>i</i> <em>e</em> <strong>s</strong></p>",
            "<p><b>b</b> <i>i</i> <em>e</em> <strong>s</strong></p>",
        ),
        (
            "<blockquote><q>q</q> <cite>c</cite></blockquote>",
            "<blockquote><q>q</q> <cite>c</cite></blockquote>",
        ),
        ("<ul><li>1</li></ul><ol><li>2</li></ol>", "<ul><li>1</li></ul><ol><li>2</li></ol>"),
        (
            "<code>c</code><br><sub>s</sub><sup>p</sup><small>m</small>",
            "<code>c</code><br><sub>s</sub><sup>p</sup><small>m</small>",
        ),
        ("<span>plain</span> <font color=red>text</font>", "plain text"),
        # Well-formed out, whitespace folded to one line, bare text escaped.
        ("<p>unclosed <b>bold", "<p>unclosed <b>bold</b></p>"),
        ("<p>line\none\r\ntwo\tthree</p>", "<p>line one two three</p>"),
        ("5 < 6 & 7 > 3", "5 &lt; 6 &amp; 7 &gt; 3"),
        ("", ""),
    ],
)
def test_clean_html(fragment: str, expected: str) -> None:
    assert clean_html(fragment) == expected


def test_clean_html_keeps_every_allowed_tag() -> None:
    for tag in sorted(ALLOWED_TAGS - {"br", "li", "a"}):
        assert clean_html(f"<{tag}>x</{tag}>") == f"<{tag}>x</{tag}>"


@pytest.mark.parametrize(
    "fragment",
    [
        "<div>One.</div><div>Two.</div>",
        "<h2>Heading</h2>Text",
        "<table><tr><td>Kyiv</td><td>Lviv</td></tr></table>",
        "one<hr>two",
    ],
)
def test_dropped_block_tags_still_separate_words(fragment: str) -> None:
    assert len(plain_text(fragment).split()) == 2
    assert len(plain_text(clean_html(fragment)).split()) == 2


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>One</p><p>Two</p>", "One Two"),
        ("<ul><li>a</li><li>b</li></ul>", "a b"),
        ("line<br>break<br/>x", "line break x"),
        ("<b>bo</b>ld", "bold"),
        ("<script>alert(1)</script>text", "text"),
        ("<style>p{}</style>text", "text"),
        ("A&amp;B &eacute; &#8217; &#x2014; &nbsp;x", "A&B é ’ — x"),
        # Escaped markup is text: it comes out as the literal characters, not as a tag.
        ("&lt;b&gt;bold&lt;/b&gt;", "<b>bold</b>"),
        ("&lt;script&gt;", "<script>"),
        ("a\r\nb\tc", "a b c"),
        ("a\x00b\x07c\x1bd", "abcd"),
        ("zero\u200bwidth\ufeffjoin", "zerowidthjoin"),
        ("right\u202eto left", "rightto left"),
        ("a\u2028b\u2029c", "a b c"),
        ("\u00a0 lots   of \n space  ", "lots of space"),
        ("é ñ 中文 🎉", "é ñ 中文 🎉"),
        ("", ""),
    ],
)
def test_plain_text(fragment: str, expected: str) -> None:
    assert plain_text(fragment) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\r\nb", "a b"),
        ("Breaking\r\nBcc: everyone@example.org", "Breaking Bcc: everyone@example.org"),
        ("  a  ", "a"),
        ("tab\there", "tab here"),
        ("a\x00b\x1bc\x7fd", "abcd"),
        ("a\x85b", "ab"),
        ("a\u2028b", "a b"),
        ("a\ud800b", "ab"),
        ("a\ue000b", "ab"),
        ("<b>kept as text</b>", "<b>kept as text</b>"),
        ("", ""),
    ],
)
def test_one_line(text: str, expected: str) -> None:
    assert one_line(text) == expected


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("https://news.example.org/a", None, "https://news.example.org/a"),
        ("http://news.example.org/a", None, "http://news.example.org/a"),
        ("HTTPS://News.Example.org/A", None, "HTTPS://News.Example.org/A"),
        (" https://news.example.org/a \n", None, "https://news.example.org/a"),
        # Not web URLs.
        ("javascript:alert(1)", None, None),
        ("JAVASCRIPT:alert(1)", "https://news.example.org/", None),
        ("data:text/html,<script>alert(1)</script>", None, None),
        ("vbscript:msgbox(1)", None, None),
        ("mailto:desk@news.example.org", None, None),
        ("ftp://news.example.org/file", None, None),
        ("https:///no-host", None, None),
        ("http://", None, None),
        ("https://news.example.org/a b", None, None),
        ("https://news.example.org/a\tb", None, None),
        ("https://news.example.org/a\nb", None, None),
        ("https://news.example.org/a\u2028b", None, None),
        ("https://news.example.org/a\x00", None, None),
        ("", None, None),
        (None, "https://news.example.org/", None),
        # Relative: resolved against the base, or nothing without one.
        ("/a", None, None),
        ("/europe/a", "https://news.example.org/world/", "https://news.example.org/europe/a"),
        ("a", "https://news.example.org/europe/b", "https://news.example.org/europe/a"),
        ("../culture/a", "https://news.example.org/europe/b/", "https://news.example.org/europe/culture/a"),
        ("//cdn.example.org/i.jpg", "https://news.example.org/", "https://cdn.example.org/i.jpg"),
        ("?page=2", "https://news.example.org/a?page=1", "https://news.example.org/a?page=2"),
        ("a", "javascript:alert(1)", None),
        ("https://news.example.org/a", "https://other.example.org/", "https://news.example.org/a"),
    ],
)
def test_web_url(url: str | None, base: str | None, expected: str | None) -> None:
    assert web_url(url, base) == expected


@pytest.mark.parametrize("url", ["http://[news.example.org/a", "https://[::1/a"])
def test_web_url_refuses_what_urllib_cannot_split(url: str) -> None:
    assert web_url(url) is None
    assert web_url(url, "https://news.example.org/") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://news.example.org/a?utm_source=x&utm_medium=y&id=3#frag", "https://news.example.org/a?id=3"),
        ("https://news.example.org/a?UTM_Campaign=x&utm_content=y", "https://news.example.org/a"),
        ("https://news.example.org/?fbclid=1&gclid=2&dclid=3&msclkid=4", "https://news.example.org/"),
        ("https://news.example.org/a?mc_cid=1&mc_eid=2&igshid=3&page=2", "https://news.example.org/a?page=2"),
        ("https://news.example.org/a?b=2&a=1", "https://news.example.org/a?b=2&a=1"),
        ("https://news.example.org/a?tag=x&tag=y", "https://news.example.org/a?tag=x&tag=y"),
        ("https://news.example.org/a?q=a+b&r=%2F", "https://news.example.org/a?q=a+b&r=%2F"),
        ("https://news.example.org/a?ref=home&ref_src=twsrc", "https://news.example.org/a?ref=home"),
        ("https://news.example.org/a#comments", "https://news.example.org/a"),
        ("https://NEWS.Example.ORG/Path/Case?X=1", "https://news.example.org/Path/Case?X=1"),
        ("HTTPS://news.example.org", "https://news.example.org/"),
        ("https://news.example.org:8443/a", "https://news.example.org:8443/a"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_is_stable() -> None:
    once = canonical_url("https://News.example.org/a?utm_source=x&id=3#f")
    assert canonical_url(once) == once


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("one two three", 3, "one two three"),
        ("one two three four", 3, "one two three…"),
        ("one, two, three, four", 3, "one, two, three…"),
        ("one two three. four", 3, "one two three…"),
        ("one two three — four", 4, "one two three…"),
        ("one two\nthree", 2, "one two…"),
        ("", 5, ""),
    ],
)
def test_truncate_words(text: str, limit: int, expected: str) -> None:
    assert truncate_words(text, limit) == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Rain again over the capital", 40, "Rain again over the capital"),  # fits: unchanged
        ("Rain again over the capital", 27, "Rain again over the capital"),
        ("Rain again over the capital", 26, "Rain again over the…"),  # never half a word
        ("Rain again over the capital", 16, "Rain again over…"),  # the ellipsis fits the limit
        ("Rain again over the capital", 15, "Rain again…"),
        ("Prices rise, markets fall", 14, "Prices rise…"),  # no comma before the ellipsis
        ("Supercalifragilistic", 8, "Superca…"),  # one word longer than the limit is cut in it
    ],
)
def test_shorten(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected
    assert len(shorten(text, limit)) <= limit


def test_content_hash_is_stable_and_separates_parts() -> None:
    assert content_hash("a", "b") == content_hash("a", "b")
    assert content_hash("a", "b").startswith("sha256:")
    assert content_hash("ab", "") != content_hash("a", "b")
