"""Fetching feeds over real HTTP (a local server) and from files, and collect() end to end."""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.config import load_config
from digest.errors import FeedError
from digest.ingest.collect import collect
from digest.ingest.fetch import CachedFeed, Fetched, Limits, download, new_client, read_file
from tests.conftest import BASE_CONFIG, MakeProject
from tests.httpfeeds import FeedServer, Request, Route, forever, repeated

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
NOW = dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC)
AGENT = "digest-tests/1.0"
RSS = (FEEDS / "rss20-basic.xml").read_bytes()
RSS_TITLES = [
    "Drones hit two substations near Kharkiv overnight",
    "Ottawa and Washington agree on a shared Arctic patrol plan",
    "Grain exporters price in higher Black Sea insurance",
    "Lisbon opens its first night-train link to Madrid",
]
ETAG = '"ledger-v1"'
LAST_MODIFIED = email.utils.format_datetime(dt.datetime(2026, 11, 25, 4, 0, tzinfo=dt.UTC), usegmt=True)


class MemoryCache:
    """The FeedCache protocol, in a dict."""

    def __init__(self) -> None:
        self.feeds: dict[str, CachedFeed] = {}

    def cached_feed(self, source: str) -> CachedFeed | None:
        return self.feeds.get(source)

    def remember_feed(self, source: str, body: bytes, headers: dict[str, str]) -> None:
        self.feeds[source] = CachedFeed(body, dict(headers))


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def limits(timeout: float = 5.0, max_bytes: int = 1_000_000) -> Limits:
    return Limits(timeout=timeout, max_bytes=max_bytes, user_agent=AGENT)


def fetch(url: str, lim: Limits, cache: MemoryCache | None = None) -> Fetched:
    with new_client(lim) as client:
        return download(url, client, lim, cache)


def conditional(request: Request) -> Route:
    """A feed server that honours validators, as a well-behaved CMS does."""
    if request.headers.get("if-none-match") == ETAG:
        return Route(status=304, headers={"ETag": ETAG})
    return Route(
        body=RSS,
        headers={
            "Content-Type": "application/rss+xml; charset=utf-8",
            "ETag": ETAG,
            "Last-Modified": LAST_MODIFIED,
        },
    )


# --- download -------------------------------------------------------------------------------


def test_a_200_is_returned_and_remembered_then_a_304_answers_from_the_cache(server: FeedServer) -> None:
    url = server.route("/world.xml", conditional)
    cache = MemoryCache()

    first = fetch(url, limits(), cache)

    assert first.body == RSS
    assert not first.not_modified
    assert first.headers["etag"] == ETAG
    assert first.headers["last-modified"] == LAST_MODIFIED
    assert first.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert first.headers["content-location"] == url
    assert cache.feeds[url].body == RSS
    assert cache.feeds[url].headers["etag"] == ETAG
    sent = server.requests_for("/world.xml")[0].headers
    assert sent["user-agent"] == AGENT
    assert "application/rss+xml" in sent["accept"]
    assert "if-none-match" not in sent and "if-modified-since" not in sent

    second = fetch(url, limits(), cache)

    assert second.not_modified
    assert second.body == RSS
    assert second.headers["etag"] == ETAG
    conditional_request = server.requests_for("/world.xml")[1].headers
    assert conditional_request["if-none-match"] == ETAG
    assert conditional_request["if-modified-since"] == LAST_MODIFIED
    assert server.requests_for("/world.xml")[1].sent == 0


def test_a_feed_without_validators_is_not_cached(server: FeedServer) -> None:
    url = server.route("/plain.xml", Route(body=RSS))
    cache = MemoryCache()
    assert fetch(url, limits(), cache).body == RSS
    assert cache.feeds == {}


def test_a_304_without_a_cached_copy_is_an_error(server: FeedServer) -> None:
    url = server.route("/odd.xml", Route(status=304))
    with pytest.raises(FeedError, match="304"):
        fetch(url, limits(), MemoryCache())


def test_redirects_are_followed_and_the_final_url_is_the_base(server: FeedServer) -> None:
    final = server.route("/feeds/world.xml", Route(body=RSS))
    url = server.route("/old-feed", Route(status=301, headers={"Location": "/feeds/world.xml"}))
    fetched = fetch(url, limits())
    assert fetched.body == RSS
    assert fetched.headers["content-location"] == final


@pytest.mark.parametrize("status", [500, 503, 404, 403])
def test_an_error_status_is_a_feed_error_naming_it(server: FeedServer, status: int) -> None:
    url = server.route("/broken.xml", Route(status=status, body=b"<html>oops</html>"))
    with pytest.raises(FeedError) as caught:
        fetch(url, limits())
    assert f"HTTP {status}" in caught.value.message


def test_nothing_listening_is_a_feed_error(server: FeedServer) -> None:
    url = server.url("/feed.xml")
    server.stop()
    with pytest.raises(FeedError, match="could not be fetched"):
        fetch(url, limits(timeout=2))


def test_a_server_that_hangs_times_out(server: FeedServer) -> None:
    url = server.route("/hang.xml", Route(body=RSS, delay=30))
    started = time.monotonic()
    with pytest.raises(FeedError) as caught:
        fetch(url, limits(timeout=0.5))
    elapsed = time.monotonic() - started
    assert "timed out" in caught.value.message or "took longer" in caught.value.message
    assert "0.5 s" in caught.value.message
    assert 0.4 < elapsed < 3


def test_a_slow_drip_is_cut_off_at_the_deadline(server: FeedServer) -> None:
    # Each byte comes well within the read timeout; only the overall deadline stops it.
    url = server.route("/drip.xml", Route(body=forever(b"<"), chunk_delay=0.2))
    started = time.monotonic()
    with pytest.raises(FeedError) as caught:
        fetch(url, limits(timeout=0.5))
    elapsed = time.monotonic() - started
    assert "took longer than 0.5 s" in caught.value.message or "timed out" in caught.value.message
    assert elapsed < 2
    assert server.requests_for("/drip.xml")[0].sent >= 2  # it was dripping, not hanging


TWENTY_MB = 20_000_000


@pytest.mark.parametrize("declared", [True, False], ids=["with-content-length", "chunked"])
def test_a_body_over_max_bytes_is_refused(server: FeedServer, declared: bool) -> None:
    body = repeated(b"<item>" + b"x" * 65_530, TWENTY_MB)
    url = server.route("/huge.xml", Route(body=body, length=TWENTY_MB if declared else None))
    started = time.monotonic()
    with pytest.raises(FeedError) as caught:
        fetch(url, limits(max_bytes=1_000_000))
    assert "the 1,000,000-byte limit ([fetch] max_bytes)" in caught.value.message
    if declared:
        assert "20,000,000 bytes" in caught.value.message
    assert time.monotonic() - started < 5
    # It gave up early instead of reading all 20 MB.
    assert server.requests_for("/huge.xml")[0].sent < TWENTY_MB


def test_a_body_just_under_max_bytes_is_read(server: FeedServer) -> None:
    url = server.route("/big.xml", Route(body=repeated(b"y" * 4096, 999_999)))
    assert len(fetch(url, limits(max_bytes=1_000_000)).body) == 999_999


# --- read_file ------------------------------------------------------------------------------


def test_read_file_reads_a_feed_under_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "world.xml"
    path.write_bytes(RSS)
    fetched = read_file(path, limits(max_bytes=len(RSS)))
    assert fetched.body == RSS
    assert not fetched.not_modified


def test_read_file_refuses_a_file_over_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    with path.open("wb") as out:
        out.truncate(2_000_001)  # sparse: the size is what counts
    with pytest.raises(FeedError) as caught:
        read_file(path, limits(max_bytes=2_000_000))
    assert "2,000,001 bytes, over the 2,000,000-byte limit" in caught.value.message


def test_read_file_of_a_missing_file_is_a_feed_error(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="cannot read the file"):
        read_file(tmp_path / "missing.xml", limits())


# --- collect ----------------------------------------------------------------------------------


def project_with_feeds(make_project: MakeProject, feeds: str, timeout: float = 1) -> Path:
    head, rest = BASE_CONFIG.split("[[feeds]]", 1)
    tail = rest[rest.index("[[lists]]") :]
    fetch_table = f"[fetch]\ntimeout = {timeout}\nmax_bytes = 1_000_000\nconcurrency = 4\n\n"
    path = make_project(text=head + feeds + "\n" + fetch_table + tail)
    (path.parent / "feeds" / "good.xml").write_bytes(RSS)
    return path


def test_collect_keeps_the_good_feed_and_reports_the_bad_ones(
    server: FeedServer, make_project: MakeProject
) -> None:
    broken = server.route("/broken.xml", Route(status=500, body=b"Internal Server Error"))
    hanging = server.route("/hanging.xml", Route(body=RSS, delay=30))
    config = load_config(
        project_with_feeds(
            make_project,
            f"""
[[feeds]]
source = "feeds/good.xml"
desk = "Europe"
name = "Good file"

[[feeds]]
source = "{broken}"
desk = "Business"
name = "Broken server"

[[feeds]]
source = "{hanging}"
desk = "Culture"
""",
        )
    )

    started = time.monotonic()
    results = collect(config, now=NOW)
    elapsed = time.monotonic() - started

    good, bad, slow = results
    assert (good.source, good.status, good.warnings) == ("Good file", "ok", ())
    assert [item.title for item in good.items] == RSS_TITLES
    assert {item.feed for item in good.items} == {"Good file"}
    assert [item.desk for item in good.items] == ["Ukraine", "North America", "Business", "Europe"]

    assert (bad.source, bad.status, bad.items) == ("Broken server", "failed", ())
    assert len(bad.warnings) == 1 and "HTTP 500" in bad.warnings[0]

    assert (slow.source, slow.status, slow.items) == (hanging, "failed", ())  # unnamed: labelled by URL
    assert len(slow.warnings) == 1 and "timed out after 1 s" in slow.warnings[0]

    # The hanging feed costs its timeout once, not on top of the others.
    assert elapsed < 3


def test_collect_twice_with_a_cache_reads_an_unchanged_feed_from_it(
    server: FeedServer, make_project: MakeProject
) -> None:
    url = server.route("/world.xml", conditional)
    config = load_config(
        project_with_feeds(make_project, f'\n[[feeds]]\nsource = "{url}"\ndesk = "Europe"\nname = "World"\n')
    )
    cache = MemoryCache()

    (first,) = collect(config, now=NOW, cache=cache)
    (second,) = collect(config, now=NOW, cache=cache)

    assert first.status == "ok"
    assert second.status == "not modified"
    assert [item.title for item in second.items] == [item.title for item in first.items] == RSS_TITLES
    assert server.requests_for("/world.xml")[1].headers["if-none-match"] == ETAG
    assert server.requests_for("/world.xml")[1].headers["user-agent"] == config.settings.fetch.user_agent
