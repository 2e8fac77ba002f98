"""The `digest` command. Commands only parse arguments, call the library and print."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from digest import __version__
from digest.cli.base import Context, Day, DigestGroup, now, setup_logging
from digest.cli.bounces import bounces
from digest.cli.lists import lists
from digest.cli.preview import preview
from digest.cli.report import report
from digest.cli.schedule import jobs, schedule
from digest.cli.send import send
from digest.cli.serve import serve
from digest.cli.subscribers import subscribers, suppressions
from digest.config import config_path


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    metavar="PATH",
    help=f"Configuration file [default: $DIGEST_CONFIG or {config_path(None)}].",
)
@click.option("--debug", is_flag=True, help="Log everything and show tracebacks.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines for people, or one JSON object per line.",
)
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, debug: bool, log_format: str) -> None:
    """Build the newsroom's daily digest from its feeds and mail it to subscriber lists."""
    setup_logging(debug, log_format)
    ctx.obj = Context(config_file, debug, log_format)


@cli.command()
@click.option(
    "--list", "list_names", metavar="NAME", multiple=True, help="Build only this list (repeatable)."
)
@click.option(
    "--date",
    type=Day(),
    metavar="YYYY-MM-DD",
    help="Build the edition of that day (the 24 hours up to the list's time); reads and writes no state.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build"),
    show_default=True,
    help="Folder for <list>.html, .txt, .eml and .json.",
)
@click.pass_obj
def build(obj: Context, list_names: tuple[str, ...], date: dt.date | None, out: Path) -> None:
    """Build each list's edition and write it as HTML, text, .eml and JSON."""
    from digest.build import build as build_lists
    from digest.statefile import open_store

    config = obj.config
    if date is None:
        # Reads where each list's previous edition ended and writes the feed cache: the one
        # build that creates (or upgrades) the state database.
        with open_store(config) as store:
            store.migrate()
            results = build_lists(
                config, out=out, now=now(), list_names=list(list_names) or None, store=store
            )
    else:
        results = build_lists(config, out=out, now=now(), list_names=list(list_names) or None, date=date)
    for warning in dict.fromkeys(w for result in results for w in result.edition.warnings):
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    for result in results:
        edition = result.edition
        zone = ZoneInfo(edition.timezone)
        start, end = (moment.astimezone(zone) for moment in (edition.window.start, edition.window.end))
        window = f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} {edition.timezone}"
        if edition.is_empty:
            click.echo(f"{edition.list_name}: empty edition, no new stories in {window}; nothing to send")
        else:
            stories, desks = len(edition.items), len(edition.desks)
            click.echo(
                f"{edition.list_name}: {stories} stories in {desks} desk{'s' * (desks != 1)} ({window})"
            )
        click.echo(f"  subject: {result.rendered.subject}")
        click.echo(f"  html: {len(result.rendered.html.encode()):,} bytes")
        for path in result.files:
            click.echo(f"  wrote {path}")


@cli.group()
def feeds() -> None:
    """Inspect the configured feeds."""


@feeds.command("check")
@click.pass_obj
def feeds_check(obj: Context) -> None:
    """Fetch every feed and print its status, item count, newest item and warnings.

    Exits 1 when a feed could not be read at all.
    """
    from digest.ingest.collect import collect
    from digest.report import feed_table
    from digest.state.feeds import ReadOnlyFeeds
    from digest.statefile import open_reader

    config = obj.config
    store = open_reader(config)
    try:
        results = collect(config, now=now(), cache=ReadOnlyFeeds(store.feeds) if store else None)
    finally:
        if store:
            store.close()
    click.echo(feed_table(results, ZoneInfo(config.settings.newsroom.timezone)))
    if any(result.failed for result in results):
        sys.exit(1)


cli.add_command(send)
cli.add_command(subscribers)
cli.add_command(suppressions)
cli.add_command(serve)
cli.add_command(schedule)
cli.add_command(jobs)
cli.add_command(preview)
cli.add_command(report)
cli.add_command(lists)
cli.add_command(bounces)


def main() -> None:
    cli(prog_name="digest")
