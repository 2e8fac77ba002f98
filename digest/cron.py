"""Cron expressions as users write them (crontab), read with APScheduler 3.x.

APScheduler counts day-of-week from 0 = Monday while crontab counts from 0 = Sunday, and
``CronTrigger.from_crontab`` passes the field through unchanged; so the day-of-week field is
translated to names here, which both agree on.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

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


def parse_cron(expression: str, timezone: str) -> CronTrigger:
    """Return a trigger for a five-field crontab expression in ``timezone``.

    Raises ValueError with a readable message when the expression is not valid.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; a cron expression has five: "
            'minute hour day-of-month month day-of-week, e.g. "0 7 * * *"'
        )
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_days_of_week(day_of_week),
        timezone=ZoneInfo(timezone),
    )


def fire_time_on(trigger: CronTrigger, day: dt.date, timezone: str) -> dt.datetime | None:
    """The first time ``trigger`` fires on ``day`` (local to ``timezone``), or None."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=zone)
    fire = trigger.get_next_fire_time(None, start)
    if fire is None or fire.astimezone(zone).date() != day:
        return None
    return fire
