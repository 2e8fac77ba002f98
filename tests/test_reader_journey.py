"""A reader's whole journey in Chromium, against a real `digest serve` and the real `digest send`.

Sign up on the page, confirm from the email in the outbox, get exactly the chosen desks,
change them from the link in that email, get the new variant the next day (a controlled
clock), unsubscribe on the page and get nothing more; the archive shows the edition.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import audit, auditable_page
from tests.conftest import NOW, MakeProject

pytest_plugins = ["tests.browser"]

SECRET = "journey-secret-0123456789abcdef"
READER = "olena.marchuk@example.net"
DAY_2 = NOW.replace(day=26)
DAY_3 = NOW.replace(day=27)
# Day two's stories, in a feed of its own that is empty on day one.
EMPTY_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Overnight</title><link>https://news.example.org/</link>
<description>Overnight wire</description>{items}</channel></rss>
"""
ITEM = """<item><title>{title}</title><link>https://news.example.org/{slug}</link>
<guid>https://news.example.org/{slug}</guid><pubDate>{date}</pubDate><category>{desk}</category>
<description>{title}: the short version, written for the journey test.</description></item>"""
DAY_2_STORIES = {
    "Ukraine": "Grain corridor reopens after a week of talks",
    "Business": "Hryvnia steadies as the central bank holds rates",
    "Culture": "A Lviv choir records its first album in a bomb shelter",
}


@pytest.fixture
def reader_page(chromium: Browser) -> Iterator[Page]:
    with auditable_page(chromium) as page:
        yield page


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(project: Path) -> dict[str, str]:
    return {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_CONFIG": str(project)}


def _send(project: Path, moment: object) -> str:
    """`digest send --list daily` in a process of its own whose clock stands at ``moment``."""
    script = (
        "import sys, time_machine\n"
        "from digest.cli import main\n"
        f"with time_machine.travel({moment!r}, tick=False):\n"
        "    sys.argv = ['digest', 'send', '--list', 'daily']\n"
        "    main()\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", f"import datetime\n{script}"],
        env=_env(project),
        cwd=project.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout + completed.stderr


@pytest.fixture
def served(make_project: MakeProject) -> Iterator[tuple[Path, str]]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    project = make_project(
        extra=f'\n[server]\nbase_url = "{base}"\n\n[[feeds]]\nsource = "feeds/overnight.xml"\ndesk = "Europe"\n'
    )
    (project.parent / "feeds" / "overnight.xml").write_text(EMPTY_FEED.format(items=""))
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--port", str(port)],
        env=_env(project),
        cwd=project.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("digest serve did not answer /healthz within 30 s")
        yield project, base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _outbox_messages(project: Path, folder_pattern: str) -> list[EmailMessage]:
    outbox = project.parent / "outbox"
    found = []
    for path in sorted(outbox.glob(f"{folder_pattern}/*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if READER in str(message["To"]):
            found.append(message)
    return found


def _wait_for(found: Callable[[], list[EmailMessage]]) -> list[EmailMessage]:
    """What ``found`` finds, once it finds something: the confirmation goes out after the answer."""
    deadline = time.monotonic() + 20
    while not (messages := found()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return messages


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _link(text: str, path: str) -> str:
    found = re.search(rf"https?://\S+/{path}/[A-Za-z0-9_.-]+", text)
    assert found, f"no /{path}/ link in:\n{text}"
    return found.group(0)


def _desk_headings(message: EmailMessage) -> set[str]:
    """The desks of the text part: a line underlined with "=" below it heads a desk's section,
    or the lead story ("Top story · <desk>"), which may be its desk's only one."""
    lines = _text(message).splitlines()
    underlined = {line for line, below in itertools.pairwise(lines) if below and below == "=" * len(line)}
    return {line.removeprefix("Top story · ") for line in underlined}


def _headlines(message: EmailMessage) -> list[str]:
    """The first words of each story's headline in the text part ("1. Headline …")."""
    return [m.group(1)[:30] for m in re.finditer(r"^\d+\. (.+)$", _text(message), re.MULTILINE)]


ALL_DESKS = ("Ukraine", "North America", "Business", "Europe", "Culture")


def test_sign_up_confirm_choose_desks_change_them_and_leave(
    served: tuple[Path, str], reader_page: Page
) -> None:
    project, base = served
    page = reader_page

    # 1. Sign up on the page, keeping two desks.
    page.goto(f"{base}/subscribe/daily")
    audit(page)
    page.get_by_label("Email").fill(READER)
    page.get_by_label("Name").fill("Olena")
    for desk in ALL_DESKS:
        page.get_by_label(desk, exact=True).set_checked(desk in ("Business", "Culture"))
    page.get_by_role("button").click()
    expect(page.locator("main")).to_contain_text("email")

    # 2. The confirmation email is in the outbox; 3. confirm from its link.
    (confirmation,) = _wait_for(lambda: _outbox_messages(project, "*"))
    confirm_url = _link(_text(confirmation), "confirm")
    page.goto(confirm_url)
    audit(page)
    page.get_by_role("button").click()
    expect(page.locator("main")).to_contain_text("Business")
    audit(page)

    # 4. The send includes the reader with exactly the chosen desks.
    _send(project, NOW)
    (first,) = _outbox_messages(project, "daily-2026-11-25")
    assert _desk_headings(first) == {"Business", "Culture"}

    # 5. The preference link of that email changes the desks.
    page.goto(_link(_text(first), "preferences"))
    audit(page)
    for desk in ALL_DESKS:
        page.get_by_label(desk, exact=True).set_checked(desk in ("Ukraine", "Business"))
    page.get_by_role("button", name=re.compile("save", re.I)).click()
    expect(page.locator("main")).to_contain_text("Ukraine")

    # 6. The next day's edition is the new variant.
    items = "".join(
        ITEM.format(
            title=title, slug=f"day-two-{desk.lower()}", date="Thu, 26 Nov 2026 03:00:00 +0000", desk=desk
        )
        for desk, title in DAY_2_STORIES.items()
    )
    (project.parent / "feeds" / "overnight.xml").write_text(EMPTY_FEED.format(items=items))
    _send(project, DAY_2)
    (second,) = _outbox_messages(project, "daily-2026-11-26")
    assert _desk_headings(second) == {"Ukraine", "Business"}
    assert DAY_2_STORIES["Ukraine"] in _text(second) and DAY_2_STORIES["Culture"] not in _text(second)

    # 7. Unsubscribe on the page: no more editions.
    page.goto(_link(_text(second), "preferences"))
    page.get_by_role("button", name=re.compile("unsubscribe", re.I)).click()
    if page.get_by_role("button", name=re.compile("unsubscribe", re.I)).count():
        page.get_by_role("button", name=re.compile("unsubscribe", re.I)).click()
    expect(page.locator("main")).to_contain_text("unsubscribed")
    audit(page)
    day_3 = DAY_2_STORIES | {"Business": "Exporters count the cost of a cold snap"}
    items = "".join(
        ITEM.format(
            title=title, slug=f"day-three-{desk.lower()}", date="Fri, 27 Nov 2026 03:00:00 +0000", desk=desk
        )
        for desk, title in day_3.items()
    )
    (project.parent / "feeds" / "overnight.xml").write_text(EMPTY_FEED.format(items=items))
    _send(project, DAY_3)
    assert _outbox_messages(project, "daily-2026-11-27") == []
    assert list((project.parent / "outbox").glob("daily-2026-11-27/*.eml")), (
        "the list's other reader still got it"
    )

    # 8. The archive page shows the first edition's headlines.
    page.goto(f"{base}/archive/daily/2026-11-25")
    archive_text = page.locator("body").inner_text()
    page.goto(f"{base}/archive/daily/")
    audit(page)
    expect(page.locator("main")).to_contain_text("2026")
    assert _headlines(first) and all(headline in archive_text for headline in _headlines(first))
    assert READER not in page.content() and "Olena" not in page.content()
