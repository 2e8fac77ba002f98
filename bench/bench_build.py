"""Time each stage of building one edition: a synthetic 40-story, 5-desk day (`make bench`).

Stages: parse (parse_feed + build_items), group (assemble), jinja2 (context, subject,
preheader and digest.mjml.j2), MJML, premailer, minify, text (digest.txt.j2), and the whole
of render_edition. Nothing touches the network; the feed and config live in a temp folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from digest.config import Config, load_config
from digest.edition import assemble, edition_window
from digest.ingest.items import DeskRules, build_items
from digest.ingest.parse import parse_feed
from digest.model import FeedResult
from digest.render import environment, render_edition
from digest.render.context import template_context
from digest.render.html import inline_css, minify, mjml_to_html
from digest.render.templates import (
    HTML_TEMPLATE,
    PREHEADER_TEMPLATE,
    SUBJECT_TEMPLATE,
    TEXT_TEMPLATE,
    render_template,
)

REPO = Path(__file__).resolve().parent.parent
ITEMS = 40
GMAIL_CLIP = 102 * 1024
PEOPLE = ["Mariana Koval", "Taras Lytvyn", "Dana Whitfield", "Luis Ortega", "Ingrid Nilsen", "Amara Okafor"]
SUBJECTS = ["City officials", "The central bank", "Regional lawmakers", "Donor countries", "Rail unions"]
ACTIONS = ["agreed on", "postponed a vote on", "unveiled", "pushed back against", "opened talks on"]
THINGS = ["a winter energy plan", "new housing rules", "a cross-border rail link", "a museum reopening"]
CLAUSES = [
    "after weeks of negotiations that stretched late into the night",
    "according to two people familiar with the discussions",
    "while residents queued outside for a second day",
    "in a move that analysts said could reshape the market for years",
    "despite objections from several regional governors",
    "as forecasters warned of a colder than usual December",
    "with a final decision expected before the end of the month",
]


def summary(rng: random.Random) -> str:
    """A 40–60-word summary with a paragraph, emphasis and a link, like a newsroom's feed."""
    while True:
        words = []
        for _ in range(rng.randint(3, 4)):
            words += f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(THINGS)}".split()
            words += (rng.choice(CLAUSES) + ".").split()
        if 40 <= len(words) <= 60:
            break
    words[2] = f"<em>{words[2]}</em>"
    words[-4] = f'<a href="https://news.example.org/explainers/{rng.randint(100, 999)}">{words[-4]}'
    words[-2] = f"{words[-2]}</a>"
    return f"<p>{' '.join(words)}</p>"


def rss(now: dt.datetime, desks: list[str], aliases: dict[str, list[str]], rng: random.Random) -> str:
    """One RSS 2.0 feed: ITEMS stories spread evenly over the desks, all in the last 24 hours."""
    entries = []
    for n in range(ITEMS):
        desk = desks[n % len(desks)]
        published = now - dt.timedelta(minutes=20 + n * 33 + rng.randint(0, 10))
        title = f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(THINGS)}"
        image = (
            f'<media:content url="https://images.example.org/2026/{n:03d}.jpg" medium="image" '
            f'type="image/jpeg" width="1200" height="675"><media:description>Photo for story '
            f"{n + 1}</media:description></media:content>"
            if n % 7 != 3
            else ""
        )
        read_time = f"<digest:readTime>{rng.randint(2, 9)}</digest:readTime>" if n % 2 else ""
        entries.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>https://news.example.org/story/{50000 + n}?utm_source=rss</link>"
            f'<guid isPermaLink="false">bench:story:{50000 + n}</guid>'
            f"<pubDate>{format_datetime(published)}</pubDate>"
            f"<dc:creator>{rng.choice(PEOPLE)}</dc:creator>"
            f"<category>{rng.choice([desk, *aliases.get(desk, [])])}</category><category>Politics</category>"
            f"<description><![CDATA[{summary(rng)}]]></description>{image}{read_time}</item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:digest="https://news.example.org/ns/digest"><channel><title>Bench</title>'
        "<link>https://news.example.org/</link><description>Synthetic edition</description>\n"
        + "\n".join(entries)
        + "\n</channel></rss>\n"
    )


def setup(folder: Path, now: dt.datetime) -> Config:
    """A feed, a subscriber file and a config.toml shaped like the repository's, in ``folder``."""
    repo = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
    desks: list[str] = list(repo["desks"]["order"])
    categories: dict[str, str] = repo["desks"].get("categories", {})
    aliases: dict[str, list[str]] = {}
    for category, desk in categories.items():
        aliases.setdefault(desk, []).append(category)
    (folder / "feed.xml").write_text(rss(now, desks, aliases, random.Random(2026)), encoding="utf-8")
    (folder / "daily.csv").write_text("email,name,desks,status\na@example.org,A,,active\n", encoding="utf-8")
    q = json.dumps  # a JSON string is a valid TOML basic string
    # The repository's logo files, where they are (a path in config.toml is relative to it).
    logos = {
        key: str(REPO / value)
        for key, value in repo["newsroom"].items()
        if key.startswith("logo_") and isinstance(value, str) and "://" not in value
    }
    newsroom = "\n".join(f"{key} = {q(value)}" for key, value in {**repo["newsroom"], **logos}.items())
    (folder / "config.toml").write_text(
        f"[newsroom]\n{newsroom}\n\n[desks]\norder = {q(desks)}\nmax_items = 8\n\n[desks.categories]\n"
        + "".join(f"{q(category)} = {q(desk)}\n" for category, desk in categories.items())
        + f'\n[[feeds]]\nsource = "feed.xml"\ndesk = {q(desks[0])}\nname = "Bench (RSS)"\n\n'
        '[[lists]]\nname = "daily"\nsubscribers = "daily.csv"\ntransport = "outbox"\n\n'
        '[transports.outbox]\nbackend = "outbox"\npath = "outbox"\n\n'
        f'[state]\nurl = "sqlite:///state.sqlite3"\n\n[render]\ntemplates = {q(str(REPO / "templates"))}\n',
        encoding="utf-8",
    )
    return load_config(folder / "config.toml")


def bench(config: Config, now: dt.datetime, repeat: int) -> tuple[dict[str, list[float]], str, str, int]:
    """Milliseconds per stage and run (after one warm-up), and the final HTML and text."""
    feed = config.settings.feeds[0]
    body = config.resolve(feed.source).read_bytes()
    rules = DeskRules(config.settings.desks.order, dict(config.settings.desks.categories))
    mailing_list = config.mailing_list("daily")
    window = edition_window(config, mailing_list, now=now)
    day = now.astimezone(ZoneInfo(config.list_timezone(mailing_list))).date()
    env = environment(config)
    times: dict[str, list[float]] = {}

    def timed(stage: str, run: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = run()
        times.setdefault(stage, []).append((time.perf_counter() - start) * 1000)
        return result

    def parse() -> FeedResult:
        parsed = parse_feed(body, {})
        items, _ = build_items(
            parsed.entries, feed=feed.label, default_desk=feed.desk, rules=rules, base_url=None, now=now
        )
        return FeedResult(feed.label, "ok", tuple(items), tuple(parsed.warnings))

    def jinja() -> tuple[str, dict[str, Any]]:
        context = template_context(config, edition)
        context["subject"] = render_template(env, SUBJECT_TEMPLATE, context)
        context["preheader"] = render_template(env, PREHEADER_TEMPLATE, context)
        return render_template(env, HTML_TEMPLATE, context), context

    for run in range(repeat + 1):
        result = timed("parse", parse)
        edition = timed("group", lambda r=result: assemble(config, mailing_list, [r], window, date=day))
        mjml, context = timed("jinja2", jinja)
        raw = timed("MJML", lambda m=mjml: mjml_to_html(m, HTML_TEMPLATE))
        inlined = timed("premailer", lambda h=raw: inline_css(h))
        timed("minify", lambda h=inlined: minify(h))
        timed("text", lambda c=context: render_template(env, TEXT_TEMPLATE, c))
        rendered = timed("render_edition (total)", lambda e=edition: render_edition(config, e, env))
        if run == 0:
            times.clear()  # the warm-up compiles the templates and fills caches
    return times, rendered.html, rendered.text, len(edition.items)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, metavar="N", help="timed runs (default 30)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as folder:
        config = setup(Path(folder), now)
        times, html, text, count = bench(config, now, args.repeat)
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.platform()}, {cpu}, {os.cpu_count()} CPUs")
    print(f"python:  {platform.python_implementation()} {sys.version.split()[0]}")
    print(f"edition: {count} stories in {len(config.settings.desks.order)} desks, {args.repeat} runs\n")
    print(f"{'stage':<24}{'median ms':>10}{'p90 ms':>10}")
    for stage, values in times.items():
        print(f"{stage:<24}{statistics.median(values):>10.2f}{p90(values):>10.2f}")
    size = len(html.encode("utf-8"))
    print(f"\nHTML:       {size:>7,} bytes ({size / GMAIL_CLIP:.0%} of Gmail's ~102 KB clip)")
    print(f"plain text: {len(text.encode('utf-8')):>7,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
