"""`digest report`: editions' results for editors (the library is digest.results)."""

from __future__ import annotations

import json

import click

from digest.cli.base import Context


@click.command()
@click.option("--list", "list_names", metavar="NAME", multiple=True, help="Only this list (repeatable).")
@click.option(
    "--edition",
    "edition_ids",
    metavar="ID",
    multiple=True,
    help="This edition, e.g. daily-2026-11-25 (repeatable).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output."
)
@click.pass_obj
def report(obj: Context, list_names: tuple[str, ...], edition_ids: tuple[str, ...], fmt: str) -> None:
    """Show each list's latest edition's results (or those of --edition): recipients, sent and
    failed; delivered, bounces, complaints and unsubscribes; opens and clicks where the provider
    reports them, clicks per desk and the top ten stories; the complaint and bounce rates
    against their lines.

    Only reads the state database: it never creates or upgrades one.
    """
    from digest.results import EditionResults
    from digest.results import report as results_report
    from digest.results.format import as_json, format_text
    from digest.statefile import open_reader

    config = obj.config
    names = [config.mailing_list(name).name for name in list_names] or [m.name for m in config.settings.lists]
    store = open_reader(config)
    try:
        found = results_report(store, names, edition_ids)
    finally:
        if store:
            store.close()
    if fmt == "json":
        editions = [as_json(entry) for entry in found if isinstance(entry, EditionResults)]
        without = [entry for entry in found if isinstance(entry, str)]
        click.echo(json.dumps({"editions": editions, "lists_without_editions": without}, indent=2))
        return
    blocks = [
        format_text(entry) if isinstance(entry, EditionResults) else f"{entry}: no edition yet"
        for entry in found
    ]
    click.echo("\n\n".join(blocks))
