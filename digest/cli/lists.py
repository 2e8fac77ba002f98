"""`digest lists`: the guardrail's holds: which lists are held, and an editor's resume."""

from __future__ import annotations

import getpass

import click

from digest.cli.base import Context, now


@click.group()
def lists() -> None:
    """The lists the guardrail holds: show them, and resume one."""


@lists.command("held")
@click.pass_obj
def lists_held(obj: Context) -> None:
    """Print each list the guardrail holds, the edition and the rate that held it.

    Only reads the state database: it never creates or upgrades one.
    """
    from digest.results.guardrail import GuardrailHold
    from digest.statefile import open_reader

    store = open_reader(obj.config)
    try:
        holds = store.holds.active() if store else []
    finally:
        if store:
            store.close()
    if not holds:
        click.echo("no list is held")
    for hold in holds:
        click.echo(f"{hold.list_name}: {GuardrailHold.of(hold).describe()}")


@lists.command("resume")
@click.argument("name")
@click.pass_obj
def lists_resume(obj: Context, name: str) -> None:
    """Release the guardrail's hold on list NAME: its next send goes out.

    The edition that held it cannot hold it again; a later edition over the line would.
    """
    from digest.statefile import open_store

    config = obj.config
    list_name = config.mailing_list(name).name
    with open_store(config) as store:
        store.migrate()
        released = store.holds.resume(list_name, by=_who(), now=now())
    if released is None:
        click.echo(f"{list_name} is not held by the guardrail: nothing to resume")
        return
    click.echo(
        f"{list_name}: resumed; the hold for {released.edition_id} ({released.reason}) is lifted, and "
        f"that edition will not hold the list again; run `digest send --list {list_name}` to send "
        "today's edition now, or wait for the next scheduled run"
    )


def _who() -> str:
    """Who resumed the list, for the record: the operating-system user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"
