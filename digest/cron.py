"""Cron expressions as users write them (crontab), read with APScheduler 3.x.

APScheduler counts day-of-week from 0 = Monday while crontab counts from 0 = Sunday, and
``CronTrigger.from_crontab`` passes the field through unchanged; so the day-of-week field is
translated to names here, which both agree on.

Daylight saving: APScheduler's CronTrigger fires twice when a time repeats (autumn), and can
then return a time before ``now``. LocalCronTrigger does the calendar arithmetic on wall-clock
times and maps each to the first instant that shows it, so a list at 07:00 goes out at 07:00
local time on both sides of a change, a time that repeats runs once, and a time that does
not exist (spring) runs once, at the instant the clocks skip to.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day_number(token: str) -> int:
    token = token.strip().lower()
    if token in _DAY_NAMES:
        return _DAY_NAMES.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ValueError(f"{token!r} is not a day of the week (0-7 or sun-sat)")


def _days_of_week(field: str) -> str:
    """Translate a crontab day-of-week field into a list of day names."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} must be at least 1")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-", 1)
            first, last = _day_number(low), _day_number(high)
            if high.strip() == "7":
                last = 7
        else:
            first = last = _day_number(span)
        if last < first:
            last += 7
        days.update(day % 7 for day in range(first, last + 1, step))
    # APScheduler's week starts on Monday; order the names the same way for readability.
    ordered = sorted(days, key=lambda day: (day + 6) % 7)
    return ",".join(_DAY_NAMES[day] for day in ordered)


class LocalCronTrigger(BaseTrigger):
    """A cron schedule in a timezone that fires once per matching wall-clock time."""

    def __init__(self, expression: str, timezone: str) -> None:
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise ValueError(
                f"{expression!r} has {len(fields)} fields; a cron expression has five: "
                'minute hour day-of-month month day-of-week, e.g. "0 7 * * *" '
                "(or six, with seconds first)"
            )
        second = fields.pop(0) if len(fields) == 6 else "0"
        minute, hour, day, month, day_of_week = fields
        self.expression = expression
        self.timezone = ZoneInfo(timezone)
        # Wall-clock arithmetic: local times handled as if they were UTC, where no day has a gap.
        self._wall = CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_days_of_week(day_of_week),
            timezone=dt.UTC,
        )

    def _wall_time(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(self.timezone).replace(tzinfo=dt.UTC)

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        """The first fire time after ``previous_fire_time`` (which may be before ``now``, so
        missed runs can be counted), or, without one, the first at or after ``now``."""
        start = self._wall_time(now)
        if previous_fire_time is not None:
            start = min(start, self._wall_time(previous_fire_time) + dt.timedelta(seconds=1))
        wall: dt.datetime | None = self._wall.get_next_fire_time(None, start)
        while wall is not None:
            # fold=0: the first instant showing this wall time; in a gap, the instant after it.
            fire: dt.datetime = wall.replace(tzinfo=self.timezone, fold=0)
            if previous_fire_time is not None:
                if fire > previous_fire_time:
                    return fire
            elif fire >= now.replace(microsecond=0):
                return fire
            wall = self._wall.get_next_fire_time(None, wall + dt.timedelta(seconds=1))
        return None

    def __str__(self) -> str:
        return f"cron[{self.expression!r}, {self.timezone.key}]"

    def __repr__(self) -> str:
        return f"<LocalCronTrigger {self.expression!r} {self.timezone.key}>"


def parse_cron(expression: str, timezone: str) -> LocalCronTrigger:
    """Return a trigger for a crontab expression in ``timezone``.

    Raises ValueError with a readable message when the expression is not valid.
    """
    return LocalCronTrigger(expression, timezone)


def fire_time_on(trigger: LocalCronTrigger, day: dt.date, timezone: str) -> dt.datetime | None:
    """The first time ``trigger`` fires on ``day`` (local to ``timezone``), or None."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=zone)
    fire = trigger.get_next_fire_time(None, start)
    if fire is None or fire.astimezone(zone).date() != day:
        return None
    return fire


def last_fire_time(trigger: LocalCronTrigger, now: dt.datetime, lookback: dt.timedelta) -> dt.datetime | None:
    """The latest time ``trigger`` fired at or before ``now``, looking back at most ``lookback``."""
    found = None
    fire = trigger.get_next_fire_time(None, now - lookback)
    while fire is not None and fire <= now:
        found = fire
        fire = trigger.get_next_fire_time(fire, now)
    return found
