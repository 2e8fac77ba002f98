"""Commands for who gets mail: subscribers (check, unsubscribe) and suppressions (sync, export, import)."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import click

from digest.cli.base import Context, now


@click.group()
def subscribers() -> None:
    """A list's readers: import, export, add, show, forget, unsubscribe, check."""


@subscribers.command("check")
@click.option(
    "--list", "list_names", metavar="NAME", multiple=True, help="Check only this list (repeatable)."
)
@click.pass_obj
def subscribers_check(obj: Context, list_names: tuple[str, ...]) -> None:
    """Print each list's subscriber file counts and every problem (file and line), the state
    store's readers by status, then who the store keeps from the list (unsubscribed, bounced,
    complained).

    Exits 1 when a list's file has problems. Reads the state database without creating it.
    """
    from digest.report import format_readers, format_suppressions
    from digest.statefile import open_reader
    from digest.subscribers import MAX_PROBLEMS, check_subscribers, format_check

    config = obj.config
    lists = [config.mailing_list(name) for name in list_names] or list(config.settings.lists)
    problems = 0
    store = open_reader(config)
    try:
        for mailing_list in lists:
            path = config.subscriber_file(mailing_list)
            if path is None:
                click.echo(f"{mailing_list.name}: no subscriber file (web sign-ups only)")
            else:
                report = check_subscribers(path, config.list_desks(mailing_list))
                click.echo(format_check(report, mailing_list.name))
                problems += len(report.problems) + report.problems_omitted
            click.echo(
                format_readers(mailing_list.name, store.readers.counts(mailing_list.name) if store else {})
            )
            counts, records = (
                store.suppressions.of_list(mailing_list.name, MAX_PROBLEMS) if store else ({}, [])
            )
            click.echo(format_suppressions(mailing_list.name, counts, records))
    finally:
        if store:
            store.close()
    if problems:
        sys.exit(1)


@subscribers.command("import")
@click.option(
    "--list", "list_names", metavar="NAME", multiple=True, help="Import only this list (repeatable)."
)
@click.pass_obj
def subscribers_import(obj: Context, list_names: tuple[str, ...]) -> None:
    """Import each list's subscriber file into the state store now, as `digest send` does first.

    Prints what changed (new, changed by the file, unchanged, removed, kept by the reader's
    choice, bad rows) and each bad row with its file and line; exits 1 if there was one. A file
    unchanged since its last import is not read again. The rule between the file and what
    readers did themselves is in the README (Subscribers).
    """
    from digest.readers import import_list
    from digest.statefile import open_store

    config = obj.config
    wanted = [config.mailing_list(name) for name in list_names]
    lists = wanted or [m for m in config.settings.lists if m.subscribers]
    bad = 0
    with open_store(config) as store:
        store.migrate()
        for mailing_list in lists:
            report = import_list(config, store, mailing_list, now=now())
            for problem in report.problems:
                click.secho(f"warning: {problem}", fg="yellow", err=True)
            if report.problems_omitted:
                click.secho(
                    f"warning: … and {report.problems_omitted:,} more bad rows not shown",
                    fg="yellow",
                    err=True,
                )
            click.echo(report.describe())
            bad += report.bad
    if bad:
        sys.exit(1)


@subscribers.command("export")
@click.option("--list", "list_name", metavar="NAME", required=True, help="The list to export.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CSV to FILE instead of standard output.",
)
@click.pass_obj
def subscribers_export(obj: Context, list_name: str, out: Path | None) -> None:
    """Write a list's readers as CSV: email, name, desks, status (as a subscriber file has
    them), then source, created, updated and confirmed. The file imports back unchanged.
    """
    from digest.output import write_atomically
    from digest.readers import export_list
    from digest.statefile import open_reader

    config = obj.config
    mailing_list = config.mailing_list(list_name)
    buffer = io.StringIO()
    store = open_reader(config)
    try:
        written = export_list(store, config, mailing_list, buffer if out else sys.stdout)
    finally:
        if store:
            store.close()
    if out is not None:
        write_atomically({out: buffer.getvalue().encode()})
    click.echo(f"exported {written:,} readers of {list_name}{f' to {out}' if out else ''}", err=True)


@subscribers.command("add")
@click.argument("email")
@click.option("--list", "list_name", metavar="NAME", required=True, help="The list to add the address to.")
@click.option("--name", default="", help="The reader's name.")
@click.option("--desks", metavar='"A;B"', help="The desks they get, separated by ';' (default: all).")
@click.pass_obj
def subscribers_add(obj: Context, email: str, list_name: str, name: str, desks: str | None) -> None:
    """Add EMAIL to a list as an active reader at once (source: editor).

    Refuses an address that unsubscribed, bounced, complained or was forgotten: only its owner
    can come back, by signing up and confirming again.
    """
    from digest.readers import add_reader
    from digest.statefile import open_store

    config = obj.config
    mailing_list = config.mailing_list(list_name)
    with open_store(config) as store:
        store.migrate()
        reader = add_reader(store, config, mailing_list, email, name=name, desks=desks, now=now())
    chosen = "all desks" if reader.desks is None else ";".join(reader.desks)
    click.echo(f"{reader.email} added to {list_name} ({chosen})")


@subscribers.command("show")
@click.argument("email")
@click.pass_obj
def subscribers_show(obj: Context, email: str) -> None:
    """Print what the state store has about EMAIL on every list: status, desks, the consent
    record, the history and the editions sent to it. Creates no state database."""
    from digest.readers import address, address_record, describe_record
    from digest.statefile import open_reader

    config = obj.config
    store = open_reader(config)
    if store is None:
        click.echo(f"{address(email)}: not on any list (there is no state database yet)")
        return
    with store:
        record = address_record(store, email)
    desks = {m.name: config.list_desks(m) for m in config.settings.lists}
    for line in describe_record(record, desks):
        click.echo(line)


@subscribers.command("forget")
@click.argument("email")
@click.pass_obj
def subscribers_forget(obj: Context, email: str) -> None:
    """Erase EMAIL: its records on every list, name, consent and history. The ledger and the
    resends keep a keyed hash in its place (so counts stay right), and so does a suppression:
    it is never mailed again unless it signs up and confirms again. The hash is keyed with a
    key derived from $DIGEST_SECRET, which must therefore not change.
    """
    from digest.readers import address, forget_address, lines_in_files
    from digest.statefile import forget_key_from, open_store

    config = obj.config
    key = address(email)
    with open_store(config) as store:
        store.migrate()
        erased = forget_address(store, key, forget_key_from(os.environ), now=now())
    lists = ", ".join(erased.lists) or "no list"
    click.echo(
        f"forgotten, kept as {erased.hashed}: erased from {lists}, {erased.events:,} history events; "
        f"{erased.ledger:,} ledger rows, {erased.resends:,} resends and {erased.deliveries:,} "
        "delivery events now carry the hash"
    )
    for where in lines_in_files(config, key):
        click.secho(f"warning: {where}", fg="yellow", err=True)


@subscribers.command("unsubscribe")
@click.argument("email")
@click.option("--list", "list_name", metavar="NAME", required=True, help="The list to leave.")
@click.pass_obj
def subscribers_unsubscribe(obj: Context, email: str, list_name: str) -> None:
    """Unsubscribe EMAIL from a list: it is never sent that list again.

    An address that is not one of the list's readers (nor in its file) is unsubscribed all
    the same (it may be added later), with a warning.
    """
    from digest.readers import address
    from digest.state.suppressions import Reason
    from digest.statefile import open_store
    from digest.subscribers import is_listed

    config = obj.config
    mailing_list = config.mailing_list(list_name)
    key = address(email)
    with open_store(config) as store:
        store.migrate()
        known = store.readers.get(list_name, key) is not None
        added = store.readers.leave(list_name, key, reason=Reason.UNSUBSCRIBED, source="editor", now=now())
    click.echo(f"{key} {'unsubscribed from' if added else 'was already unsubscribed from'} {list_name}")
    path = config.subscriber_file(mailing_list)
    if not known and not (path and is_listed(path, key, config.list_desks(mailing_list))):
        where = f"in {mailing_list.subscribers} nor " if mailing_list.subscribers else ""
        click.secho(
            f"warning: {key} is not {where}a reader of {list_name}; "
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
