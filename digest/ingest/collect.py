"""Fetch and parse every configured feed concurrently; one bad feed never stops the others."""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor

import httpx

from digest.config import Config, Feed
from digest.errors import FeedError
from digest.ingest.fetch import FeedCache, Limits, download, new_client, read_file
from digest.ingest.items import DeskRules, build_items
from digest.ingest.parse import parse_feed
from digest.model import FeedResult

log = logging.getLogger(__name__)


def collect(config: Config, *, now: dt.datetime, cache: FeedCache | None = None) -> tuple[FeedResult, ...]:
    """Every feed's items and warnings, in the order of the config."""
    settings = config.settings
    limits = Limits(settings.fetch.timeout, settings.fetch.max_bytes, settings.fetch.user_agent)
    rules = DeskRules(settings.desks.order, dict(settings.desks.categories))
    with new_client(limits) as client, ThreadPoolExecutor(settings.fetch.concurrency) as pool:
        futures = [
            pool.submit(_one_feed, config, feed, client, limits, rules, cache, now) for feed in settings.feeds
        ]
        return tuple(future.result() for future in futures)


def _one_feed(
    config: Config,
    feed: Feed,
    client: httpx.Client,
    limits: Limits,
    rules: DeskRules,
    cache: FeedCache | None,
    now: dt.datetime,
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
        return FeedResult(feed.label, "failed", warnings=(exc.message,))
    except Exception as exc:  # one feed's surprise must not take the edition down
        log.warning("feed %s could not be read", feed.label, exc_info=True)
        return FeedResult(
            feed.label, "failed", warnings=(f"could not be read ({type(exc).__name__}: {exc})",)
        )
    status = "not modified" if fetched.not_modified else "ok"
    return FeedResult(feed.label, status, tuple(items), tuple(parsed.warnings + item_warnings))
