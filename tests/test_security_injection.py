"""Hostile feeds and subscriber rows, end to end: `digest build`, `digest send` and the preview.

The unit tests check the sanitizer and the composer one value at a time; here every hostile
value goes in through the files an editor would point digest at (an RSS feed, a JSON feed, the
subscriber CSV, even config.toml), through the real CLI, out to the outbox, a real SMTP server,
a SendGrid stand-in and the preview app, and what comes out is parsed as a mail client and a
browser would parse it: no header may be added, no line broken, no script able to run.
"""

from __future__ import annotations

import email
import json
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import lxml.html
import time_machine
from click.testing import CliRunner, Result
from werkzeug.test import Client

from digest.cli import cli
from digest.preview.app import make_app
from tests.conftest import NOW, MakeProject
from tests.sendgrid_sink import SendGridSink
from tests.smtpd import SmtpServer

# Config values are the editor's, not an attacker's, but they reach the same headers (Subject,
# List-Id) and headings, so they get the same treatment.
CONFIG = """\
[newsroom]
name = "The Morning Ledger\\r\\nSubject: newsroom-injected"
site_url = "https://news.example.org"
timezone = "Europe/Kyiv"
sender = "The Morning Ledger <digest@news.example.org>"
postal_address = "The Morning Ledger, 12 Khreshchatyk St, Kyiv 01001, Ukraine"

[desks]
order = ["Business", "Opinion: Bcc desk@evil.example <b>&</b>"]

[[feeds]]
source = "feeds/hostile.xml"
desk = "Business"

[[feeds]]
source = "feeds/hostile.json"
desk = "Opinion: Bcc desk@evil.example <b>&</b>"

[[lists]]
name = "daily"
title = "Daily\\r\\nBcc: list@evil.example"
subscribers = "subscribers/daily.csv"
transport = "TRANSPORT"

[transports.outbox]
backend = "outbox"
path = "outbox"

[server]
base_url = "https://news.example.org"

[state]
url = "sqlite:///state/digest.sqlite3"
"""

# &#13;&#10; survive XML parsing as a real CR LF; a literal line break would be normalised away.
CRLF = "&#13;&#10;"
RSS = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">
<channel><title>Hostile</title><link>https://news.example.org/</link><description>x</description>
<item>
  <title>Budget vote{CRLF}Bcc: title@evil.example{CRLF}Subject: title-injected&#x2028;Cc: ls@evil.example</title>
  <link>https://news.example.org/business/budget-vote</link>
  <guid isPermaLink="false">hostile-1</guid>
  <pubDate>Wed, 25 Nov 2026 05:10:00 +0200</pubDate>
  <dc:creator>Eve{CRLF}Bcc: author@evil.example</dc:creator>
  <category>Business{CRLF}Bcc: category@evil.example</category>
  <media:content url="javascript:alert(25)" medium="image"/>
  <description><![CDATA[<p>Harmless words one.<script>alert(1)</script><img src=x onerror="alert(2)">
  <a href="javascript:alert(3)" onclick="alert(4)">click here</a><iframe src="https://evil.example/"></iframe>
  <style>p{{x:expression(alert(5))}}</style><svg onload="alert(6)"><circle/></svg>
  <a href="data:text/html;base64,PHNjcmlwdD5hbGVydCg3KTwvc2NyaXB0Pg==">data link</a>
  &lt;script&gt;alert(8)&lt;/script&gt; &amp;lt;script&amp;gt;alert(9)&amp;lt;/script&amp;gt;</p>]]></description>
</item>
<item>
  <title><![CDATA[<script>alert(10)</script>Council <b>meets</b> tonight]]></title>
  <link>https://news.example.org/business/council</link>
  <guid isPermaLink="false">hostile-2</guid>
  <pubDate>Wed, 25 Nov 2026 04:10:00 +0200</pubDate>
  <description><![CDATA[<p>Harmless words two.<svg><script>alert(11)</script></svg>
  <a href="&#106;avascript:alert(12)">encoded</a> <a href="java&#x09;script:alert(13)">tabbed</a>
  <a href="vbscript:alert(14)">vb</a> <img src="data:image/svg+xml,&lt;svg onload=alert(15)&gt;">
  <math><mtext><style><img src=x onerror=alert(16)></style></mtext></math>
  <form action="javascript:alert(17)"><button>go</button></form>
  <div style="background:url(javascript:alert(18))">styled words</div>
  <a href="https://news.example.org/ok" onmouseover="alert(19)" style="x:expression(alert(20))">ok link</a>
  <base href="javascript:alert(21)//"><meta http-equiv="refresh" content="0;url=javascript:alert(22)">
  <noscript><p title="</noscript><img src=x onerror=alert(23)>"></noscript>
  <!--<img src=x onerror=alert(24)>--> <object data="javascript:alert(26)"></object>
  <embed src="javascript:alert(27)"> <a href=" JaVaScRiPt:alert(28)">spaced</a></p>]]></description>
</item>
<item>
  <title>Dropped story with a script link</title>
  <link>javascript:alert(29)</link>
  <guid isPermaLink="false">hostile-3</guid>
  <pubDate>Wed, 25 Nov 2026 03:10:00 +0200</pubDate>
</item>
</channel></rss>
"""
JSON_FEED = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Hostile JSON",
    "items": [
        {
            "id": "hostile-json-1",
            "url": "https://news.example.org/opinion/column",
            "title": "Json column\r\nBcc: json@evil.example\nReply-To: json@evil.example\x85Cc: nel@evil.example",
            "content_html": "<p>Harmless words three.<IMG SRC=JaVaScRiPt:alert(30)>"
            '<a href="JAVASCRIPT:alert(31)">caps</a><svg/onload=alert(32)></p>',
            "image": "javascript:alert(33)",
            "date_published": "2026-11-25T05:20:00+02:00",
            "authors": [{"name": "Col\r\nBcc: json-author@evil.example"}],
            "tags": ["Opinion\r\nBcc: tag@evil.example"],
        },
        {
            "id": "hostile-json-2",
            "url": "data:text/html,<script>alert(34)</script>",
            "title": "Dropped json story with a data link",
            "date_published": "2026-11-25T05:00:00+02:00",
        },
    ],
}
# Real payloads (markup that would run): none may survive anywhere, in any form.
EXECUTABLE = [f"alert({n})" for n in range(1, 35) if n not in (8, 9)]
TRUDY = "<img src=x onerror=alert(35)> Trudy"
SUBSCRIBERS = (
    "email,name\n"
    '"reader@example.org","Eve\r\nBcc: name@evil.example\r\nSubject: name-injected"\n'
    '"second@example.org","Mallory"" <mallory@evil.example>, ""x"\n'
    f'"third@example.org","{TRUDY}"\n'
)
SECRET = "test-secret-for-unsubscribe-links-0123"
ADDRESSES = ["reader@example.org", "second@example.org", "third@example.org"]
EVIL = re.compile(r"evil\.example", re.I)
# Everything digest writes; Bcc, Cc or Reply-To (or a second Subject) would be injected.
HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
}


def invoke(project: Path, *args: str, **env: str) -> Result:
    """The CLI in-process at the morning the feeds were written for, with the secrets it needs."""
    with time_machine.travel(NOW, tick=False):
        return CliRunner().invoke(
            cli, ["--config", str(project), *args], env={"DIGEST_SECRET": SECRET, **env}
        )


def hostile_project(make_project: MakeProject, transport: str = "outbox", extra: str = "") -> Path:
    project = make_project(text=CONFIG.replace("TRANSPORT", transport), extra=extra)
    root = project.parent
    (root / "feeds" / "hostile.xml").write_text(RSS, encoding="utf-8")
    (root / "feeds" / "hostile.json").write_text(json.dumps(JSON_FEED), encoding="utf-8")
    # newline="" keeps the CR LF inside the quoted names as they are.
    with (root / "subscribers" / "daily.csv").open("w", encoding="utf-8", newline="") as out:
        out.write(SUBSCRIBERS)
    return project


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """The top-level header fields as written on the wire (unfolded), checking every line break."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    # Any CR or LF not part of a CRLF would start a new header in some parser.
    assert b"\r" not in head.replace(b"\r\n", b"") and b"\n" not in head.replace(b"\r\n", b"")
    fields: list[tuple[str, str]] = []
    for line in head.decode("ascii").split("\r\n"):
        if line[:1] in (" ", "\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + line)
            continue
        name, colon, value = line.partition(":")
        assert colon and re.fullmatch(r"[!-9;-~]+", name), line
        fields.append((name, value))
    return fields


def assert_no_injected_header(raw: bytes, recipient: str) -> EmailMessage:
    """The message has digest's headers only, each on one line, and is addressed to ``recipient`` alone."""
    fields = header_fields(raw)
    names = [name.lower() for name, _ in fields]
    assert set(names) <= HEADERS, names
    assert len(names) == len(set(names)), names  # not a second Subject or To either
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects, message.defects
    for name in names:
        value = str(message[name])  # decoded: an encoded-word could hide a line break too
        assert "\r" not in value and "\n" not in value and "\u2028" not in value, (name, value)
    assert [a.addr_spec for a in message["To"].addresses] == [recipient]
    for part in message.walk():
        if part is not message:
            assert {k.lower() for k in part} <= {"content-type", "content-transfer-encoding", "mime-version"}
    # The hostile text is still there, on one line, where it belongs.
    assert "title@evil.example" in str(message["Subject"]) and "newsroom-injected" in str(message["Subject"])
    assert "list@evil.example" in str(message["List-Id"])
    return message


def test_a_desk_name_with_a_line_break_is_refused_by_the_config(make_project: MakeProject) -> None:
    project = make_project(text=CONFIG.replace("TRANSPORT", "outbox").replace(": Bcc", "\\r\\nBcc:"))
    result = invoke(project, "build")
    assert result.exit_code == 1
    assert "desks.order[1]: desk 'Opinion\\r\\nBcc: desk@evil.example <b>&</b>' contains the control " in (
        result.stderr
    )


def test_build_and_outbox_mail_carry_no_injected_header(make_project: MakeProject, tmp_path: Path) -> None:
    project = hostile_project(make_project)
    built = invoke(project, "build", "--out", str(tmp_path / "out"))
    assert built.exit_code == 0, built.output + built.stderr
    assert "title@evil.example" in built.output  # the hostile story is the top headline
    assert_no_injected_header((tmp_path / "out" / "daily.eml").read_bytes(), "subscriber@example.invalid")

    sent = invoke(project, "send", "--list", "daily")
    assert sent.exit_code == 0, sent.output + sent.stderr
    files = sorted((project.parent / "outbox").rglob("*.eml"))
    assert len(files) == 3
    # Each file is named after its recipient: reader@example.org.<hash>.eml
    recipients = [path.name.rsplit(".", 2)[0] for path in files]
    assert sorted(recipients) == ADDRESSES
    messages = [assert_no_injected_header(p.read_bytes(), r) for p, r in zip(files, recipients, strict=True)]
    names = {r: m["To"].addresses[0].display_name for r, m in zip(recipients, messages, strict=True)}
    assert names["reader@example.org"] == "Eve Bcc: name@evil.example Subject: name-injected"
    assert names["second@example.org"] == 'Mallory" <mallory@evil.example>, "x'


def test_over_smtp_each_message_goes_to_its_subscriber_only(make_project: MakeProject) -> None:
    with SmtpServer() as server:
        extra = (
            f'\n[transports.mail]\nbackend = "smtp"\nhost = "127.0.0.1"\nport = {server.port}\nretries = 0\n'
        )
        project = hostile_project(make_project, "mail", extra)
        result = invoke(project, "send", "--list", "daily")
        assert result.exit_code == 0, result.output + result.stderr
        messages = server.messages
        rcpts = [attempt.recipients for attempt in server.attempts if attempt.command == "RCPT"]
    assert sorted(r for (r,) in rcpts) == ADDRESSES  # one RCPT TO each, nobody from the hostile text
    assert len(messages) == 3
    for message in messages:
        assert message.mail_from == "digest@news.example.org"
        (recipient,) = message.rcpt_tos
        assert not EVIL.search(recipient)
        assert_no_injected_header(message.data, recipient)


def test_sendgrid_requests_keep_hostile_text_on_one_line(make_project: MakeProject) -> None:
    with SendGridSink() as sink:
        extra = f'\n[transports.sg]\nbackend = "sendgrid"\napi_url = "{sink.url}"\n'
        project = hostile_project(make_project, "sg", extra)
        result = invoke(project, "send", "--list", "daily", SENDGRID_API_KEY="SG.injection-test-key")
        assert result.exit_code == 0, result.output + result.stderr
        bodies = [request.json for request in sink.requests]
    assert bodies
    # SendGrid builds the headers from these fields: each must be one line.
    fields: list[str] = []
    for body in bodies:
        fields += [body["subject"], body["from"].get("name", ""), *body.get("headers", {}).values()]
        for item in body["personalizations"]:
            assert set(item) <= {"to", "substitutions", "custom_args", "headers"}, item  # no cc, bcc
            fields += [*item.get("headers", {}).values(), *item["substitutions"].values()]
            fields += [to.get("name", "") for to in item["to"]]
    assert any("title@evil.example" in value for value in fields)  # the hostile text did get here
    for value in fields:
        assert not re.search(r"[\r\n\x85\u2028\u2029]", value), value
    tos = sorted(to["email"] for body in bodies for item in body["personalizations"] for to in item["to"])
    assert tos == ADDRESSES


# -- scripts and event handlers ---------------------------------------------------------------

# Elements that run code, load other documents or change where links go.
ACTIVE = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math", "form", "base"}
URL_ATTRIBUTES = {
    "href",
    "src",
    "action",
    "formaction",
    "background",
    "poster",
    "data",
    "srcset",
    "xlink:href",
}
HARMLESS = ["Harmless words one.", "Harmless words two.", "Harmless words three.", "click here", "ok link"]


def assert_inert_html(source: str) -> str:
    """No way for this HTML to run anything, in the source and as a parser sees it; its visible text."""
    for marker in EXECUTABLE:
        assert marker not in source, marker  # gone with the markup that carried it, in any spelling
    lowered = source.lower()
    for needle in ("<script", "javascript:", "vbscript:", "data:text", "data:image", "expression("):
        assert needle not in lowered, needle
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", lowered), "an event handler attribute"
    document = lxml.html.document_fromstring(source)
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue  # comments (the template's Outlook conditionals)
        tag = element.tag.lower()
        assert tag not in ACTIVE, tag
        assert not (tag == "meta" and element.get("http-equiv", "").lower() == "refresh")
        for name, value in element.attrib.items():
            name = name.lower()
            squashed = re.sub(r"[\x00-\x20]", "", value).lower()
            assert not name.startswith("on") and name != "srcdoc", (tag, name, value)
            if name in URL_ATTRIBUTES:
                assert squashed.startswith(("https:", "http:", "mailto:", "#")), (tag, name, value)
    text = document.text_content()
    for words in HARMLESS:
        assert words in text, words
    # What the story says about a <script> tag is shown as text, escaped once, never made markup.
    assert "<script>alert(8)</script>" in text and "&lt;script&gt;alert(9)" in text
    assert "Council meets tonight" in text
    return text


def assert_inert_text(text: str, name: str = "") -> None:
    """No feed markup left in a plain-text part (``name``, the subscriber's own, is left out)."""
    for marker in EXECUTABLE:
        assert marker not in text, marker
    lowered = text.replace(name, "").lower() if name else text.lower()
    for needle in (
        "javascript:",
        "vbscript:",
        "data:",
        "onerror",
        "onload",
        "onclick",
        "<iframe",
        "expression(",
    ):
        assert needle not in lowered, needle
    for words in [*HARMLESS, "Council meets tonight"]:
        assert words in text, words
    # text/plain is never read as markup: it says what the HTML part shows, "<script>" included.
    assert "alert(8)" in text


def parts(message: EmailMessage) -> tuple[str, str]:
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    return html_part.get_content(), text_part.get_content()


def test_feed_markup_cannot_run_in_the_built_edition(make_project: MakeProject, tmp_path: Path) -> None:
    project = hostile_project(make_project)
    result = invoke(project, "build", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output + result.stderr
    assert_inert_html((tmp_path / "out" / "daily.html").read_text(encoding="utf-8"))
    assert_inert_text((tmp_path / "out" / "daily.txt").read_text(encoding="utf-8"))
    message = email.message_from_bytes((tmp_path / "out" / "daily.eml").read_bytes(), policy=policy.default)
    html, text = parts(message)  # type: ignore[arg-type]
    assert_inert_html(html)
    assert_inert_text(text)
    # The stories with script links were dropped, not linked.
    assert "Dropped" not in html and "Dropped" not in text


def test_feed_markup_and_names_cannot_run_in_sent_mail(make_project: MakeProject) -> None:
    project = hostile_project(make_project)
    result = invoke(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    files = sorted((project.parent / "outbox").rglob("*.eml"))
    assert len(files) == 3
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        html, text = parts(message)  # type: ignore[arg-type]
        visible = assert_inert_html(html)
        assert_inert_text(text, TRUDY)
        if "third@" in path.name:
            # The subscriber's own name is text in their greeting, in both parts.
            assert f"Hello, {TRUDY}," in visible and f"Hello, {TRUDY}," in text


def test_the_preview_shows_the_same_inert_email(make_project: MakeProject) -> None:
    project = hostile_project(make_project)
    app = make_app(project, now=lambda: NOW, hosts=None)
    try:
        client = Client(app)
        for query in ("", "?subscriber=third@example.org"):
            page = client.get(f"/email{query}")
            assert page.status_code == 200
            assert_inert_html(page.get_data(as_text=True))
            data = client.get(f"/api/preview{query}").get_json()
            assert data["error"] is None
            assert_inert_text(data["text"], TRUDY)
            for item in data["items"]:
                assert not any(marker in json.dumps(item) for marker in EXECUTABLE), item
    finally:
        app.close()
