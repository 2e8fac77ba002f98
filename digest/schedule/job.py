"""The scheduled job: the same code as `digest send`, recorded in job_runs.

APScheduler pickles a reference to this function and its arguments (the config path and the
list name) into the job store, so it must stay importable under this name.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable

from digest.config import Config, load_config
from digest.cron import last_fire_time, parse_cron
from digest.errors import DigestError
from digest.send.run import Sender
from digest.send.summary import SendSummary
from digest.state import Store
from digest.state.runs import EMPTY, FAILED, HELD, SENT, STOPPED
from digest.statefile import open_store

log = logging.getLogger("digest.schedule")

# Set by SIGTERM/SIGINT: a running send finishes and records its batch, then stops.
STOP = threading.Event()

# Seconds between tries of a list held for a required feed (each try also retries the feeds
# for [fetch] retry_for).
HOLD_RETRY = 60.0


def run_list(config_path: str, list_name: str) -> str:
    """Send today's edition of ``list_name``; returns and records the result."""
    now = dt.datetime.now(dt.UTC)
    config = load_config(config_path)
    mailing_list = config.mailing_list(list_name)
    trigger = parse_cron(mailing_list.schedule, config.list_timezone(mailing_list))
    # The run this is: at most misfire_grace late (APScheduler drops later ones).
    grace = dt.timedelta(seconds=config.settings.schedule.misfire_grace + 60)
    scheduled_for = last_fire_time(trigger, now, grace)
    with open_store(config) as store:
        store.migrate()
        run_id = store.runs.start(list_name, scheduled_for, now)
        result, detail = FAILED, ""
        try:
            summary = _send_unless_held(config, list_name, store, now)
            if summary.guardrail:
                # No retry: only an editor's `digest lists resume` ends it; the next run tries again.
                result, detail = HELD, summary.guardrail.describe()
            elif summary.held:
                result, detail = HELD, summary.held.describe(config.list_timezone(mailing_list))
            elif summary.empty:
                result, detail = EMPTY, "empty edition: no new stories, nothing sent"
            else:
                detail = summary.describe()
                result = STOPPED if summary.stopped else FAILED if summary.failed else SENT
                if summary.failed:
                    detail += "; first failure: " + " ".join(summary.failures[0])
            if summary.missing_feeds:
                detail += "; went out without " + ", ".join(summary.missing_feeds) + " (caught up next time)"
        except DigestError as exc:
            detail = str(exc)
        except Exception as exc:  # recorded and logged; the scheduler keeps going
            detail = f"unexpected {type(exc).__name__}: {exc}"
            log.exception("list %s failed", list_name)
        finally:
            store.runs.finish(run_id, result, detail, dt.datetime.now(dt.UTC))
        level = logging.INFO if result in (SENT, EMPTY, STOPPED) else logging.ERROR
        log.log(
            level,
            "job done for list %s: %s (%s)",
            list_name,
            result,
            detail,
            extra={"event": "job_done", "list": list_name, "result": result, "detail": detail},
        )
        return result


def _send_unless_held(config: Config, list_name: str, store: Store, now: dt.datetime) -> SendSummary:
    """Send; while the list is held for a required feed, wait and try again until it is not.

    Every try keeps the edition's ``now`` (it is still this morning's edition); the hold ends
    when the feed reads again or at the scheduled time + misfire_grace, when it goes without.
    """
    while True:
        sender = Sender(config, list_name, store, now=now)
        summary = sender.send(stop=STOP, progress=_batch_logger(list_name))
        if summary.held is None or STOP.is_set():
            return summary
        log.warning(
            "list %s %s",
            list_name,
            summary.held.describe(sender.timezone),
            extra={"event": "list_held", "list": list_name, "feeds": list(summary.held.feeds)},
        )
        left = (summary.held.until - dt.datetime.now(dt.UTC)).total_seconds()
        STOP.wait(max(0.0, min(HOLD_RETRY, left)))


def _batch_logger(list_name: str) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        log.info(
            "batch sent for list %s: %d/%d",
            list_name,
            done,
            total,
            extra={"event": "batch_sent", "list": list_name, "done": done, "total": total},
        )

    return progress


def fetch_bounces(config_path: str) -> str:
    """The scheduled `digest bounces fetch`: read the [bounces] IMAP mailbox; an error is
    logged (the next run tries again), never raised into the scheduler."""
    from digest.bounces.run import describe, fetch_mailbox

    try:
        config = load_config(config_path)
        with open_store(config) as store:
            store.migrate()
            tally = fetch_mailbox(config, store, env=os.environ, now=dt.datetime.now(dt.UTC))
            lines = describe(tally, store)
    except Exception as exc:
        log.error("bounce fetch failed: %s", exc, extra={"event": "bounces_failed"})
        return "failed"
    for line in lines:
        log.info("bounces: %s", line, extra={"event": "bounces_fetched"})
    return "fetched"
