"""The example newsroom's logo (examples/brand/ledger.png and ledger-dark.png), drawn once.

A wordmark in the shipped config.toml's accent colour and serif, photographed by Debian's
Chromium on a transparent background at twice its size in the email (sharp on high-density
screens): dark type for light mode, light type for dark mode. The PNGs are committed; run this
again only to change the design.

    .venv/bin/python tools/demo_logo.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser import ARGS, CHROMIUM  # noqa: E402

OUT = REPO / "examples" / "brand"
WIDTH, HEIGHT = 200, 40  # logo_width and logo_height in config.toml
ACCENT = "#b3261e"
INK = {"ledger.png": "#1f1f1f", "ledger-dark.png": "#e8e8e8"}

PAGE = """<!doctype html><html><body style="margin:0;background:transparent">
<div id="logo" style="width:{w}px;height:{h}px;display:flex;align-items:center;gap:8px;
  font:700 18px/1 'Liberation Serif','DejaVu Serif',serif;color:{ink};letter-spacing:.2px">
<span style="width:28px;height:28px;border-radius:5px;background:{accent};color:#fff;display:flex;
  align-items:center;justify-content:center;font-size:21px">L</span>
<span style="white-space:nowrap">The Morning Ledger</span></div></body></html>"""


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=2)
        for name, ink in INK.items():
            page.set_content(PAGE.format(w=WIDTH, h=HEIGHT, ink=ink, accent=ACCENT))
            page.locator("#logo").screenshot(path=str(OUT / name), omit_background=True)
            print(OUT / name)
        browser.close()


if __name__ == "__main__":
    main()
