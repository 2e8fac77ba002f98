"""The `digest` command. Commands only parse arguments, call the library and print."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from digest import __version__
from digest.config import Config, config_path, load_config
from digest.errors import DigestError

log = logging.getLogger("digest")


class Context:
    """What every command shares: the config, loaded on first use so --help needs none."""

    def __init__(self, config_file: str | None, debug: bool) -> None:
        self.config_file = config_file
        self.debug = debug
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_file)
        return self._config


class DigestGroup(click.Group):
    """Prints a DigestError as one line (no traceback unless --debug) and exits 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except DigestError as exc:
            if _debugging(ctx):
                raise
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(1)
        except Exception as exc:
            if _debugging(ctx):
                raise
            click.secho(
                f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                fg="red",
                err=True,
            )
            ctx.exit(70)


def _debugging(ctx: click.Context) -> bool:
    return isinstance(ctx.obj, Context) and ctx.obj.debug


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    metavar="PATH",
    help=f"Configuration file [default: $DIGEST_CONFIG or {config_path(None)}].",
)
@click.option("--debug", is_flag=True, help="Log everything and show tracebacks.")
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, debug: bool) -> None:
    """Build the newsroom's daily digest from its feeds and mail it to subscriber lists."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = Context(config_file, debug)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@cli.command()
@click.option(
    "--list", "list_names", metavar="NAME", multiple=True, help="Build only this list (repeatable)."
)
@click.option(
    "--date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
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
def build(obj: Context, list_names: tuple[str, ...], date: dt.datetime | None, out: Path) -> None:
    """Build each list's edition and write it as HTML, text, .eml and JSON."""
    from digest.build import build as build_lists
    from digest.state import open_store

    config = obj.config
    with open_store(config) as store:
        results = build_lists(
            config,
            out=out,
            now=_now(),
            list_names=list(list_names) or None,
            date=date.date() if date else None,
            store=store,
        )
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
    from digest.ingest import collect
    from digest.report import feed_table
    from digest.state import open_store

    config = obj.config
    with open_store(config) as store:
        results = collect(config, now=_now(), cache=store)
    click.echo(feed_table(results, ZoneInfo(config.settings.newsroom.timezone)))
    if any(result.status == "failed" for result in results):
        sys.exit(1)


def main() -> None:
    cli(prog_name="digest")
