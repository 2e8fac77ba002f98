"""`digest bounces`: read bounce reports, complaints and mailed unsubscribes (SMTP sending)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from digest.cli.base import Context, now


@click.group()
def bounces() -> None:
    """Bounces, complaints and mailed unsubscribes: import, fetch, unattributed."""


@bounces.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.pass_obj
def bounces_import(obj: Context, paths: tuple[Path, ...]) -> None:
    """Read the messages in Maildir folders, mbox files or .eml files (left as they are).

    Hard bounces and complaints suppress the address for every list, soft bounces once they
    reach [bounces] soft_limit, mailed unsubscribes leave the list; auto-replies are ignored;
    a message no recipient can be tied to is kept and counted. Reading twice changes nothing.
    """
    from digest.bounces.run import describe, import_paths
    from digest.statefile import open_store

    with open_store(obj.config) as store:
        store.migrate()
        tally = import_paths(obj.config, store, list(paths), env=os.environ, now=now())
        for line in describe(tally, store):
            click.echo(line)


@bounces.command("fetch")
@click.pass_obj
def bounces_fetch(obj: Context) -> None:
    """Read the [bounces] IMAP mailbox over TLS (password from [bounces] password_env) and move
    each message handled to [bounces] processed_folder."""
    from digest.bounces.run import describe, fetch_mailbox
    from digest.statefile import open_store

    with open_store(obj.config) as store:
        store.migrate()
        tally = fetch_mailbox(obj.config, store, env=os.environ, now=now())
        for line in describe(tally, store):
            click.echo(line)


@bounces.command("unattributed")
@click.option("--raw", "raw_id", type=int, metavar="ID", help="Write that kept message to standard output.")
@click.option("--drop", "drop_id", type=int, metavar="ID", help="Forget that kept message (dealt with).")
@click.pass_obj
def bounces_unattributed(obj: Context, raw_id: int | None, drop_id: int | None) -> None:
    """List the messages no recipient could be tied to (newest first), with why they were kept."""
    from digest.statefile import open_reader, open_store

    if drop_id is not None:
        with open_store(obj.config) as writer:
            writer.migrate()
            if not writer.unattributed.drop(drop_id):
                click.echo(f"no kept message {drop_id}", err=True)
                sys.exit(1)
        click.echo(f"forgot kept message {drop_id}")
        return
    store = open_reader(obj.config)
    if store is None:
        click.echo("no state database yet: nothing kept")
        return
    try:
        if raw_id is not None:
            found = store.unattributed.raw(raw_id)
            if found is None:
                click.echo(f"no kept message {raw_id}", err=True)
                sys.exit(1)
            sys.stdout.buffer.write(found)
            return
        click.echo(f"{store.unattributed.count():,} kept")
        for item in store.unattributed.listing():
            click.echo(
                f"{item.id}\t{item.received_at:%Y-%m-%d %H:%M} UTC\t{item.origin}\t{item.reason}"
                f"\t{item.message_id or '(no Message-ID)'}\t{item.size:,} bytes"
            )
    finally:
        store.close()
