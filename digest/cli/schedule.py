"""Commands for operators: schedule (the long-running sender) and jobs (what it did, what is next)."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from digest.cli.base import Context, now, setup_logging
from digest.report import both_times

log = logging.getLogger("digest.schedule")


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
    from digest.statefile import open_store

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
        store.migrate()
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
                    both_times(plan.next_run, plan.timezone),
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
    """Print each list's schedule, next run, last edition (whoever sent it) and last scheduled run.

    Only reads the state database: it never creates or upgrades one.
    """
    from digest.report import jobs_report

    click.echo(jobs_report(obj.config, now()))
