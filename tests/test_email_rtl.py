"""A right-to-left edition: an Arabic newsroom (`lang = "ar"`, `dir` left at "auto") with stories
in Arabic, in Chromium at a phone's, the email's and a laptop pane's width, light and dark.

The text must really run from the right (computed direction rtl, not just right-aligned), the
thumbnails sit on the start side (the right) beside their text and above it on a phone, the logo
line up with the text's right edge, and the contents line, the meta lines with "Updated HH:MM"
and the photo credits show. The pictures come from the picture server of test_email_browser.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from digest.config import Config
from digest.edition import build_edition
from digest.render import render_edition
from tests.browser import audit, save_screenshot
from tests.conftest import NOW, emailed_html
from tests.test_email_browser import (
    SCHEMES,
    WIDTHS,
    Story,
    assert_logo_on_the_text_edge,
    email_page,
    feed_project,
    localize,
    picture_server,
    shown_pictures,
)

pytest_plugins = ["tests.browser"]

CITY, ECONOMY = "أخبار المدينة", "اقتصاد"
AUTHOR = "سارة منصور"
# Short example stories written for this test; each summary ends with a full stop, which a
# right-to-left paragraph puts at the left end of its last line.
STORIES = [
    Story(
        CITY,
        "افتتاح جسر جديد فوق النهر بعد ثلاث سنوات من العمل",
        "قال رئيس البلدية إن الجسر سيختصر الطريق إلى وسط المدينة بنحو عشرين دقيقة، "
        "وإن الحافلات ستعبره ابتداءً من الأسبوع المقبل.",
        (1200, 675),
        credit="تصوير ليلى حداد",
        alt="الجسر الجديد فوق النهر عند الغروب",
        author=AUTHOR,
    ),
    Story(
        CITY,
        "المكتبة العامة تمدد ساعات عملها في فصل الشتاء",
        "ستبقى أبواب المكتبة مفتوحة حتى العاشرة مساءً طوال أيام الأسبوع، مع قاعة جديدة للدراسة.",
        (500, 500),
        credit="تصوير عمر الخطيب",
        alt="قاعة القراءة في المكتبة العامة",
        author=AUTHOR,
    ),
    Story(
        ECONOMY,
        "أسعار الخضار تنخفض في الأسواق مع وصول المحصول الجديد",
        "قال التجار إن سعر الطماطم انخفض إلى النصف خلال أسبوع واحد.",
        (600, 800),
        alt="صناديق الطماطم في سوق الخضار",
        author=AUTHOR,
    ),
    Story(
        ECONOMY,
        "مصرف محلي يطلق قروضاً صغيرة للمشاريع الزراعية",
        "تستهدف القروض المزارعين الشباب، ويمكن تقديم الطلبات عبر الإنترنت ابتداءً من يوم الأحد.",
        author=AUTHOR,
    ),
]
CREDITS = [story.credit for story in STORIES if story.credit]


def arabic_newsroom(root: Path, base: str) -> Config:
    return feed_project(root, base, [CITY, ECONOMY], STORIES, lang="ar", name="صحيفة الصباح")


@pytest.fixture(scope="module")
def arabic_html(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with picture_server() as base:
        yield localize(emailed_html(arabic_newsroom(tmp_path_factory.mktemp("arabic"), base)), base)


# For each block of text: its direction, its box, its container's inner right edge, the extent
# of its glyphs, and where its last two characters are drawn.
_TEXT = """() => {
    const blocks = {
        headline: document.querySelector('h2.lead'),
        summary: document.querySelector('h2.lead ~ p:not(.m)'),
        story: document.querySelector('.story h3'),
        storySummary: document.querySelector('.story h3 ~ p:not(.m)'),
        contents: document.querySelector('.contents'),
        meta: document.querySelector('h2.lead ~ p.m'),
        credit: document.querySelector('.story .credit'),
    };
    const charBox = (node, offset) => {
        const range = document.createRange();
        range.setStart(node, offset);
        range.setEnd(node, offset + 1);
        return range.getBoundingClientRect().toJSON();
    };
    return Object.fromEntries(Object.entries(blocks).map(([name, block]) => {
        const glyphs = document.createRange();
        glyphs.selectNodeContents(block);
        const container = block.parentElement;
        const inner = container.getBoundingClientRect().right - parseFloat(getComputedStyle(container).paddingRight);
        const last = [...block.childNodes].filter(n => n.nodeType === Node.TEXT_NODE && n.data.trim()).pop();
        const end = last ? last.data.trimEnd().length - 1 : -1;
        return [name, {
            text: block.textContent, direction: getComputedStyle(block).direction,
            visible: block.getClientRects().length > 0 && getComputedStyle(block).visibility === 'visible',
            box: block.getBoundingClientRect().toJSON(), inner, glyphs: glyphs.getBoundingClientRect().toJSON(),
            lastChar: end > 0 ? charBox(last, end) : null, beforeLast: end > 0 ? charBox(last, end - 1) : null,
        }];
    }));
}"""


def assert_text_runs_right_to_left(page: Page) -> None:
    blocks: dict[str, dict[str, Any]] = page.evaluate(_TEXT)
    for name, block in blocks.items():
        assert block["visible"], f"{name} does not show: {block}"
        assert block["direction"] == "rtl", f"{name} runs {block['direction']}: {block}"
        # The text starts at the right edge of its block, and the block fills its container.
        assert block["glyphs"]["right"] == pytest.approx(block["box"]["right"], abs=1), f"{name}: {block}"
        assert block["box"]["right"] == pytest.approx(block["inner"], abs=1), f"{name}: {block}"
    for name in ("summary", "storySummary"):
        block = blocks[name]
        assert block["text"].endswith("."), block["text"]
        # Right-aligned left-to-right text would put the full stop right of the last word.
        assert block["lastChar"]["right"] <= block["beforeLast"]["left"] + 0.5, f"{name}'s full stop: {block}"
    assert re.search(r"Updated \d\d:\d\d", blocks["meta"]["text"]), blocks["meta"]["text"]
    assert AUTHOR in blocks["meta"]["text"]


# The first story with a thumbnail: its table, thumbnail cell, picture and text cell.
_STORY = """() => {
    const table = document.querySelector('.story');
    const [thumb, text] = table.querySelectorAll('td');
    const box = element => element.getBoundingClientRect().toJSON();
    return {table: box(table), thumb: box(thumb), picture: box(thumb.querySelector('img')), text: box(text),
            headline: box(text.querySelector('h3'))};
}"""


def assert_thumbnails_on_the_start_side(page: Page, width: int) -> None:
    story = page.evaluate(_STORY)
    table, picture, text = story["table"], story["picture"], story["text"]
    assert picture["right"] == pytest.approx(table["right"], abs=1), f"not on the right: {story}"
    if width >= 600:  # beside the text, right of it
        assert story["thumb"]["left"] >= text["right"] - 1, f"not beside the text: {story}"
        assert picture["top"] == pytest.approx(story["headline"]["top"], abs=4), story
    else:  # above the text, as wide as the column
        assert picture["bottom"] <= story["headline"]["top"], f"not above the text: {story}"
        assert picture["left"] == pytest.approx(table["left"], abs=1), story


# The contents line's links, and what each one's target says.
_CONTENTS = """[...document.querySelectorAll('.contents a')].map(a => {
    const target = document.getElementById(a.getAttribute('href').slice(1));
    return {link: a.textContent, target: target && target.textContent};
})"""


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
def test_an_arabic_edition_reads_right_to_left(
    chromium: Browser, arabic_html: str, width: int, scheme: str
) -> None:
    with email_page(chromium, arabic_html, width, scheme) as page:
        save_screenshot(page, f"email/rtl-{width}-{scheme}.png", full_page=True)
        root = page.evaluate(
            "[document.documentElement, document.querySelector('.dm')].map(e => [e.dir, e.lang])"
        )
        assert root == [["rtl", "ar"], ["rtl", "ar"]]
        assert_text_runs_right_to_left(page)
        assert_thumbnails_on_the_start_side(page, width)
        assert_logo_on_the_text_edge(page)  # its right edge: the text's
        contents = page.evaluate(_CONTENTS)
        assert [entry["target"] for entry in contents] == [CITY, ECONOMY], contents
        # The lead is left out of its desk's count.
        assert [entry["link"] for entry in contents] == [f"{CITY} 1", f"{ECONOMY} 2"], contents
        credits = page.evaluate(
            "[...document.querySelectorAll('.credit')].map(c => [c.textContent, c.offsetHeight])"
        )
        assert [credit for credit, height in credits if height > 0] == CREDITS
        shown_pictures(page, width)
        audit(page)  # no serious or critical violation; nothing scrolls sideways


def test_desks_named_in_arabic_get_an_anchor_each(tmp_path: Path) -> None:
    html = emailed_html(arabic_newsroom(tmp_path, "https://images.example.org"))
    ids = re.findall(r'<h2 id="([^"]+)"', html)
    assert ids == ["desk", "desk-2"]  # ASCII, whatever the script: every mail program finds them
    assert re.findall(r'<a href="#([^"]+)"', html) == ids


def test_the_text_part_of_an_arabic_edition_keeps_its_words(tmp_path: Path) -> None:
    config = arabic_newsroom(tmp_path, "https://images.example.org")
    text = render_edition(config, build_edition(config, "daily", now=NOW)).text
    lead = STORIES[0]
    assert f"\n\n{lead.title}\nhttps://news.example.org/stories/0\n" in text
    assert f"Photo: {lead.credit}\n" in text
    words = text.split()
    for story in STORIES:
        assert story.title in text
        # Wrapped at 72 columns between words: every word is there, whole.
        assert all(word in words for word in story.summary.split()), story.summary
    assert f"\n{ECONOMY}\n{'=' * len(ECONOMY)}\n" in text
    assert not re.search("[\u200e\u200f\u202a-\u202e\u2066-\u2069<>]", text), "no bidi controls or markup"
