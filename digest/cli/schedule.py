"""Commands for operators: schedule (the long-running sender) and jobs (what it did, what is next)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
from zoneinfo import ZoneInfo

import click

from digest.cli.base import Context, now, setup_logging
from digest.report import table

log = logging.getLogger("digest.schedule")


def _both(moment: dt.datetime | None, zone: str) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M %Z} ({moment.astimezone(dt.UTC):%H:%M} UTC)"


@click.command()
@click.pass_obj
def schedule(obj: Context) -> None:
    """Run in the foreground and send every list at its scheduled time.

    One job per list from its `schedule` and `timezone`, kept in the state database. A run
    missed while this was down goes out when it starts again, if within [schedule]
    misfire_grace. SIGTERM or Ctrl-C finishes the batch in flight and exits 0.
    """
    from digest.schedule.job import STOP
    from digest.schedule.service import SchedulerService
    from digest.state import open_store

    setup_logging(obj.debug, obj.log_format, level=logging.INFO)
    config = obj.config
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info(
            "%s: stopping after the batch in flight", signal.Signals(signum).name, extra={"event": "stop"}
        )
        STOP.set()
        stop.set()

    with open_store(config) as store:
        service = SchedulerService(config, store)
        planned = service.start()
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info(
                "scheduler started (pid %d, state %s, misfire grace %ds)",
                os.getpid(),
                store.label,
                service.grace,
                extra={"event": "start"},
            )
            for plan in planned:
                log.info(
                    "list %s: next run %s [%s]",
                    plan.list_name,
                    _both(plan.next_run, plan.timezone),
                    plan.change,
                    extra={"event": "planned", "list": plan.list_name, "next_run": plan.next_run},
                )
            service.run_until_stopped(stop)
        finally:
            service.shutdown()
            for sig, old in previous.items():
                signal.signal(sig, old)
    log.info("scheduler stopped", extra={"event": "stopped"})


@click.command()
@click.pass_obj
def jobs(obj: Context) -> None:
    """Print each list's schedule, next run (local and UTC), last run and its result."""
    from digest.cron import parse_cron
    from digest.schedule.service import job_id
    from digest.state import open_store

    config = obj.config
    rows = []
    details = []
    with open_store(config) as store:
        stored = store.scheduled_runs()
        for mailing_list in config.settings.lists:
            zone = config.list_timezone(mailing_list)
            ident = job_id(mailing_list.name)
            if ident in stored:
                upcoming = _both(stored[ident], zone) if stored[ident] else "paused"
            else:
                would = parse_cron(mailing_list.schedule, zone).get_next_fire_time(None, now())
                upcoming = f"{_both(would, zone)}, once `digest schedule` runs"
            last = store.runs.last(mailing_list.name)
            last_text = (
                f"{_both(last.scheduled_for or last.started_at, zone)}: {last.result}" if last else "never"
            )
            rows.append([mailing_list.name, f"{mailing_list.schedule} {zone}", upcoming, last_text])
            if last and last.detail:
                details.append(f"{mailing_list.name}: {last.detail}")
        holder = store.runs.holder()
    click.echo(table(["LIST", "SCHEDULE", "NEXT RUN", "LAST RUN"], rows))
    if details:
        click.echo("\n" + "\n".join(details))
    click.echo(
        f"\nscheduler: running ({holder.owner}, last seen {holder.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)"
        if holder
        else "\nscheduler: not running"
    )
