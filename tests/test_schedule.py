"""The scheduler with time under control: downtime, restarts, two schedulers, config changes."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import time_machine

from digest.config import Config, load_config
from digest.errors import DigestError
from digest.schedule.service import SchedulerService, job_id
from digest.statefile import open_store
from tests.conftest import MakeProject

# The example stories were written up to 06:00 in Kyiv on 25 November; the list goes at 07:00.
BEFORE = dt.datetime(2026, 11, 25, 4, 0, tzinfo=dt.UTC)  # 06:00 Kyiv
DUE = dt.datetime(2026, 11, 25, 5, 0, tzinfo=dt.UTC)  # 07:00 Kyiv


def outbox(config: Config) -> list[Path]:
    return sorted((config.root / "outbox").rglob("*.eml"))


@contextmanager
def running(config: Config) -> Iterator[SchedulerService]:
    with open_store(config).migrate() as store:
        service = SchedulerService(config, store)
        service.start()
        try:
            yield service
        finally:
            service.shutdown()


def wait_for_run(config: Config, timeout: float = 15):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    with open_store(config).migrate() as store:
        while time.monotonic() < deadline:
            last = store.runs.last("daily")
            if last is not None and last.result != "running":
                return last
            time.sleep(0.05)
    raise AssertionError("no run finished in time")


def next_run(config: Config) -> dt.datetime | None:
    with open_store(config).migrate() as store:
        return store.runs.scheduled()[job_id("daily")]


def test_a_run_missed_while_down_goes_out_on_restart_within_the_grace(config: Config) -> None:
    with time_machine.travel(BEFORE, tick=True), running(config):
        pass  # the job is stored with its next run at 07:00 Kyiv
    assert next_run(config) == DUE
    # Down from 06:00 to 08:00: the 07:00 run is an hour late, inside the 3-hour grace.
    with time_machine.travel(DUE + dt.timedelta(hours=1), tick=True), running(config):
        last = wait_for_run(config)
    assert last.result == "sent"
    assert last.scheduled_for == DUE
    assert len(outbox(config)) == 1
    assert next_run(config) == DUE + dt.timedelta(days=1)


def test_a_run_missed_beyond_the_grace_is_skipped_and_recorded(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    with time_machine.travel(BEFORE, tick=True), running(config):
        pass
    with time_machine.travel(DUE + dt.timedelta(hours=4), tick=True), running(config):
        last = wait_for_run(config)
    assert last.result == "missed"
    assert "beyond [schedule] misfire_grace (3h00m)" in last.detail
    assert "missed the run scheduled for 2026-11-25 07:00 EET" in caplog.text
    assert outbox(config) == []
    assert next_run(config) == DUE + dt.timedelta(days=1)


def test_several_missed_runs_become_one(config: Config) -> None:
    with time_machine.travel(BEFORE, tick=True), running(config):
        pass
    # Down for two days; back 30 minutes after the third missed 07:00.
    back = DUE + dt.timedelta(days=2, minutes=30)
    with time_machine.travel(back, tick=True), running(config):
        last = wait_for_run(config)
        # The three misses were coalesced: the job's next run is already tomorrow's, so no
        # second run of them is left to fire, however long the scheduler stays up.
        assert next_run(config) == DUE + dt.timedelta(days=3)
    with open_store(config).migrate() as store, store.engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT result, scheduled_for FROM job_runs")).all()
    assert len(rows) == 1
    assert last.result in ("sent", "empty") and last.scheduled_for == DUE + dt.timedelta(days=2)


def test_the_default_grace_would_have_dropped_it(make_project: MakeProject) -> None:
    # A grace of one second (APScheduler's default) makes the same downtime a missed run.
    config = load_config(make_project(extra="\n[schedule]\nmisfire_grace = 1\n"))
    with time_machine.travel(BEFORE, tick=True), running(config):
        pass
    with time_machine.travel(DUE + dt.timedelta(minutes=5), tick=True), running(config):
        last = wait_for_run(config)
    assert last.result == "missed"


def test_two_schedulers_on_one_state_database(config: Config) -> None:
    with running(config), open_store(config).migrate() as store:
        second = SchedulerService(config, store)
        with pytest.raises(DigestError, match="another digest schedule is already running"):
            second.start()
    with running(config):  # the first one released the lock when it stopped
        pass


def test_a_dead_schedulers_lock_is_taken_over(config: Config) -> None:
    with open_store(config).migrate() as store:
        assert (
            store.runs.acquire(
                "elsewhere:1:abc", dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), dt.timedelta(minutes=2)
            )
            is None
        )
    with running(config) as service, open_store(config).migrate() as store:  # stale: taken over
        holder = store.runs.holder()
        assert holder is not None and holder.owner == service.owner


def test_a_changed_schedule_takes_effect_at_the_next_start(make_project: MakeProject) -> None:
    path = make_project()
    with time_machine.travel(BEFORE, tick=True), running(load_config(path)):
        pass
    path.write_text(path.read_text().replace('schedule = "0 7 * * *"', 'schedule = "30 8 * * *"'))
    config = load_config(path)
    with time_machine.travel(BEFORE, tick=True), open_store(config).migrate() as store:
        service = SchedulerService(config, store)
        planned = service.start()
        again = service.sync_jobs()
        service.shutdown()
    assert [(p.change, p.next_run) for p in planned] == [
        ("schedule changed", dt.datetime(2026, 11, 25, 6, 30, tzinfo=dt.UTC))
    ]
    assert [p.change for p in again] == ["unchanged"]
    assert next_run(config) == dt.datetime(2026, 11, 25, 6, 30, tzinfo=dt.UTC)


def test_a_list_removed_from_the_config_loses_its_job(make_project: MakeProject) -> None:
    path = make_project(
        extra='\n[[lists]]\nname = "weekly"\nsubscribers = "subscribers/daily.csv"\nschedule = "0 9 * * mon"\n'
    )
    with running(load_config(path)):
        pass
    with open_store(load_config(path)).migrate() as store:
        assert set(store.runs.scheduled()) == {"list:daily", "list:weekly"}
    path.write_text(path.read_text().split('\n[[lists]]\nname = "weekly"')[0])
    config = load_config(path)
    with running(config):
        pass
    with open_store(config).migrate() as store:
        assert set(store.runs.scheduled()) == {"list:daily"}


def test_jobs_shows_next_and_last_runs(config: Config) -> None:
    from click.testing import CliRunner

    from digest.cli import cli

    def jobs() -> str:
        with time_machine.travel(DUE + dt.timedelta(minutes=30), tick=False):
            result = CliRunner().invoke(cli, ["--config", str(config.path), "jobs"])
        assert result.exit_code == 0, result.output
        return result.output

    before = jobs()
    assert "2026-11-26 07:00 EET (05:00 UTC), once `digest schedule` runs" in before
    assert "none yet" in before and "scheduler: not running" in before
    with time_machine.travel(BEFORE, tick=True), running(config):
        pass
    with time_machine.travel(DUE + dt.timedelta(minutes=10), tick=True), running(config):
        wait_for_run(config)
        during = jobs()
    assert "scheduler: running" in during
    after = jobs()
    row = next(line for line in after.splitlines() if line.startswith("daily"))
    assert "0 7 * * * Europe/Kyiv" in row
    assert "2026-11-26 07:00 EET (05:00 UTC)" in row  # next run, from the job store
    assert row.endswith("daily-2026-11-25, 2026-11-25 07:10 EET (05:10 UTC): sent 1, failed 0")
    assert (
        "daily: last scheduled run 2026-11-25 07:00 EET (05:00 UTC): sent — sent 1, skipped 0, suppressed 0, failed 0"
        in after
    )
    assert "scheduler: not running" in after


def test_the_bounce_mailbox_is_fetched_every_interval_when_configured(config: Config) -> None:
    from digest.schedule.service import BOUNCE_JOB

    path = config.path
    path.write_text(
        path.read_text()
        + '\n[bounces]\nimap_host = "imap.example.org"\nimap_user = "bounces"\ninterval = "10m"\n'
    )
    with running(load_config(path)) as service:
        job = service.scheduler.get_job(BOUNCE_JOB)
        assert job is not None and job.trigger.interval.total_seconds() == 600
        assert [p.list_name for p in service.sync_jobs()] == ["daily"]  # the lists' jobs are untouched
    with running(config) as service:  # without a mailbox, no job
        assert service.scheduler.get_job(BOUNCE_JOB) is None


def test_the_bounce_job_is_no_list_run(config: Config, caplog: pytest.LogCaptureFixture) -> None:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent

    from digest.schedule.service import BOUNCE_JOB

    with running(config) as service:
        missed = JobExecutionEvent(EVENT_JOB_MISSED, BOUNCE_JOB, "default", DUE)
        failed = JobExecutionEvent(
            EVENT_JOB_ERROR, BOUNCE_JOB, "default", DUE, exception=OSError("imap down")
        )
        service._on_event(missed)
        service._on_event(failed)
    with open_store(config).migrate() as store, store.engine.connect() as conn:
        from sqlalchemy import text

        names = conn.execute(text("SELECT list_name FROM job_runs")).scalars().all()
    assert "bounces" not in names  # a missed fetch is caught up by the next: no list's missed run
    assert "fetching bounces raised OSError('imap down')" in caplog.text
    assert "list bounces" not in caplog.text
