"""Cron schedules as users write them, through daylight-saving changes."""

from __future__ import annotations

import datetime as dt
import pickle
from zoneinfo import ZoneInfo

import pytest

from digest.cron import _days_of_week, fire_time_on, parse_cron


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("5-0", "fri,sat,sun"),  # crontab's wrap-around
        ("*/2", "tue,thu,sat,sun"),  # 0,2,4,6 in crontab counting
        ("sat,sun", "sat,sun"),
        ("mon-wed,fri", "mon,tue,wed,fri"),
    ],
)
def test_day_of_week_uses_crontab_counting(field: str, names: str) -> None:
    assert _days_of_week(field) == names


@pytest.mark.parametrize("expression", ["0 7 * *", "0 7 * * * * *", "61 7 * * *", "0 7 * * 8", "0 7 * * */0"])
def test_invalid_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        parse_cron(expression, "UTC")


def fires(expression: str, zone: str, start: dt.datetime, count: int) -> list[dt.datetime]:
    trigger = parse_cron(expression, zone)
    times: list[dt.datetime] = []
    previous, now = None, start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        times.append(fire)
        previous, now = fire, fire + dt.timedelta(seconds=1)
    return times


CHANGES = [
    # zone, a day before the change (local), the change day
    ("Europe/Kyiv", dt.datetime(2026, 3, 27, 12), dt.date(2026, 3, 29)),  # spring forward
    ("Europe/Kyiv", dt.datetime(2026, 10, 23, 12), dt.date(2026, 10, 25)),  # fall back
    ("America/New_York", dt.datetime(2026, 3, 6, 12), dt.date(2026, 3, 8)),
    ("America/New_York", dt.datetime(2026, 10, 30, 12), dt.date(2026, 11, 1)),
]


@pytest.mark.parametrize(("zone", "start", "change"), CHANGES)
def test_seven_oclock_stays_seven_oclock_across_a_change(
    zone: str, start: dt.datetime, change: dt.date
) -> None:
    local = ZoneInfo(zone)
    times = fires("0 7 * * *", zone, start.replace(tzinfo=local), 5)
    assert [t.astimezone(local).strftime("%H:%M") for t in times] == ["07:00"] * 5
    days = [t.astimezone(local).date() for t in times]
    assert days == [days[0] + dt.timedelta(days=n) for n in range(5)]  # once a day, none skipped
    offsets = {t.astimezone(local).utcoffset() for t in times}
    assert len(offsets) == 2  # the UTC time moved with the clocks
    assert change in days


@pytest.mark.parametrize(("zone", "start", "change"), CHANGES)
def test_a_time_inside_the_changed_hour_runs_exactly_once_that_day(
    zone: str, start: dt.datetime, change: dt.date
) -> None:
    local = ZoneInfo(zone)
    # 03:30 in Kyiv and 01:30/02:30 in New York fall in the skipped or repeated hour.
    expression = (
        "30 3 * * *" if zone == "Europe/Kyiv" else ("30 2 * * *" if change.month == 3 else "30 1 * * *")
    )
    times = fires(expression, zone, start.replace(tzinfo=local), 5)
    per_day: dict[dt.date, int] = {}
    for fire in times:
        day = fire.astimezone(local).date()
        per_day[day] = per_day.get(day, 0) + 1
    assert per_day[change] == 1
    assert all(count == 1 for count in per_day.values())
    assert times == sorted(times) and len(set(times)) == 5


def test_starting_inside_the_repeated_hour_does_not_fire_again() -> None:
    # 01:10 UTC on 25 October is 03:10 in Kyiv for the second time; 03:30 has already run.
    trigger = parse_cron("30 3 * * *", "Europe/Kyiv")
    fire = trigger.get_next_fire_time(None, dt.datetime(2026, 10, 25, 1, 10, tzinfo=dt.UTC))
    assert fire == dt.datetime(2026, 10, 26, 1, 30, tzinfo=dt.UTC)


def test_missed_runs_are_counted_from_the_previous_fire_time() -> None:
    # APScheduler asks for the next time after the last one, even if that is before now.
    trigger = parse_cron("0 7 * * *", "Europe/Kyiv")
    previous = dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.UTC)
    now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
    assert trigger.get_next_fire_time(previous, now) == dt.datetime(2026, 11, 21, 5, 0, tzinfo=dt.UTC)


def test_seconds_field_and_pickling() -> None:
    trigger = parse_cron("*/15 * * * * *", "UTC")
    now = dt.datetime(2026, 11, 25, 12, 0, 1, tzinfo=dt.UTC)
    assert trigger.get_next_fire_time(None, now) == dt.datetime(2026, 11, 25, 12, 0, 15, tzinfo=dt.UTC)
    copy = pickle.loads(pickle.dumps(trigger))
    assert str(copy) == str(trigger) and copy.get_next_fire_time(None, now) == trigger.get_next_fire_time(
        None, now
    )


def test_fire_time_on_a_day() -> None:
    weekdays = parse_cron("0 7 * * 1-5", "Europe/Kyiv")
    assert fire_time_on(weekdays, dt.date(2026, 11, 27), "Europe/Kyiv") == dt.datetime(
        2026, 11, 27, 5, 0, tzinfo=dt.UTC
    )
    assert fire_time_on(weekdays, dt.date(2026, 11, 28), "Europe/Kyiv") is None
