"""`digest send`: a list's edition to everyone not yet sent it (or, with --resend, to one reader)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.exc import SQLAlchemyError

from digest.cli.base import Context, now
from digest.cli.resend import resend_one
from digest.errors import DigestError, StateError
from digest.send import dry
from digest.send.summary import SendSummary, transport_label
from digest.state import Store
from digest.state.ledger_types import FAILED, PENDING, SENDING, SENT, SKIPPED, SUPPRESSED

# EX_TEMPFAIL: nothing is wrong to fix, but the list waits for a required feed; try again later.
EXIT_HELD = 75
# EX_NOPERM: the guardrail holds the list; trying again changes nothing until an editor resumes
# it, so a wrapper that retries on 75 must not take this for a passing hold.
EXIT_GUARDRAIL = 77


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM or SIGINT: finish and record the batch in flight, then stop."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        click.echo(f"\n{signal.Signals(signum).name}: finishing the batch in flight, then stopping", err=True)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _ProgressLine:
    """done/total, rate and time left on one rewritten line; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.shown = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.shown or not total:
            return
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = done / elapsed
        left = int((total - done) / rate) if rate else 0
        line = f"{done:,}/{total:,} ({done / total:.0%})  {rate:,.0f}/s  {left // 60}:{left % 60:02d} left"
        click.echo(f"\r  {line} ", err=True, nl=False)

    def end(self) -> None:
        if self.shown:
            click.echo(err=True)
            self.shown = False


def _print_summary(summary: SendSummary, where: str) -> None:
    # The subscriber file's problems are not repeated here: they were logged as they were read.
    counts = summary.counts
    if summary.dry_run:
        would = sum(summary.variants.values())
        click.echo(f"{summary.edition_id}: dry run, nothing sent: would send {would:,} messages via {where}")
        for variant, count in sorted(summary.variants.items()):
            click.echo(f"  variant {variant}: {count:,}")
        click.echo(
            f"  already sent {counts.get(SENT, 0):,}, suppressed {counts.get(SUPPRESSED, 0):,}, "
            f"skipped {counts.get(SKIPPED, 0):,}, subscriber problems {len(summary.problems):,}"
        )
        return
    click.echo(f"{summary.edition_id}: {summary.describe()} (via {where})")
    for email, error in summary.failures:
        click.echo(f"  failed {email}: {error}", err=True)
    # The summary carries the first failures only; say so rather than let the list look complete.
    unlisted = counts.get(FAILED, 0) - len(summary.failures)
    if unlisted > 0:
        click.echo(f"  … and {unlisted:,} more failed (the next `digest send` tries them again)", err=True)
    if summary.stopped:
        click.echo("  stopped before the end: run `digest send` again to send the rest", err=True)


def _say_where_it_stopped(store: Store, edition_id: str) -> None:
    """Before the error: how far the send got, so the operator knows what a rerun will do."""
    try:
        counts = store.ledger.counts(edition_id)
    except (DigestError, SQLAlchemyError):
        return  # the error itself says why the ledger cannot be read
    left = counts.get(PENDING, 0) + counts.get(SENDING, 0) + counts.get(FAILED, 0)
    if not left:
        return  # stopped before anyone was recorded, or after everyone: the error says it all
    click.echo(
        f"{edition_id}: stopped by the error below: sent {counts.get(SENT, 0):,}, {left:,} still to send; "
        "fix it and run `digest send` again (nobody already sent gets it twice)",
        err=True,
    )


@click.command()
@click.option("--list", "list_name", metavar="NAME", required=True, help="The list to send.")
@click.option("--transport", "alias", metavar="ALIAS", help="A [transports.<ALIAS>] other than the list's.")
@click.option("--dry-run", is_flag=True, help="Send nothing and change nothing; say what would be sent.")
@click.option(
    "--resend", "resend_to", metavar="EMAIL", help="Send the edition once more to this reader only."
)
@click.option(
    "--edition", "edition_id", metavar="ID", help="With --resend: a sent edition, e.g. daily-2026-11-25."
)
@click.pass_obj
def send(
    obj: Context,
    list_name: str,
    alias: str | None,
    dry_run: bool,
    resend_to: str | None,
    edition_id: str | None,
) -> None:
    """Send today's edition of a list to every subscriber not yet sent to.

    Freezes the edition (or reuses the frozen one), records every recipient in the ledger,
    and sends batch by batch. Run it again after a crash or a failure: it sends to exactly
    those not yet sent. Exits 1 if any recipient failed.

    With --resend EMAIL: sends today's edition (or --edition ID) once more to that one
    reader, as they got it, and records it as a resend. Exits 1 if it was refused or failed.
    """
    from digest.send.run import Sender
    from digest.statefile import open_store

    if edition_id and not resend_to:
        raise click.UsageError("--edition goes with --resend (a send is always of today's edition)")
    config = obj.config
    with open_store(config) as store:
        store.migrate()
        if resend_to:
            resend_one(obj, store, list_name, resend_to, edition_id=edition_id, alias=alias, dry_run=dry_run)
            return
        sender = Sender(config, list_name, store, transport_alias=alias, now=now())
        where = transport_label(config, sender.alias)
        if dry_run:
            _print_dry_run(dry.dry_run(sender), sender.timezone, where)
            return
        progress = _ProgressLine()
        with _stop_on_signals() as stop:
            try:
                summary = sender.send(progress=progress, stop=stop)
            except StateError:
                raise  # the ledger itself is the trouble: nothing to count
            except DigestError:
                progress.end()
                _say_where_it_stopped(store, sender.edition_id)
                raise
            finally:
                progress.end()
    _print_sent(summary, sender.timezone, where)


def _print_dry_run(preview: SendSummary, timezone: str, where: str) -> None:
    """What a send would do now; a hold is said as what it would be."""
    if preview.guardrail:
        click.echo(f"{preview.edition_id}: dry run, nothing sent: would be {preview.guardrail.describe()}")
    elif preview.held:
        click.echo(f"{preview.edition_id}: dry run, nothing sent: would be {preview.held.describe(timezone)}")
    else:
        _print_summary(preview, where)


def _print_sent(summary: SendSummary, timezone: str, where: str) -> None:
    """What the send did, and its exit code: 77 held by the guardrail, 75 waiting for a feed,
    1 when a recipient failed."""
    if summary.guardrail:
        guard = summary.guardrail
        click.echo(f"{summary.edition_id}: {guard.describe()}")
        click.echo(
            f"  nothing sent; `digest report --edition {guard.edition_id}` shows that edition's results"
        )
        sys.exit(EXIT_GUARDRAIL)
    if summary.held:
        click.echo(f"{summary.edition_id}: {summary.held.describe(timezone)}")
        click.echo("  nothing sent; run `digest send` again later (`digest schedule` retries by itself)")
        sys.exit(EXIT_HELD)
    if summary.empty:
        click.echo(f"{summary.edition_id}: empty edition, no new stories; nothing to send")
        return
    _print_summary(summary, where)
    if summary.failed:
        sys.exit(1)
