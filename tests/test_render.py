"""Rendering: lean responsive HTML under Gmail's clip, a readable text part, overridable templates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from digest.config import Config, load_config, slugify
from digest.edition import assemble, build_edition
from digest.errors import TemplateError
from digest.ingest.items import DeskRules, build_items
from digest.ingest.parse import RawEntry, RawImage
from digest.model import Edition, FeedResult, Window
from digest.render import SUBJECT_LIMIT, environment, render_edition, templates
from digest.render.context import PLACEHOLDERS, _anchors
from digest.render.mjml_check import check_mjml_template
from digest.render.templates import HTML_TEMPLATE, default_template_dir, make_environment, wrap72
from tests.conftest import NOW, MakeProject

GMAIL_CLIP = 102_000
WORDS = (
    "Officials said the agreement would be reviewed again in spring after regional councils submitted "
    "their own estimates of the costs involved and the number of households that stand to benefit"
).split()


def big_edition(config: Config, per_desk: int = 8):
    """Forty long stories with images: the heaviest edition the defaults allow."""
    entries = []
    for desk in config.settings.desks.order:
        for n in range(per_desk):
            summary = " ".join(WORDS[(n + i) % len(WORDS)] for i in range(58))
            entries.append(
                RawEntry(
                    guid=f"{desk}-{n}",
                    link=f"https://news.example.org/{desk.lower().replace(' ', '-')}/2026/11/25/"
                    f"a-rather-long-story-slug-that-goes-on-for-a-while-{n}?utm_source=digest&utm_medium=email",
                    title=f"{desk}: a headline of typical length about the day's events, part {n}",
                    summary=f"<p>{summary} <a href='https://news.example.org/more'>more</a></p>",
                    author="Mariana Koval",
                    categories=[desk],
                    published=NOW - dt.timedelta(minutes=10 * n + 1),
                    images=[RawImage(f"https://images.example.org/2026/11/{desk[:3]}-{n}.jpg", "A photo")],
                    read_time=4,
                )
            )
    items, warnings = build_items(
        entries,
        feed="synthetic",
        default_desk="Europe",
        rules=DeskRules(config.settings.desks.order, {}),
        base_url=None,
        now=NOW,
    )
    assert not warnings
    feed = FeedResult("synthetic", "ok", tuple(items))
    window = Window(NOW - dt.timedelta(hours=24), NOW)
    return assemble(config, config.mailing_list("daily"), [feed], window, date=NOW.date())


def test_forty_stories_five_desks_stay_under_gmails_clip(config: Config) -> None:
    edition = big_edition(config)
    assert len(edition.items) == 40 and len(edition.desks) == 5
    rendered = render_edition(config, edition)
    size = len(rendered.html.encode("utf-8"))
    assert size < GMAIL_CLIP, f"{size} bytes"


def test_no_image_floats_so_none_needs_an_align_for_outlook(config: Config) -> None:
    """``inline_css`` skips premailer's align="left|right" for floated images (a third of the
    render's time): it holds while the templates and a story's markup float none."""
    html = render_edition(config, big_edition(config)).html
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) >= 40  # one a story
    assert not [image for image in images if re.search(r"float\s*:\s*(left|right)", image)]


def test_html_is_responsive_accessible_and_carries_the_footer(config: Config) -> None:
    edition = build_edition(config, "daily", now=NOW)
    html = render_edition(config, edition).html
    assert re.search(r'<html[^>]* lang="en"', html)
    assert html.startswith("<!DOCTYPE html>")
    # @media rules survive CSS inlining: columns stack on phones, dark mode applies.
    css = re.sub(r"\s", "", html)
    assert "@mediaonlyscreenand(min-width:480px)" in css
    assert "@media(max-width:480px){.storytd{display:block!important;" in css  # thumbnails above text
    assert "@media(prefers-color-scheme:dark)" in css
    assert '<meta name="color-scheme" content="light dark">' in html
    images = re.findall(r"<img\b[^>]*>", html)
    assert images
    for image in images:
        alt = re.search(r'alt="([^"]*)"', image)
        assert alt and alt.group(1).strip(), image
    assert edition.desks[0].items[0].title in html
    assert "12 Khreshchatyk St" in html
    assert f'href="{PLACEHOLDERS["unsubscribe_url"]}"' in html
    assert PLACEHOLDERS["greeting"] in html


def test_preheader_is_hidden_text_at_the_top(config: Config) -> None:
    rendered = render_edition(config, build_edition(config, "daily", now=NOW))
    assert rendered.preheader.startswith("30 stories today: ")
    body = rendered.html.split("<body", 1)[1]
    first_div = re.search(r'<div style="([^"]*)"[^>]*>([^<]*)', body)
    assert first_div and "display:none" in first_div.group(1).replace(" ", "")
    assert first_div.group(2).startswith("30 stories today")


def test_subject_names_newsroom_date_and_top_headline(config: Config) -> None:
    edition = build_edition(config, "daily", now=NOW)
    rendered = render_edition(config, edition)
    top = edition.desks[0].items[0].title
    assert rendered.subject == f"The Morning Ledger · Wednesday, 25 November 2026: {top}"


def test_a_long_subject_is_cut_at_a_word(config: Config) -> None:
    edition = build_edition(config, "daily", now=NOW)
    first = edition.desks[0].items[0]
    headline = "Ministers agree a plan " * 8 + "to rebuild the grid"  # 203 characters
    long_first = dataclasses.replace(first, title=headline)
    desk = dataclasses.replace(edition.desks[0], items=(long_first, *edition.desks[0].items[1:]))
    edition = dataclasses.replace(edition, desks=(desk, *edition.desks[1:]))
    subject = render_edition(config, edition).subject
    full = f"The Morning Ledger · Wednesday, 25 November 2026: {headline}"
    assert len(subject) <= SUBJECT_LIMIT < len(full)
    kept = subject.removesuffix("…")
    assert kept != subject and full.startswith(kept)
    assert full[len(kept)] == " "  # cut between words, not inside one


def test_text_part_is_written_for_reading(config: Config) -> None:
    edition = build_edition(config, "daily", now=NOW)
    text = render_edition(config, edition).text
    lead = edition.desks[0].items[0]
    top = f"Top story · {lead.desk}"
    assert f"\n\n{top}\n{'=' * len(top)}\n\n{lead.title}\n{lead.url}\n" in text
    assert text.index(top) < text.index("\nUkraine\n=======\n")
    assert "In this edition: Ukraine 5 · North America 6 · Business 6 · Europe 6 ·\nCulture 6\n" in text
    for desk in edition.desks:
        assert f"\n{desk.name}\n{'=' * len(desk.name)}\n" in text
        shown = [item for item in desk.items if item != lead]
        for number, item in enumerate(shown, start=1):
            assert f"\n{number}. {item.title[:40]}" in text
            assert f"   {item.url}\n" in text
    assert "<" not in text.replace("<b>", "")  # no markup leaks into the text part
    for line in text.splitlines():
        assert len(line) <= 72 or line.strip().startswith("https://") or "https://" in line.split()[-1], line
    assert f"Unsubscribe: {PLACEHOLDERS['unsubscribe_url']}" in text


def test_empty_edition_renders_a_short_note(config: Config) -> None:
    edition = assemble(
        config, config.mailing_list("daily"), [], Window(NOW - dt.timedelta(hours=1), NOW), date=NOW.date()
    )
    rendered = render_edition(config, edition)
    assert "no new stories" in rendered.text.lower()
    assert rendered.subject == "The Morning Ledger · Wednesday, 25 November 2026"


def with_pictures(edition: Edition, sizes: list[tuple[int, int] | None]) -> Edition:
    """``edition`` with its first desk's stories pictured, in turn, at ``sizes`` (None: the feed
    gave no size); picture n is https://images.example.org/n.jpg. The first story leads."""
    desk = edition.desks[0]
    items = list(desk.items)
    for n, size in enumerate(sizes):
        width, height = size or (None, None)
        url = f"https://images.example.org/{n}.jpg"
        items[n] = dataclasses.replace(items[n], image=url, image_width=width, image_height=height)
    return dataclasses.replace(
        edition, desks=(dataclasses.replace(desk, items=tuple(items)), *edition.desks[1:])
    )


def picture(html: str, n: int) -> tuple[dict[str, str], dict[str, str]]:
    """Picture n's attributes and inline style, as the emailed HTML has them."""
    tag = re.search(rf'<img src="https://images\.example\.org/{n}\.jpg"[^>]*>', html)
    assert tag, f"picture {n} is missing"
    attributes = dict(re.findall(r'([a-z-]+)="([^"]*)"', tag.group(0)))
    style = dict(
        (name.strip(), value.strip())
        for name, value in (rule.split(":", 1) for rule in attributes["style"].split(";") if rule.strip())
    )
    return attributes, style


def test_a_picture_narrower_than_its_slot_keeps_its_own_width(config: Config) -> None:
    # The lead (slot 552), then thumbnails (slot 120, the phone's whole column up to 432).
    sizes = [(400, 300), (90, 60), (300, 200), (1200, 675), None]
    html = render_edition(config, with_pictures(build_edition(config, "daily", now=NOW), sizes)).html
    lead, lead_style = picture(html, 0)
    assert (lead["width"], lead["height"]) == ("400", "300")
    assert (lead_style["width"], lead_style["max-width"]) == ("100%", "400px")  # narrower on a phone
    small, small_style = picture(html, 1)
    assert (small["width"], small["height"]) == ("90", "60")
    assert (small_style["width"], small_style["max-width"]) == ("90px", "90px")
    middling, middling_style = picture(html, 2)
    assert (middling["width"], middling["height"]) == ("120", "80")
    assert middling_style["max-width"] == "300px"  # the phone's full-width thumbnail stops there
    for n in (3, 4):  # as wide as its slot or more, or of unknown size: the slot's width, as before
        large, large_style = picture(html, n)
        assert (large["width"], large_style["width"], large_style["max-width"]) == ("120", "120px", "100%")
    assert picture(html, 4)[0].get("height") is None
    # Every thumbnail's cell keeps the slot's width, so the stories' text starts on one line.
    assert html.count('<td class="thumb" width="120"') == html.count('<td class="thumb"') >= 4


def test_a_lead_picture_of_unknown_size_fills_the_slot_as_before(config: Config) -> None:
    html = render_edition(config, with_pictures(build_edition(config, "daily", now=NOW), [None])).html
    lead, style = picture(html, 0)
    assert lead["width"] == "552" and "height" not in lead
    assert (style["width"], style["max-width"], style["height"]) == ("100%", "552px", "auto")


def test_users_templates_override_the_packaged_ones(make_project: MakeProject) -> None:
    path = make_project()
    (path.parent / "templates" / "subject.txt.j2").write_text(
        "{{ newsroom.name }} today ({{ item_count }})\n"
    )
    config = load_config(path)
    rendered = render_edition(config, build_edition(config, "daily", now=NOW))
    assert rendered.subject == "The Morning Ledger today (30)"
    assert "<!DOCTYPE html>" in rendered.html  # the rest still comes from the packaged templates


@pytest.mark.parametrize(
    ("name", "source", "message", "line"),
    [
        ("subject.txt.j2", "line one\n{% if %}\n", "syntax", 2),
        ("digest.txt.j2", "{{ newsroom.name }}\n\n{{ no_such_variable }}\n", "no_such_variable", 3),
        ("preheader.txt.j2", "ok\n{{ newsroom.nope.deeper }}\n", "nope", 2),
    ],
)
def test_template_errors_name_the_template_and_line(
    make_project: MakeProject, name: str, source: str, message: str, line: int
) -> None:
    path = make_project()
    (path.parent / "templates" / name).write_text(source)
    config = load_config(path)
    with pytest.raises(TemplateError) as caught:
        render_edition(config, build_edition(config, "daily", now=NOW))
    assert message in str(caught.value)
    assert Path(str(caught.value.path)).name == name
    assert caught.value.line == line


def test_mjml_errors_name_the_template(make_project: MakeProject) -> None:
    path = make_project()
    (path.parent / "templates" / "digest.mjml.j2").write_text("<mjml><mj-body><mj-section>\n")
    config = load_config(path)
    with pytest.raises(TemplateError, match="MJML error") as caught:
        render_edition(config, build_edition(config, "daily", now=NOW))
    assert str(caught.value.path).endswith("digest.mjml.j2")


def with_line(source: str, number: int, old: str, new: str) -> str:
    """``source`` with ``old`` replaced by ``new`` on line ``number`` (which must hold it)."""
    lines = source.splitlines(keepends=True)
    assert old in lines[number - 1], lines[number - 1]
    lines[number - 1] = lines[number - 1].replace(old, new, 1)
    return "".join(lines)


def line_of(source: str, text: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), start=1) if text in line)


PACKAGED_MJML = (default_template_dir() / HTML_TEMPLATE).read_text()
STORY_LINE = line_of(PACKAGED_MJML, "</a></h3>")
TEXT_LINE = line_of(PACKAGED_MJML, "<mj-text>")
DESK_LINE = line_of(PACKAGED_MJML, "<mj-section><mj-column>")


@pytest.mark.parametrize(
    ("line", "old", "new", "message", "hint"),
    [
        (
            TEXT_LINE,
            "<mj-text>",
            '<mj-text colr="red">',
            "<mj-text> has no attribute 'colr'",
            "did you mean 'color'?",
        ),
        (
            DESK_LINE,
            "<mj-section>",
            "<mj-sectoin>",
            "unknown MJML tag <mj-sectoin>",
            "did you mean <mj-section>?",
        ),
        (
            DESK_LINE,
            "<mj-column>",
            '<mj-column\n  widht="50%">',
            "<mj-column> has no attribute 'widht'",
            "did you mean 'width'?",
        ),
        (DESK_LINE, "<mj-column>", '<mj-column zzzz="1">', "<mj-column> has no attribute 'zzzz'", None),
    ],
)
def test_mjml_typos_are_template_errors_with_the_templates_line(
    make_project: MakeProject, line: int, old: str, new: str, message: str, hint: str | None
) -> None:
    path = make_project()
    (path.parent / "templates" / HTML_TEMPLATE).write_text(with_line(PACKAGED_MJML, line, old, new))
    config = load_config(path)
    with pytest.raises(TemplateError) as caught:
        render_edition(config, build_edition(config, "daily", now=NOW))
    error = caught.value
    assert error.message.startswith(message)
    assert error.hint == hint
    assert Path(str(error.path)) == path.parent / "templates" / HTML_TEMPLATE
    assert error.line == line + new.count("\n")


def test_mjml_check_skips_comments_and_what_jinja_writes() -> None:
    env = make_environment()
    source = (
        "{# an old draft: <mj-sectoin colr=1>\n   spans two lines #}\n"
        '<mj-text {{ "align" }}="left" color="{{ ink }}" {% if x %}padding="0"{% endif %}>\n'
        "<mj-{{ kind }}>\n"
        '<mj-image src="x" alt="{{ a }}" hieght="1">\n'
    )
    with pytest.raises(TemplateError) as caught:
        check_mjml_template(env, source, "t.mjml.j2")
    assert (caught.value.line, caught.value.message) == (5, "<mj-image> has no attribute 'hieght'")
    assert caught.value.hint == "did you mean 'height'?"


def test_the_mjml_check_runs_when_a_template_loads_not_per_render(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    check = templates.check_mjml_template
    monkeypatch.setattr(templates, "check_mjml_template", lambda e, s, p: checked.append(p) or check(e, s, p))
    env = environment(config)
    edition = build_edition(config, "daily", now=NOW)
    for _ in range(3):
        render_edition(config, edition, env)
    # The edition and the brand parts it imports, each once.
    assert [Path(p).name for p in checked] == [HTML_TEMPLATE, "brand.mjml.j2"]


def test_an_mjml_parse_error_names_the_line_in_the_mjml_and_the_template(make_project: MakeProject) -> None:
    path = make_project()
    # A stray closing tag inside a story: MRML stops at the next story's block.
    broken = with_line(PACKAGED_MJML, STORY_LINE, "</a></h3>", "</a></h3></mj-column>")
    (path.parent / "templates" / HTML_TEMPLATE).write_text(broken)
    config = load_config(path)
    with pytest.raises(TemplateError) as caught:
        render_edition(config, build_edition(config, "daily", now=NOW))
    error = caught.value
    assert re.fullmatch(
        r"MJML error: unexpected element in root template at line \d+ of the MJML, near '.+'", error.message
    )
    assert '<div class="s">' in error.message  # where MRML stopped: the next story
    assert Path(str(error.path)).name == HTML_TEMPLATE and error.line == line_of(
        PACKAGED_MJML, '<div class="s">'
    )


def test_wrap72_keeps_urls_whole_and_indents() -> None:
    text = "word " * 30 + "https://news.example.org/" + "x" * 80
    wrapped = wrap72(text, indent="   ")
    lines = wrapped.splitlines()
    assert all(line.startswith("   ") for line in lines)
    assert all(len(line) <= 72 for line in lines if "https://" not in line)
    assert lines[-1].strip() == "https://news.example.org/" + "x" * 80


@pytest.mark.parametrize(
    ("names", "anchors"),
    [
        (["Business", "Culture"], ["desk-business", "desk-culture"]),
        (
            ["Arts & Culture", "Arts, Culture", "Arts / Culture"],
            ["desk-arts-culture", "desk-arts-culture-2", "desk-arts-culture-3"],
        ),
        # Not Latin: the mail programs that follow a percent-encoded link to such an id are few.
        (["Культура", "اقتصاد", "Business"], ["desk", "desk-2", "desk-business"]),
    ],
)
def test_each_desk_heading_gets_an_ascii_anchor_of_its_own(names: list[str], anchors: list[str]) -> None:
    assert _anchors([slugify(name) for name in names]) == anchors
