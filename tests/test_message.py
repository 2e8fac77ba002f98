"""The .eml a subscriber would receive: structure, line lengths, CRLF, and no header injection."""

from __future__ import annotations

import datetime as dt
import email
from email import policy

from digest.config import Config
from digest.render import Rendered, render_edition
from digest.render.message import Recipient, compose, make_message_id, personalize
from tests.conftest import NOW, greeted
from tests.test_render import big_edition


def make(config: Config, rendered: Rendered, recipient: Recipient) -> bytes:
    return compose(
        rendered, recipient, sender=config.settings.newsroom.sender, edition_id="daily-2026-11-25", date=NOW
    ).as_bytes()


def test_multipart_alternative_text_first_html_last(config: Config) -> None:
    rendered = render_edition(config, big_edition(config))
    raw = make(
        config, rendered, greeted("anna@example.org", "Anna Koval", "https://x.example/u/abc?l=daily&t=1")
    )
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text, html = (part.get_content() for part in parsed.iter_parts())
    assert "Hello, Anna Koval," in text and "Hello, Anna Koval," in html
    assert "Unsubscribe: https://x.example/u/abc?l=daily&t=1" in text
    assert 'href="https://x.example/u/abc?l=daily&amp;t=1"' in html
    assert "%%" not in text and "%%" not in html


def test_no_line_over_998_and_crlf_on_the_wire(config: Config) -> None:
    rendered = render_edition(config, big_edition(config))
    # A one-line HTML body (as a minifier may make) must still go out in short lines.
    rendered = Rendered(rendered.subject, rendered.preheader, rendered.html.replace("\n", ""), rendered.text)
    assert len(rendered.html) > 20_000
    raw = make(config, rendered, greeted("a@example.org"))
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"")
    # RFC 2045: quoted-printable lines are at most 76 characters (the body: after the headers).
    body = raw.partition(b"\r\n\r\n")[2].split(b"\r\n")
    assert max(len(line) for line in body) == 76


def test_feed_text_cannot_inject_headers(config: Config) -> None:
    rendered = Rendered(
        subject="Top story\r\nBcc: victim@example.org",
        preheader="",
        html="<p>%%greeting%%</p>",
        text="%%greeting%%",
    )
    raw = make(config, rendered, greeted("a@example.org", "Eve\r\nBcc: x@example.org"))
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Top story Bcc: victim@example.org"
    assert parsed["To"].addresses[0].addr_spec == "a@example.org"


def test_names_are_escaped_into_html() -> None:
    rendered = Rendered("s", "p", "<p>%%greeting%%</p>", "%%greeting%%")
    html, text = personalize(rendered, greeted("a@example.org", "<b>Bob</b> & Co"))
    assert html == "<p>Hello, &lt;b&gt;Bob&lt;/b&gt; &amp; Co</p>"
    assert text == "Hello, <b>Bob</b> & Co"


def test_message_id_is_stable_per_edition_and_recipient() -> None:
    sender = "Digest <digest@news.example.org>"
    first = make_message_id("daily-2026-11-25", "Anna@Example.org", sender)
    assert first == make_message_id("daily-2026-11-25", "anna@example.org", sender)
    assert first != make_message_id("daily-2026-11-26", "anna@example.org", sender)
    assert first != make_message_id("daily-2026-11-25", "bob@example.org", sender)
    assert first.endswith("@news.example.org>")


def test_date_header_is_rfc5322(config: Config) -> None:
    rendered = Rendered("s", "p", "<p>x</p>", "x")
    parsed = email.message_from_bytes(make(config, rendered, greeted("a@example.org")), policy=policy.default)
    assert parsed["Date"].datetime == NOW.replace(tzinfo=dt.UTC)


NAMES = ["", "Anna Koval", "Jürgen Hoffmann", 'Quote "Q" O\'Brien', "<b>Bob</b> & Co", "李雷", "x" * 120]


def test_the_fast_composer_makes_exactly_what_compose_makes(config: Config) -> None:
    from digest.render.message import Composer

    rendered = render_edition(config, big_edition(config))
    headers = {"List-Id": '"The Morning Ledger" <daily.news.example.org>'}
    composer = Composer(
        rendered,
        sender=config.settings.newsroom.sender,
        edition_id="daily-2026-11-25",
        date=NOW,
        headers=headers,
    )
    assert composer.usable
    for number, name in enumerate(NAMES):
        recipient = greeted(
            f"reader{number}@example.org", name, f"https://news.example.org/unsubscribe/tok{number}"
        )
        message_id = make_message_id("daily-2026-11-25", recipient.email, config.settings.newsroom.sender)
        own = {
            "List-Unsubscribe": f"<{recipient.unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        fast = composer.message_bytes(recipient, message_id, own)
        assert fast is not None, name
        assert fast == composer.compose(recipient, message_id, own).as_bytes(), name
