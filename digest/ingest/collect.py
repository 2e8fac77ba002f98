"""Fetch and parse every configured feed concurrently; one bad feed never stops the others."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import httpx

from digest.config import Config, Feed
from digest.errors import FeedError
from digest.ingest.fetch import FeedCache, Limits, download, new_client, read_file
from digest.ingest.items import DeskRules, build_items
from digest.ingest.parse import parse_feed
from digest.model import FAILED, NOT_MODIFIED, OK, FeedResult
from digest.retry import RetryPolicy

log = logging.getLogger(__name__)

# The first wait before an unreadable feed is tried again; it doubles up to the policy's cap.
FIRST_RETRY = 5.0


@dataclass(frozen=True, slots=True)
class Retry:
    """How long to keep trying feeds that failed for a reason that may pass (`[fetch] retry_for`).

    ``clock`` (unix time) and ``sleep`` are injected so tests can run a five-minute outage in
    no time; a sender passes its stop event's ``wait`` as ``sleep`` so SIGTERM cuts the wait short.
    """

    seconds: float
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], object] = time.sleep

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(FIRST_RETRY, clock=self.clock, sleep=self.sleep)


def collect(
    config: Config, *, now: dt.datetime, cache: FeedCache | None = None, retry: Retry | None = None
) -> tuple[FeedResult, ...]:
    """Every feed's items and warnings, in the order of the config.

    With ``retry``, feeds that failed for a reason that may pass are fetched again, with
    backoff, until they read or the time is up; the others are not waited for.
    """
    settings = config.settings
    limits = Limits(settings.fetch.timeout, settings.fetch.max_bytes, settings.fetch.user_agent)
    rules = DeskRules(settings.desks.order, dict(settings.desks.categories))
    with new_client(limits) as client, ThreadPoolExecutor(settings.fetch.concurrency) as pool:

        def fetch_all(feeds: list[Feed]) -> list[FeedResult]:
            return list(pool.map(partial(_one_feed, config, client, limits, rules, cache, now), feeds))

        results = fetch_all(list(settings.feeds))
        if retry is not None:
            _retry_failed(settings.feeds, results, fetch_all, retry)
        return tuple(results)


def _retry_failed(
    feeds: tuple[Feed, ...],
    results: list[FeedResult],
    fetch_all: Callable[[list[Feed]], list[FeedResult]],
    retry: Retry,
) -> None:
    policy = retry.policy
    start = policy.clock()
    waited = 0.0
    attempt = 0
    while True:
        waiting = [index for index, result in enumerate(results) if result.failed and result.transient]
        if not waiting:
            return
        # Time spent counts by the clock, and at least by the waits: a clock that stands still
        # (a test's, or a suspended machine's) cannot make the retries go on for ever.
        left = retry.seconds - max(policy.clock() - start, waited)
        if left <= 0:
            return
        # The last wait is cut to what is left, so the last try comes at the end of retry_for.
        delay = min(policy.backoff(attempt), left)
        waited += delay
        for index in waiting:
            log.warning(
                "feed %s: %s; trying again in %.0f s ([fetch] retry_for)",
                results[index].source,
                "; ".join(results[index].warnings),
                delay,
                extra={"event": "feed_retry", "feed": results[index].source, "attempt": attempt + 1},
            )
        policy.sleep(delay)
        for index, result in zip(waiting, fetch_all([feeds[index] for index in waiting]), strict=True):
            results[index] = result
            if not result.failed:
                log.info("feed %s read on attempt %d", result.source, attempt + 2)
        attempt += 1


def _one_feed(
    config: Config,
    client: httpx.Client,
    limits: Limits,
    rules: DeskRules,
    cache: FeedCache | None,
    now: dt.datetime,
    feed: Feed,
) -> FeedResult:
    try:
        if feed.is_remote:
            fetched = download(feed.source, client, limits, cache)
        else:
            fetched = read_file(config.resolve(feed.source), limits)
        parsed = parse_feed(fetched.body, fetched.headers)
        items, item_warnings = build_items(
            parsed.entries,
            feed=feed.label,
            default_desk=feed.desk,
            rules=rules,
            base_url=parsed.base_url or (feed.source if feed.is_remote else None),
            now=now,
        )
    except FeedError as exc:
        log.debug("feed %s %s", feed.label, exc.message)
        return FeedResult(feed.label, FAILED, warnings=(exc.message,), transient=exc.transient)
    except Exception as exc:  # one feed's surprise must not take the edition down
        log.warning("feed %s could not be read", feed.label, exc_info=True)
        return FeedResult(feed.label, FAILED, warnings=(f"could not be read ({type(exc).__name__}: {exc})",))
    status = NOT_MODIFIED if fetched.not_modified else OK
    return FeedResult(feed.label, status, tuple(items), tuple(parsed.warnings + item_warnings))
