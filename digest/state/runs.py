"""Scheduled runs: what each run of a list did, and the lock that keeps one scheduler per database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Engine, delete, insert, inspect, select, text, update

from digest.state import schema
from digest.state.owner import owner_is_dead
from digest.state.queries import insert_ignoring


class Result(StrEnum):
    """What a scheduled run did, stored as its value."""

    RUNNING = "running"
    SENT = "sent"
    EMPTY = "empty"
    MISSED = "missed"
    FAILED = "failed"
    STOPPED = "stopped"
    HELD = "held"  # stopped while waiting for a required feed, or held by the guardrail


RUNNING, SENT, EMPTY, MISSED = Result.RUNNING, Result.SENT, Result.EMPTY, Result.MISSED
FAILED, STOPPED, HELD = Result.FAILED, Result.STOPPED, Result.HELD
LOCK = "scheduler"
# APScheduler's job table (digest.schedule.service keeps its jobs there).
JOB_TABLE = "apscheduler_jobs"


@dataclass(frozen=True, slots=True)
class Run:
    list_name: str
    scheduled_for: dt.datetime | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    result: str
    detail: str


@dataclass(frozen=True, slots=True)
class Holder:
    owner: str
    acquired_at: dt.datetime
    heartbeat_at: dt.datetime


class Runs:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(self, list_name: str, scheduled_for: dt.datetime | None, now: dt.datetime) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    insert(schema.job_runs)
                    .values(
                        list_name=list_name,
                        scheduled_for=scheduled_for,
                        started_at=now,
                        result=RUNNING,
                        detail="",
                    )
                    .returning(schema.job_runs.c.id)
                ).scalar_one()
            )

    def finish(self, run_id: int, result: Result, detail: str, now: dt.datetime) -> None:
        table = schema.job_runs
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.id == run_id)
                .values(result=result, detail=detail[:2000], finished_at=now)
            )

    def missed(self, list_name: str, scheduled_for: dt.datetime, detail: str, now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.job_runs).values(
                    list_name=list_name,
                    scheduled_for=scheduled_for,
                    started_at=now,
                    finished_at=now,
                    result=MISSED,
                    detail=detail,
                )
            )

    def last(self, list_name: str) -> Run | None:
        table = schema.job_runs
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    table.c.list_name,
                    table.c.scheduled_for,
                    table.c.started_at,
                    table.c.finished_at,
                    table.c.result,
                    table.c.detail,
                )
                .where(table.c.list_name == list_name)
                .order_by(table.c.id.desc())
                .limit(1)
            ).first()
        return Run(*row) if row else None

    def scheduled(self) -> dict[str, dt.datetime | None]:
        """Job id → next run, as `digest schedule` stored them (APScheduler's own table)."""
        if not inspect(self.engine).has_table(JOB_TABLE):
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT id, next_run_time FROM {JOB_TABLE}")).all()
        return {ident: dt.datetime.fromtimestamp(when, dt.UTC) if when else None for ident, when in rows}

    # -- the scheduler lock ----------------------------------------------------------------

    def acquire(self, owner: str, now: dt.datetime, stale_after: dt.timedelta) -> Holder | None:
        """Take the lock; None when taken, else the live holder that keeps it.

        A holder that stopped heartbeating for ``stale_after``, or whose process on this
        machine is gone, is replaced.
        """
        table = schema.scheduler_lock
        with self.engine.begin() as conn:
            row = conn.execute(
                select(table.c.owner, table.c.acquired_at, table.c.heartbeat_at).where(table.c.name == LOCK)
            ).first()
            if row is not None:
                holder = Holder(*row)
                if not owner_is_dead(holder.owner) and now - holder.heartbeat_at < stale_after:
                    return holder
                conn.execute(delete(table).where(table.c.name == LOCK, table.c.owner == holder.owner))
            taken = conn.execute(
                insert_ignoring(conn, table)
                .values(name=LOCK, owner=owner, acquired_at=now, heartbeat_at=now)
                .returning(table.c.name)
            ).first()
        # Not taken: another scheduler got there in between (PostgreSQL).
        return None if taken else self.holder()

    def holder(self) -> Holder | None:
        table = schema.scheduler_lock
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.owner, table.c.acquired_at, table.c.heartbeat_at).where(table.c.name == LOCK)
            ).first()
        return Holder(*row) if row else None

    def heartbeat(self, owner: str, now: dt.datetime) -> bool:
        """Renew the lock; False when it was taken over (this scheduler must stop)."""
        table = schema.scheduler_lock
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(table).where(table.c.name == LOCK, table.c.owner == owner).values(heartbeat_at=now)
                ).rowcount
            )

    def release(self, owner: str) -> None:
        table = schema.scheduler_lock
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.name == LOCK, table.c.owner == owner))
