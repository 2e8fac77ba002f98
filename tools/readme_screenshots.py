"""The README's pictures of the default edition, light and dark (docs/images/edition-*.png).

Renders the test suite's branded example (tests/conftest.py's BRAND on its example stories),
serves solid-colour stand-ins for the pictures from 127.0.0.1 (the examples' image hosts do
not exist), and photographs the top of the email at 600 px in Debian's Chromium.

    .venv/bin/python tools/readme_screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.config import load_config  # noqa: E402
from tests.browser import ARGS, CHROMIUM  # noqa: E402
from tests.conftest import BRAND, emailed_html, in_newsroom, write_project  # noqa: E402
from tests.test_email_browser import localize, picture_server  # noqa: E402

OUT = REPO / "docs" / "images"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        html = emailed_html(load_config(write_project(Path(folder), replace=in_newsroom(**BRAND))))
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
