"""The branded edition in Chromium, as a reader's client would draw it, at a phone's, the
email's and a laptop pane's width, in light and dark mode: axe-core finds no serious or
critical violation, nothing scrolls sideways, and every picture keeps its shape.

The pictures are real PNGs served from 127.0.0.1, each of a size of its own, so a picture
stretched by a width or height the template forced would show. Screenshots go to
tests/artifacts/email/ (git-ignored).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest
from playwright.sync_api import Browser

from digest.config import Config
from tests.browser import audit, save_screenshot
from tests.conftest import emailed_html
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


class _Pictures(BaseHTTPRequestHandler):
    images: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.images.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def picture_server() -> Iterator[str]:
    """A server of PNGs of the SIZES on 127.0.0.1, for as long as the block runs; its base URL."""
    _Pictures.images = {
        f"/{n}.png": png(w, h, (40 + 50 * n, 90, 160 - 30 * n)) for n, (w, h) in enumerate(SIZES)
    }
    with LocalHTTPServer(_Pictures) as server:
        yield f"http://127.0.0.1:{server.port}"


def localize(html: str, base: str) -> str:
    """``html`` with each picture's URL moved to the picture server at ``base``."""
    # In order of appearance, so the lead gets the landscape picture; logos get the logo's shape.
    sources = list(dict.fromkeys(_SRC.findall(html)))
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


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
def test_the_edition_reads_well_at_every_width_light_and_dark(
    chromium: Browser, branded_config: Config, pictures: str, width: int, scheme: str
) -> None:
    html = emailed_with_local_pictures(branded_config, pictures)
    context = chromium.new_context(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
        bypass_csp=True,
    )
    try:
        page = context.new_page()
        page.set_content(html, wait_until="load")
        shown = page.evaluate(
            """[...document.images].filter(i => i.getClientRects().length && i.width)
               .map(i => ({src: i.src, w: i.width, h: i.height, nw: i.naturalWidth, nh: i.naturalHeight}))"""
        )
        assert len(shown) >= 4
        for image in shown:
            assert image["nw"] > 0, f"{image['src']} did not load"
            drawn, natural = image["w"] / image["h"], image["nw"] / image["nh"]
            assert drawn == pytest.approx(natural, rel=0.03), f"{image} is stretched at {width}px"
            assert image["w"] <= width, f"{image} is wider than the {width}px window"
        save_screenshot(page, f"email/{width}-{scheme}.png", full_page=True)
        # Dark mode really applies where the client reads prefers-color-scheme.
        background = page.evaluate("getComputedStyle(document.querySelector('.dm')).backgroundColor")
        assert (background == "rgb(18, 18, 18)") == (scheme == "dark"), background
        audit(page)  # also: nothing scrolls sideways
    finally:
        context.close()
