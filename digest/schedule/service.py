"""`digest schedule`: one long-running process that sends every list at its time.

Two APScheduler 3.x traps are handled here. Its default misfire grace is one second, so a
run missed while the process was down would be dropped silently: every job gets the
configured ``[schedule] misfire_grace``. And re-adding jobs with ``replace_existing=True``
at start-up recomputes their next run from now and throws an overdue run away: the
scheduler starts paused, a job is added only when the store has none for the list, and
an existing one is rescheduled only when its schedule changed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from digest.config import Config
from digest.cron import parse_cron
from digest.errors import DigestError
from digest.schedule.job import STOP, fetch_bounces, run_list
from digest.state import Store
from digest.state.owner import owner_id
from digest.state.runs import JOB_TABLE

log = logging.getLogger("digest.schedule")

HEARTBEAT = dt.timedelta(seconds=15)
# Seconds between the main thread's looks for a signal's handler to run (run_until_stopped).
SIGNAL_CHECK = 0.2
# A scheduler that has not renewed its lock for this long is taken to be gone.
LOCK_STALE = dt.timedelta(minutes=2)


# The job that reads the bounce mailbox ("list:" ids are the lists').
BOUNCE_JOB = "bounces"


def job_id(list_name: str) -> str:
    return f"list:{list_name}"


@dataclass(frozen=True, slots=True)
class Planned:
    list_name: str
    next_run: dt.datetime | None
    timezone: str
    change: str


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SchedulerService:
    """Holds the lock, keeps the jobs in step with the config, and runs until told to stop."""

    def __init__(self, config: Config, store: Store, *, clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.owner = owner_id()
        self.grace = config.settings.schedule.misfire_grace
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename=JOB_TABLE)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": self.grace},
            timezone=dt.UTC,
        )
        self.scheduler.add_listener(self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)

    # -- start-up --------------------------------------------------------------------------

    def start(self) -> list[Planned]:
        """Take the lock, sync the jobs with the config while paused, then start running them."""
        holder = self.store.runs.acquire(self.owner, self.clock(), LOCK_STALE)
        if holder is not None:
            raise DigestError(
                f"another digest schedule is already running against this state database "
                f"({holder.owner}, since {holder.acquired_at:%Y-%m-%d %H:%M} UTC)",
                path=self.store.label,
                hint="an APScheduler job store must not be shared: stop the other one first",
            )
        STOP.clear()
        try:
            self.scheduler.start(paused=True)
            planned = self.sync_jobs()
            self.scheduler.resume()
        except BaseException:
            self.store.runs.release(self.owner)
            raise
        return planned

    def sync_jobs(self) -> list[Planned]:
        """One job per list; an unchanged job keeps its stored next run (overdue or not)."""
        wanted = {job_id(m.name): m for m in self.config.settings.lists}
        self._sync_bounce_job()
        for job in self.scheduler.get_jobs():
            if job.id == BOUNCE_JOB:
                continue
            if job.id not in wanted:
                self.scheduler.remove_job(job.id)
                log.info(
                    "removed the job of list %s: no longer in the config",
                    job.name,
                    extra={"event": "job_removed"},
                )
        planned = []
        for ident, mailing_list in wanted.items():
            timezone = self.config.list_timezone(mailing_list)
            trigger = parse_cron(mailing_list.schedule, timezone)
            args = [str(self.config.path), mailing_list.name]
            job = self.scheduler.get_job(ident)
            if job is None:
                job = self.scheduler.add_job(
                    run_list,
                    trigger,
                    id=ident,
                    name=mailing_list.name,
                    args=args,
                    misfire_grace_time=self.grace,
                    coalesce=True,
                    max_instances=1,
                )
                change = "new"
            elif str(job.trigger) != str(trigger):
                job = self.scheduler.reschedule_job(ident, trigger=trigger)
                change = "schedule changed"
            else:
                change = "unchanged"
            if job.args != tuple(args) or job.misfire_grace_time != self.grace:
                job = self.scheduler.modify_job(ident, args=args, misfire_grace_time=self.grace)
            planned.append(Planned(mailing_list.name, job.next_run_time, timezone, change))
        return planned

    def _sync_bounce_job(self) -> None:
        """`digest bounces fetch` every [bounces] interval while an IMAP mailbox is configured."""
        bounces = self.config.settings.bounces
        if not bounces.imap_host or not bounces.interval:
            if self.scheduler.get_job(BOUNCE_JOB) is not None:
                self.scheduler.remove_job(BOUNCE_JOB)
            return
        self.scheduler.add_job(
            fetch_bounces,
            IntervalTrigger(seconds=bounces.interval, timezone=dt.UTC),
            id=BOUNCE_JOB,
            name="bounces",
            args=[str(self.config.path)],
            replace_existing=True,  # nothing is lost by restarting its interval
            coalesce=True,
            max_instances=1,
            misfire_grace_time=bounces.interval,
        )

    # -- running ---------------------------------------------------------------------------

    def run_until_stopped(self, stop: threading.Event) -> None:
        """Renew the lock until ``stop`` is set (SIGTERM/SIGINT) or the lock is lost.

        Waits in short steps: Python runs a signal handler only in the main thread, and when
        the kernel hands the signal to another thread (a sending one) a long wait here would
        not wake for it, so a SIGTERM could take a whole heartbeat to stop the send.
        """
        beat = time.monotonic() + HEARTBEAT.total_seconds()
        while not stop.wait(SIGNAL_CHECK):
            if time.monotonic() < beat:
                continue
            beat = time.monotonic() + HEARTBEAT.total_seconds()
            if not self.store.runs.heartbeat(self.owner, self.clock()):
                log.error("the scheduler lock was taken over by another process; stopping")
                break

    def shutdown(self) -> None:
        """Stop taking new work; wait for a running send to finish and record its batch."""
        STOP.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.store.runs.release(self.owner)
        # No job runs any more: a send in this process after the scheduler (a test, an embedding
        # program) must not find itself told to stop.
        STOP.clear()

    # -- events ----------------------------------------------------------------------------

    def _on_event(self, event: JobEvent) -> None:
        if event.job_id == BOUNCE_JOB:
            self._on_bounce_event(event)
            return
        name = event.job_id.removeprefix("list:")
        if event.code == EVENT_JOB_SUBMITTED:
            when = ", ".join(self._local(name, t) for t in getattr(event, "scheduled_run_times", []))
            log.info(
                "job fired for list %s (scheduled %s)", name, when, extra={"event": "job_fired", "list": name}
            )
        elif event.code == EVENT_JOB_MISSED:
            scheduled = event.scheduled_run_time
            late, grace = _duration(self.clock() - scheduled), _duration(dt.timedelta(seconds=self.grace))
            detail = (
                f"missed the run scheduled for {self._local(name, scheduled)}: {late} late is beyond "
                f"[schedule] misfire_grace ({grace}), so it was not sent late "
                f"(run `digest send --list {name}` if it should still go out)"
            )
            log.warning("list %s %s", name, detail, extra={"event": "missed_run", "list": name})
            self.store.runs.missed(name, scheduled, detail, self.clock())
        elif event.code == EVENT_JOB_ERROR and isinstance(event, JobExecutionEvent):
            log.error(
                "list %s: the job raised %r", name, event.exception, extra={"event": "error", "list": name}
            )

    def _on_bounce_event(self, event: JobEvent) -> None:
        """The mailbox job is no list's run: a missed fetch is caught up by the next one, and
        nothing of it belongs in a list's job runs."""
        if event.code == EVENT_JOB_SUBMITTED:
            log.debug("fetching bounces", extra={"event": "bounces_fetch"})
        elif event.code == EVENT_JOB_ERROR and isinstance(event, JobExecutionEvent):
            log.error("fetching bounces raised %r", event.exception, extra={"event": "error"})

    def _local(self, list_name: str, moment: dt.datetime) -> str:
        try:
            zone = self.config.list_timezone(self.config.mailing_list(list_name))
        except DigestError:
            zone = "UTC"
        return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %Z}"


def _duration(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"
