"""Commands for who gets mail: subscribers (check, unsubscribe) and suppressions (sync, export, import)."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import click

from digest.cli.base import Context, now
from digest.errors import DigestError


@click.group()
def subscribers() -> None:
    """Check subscriber lists and unsubscribe addresses."""


@subscribers.command("check")
@click.option(
    "--list", "list_names", metavar="NAME", multiple=True, help="Check only this list (repeatable)."
)
@click.pass_obj
def subscribers_check(obj: Context, list_names: tuple[str, ...]) -> None:
    """Print each list's subscriber counts and every problem (file and line), then who the
    state store keeps from the list (unsubscribed, bounced, complained).

    Exits 1 when a list's file has problems. Reads the state database without creating it.
    """
    from digest.report import format_suppressions
    from digest.statefile import open_reader
    from digest.subscribers import MAX_PROBLEMS, check_subscribers, format_check

    config = obj.config
    lists = [config.mailing_list(name) for name in list_names] or list(config.settings.lists)
    problems = 0
    store = open_reader(config)
    try:
        for mailing_list in lists:
            report = check_subscribers(
                config.resolve(mailing_list.subscribers), config.list_desks(mailing_list)
            )
            click.echo(format_check(report, mailing_list.name))
            problems += len(report.problems) + report.problems_omitted
            counts, records = (
                store.suppressions.of_list(mailing_list.name, MAX_PROBLEMS) if store else ({}, [])
            )
            click.echo(format_suppressions(mailing_list.name, counts, records))
    finally:
        if store:
            store.close()
    if problems:
        sys.exit(1)


@subscribers.command("unsubscribe")
@click.argument("email")
@click.option("--list", "list_name", metavar="NAME", required=True, help="The list to leave.")
@click.pass_obj
def subscribers_unsubscribe(obj: Context, email: str, list_name: str) -> None:
    """Unsubscribe EMAIL from a list: it is never sent that list again.

    An address that is not in the list's file is unsubscribed all the same (it may be added
    later, or be in another copy of the file), with a warning.
    """
    from email_validator import EmailNotValidError

    from digest.address import normalize_address
    from digest.state.suppressions import Reason
    from digest.statefile import open_store
    from digest.subscribers import is_listed

    config = obj.config
    mailing_list = config.mailing_list(list_name)
    try:
        address = normalize_address(email)
    except EmailNotValidError as exc:
        raise DigestError(f"{email!r} is not an email address: {exc}") from None
    with open_store(config) as store:
        store.migrate()
        added = store.suppressions.add(
            address, reason=Reason.UNSUBSCRIBED, source="editor", list_name=list_name
        )
    click.echo(f"{address} {'unsubscribed from' if added else 'was already unsubscribed from'} {list_name}")
    path = config.resolve(mailing_list.subscribers)
    if not is_listed(path, address, config.list_desks(mailing_list)):
        click.secho(
            f"warning: {address} is not in {mailing_list.subscribers}; "
            "unsubscribed anyway, so it will never be sent this list",
            fg="yellow",
            err=True,
        )


@click.group()
def suppressions() -> None:
    """Who must never be mailed again: sync from SendGrid, export, import."""


@suppressions.command("sync")
@click.option("--transport", "alias", metavar="ALIAS", help="The SendGrid transport to read from.")
@click.pass_obj
def suppressions_sync(obj: Context, alias: str | None) -> None:
    """Pull SendGrid's unsubscribes, bounces and spam reports into the state store."""
    from digest.send.sendgrid_sync import sync

    new = sync(obj.config, alias, os.environ)
    click.echo(
        "new suppressions: " + (", ".join(f"{reason} {count:,}" for reason, count in new.items()) or "none")
    )


@suppressions.command("export")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CSV to FILE instead of standard output.",
)
@click.pass_obj
def suppressions_export(obj: Context, out: Path | None) -> None:
    """Write every unsubscribe, bounce and complaint as CSV: address, list, reason, source, date.

    An empty list means every list. Reads a damaged SQLite state file as far as it can, so
    its suppressions can be imported into a new one with `digest suppressions import`.
    """
    from digest.output import write_atomically
    from digest.state.transfer import export_suppressions
    from digest.statefile import state_url

    url = state_url(obj.config)
    if out is None:
        exported = export_suppressions(url, sys.stdout)
    else:
        # Whole or not at all: a half-written file would pass for every suppression there is.
        buffer = io.StringIO()
        exported = export_suppressions(url, buffer)
        write_atomically({out: buffer.getvalue().encode()})
    if exported.damaged:
        click.secho(
            "warning: the state database is damaged: some suppressions could not be read; "
            f"exported the {exported.total:,} that could",
            fg="yellow",
            err=True,
        )
    click.echo(f"exported {exported.describe()}{f' to {out}' if out else ''}", err=True)


@suppressions.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def suppressions_import(obj: Context, file: Path) -> None:
    """Add the suppressions of a CSV written by `digest suppressions export` to the state store.

    Rows already there are left as they are, so importing a file twice adds nothing. A bad
    row is named with its file and line and not imported; the command then exits 1.
    """
    from digest.state.transfer import import_suppressions
    from digest.statefile import open_store
    from digest.subscribers import MAX_PROBLEMS

    with open_store(obj.config) as store:
        store.migrate()
        imported = import_suppressions(store.suppressions, file, now(), max_bad=MAX_PROBLEMS)
    for bad in imported.bad:
        click.secho(f"warning: {bad}", fg="yellow", err=True)
    if imported.bad_omitted:
        click.secho(f"warning: … and {imported.bad_omitted:,} more bad rows not shown", fg="yellow", err=True)
    click.echo(imported.describe(file))
    if imported.bad or imported.bad_omitted:
        sys.exit(1)
