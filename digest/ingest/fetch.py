"""Get a feed's bytes from a file or an http(s) URL, within a time limit and a size cap.

HTTP fetches are conditional (If-None-Match / If-Modified-Since from the last answer), so a
feed that has not changed costs one small request; its body then comes from the cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from digest.errors import FeedError
from digest.model import CachedFeed


@dataclass(frozen=True, slots=True)
class Fetched:
    """A feed's raw bytes and the HTTP headers that help decode them."""

    body: bytes
    headers: dict[str, str]
    not_modified: bool = False


class FeedCache(Protocol):
    """Where validators and bodies of remote feeds are remembered between runs."""

    def cached_feed(self, source: str) -> CachedFeed | None: ...

    def remember_feed(self, source: str, body: bytes, headers: dict[str, str]) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float
    max_bytes: int
    user_agent: str


def read_file(path: Path, limits: Limits) -> Fetched:
    """A local feed file, refused when it is larger than the cap."""
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise FeedError(
                f"is {size:,} bytes, over the {limits.max_bytes:,}-byte limit ([fetch] max_bytes)"
            )
        return Fetched(path.read_bytes(), {})
    except OSError as exc:
        # A file the newsroom's system is rewriting may be readable a moment later.
        raise FeedError(f"cannot read the file: {exc.strerror or exc}", transient=True) from None


# Answers that say "not now" rather than "not here": the feed is tried again before it is left out.
_TRANSIENT_STATUS = frozenset({408, 425, 429})

_KEEP_HEADERS = ("content-type", "content-location", "content-language", "etag", "last-modified")


def download(url: str, client: httpx.Client, limits: Limits, cache: FeedCache | None) -> Fetched:
    """An http(s) feed, honouring the deadline and size cap, conditional on the cached copy."""
    cached = cache.cached_feed(url) if cache else None
    headers = {"User-Agent": limits.user_agent, "Accept": _ACCEPT}
    if cached:
        if etag := cached.headers.get("etag"):
            headers["If-None-Match"] = etag
        if modified := cached.headers.get("last-modified"):
            headers["If-Modified-Since"] = modified
    deadline = time.monotonic() + limits.timeout
    try:
        with client.stream("GET", url, headers=headers, timeout=limits.timeout) as response:
            if response.status_code == 304 and cached:
                return Fetched(cached.body, cached.headers, not_modified=True)
            if response.status_code != 200:
                reason = response.reason_phrase or ""
                raise FeedError(
                    f"the server answered HTTP {response.status_code} {reason}".rstrip(),
                    transient=response.status_code in _TRANSIENT_STATUS or response.status_code >= 500,
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise FeedError(_too_big(limits, declared=int(declared)))
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > limits.max_bytes:
                    raise FeedError(_too_big(limits))
                if time.monotonic() > deadline:
                    raise FeedError(
                        f"took longer than {limits.timeout:g} s ([fetch] timeout)", transient=True
                    )
                chunks.append(chunk)
            kept = {name: response.headers[name] for name in _KEEP_HEADERS if name in response.headers}
            kept.setdefault("content-location", str(response.url))
    except httpx.TimeoutException:
        raise FeedError(f"timed out after {limits.timeout:g} s ([fetch] timeout)", transient=True) from None
    except httpx.HTTPError as exc:
        raise FeedError(f"could not be fetched: {exc}", transient=True) from None
    body = b"".join(chunks)
    if cache and ("etag" in kept or "last-modified" in kept):
        cache.remember_feed(url, body, kept)
    return Fetched(body, kept)


def _too_big(limits: Limits, declared: int | None = None) -> str:
    size = f"{declared:,} bytes, over" if declared else "larger than"
    return f"is {size} the {limits.max_bytes:,}-byte limit ([fetch] max_bytes)"


_ACCEPT = (
    "application/feed+json, application/atom+xml, application/rss+xml, application/rdf+xml, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)


def new_client(limits: Limits) -> httpx.Client:
    """One client for a run: connections reused, redirects followed (http and https only)."""
    return httpx.Client(
        follow_redirects=True,
        max_redirects=5,
        timeout=httpx.Timeout(limits.timeout),
        headers={"User-Agent": limits.user_agent},
    )
