"""`digest send --resend EMAIL`: one reader's copy sent once more, and how it went."""

from __future__ import annotations

import sys

import click

from digest.cli.base import Context, now
from digest.send.summary import transport_label
from digest.state import Store


def resend_one(
    obj: Context,
    store: Store,
    list_name: str,
    email: str,
    *,
    edition_id: str | None,
    alias: str | None,
    dry_run: bool,
) -> None:
    """`digest send --resend EMAIL`: resend, then say what went where; exits 1 if it failed."""
    from digest.send.resend import describe_original, resend

    result = resend(
        obj.config,
        list_name,
        email,
        store,
        now=now(),
        edition_id=edition_id,
        transport_alias=alias,
        dry_run=dry_run,
    )
    plan, where = result.plan, transport_label(obj.config, result.transport)
    if result.outcome is None:
        click.echo(f"{plan.edition_id}: dry run, nothing sent: would resend to {plan.email} via {where}")
    elif result.outcome.accepted:
        click.echo(f"{plan.edition_id}: resent to {plan.email} via {where}")
    else:
        click.echo(
            f"{plan.edition_id}: resend to {plan.email} failed via {where}: {result.outcome.error}", err=True
        )
    click.echo(f"  variant {plan.label}, Message-ID {result.message_id}")
    if result.outcome is not None and result.outcome.provider_id:
        click.echo(f"  provider id {result.outcome.provider_id}")
    earlier = {0: "", 1: "; resent once before"}.get(plan.earlier, f"; resent {plan.earlier} times before")
    click.echo(f"  originally {describe_original(plan.original)}{earlier}")
    if result.outcome is not None and not result.outcome.accepted:
        sys.exit(1)
