"""The branded edition in Chromium, as a reader's client would draw it, at a phone's, the
email's and a laptop pane's width, in light and dark mode: axe-core finds no serious or
critical violation, nothing scrolls sideways, and every picture keeps its shape.

The pictures are real PNGs served from 127.0.0.1, each of a size of its own, so a picture
stretched by a width or height the template forced would show. Screenshots go to
tests/artifacts/email/ (git-ignored).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from playwright.sync_api import Browser, Page

from digest.brand import MIN_CONTRAST, contrast
from digest.config import Config, load_config
from tests.browser import audit, save_screenshot
from tests.conftest import BASE_CONFIG, BRAND, NOW, emailed_html, write_project
from tests.localhttp import LocalHTTPServer

pytest_plugins = ["tests.browser"]

WIDTHS = (375, 600, 800)
SCHEMES = ("light", "dark")
# Natural sizes the pictures are served at, in turn: landscape, portrait, square, a logo.
SIZES = ((1200, 675), (600, 800), (500, 500), (360, 80))
_SRC = re.compile(r'src="(https?://[^"]+)"')


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG of that size."""
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


# /pic/WIDTHxHEIGHT.png: a picture of exactly that size, for feeds that name their pictures' sizes.
_SIZED = re.compile(r"^/pic/([0-9]{1,4})x([0-9]{1,4})\.png$")


class _Pictures(BaseHTTPRequestHandler):
    images: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.images.get(self.path)
        if body is None and (sized := _SIZED.match(self.path)):
            width, height = int(sized.group(1)), int(sized.group(2))
            body = self.images[self.path] = png(width, height, (60, 110, 150))
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def picture_server() -> Iterator[str]:
    """A server of PNGs on 127.0.0.1, for as long as the block runs; its base URL. It serves
    /0.png… in the SIZES, and /pic/WIDTHxHEIGHT.png at any size."""
    _Pictures.images = {
        f"/{n}.png": png(w, h, (40 + 50 * n, 90, 160 - 30 * n)) for n, (w, h) in enumerate(SIZES)
    }
    with LocalHTTPServer(_Pictures) as server:
        yield f"http://127.0.0.1:{server.port}"


def localize(html: str, base: str) -> str:
    """``html`` with each picture's URL moved to the picture server at ``base``."""
    # In order of appearance, so the lead gets the landscape picture; logos get the logo's shape.
    # Pictures already on the server (a test's own feed) stay.
    sources = [source for source in dict.fromkeys(_SRC.findall(html)) if not source.startswith(base)]
    stories = [source for source in sources if "/brand/" not in source]
    for source in sources:
        n = stories.index(source) % (len(SIZES) - 1) if source in stories else len(SIZES) - 1
        html = html.replace(f'src="{source}"', f'src="{base}/{n}.png"')
    return html


@pytest.fixture(scope="module")
def pictures() -> Iterator[str]:
    with picture_server() as base:
        yield base


def emailed_with_local_pictures(config: Config, base: str) -> str:
    """The branded edition as a reader gets it, its pictures on the local server."""
    html = emailed_html(config)
    assert len(set(_SRC.findall(html))) >= 4, "the edition should carry a logo and several pictures"
    return localize(html, base)


@contextmanager
def email_page(chromium: Browser, html: str, width: int, scheme: str = "light") -> Iterator[Page]:
    """``html`` in a fresh page ``width`` px wide in ``scheme`` (axe-core let in), its pictures loaded."""
    context = chromium.new_context(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
        bypass_csp=True,
    )
    try:
        page = context.new_page()
        page.set_content(html, wait_until="load")
        yield page
    finally:
        context.close()


# Every picture on show, with the size it is drawn at (fractional) and its own.
_SHOWN = """[...document.images].filter(i => i.getClientRects().length && i.width).map(i => {
    const r = i.getBoundingClientRect();
    return {src: i.src, w: r.width, h: r.height, left: r.left, right: r.right,
            nw: i.naturalWidth, nh: i.naturalHeight};
})"""


def shown_pictures(page: Page, width: int) -> list[dict[str, Any]]:
    """The pictures on show; each loaded, in its own shape, and never wider than the window
    nor than the picture itself (a small picture is not stretched)."""
    shown: list[dict[str, Any]] = page.evaluate(_SHOWN)
    for image in shown:
        assert image["nw"] > 0, f"{image['src']} did not load"
        drawn, natural = image["w"] / image["h"], image["nw"] / image["nh"]
        assert drawn == pytest.approx(natural, rel=0.03), f"{image} is stretched at {width}px"
        assert image["w"] <= width, f"{image} is wider than the {width}px window"
        assert image["w"] <= image["nw"] + 0.5, f"{image} is drawn wider than it is at {width}px"
    return shown


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
def test_the_edition_reads_well_at_every_width_light_and_dark(
    chromium: Browser, branded_config: Config, pictures: str, width: int, scheme: str
) -> None:
    html = emailed_with_local_pictures(branded_config, pictures)
    with email_page(chromium, html, width, scheme) as page:
        assert len(shown_pictures(page, width)) >= 4
        save_screenshot(page, f"email/{width}-{scheme}.png", full_page=True)
        # Dark mode really applies where the client reads prefers-color-scheme.
        background = page.evaluate("getComputedStyle(document.querySelector('.dm')).backgroundColor")
        assert (background == "rgb(18, 18, 18)") == (scheme == "dark"), background
        assert_logo_on_the_text_edge(page)
        audit(page)  # also: nothing scrolls sideways


# The logo on show (the dark one in dark mode), its plate, and where the lead's headline text
# starts and ends (a Range: the glyphs' own extent, not the block's).
_MASTHEAD = """() => {
    const logo = [...document.querySelectorAll('h1 img')].find(i => i.getClientRects().length);
    const plate = document.querySelector('.plate');
    const headline = document.querySelector('h2.lead');
    const text = document.createRange();
    text.selectNodeContents(headline);
    const style = getComputedStyle(plate);
    return {logo: logo.getBoundingClientRect().toJSON(), dark: logo.closest('a').className === 'logo-dark',
            text: text.getBoundingClientRect().toJSON(), block: headline.getBoundingClientRect().toJSON(),
            plate: style.backgroundColor, plateImage: style.backgroundImage,
            rtl: getComputedStyle(headline).direction === 'rtl'};
}"""


def assert_logo_on_the_text_edge(page: Page) -> None:
    """The logo's start edge (left; right in a right-to-left email) is the headline text's, ±1px,
    though the logo sits on its light plate (which hangs into the gutter instead)."""
    masthead = page.evaluate(_MASTHEAD)
    side = "right" if masthead["rtl"] else "left"
    logo, text, block = masthead["logo"], masthead["text"], masthead["block"]
    assert abs(text[side] - block[side]) <= 1, f"the headline's text does not start at its edge: {masthead}"
    assert abs(logo[side] - text[side]) <= 1, f"the logo's {side} edge is off the text's: {masthead}"
    if not masthead["dark"]:
        # The plate stays light under a client's forced inversion: a colour and a one-colour gradient.
        assert masthead["plate"] == "rgb(255, 255, 255)", masthead
        assert masthead["plateImage"].startswith("linear-gradient"), masthead
    else:  # the dark logo needs no plate
        assert masthead["plate"] == "rgba(0, 0, 0, 0)", masthead


@dataclass(frozen=True)
class Story:
    """A story of a test's own feed. ``picture``: the size the picture server gives it, which the
    feed states unless ``sized`` is false."""

    desk: str
    title: str
    summary: str
    picture: tuple[int, int] | None = None
    sized: bool = True
    credit: str = ""
    alt: str = ""
    author: str = "Mariana Koval"


def _json_item(n: int, story: Story, base: str) -> dict[str, Any]:
    # Newest first, so the first story leads; each updated 20 minutes after it was published.
    published = NOW - dt.timedelta(minutes=40 * (n + 1))
    item: dict[str, Any] = {
        "id": f"https://news.example.org/stories/{n}",
        "url": f"https://news.example.org/stories/{n}",
        "title": story.title,
        "content_html": f"<p>{story.summary}</p>",
        "date_published": published.isoformat(),
        "date_modified": (published + dt.timedelta(minutes=20)).isoformat(),
        "authors": [{"name": story.author}],
        "tags": [story.desk],
        "_digest": {"read_time": 3},
    }
    if story.picture:
        width, height = story.picture
        item["image"] = f"{base}/pic/{width}x{height}.png"
        item["_digest"].update(image_alt=story.alt or story.title, image_credit=story.credit)
        if story.sized:
            item["_digest"].update(image_width=width, image_height=height)
    return item


def feed_project(root: Path, base: str, desks: list[str], stories: list[Story], **newsroom: object) -> Config:
    """A newsroom in BRAND (and ``newsroom``'s keys) whose one feed, a JSON Feed, has ``stories``,
    their pictures on the picture server at ``base``."""
    keys = {**BRAND, **newsroom}
    # The base config's [newsroom], less the keys given here.
    head = [
        line
        for line in BASE_CONFIG[: BASE_CONFIG.index("[desks]")].splitlines()
        if line.split(" = ")[0] not in keys
    ]
    lines = "".join(f"{key} = {json.dumps(value, ensure_ascii=False)}\n" for key, value in keys.items())
    desks_and_feed = (
        f"[desks]\norder = {json.dumps(desks, ensure_ascii=False)}\n\n"
        f'[[feeds]]\nsource = "feeds/stories.json"\ndesk = {json.dumps(desks[0], ensure_ascii=False)}\n\n'
    )
    text = (
        "\n".join(head).rstrip()
        + f"\n{lines}\n{desks_and_feed}{BASE_CONFIG[BASE_CONFIG.index('[[lists]]') :]}"
    )
    path = write_project(root, text=text)
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Stories",
        "items": [_json_item(n, story, base) for n, story in enumerate(stories)],
    }
    (root / "feeds" / "stories.json").write_text(json.dumps(feed, ensure_ascii=False), encoding="utf-8")
    return load_config(path)


# The lead's picture is narrower than the lead's 552px slot, one thumbnail than its 120px
# slot, another than a phone's full-width thumbnail; one picture's size the feed does not say.
SMALL_LEAD = (400, 300)
PICTURES = [
    Story(
        "Europe",
        "Ferry service to the islands resumes after the storm",
        "Crews cleared the harbour overnight and the first boat left at dawn.",
        SMALL_LEAD,
        credit="Photo: Olena Shevchuk / The Morning Ledger",
    ),
    Story(
        "Europe",
        "Tram line extension opens two months early",
        "The new stops serve three districts that had no rail link.",
        (90, 60),
        credit="Photo: Reuters",
    ),
    Story(
        "Europe",
        "City council approves a winter shelter budget",
        "The shelters open on 1 December and stay open until March.",
        (300, 200),
        credit="Photo: Taras Lytvyn for The Morning Ledger",
    ),
    Story(
        "Business",
        "Bakery chain doubles its night deliveries",
        "Orders from hospitals and stations drove the change.",
        (1200, 675),
    ),
    Story(
        "Business",
        "Port traffic rises for a third month",
        "Grain and steel led the increase.",
        (640, 480),
        sized=False,
    ),
]
CREDITED = [story for story in PICTURES if story.credit]


@pytest.fixture(scope="module")
def pictures_html(tmp_path_factory: pytest.TempPathFactory, pictures: str) -> str:
    config = feed_project(tmp_path_factory.mktemp("pictures"), pictures, ["Europe", "Business"], PICTURES)
    return localize(emailed_html(config), pictures)  # the logo's too


@pytest.mark.parametrize("width", WIDTHS)
def test_no_picture_is_drawn_wider_than_it_is(chromium: Browser, pictures_html: str, width: int) -> None:
    with email_page(chromium, pictures_html, width) as page:
        shown = shown_pictures(page, width)  # each at most its natural width
        assert {(image["nw"], image["nh"]) for image in shown} >= {story.picture for story in PICTURES}
        column = min(width, 600) - 48
        lead = next(image for image in shown if image["src"].endswith("/pic/400x300.png"))
        assert lead["w"] == pytest.approx(min(SMALL_LEAD[0], column), abs=0.5), lead
        # At the start of the line, like the headline under it.
        headline = page.evaluate("document.querySelector('h2.lead').getBoundingClientRect().left")
        assert lead["left"] == pytest.approx(headline, abs=1), lead
        small = next(image for image in shown if image["src"].endswith("/pic/90x60.png"))
        assert small["w"] == pytest.approx(90, abs=0.5), f"{small}: even a phone's full-width thumbnail"
        audit(page)


# Each credit: its text, size, colours, box, and the box of the picture just before it.
_CREDITS = """() => [...document.querySelectorAll('.credit')].map(credit => {
    const picture = credit.previousElementSibling.querySelector('img');
    const style = getComputedStyle(credit);
    let ground = credit, background = 'rgba(0, 0, 0, 0)';
    while (ground && background === 'rgba(0, 0, 0, 0)') {
        background = getComputedStyle(ground).backgroundColor;
        ground = ground.parentElement;
    }
    const inside = credit.closest('td.thumb') || credit.parentElement;
    return {text: credit.textContent, size: parseFloat(style.fontSize), color: style.color, background,
            visible: style.visibility === 'visible' && style.display !== 'none' && style.opacity === '1',
            box: credit.getBoundingClientRect().toJSON(), picture: picture.getBoundingClientRect().toJSON(),
            cell: inside.getBoundingClientRect().toJSON(),
            clipped: credit.scrollWidth > credit.clientWidth || credit.scrollHeight > credit.clientHeight,
            body: parseFloat(getComputedStyle(document.querySelector('h2.lead').parentElement).fontSize)};
})"""


def _hex(css_colour: str) -> str:
    """``rgb(92, 92, 92)`` → ``#5c5c5c``."""
    red, green, blue = (round(float(part)) for part in re.findall(r"[0-9.]+", css_colour)[:3])
    return f"#{red:02x}{green:02x}{blue:02x}"


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", [375, 800])
def test_a_photo_credit_sits_under_its_picture_small_and_readable(
    chromium: Browser, pictures_html: str, width: int, scheme: str
) -> None:
    with email_page(chromium, pictures_html, width, scheme) as page:
        credits = page.evaluate(_CREDITS)
        assert [credit["text"] for credit in credits] == [story.credit for story in CREDITED]
        for credit in credits:
            box, picture, cell = credit["box"], credit["picture"], credit["cell"]
            assert credit["visible"] and box["width"] > 0 and box["height"] > 0, credit
            assert credit["size"] <= 12 < credit["body"], f"not in small type: {credit}"
            assert not credit["clipped"], credit
            assert box["left"] >= 0 and box["right"] <= width, f"off the window: {credit}"
            assert cell["left"] - 0.5 <= box["left"] and box["right"] <= cell["right"] + 0.5, credit
            # Its picture's: right under it, from the same edge.
            assert 0 <= box["top"] - picture["bottom"] <= 12, f"not under its picture: {credit}"
            assert box["left"] == pytest.approx(picture["left"], abs=1), credit
            ratio = contrast(_hex(credit["color"]), _hex(credit["background"]))
            assert ratio >= MIN_CONTRAST, f"{credit['text']!r} reads at {ratio:.2f}:1 in {scheme}"
        audit(page)  # axe-core's contrast check, among others
