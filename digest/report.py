"""Plain-text tables for the terminal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from digest.edition.frozen import frozen_edition
from digest.model import FeedResult
from digest.state.ledger_types import FAILED, PENDING, SENDING, SENT

if TYPE_CHECKING:
    from digest.config import Config
    from digest.state import Store
    from digest.state.suppressions import Suppression


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is left ragged."""
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(headers[i])] + [len(row[i]) for row in rows]) for i in range(len(headers) - 1)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def feed_table(results: Iterable[FeedResult], zone: ZoneInfo) -> str:
    rows: list[list[str]] = []
    details: list[str] = []
    for result in results:
        newest = result.newest
        count = len(result.warnings)
        rows.append(
            [
                result.source,
                result.status,
                str(len(result.items)),
                f"{newest.astimezone(zone):%Y-%m-%d %H:%M}" if newest else "-",
                str(count) if count else "-",
            ]
        )
        details.extend(f"{result.source}: {warning}" for warning in result.warnings)
    text = table(["FEED", "STATUS", "ITEMS", "NEWEST", "WARNINGS"], rows)
    if details:
        text += "\n\nWarnings:\n" + "\n".join(f"- {detail}" for detail in details)
    return text


def format_readers(list_name: str, counts: Mapping[str, int]) -> str:
    """The list's readers in the state store by status: "daily readers: 3 (active 2, …)"."""
    from digest.state.readers import ReaderStatus

    total = sum(counts.values())
    each = ", ".join(f"{status.value} {counts.get(status.value, 0):,}" for status in ReaderStatus)
    return f"{list_name} readers in the state store: {total:,} ({each})"


def format_suppressions(list_name: str, counts: Mapping[str, int], shown: Sequence[Suppression]) -> str:
    """Who the state store keeps from a list, by reason, then each address (newest first)."""
    from digest.state.suppressions import ALL_LISTS, by_reason

    total = sum(counts.values())
    if not total:
        return f"{list_name} in the state store: nobody unsubscribed, bounced or complained"
    lines = [f"{list_name} in the state store: {total:,} will not be sent this list ({by_reason(counts)})"]
    for record in shown:
        scope = "every list" if record.list_name == ALL_LISTS else record.list_name
        lines.append(
            f"  {record.email}: {record.reason} ({scope}; {record.source}, {record.created_at:%Y-%m-%d})"
        )
    if total > len(shown):
        lines.append(f"  … and {total - len(shown):,} more not shown")
    return "\n".join(lines)


def both_times(moment: dt.datetime | None, zone: str) -> str:
    """A moment in the list's timezone and in UTC, e.g. "2026-11-25 07:00 EET (05:00 UTC)"."""
    if moment is None:
        return "-"
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M %Z} ({moment.astimezone(dt.UTC):%H:%M} UTC)"


def last_edition(store: Store | None, list_name: str, zone: str) -> str:
    """The list's latest edition, whoever sent it (`digest send`, cron or the scheduler)."""
    found = store.editions.last(list_name) if store else None
    if store is None or found is None:
        return "none yet"
    edition_id, frozen_at = found
    counts = store.ledger.counts(edition_id)
    sent, failed = counts.get(SENT, 0), counts.get(FAILED, 0)
    if not sent and not failed:
        return f"{edition_id}, frozen {both_times(frozen_at, zone)}: nothing sent yet" + _without(
            store, edition_id
        )
    text = f"{edition_id}, {both_times(store.ledger.last_sent(edition_id) or frozen_at, zone)}: "
    text += f"sent {sent:,}, failed {failed:,}"
    waiting = counts.get(PENDING, 0) + counts.get(SENDING, 0)
    return text + (f", {waiting:,} still to send" if waiting else "") + _without(store, edition_id)


def _without(store: Store, edition_id: str) -> str:
    """The feeds an edition went out without: their stories follow in a later edition."""
    frozen = frozen_edition(store.editions, edition_id)
    if frozen is None or not frozen.missing_feeds:
        return ""
    return f"; went out without {', '.join(frozen.missing_feeds)} (caught up once it reads)"


def jobs_report(config: Config, now: dt.datetime) -> str:
    """`digest jobs`: each list's schedule, next run and last edition, then the scheduler's runs.

    Only reads the state database: it never creates or upgrades one.
    """
    from digest.statefile import open_reader

    store = open_reader(config)
    try:
        return _jobs(config, store, now)
    finally:
        if store:
            store.close()


def _jobs(config: Config, store: Store | None, now: dt.datetime) -> str:
    """The report from ``store``, None when there is no state yet: nothing has run."""
    from digest.cron import parse_cron
    from digest.schedule.service import job_id

    stored = store.runs.scheduled() if store else {}
    rows, details = [], []
    for mailing_list in config.settings.lists:
        zone = config.list_timezone(mailing_list)
        ident = job_id(mailing_list.name)
        if ident in stored:
            upcoming = both_times(stored[ident], zone) if stored[ident] else "paused"
        else:
            would = parse_cron(mailing_list.schedule, zone).get_next_fire_time(None, now)
            upcoming = f"{both_times(would, zone)}, once `digest schedule` runs"
        edition = last_edition(store, mailing_list.name, zone)
        rows.append([mailing_list.name, f"{mailing_list.schedule} {zone}", upcoming, edition])
        details.extend(_results_and_hold(store, mailing_list.name))
        run = store.runs.last(mailing_list.name) if store else None
        if run:
            when = both_times(run.scheduled_for or run.started_at, zone)
            detail = f" — {run.detail}" if run.detail else ""
            details.append(f"{mailing_list.name}: last scheduled run {when}: {run.result}{detail}")
    text = table(["LIST", "SCHEDULE", "NEXT RUN", "LAST EDITION"], rows)
    if details:
        text += "\n\n" + "\n".join(details)
    holder = store.runs.holder() if store else None
    if holder:
        seen = f"{holder.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
        return text + f"\n\nscheduler: running ({holder.owner}, last seen {seen})"
    return text + "\n\nscheduler: not running"


def last_result(store: Store | None, list_name: str) -> str | None:
    """The one-line result of the list's latest edition that sent anything (jobs, the preview)."""
    from digest.results import edition_results
    from digest.results.format import one_line

    if store is None:
        return None
    for edition_id in store.editions.ids(list_name, limit=2):
        if store.ledger.last_sent(edition_id) is not None:
            return f"{edition_id}: {one_line(edition_results(store, edition_id))}"
    return None


def _results_and_hold(store: Store | None, list_name: str) -> list[str]:
    """`digest jobs` lines under the table: the last edition's results, and a guardrail hold."""
    from digest.results.guardrail import GuardrailHold

    lines = []
    result = last_result(store, list_name)
    if result:
        lines.append(f"{list_name}: results of {result}")
    hold = store.holds.get(list_name) if store else None
    if hold is not None and hold.active:
        lines.append(f"{list_name}: HELD: {GuardrailHold.of(hold).describe()}")
    return lines
