"""A real browser for the preview's tests: Playwright driving Debian's Chromium.

    pytest_plugins = ["tests.browser"]  # the fixtures chromium (session), browser_page, screenshot

    def test_something(browser_page, screenshot):
        browser_page.goto(url)
        ...
        screenshot(browser_page, "something.png")  # saved as tests/artifacts/something.png

    with auditable_page(chromium, color_scheme="dark") as page:  # phone-sized, lets axe-core in
        page.goto(url)
        audit(page)  # WCAG 2 A/AA: no serious or critical violation, no sideways scrolling

Playwright's own browser downloads are not used (``playwright install`` cannot run here): the
browser is /usr/bin/chromium, which ``make test`` installs. Without it the fixtures fail
rather than skip: a browser test that passes without a browser proves nothing.

Each test gets a fresh context (no shared cookies or cache) and a page that records uncaught
JavaScript errors; a test whose page threw one fails at teardown with the messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """One Chromium for the whole session (starting it costs about a second)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium with apt-get) "
            "before the browser tests",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Browser) -> Iterator[Page]:
    """A page in a fresh browser context, 1400 × 1000; fails the test if its JavaScript threw."""
    context = chromium.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    if errors:
        pytest.fail("the page threw:\n" + "\n".join(errors), pytrace=False)


def save_screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot to tests/artifacts/<name> (git-ignored) and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    """``screenshot(page, "name.png", full_page=False)`` saves to tests/artifacts/ (git-ignored)."""
    return save_screenshot


@contextmanager
def auditable_page(browser: Browser, *, color_scheme: Literal["light", "dark"] = "light") -> Iterator[Page]:
    """A phone-sized page in a fresh context that lets axe-core in (our pages' CSP allows no
    script at all), seen in ``color_scheme``."""
    context = browser.new_context(viewport=PHONE, bypass_csp=True, color_scheme=color_scheme)  # type: ignore[arg-type]
    try:
        yield context.new_page()
    finally:
        context.close()


def audit(page: Page) -> None:
    """axe-core's WCAG 2 A/AA audit of the page: no serious or critical violation, nothing to
    scroll sideways on a phone."""
    assert AXE.exists(), "axe-core is missing: run `make test` (npm ci installs it)"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length})))"
    )
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{page.url}: {serious}"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.url
