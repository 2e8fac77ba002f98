"""Days as editors type them (``--date``, the preview's day field): YYYY-MM-DD, strictly."""

from __future__ import annotations

import datetime as dt
import re

_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def parse_day(text: str) -> dt.date:
    """``YYYY-MM-DD`` → a date; a ValueError says what is wrong with it in words an editor reads."""
    match = _DAY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text} is not a date: use YYYY-MM-DD")
    year, month, day = (int(part) for part in match.groups())
    # datetime's own message for a month ("month must be in 1..12") reads like code.
    if not 1 <= month <= 12:
        raise ValueError(f"{text} is not a date: month must be 1–12")
    try:
        return dt.date(year, month, day)
    except ValueError as exc:  # "day is out of range for month", "year 0 is out of range"
        raise ValueError(f"{text} is not a date: {exc}") from None
