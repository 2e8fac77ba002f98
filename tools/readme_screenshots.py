"""The README's pictures of the default edition, light and dark (docs/images/edition-*.png).

Renders the shipped config.toml's brand (its accent, fonts and the example logos of
examples/brand/) on the test suite's example stories, serves solid-colour stand-ins for the
stories' pictures from 127.0.0.1 (the examples' image hosts do not exist), and photographs the
top of the email at 600 px in Debian's Chromium. The logos go in as data: URIs, as they would
come from `digest serve`.

    .venv/bin/python tools/readme_screenshots.py
"""

from __future__ import annotations

import base64
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.brand import brand_context  # noqa: E402
from digest.config import load_config  # noqa: E402
from tests.browser import ARGS, CHROMIUM  # noqa: E402
from tests.conftest import emailed_html, in_newsroom, write_project  # noqa: E402
from tests.test_email_browser import localize, picture_server  # noqa: E402

OUT = REPO / "docs" / "images"
BRAND_KEYS = ("accent_color", "font_stack", "logo_url", "logo_width", "logo_height", "logo_dark_url")


def shipped_brand() -> dict[str, object]:
    newsroom = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))["newsroom"]
    return {key: newsroom[key] for key in BRAND_KEYS if key in newsroom}


def branded_html() -> str:
    brand = shipped_brand()
    with tempfile.TemporaryDirectory() as folder:
        path = write_project(Path(folder), replace=in_newsroom(**brand))
        for key in ("logo_url", "logo_dark_url"):
            (path.parent / str(brand[key])).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / str(brand[key]), path.parent / str(brand[key]))
        config = load_config(path)
        html = emailed_html(config)
        logo = brand_context(config.settings)["logo"]
    for key, source in (("url", brand["logo_url"]), ("dark_url", brand["logo_dark_url"])):
        data = base64.b64encode((REPO / str(source)).read_bytes()).decode()
        html = html.replace(f'src="{logo[key]}"', f'src="data:image/png;base64,{data}"')
    return html


def main() -> None:
    html = branded_html()
    OUT.mkdir(parents=True, exist_ok=True)
    with picture_server() as base, sync_playwright() as playwright:
        html = localize(html, base)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        for scheme in ("light", "dark"):
            page = browser.new_page(viewport={"width": 600, "height": 1000}, color_scheme=scheme)  # type: ignore[arg-type]
            page.set_content(html, wait_until="load")
            page.screenshot(path=str(OUT / f"edition-{scheme}.png"))
            print(OUT / f"edition-{scheme}.png")
        browser.close()


if __name__ == "__main__":
    main()
