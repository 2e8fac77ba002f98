"""An edition's date and id follow its list's timezone, not the machine's or UTC.

At 23:30 UTC on 25 November it is already 01:30 on the 26th in Kyiv, and still the
afternoon of the 25th in Los Angeles, where this test sets the machine's clock.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from digest.config import Config
from digest.edition import build_edition, edition_window
from digest.ingest.collect import collect
from digest.send.run import edition_id_for
from digest.statefile import open_store

# 01:30 on 26 November in Kyiv (UTC+2); 15:30 on the 25th in Los Angeles.
LATE = dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.UTC)
KYIV_DAY = dt.date(2026, 11, 26)


@pytest.fixture(autouse=True)
def machine_in_los_angeles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    assert LATE.astimezone().date() == dt.date(2026, 11, 25)  # the machine's date differs
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_edition_id_follows_the_lists_timezone(config: Config) -> None:
    assert edition_id_for(config, config.mailing_list("daily"), LATE) == ("daily-2026-11-26", KYIV_DAY)
    # Just before midnight in Kyiv it is still the 25th there.
    before = dt.datetime(2026, 11, 25, 21, 59, tzinfo=dt.UTC)
    assert edition_id_for(config, config.mailing_list("daily"), before) == (
        "daily-2026-11-25",
        dt.date(2026, 11, 25),
    )


def test_the_editions_date_follows_the_lists_timezone_without_a_store(config: Config) -> None:
    edition = build_edition(config, "daily", now=LATE, feeds=collect(config, now=LATE))
    assert (edition.date, edition.id, edition.timezone) == (KYIV_DAY, "daily-2026-11-26", "Europe/Kyiv")


def test_the_editions_date_follows_the_lists_timezone_with_a_store(config: Config) -> None:
    with open_store(config).migrate() as store:
        edition = build_edition(config, "daily", now=LATE, store=store, feeds=collect(config, now=LATE))
    assert (edition.date, edition.id) == (KYIV_DAY, "daily-2026-11-26")
    assert edition.id == edition_id_for(config, config.mailing_list("daily"), LATE)[0]


def test_a_dated_window_is_kept_in_utc_not_the_machines_zone(config: Config) -> None:
    # 07:00 in Kyiv on the 26th; written to the state store and the archive as UTC.
    window = edition_window(config, config.mailing_list("daily"), now=LATE, date=KYIV_DAY)
    assert window.end.isoformat() == "2026-11-26T05:00:00+00:00"
    assert window.start.isoformat() == "2026-11-25T05:00:00+00:00"
