"""Feed servers that hang, fail or flood: the edition is built from the other feeds, in time, with warnings.

Real commands (`digest build`, `digest send`) against a real HTTP server (tests/httpfeeds.py).
How one download gives up is tested in test_fetch.py; here the whole run must survive it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import STORIES, MakeProject
from tests.httpfeeds import FeedServer, Route, repeated
from tests.test_send import run

TIMEOUT = 1  # [fetch] timeout, seconds
FIFTY_MB = 50_000_000
ITEM = b"<item><title>" + b"x" * 65_000 + b"</title></item>"

# name → (how its server behaves, the warning the editor must get). [fetch] max_bytes is the
# default 10 MB.
BAD_FEEDS: dict[str, tuple[Route, str]] = {
    "Hanging desk": (Route(body=b"<rss/>", delay=30), f"timed out after {TIMEOUT} s ([fetch] timeout)"),
    "Stalling desk": (
        Route(body=b"<rss>" * 1000, chunked=True, chunk_delay=30),  # headers, then nothing
        f"timed out after {TIMEOUT} s ([fetch] timeout)",
    ),
    "Dripping desk": (
        # Each byte well within the timeout, the whole in 10 s (a finite drip: should the
        # deadline ever be lost, the test fails on its timing instead of hanging).
        Route(body=repeated(b" ", 50), chunk_delay=0.2),
        f"took longer than {TIMEOUT} s ([fetch] timeout)",
    ),
    "Broken desk": (
        Route(status=500, body=b"Internal Server Error"),
        "the server answered HTTP 500 Internal Server Error",
    ),
    "Flooding desk": (
        Route(body=repeated(ITEM, FIFTY_MB)),  # chunked: the size shows only while reading
        "is larger than the 10,000,000-byte limit ([fetch] max_bytes)",
    ),
    "Oversized desk": (
        Route(body=repeated(ITEM, FIFTY_MB), length=FIFTY_MB),
        "is 50,000,000 bytes, over the 10,000,000-byte limit ([fetch] max_bytes)",
    ),
}


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def feeds_project(make_project: MakeProject, server: FeedServer) -> Path:
    """The example project with its world feed served over HTTP, and a [fetch] timeout."""
    world = server.route(
        "/world.xml",
        Route(
            body=(STORIES / "world.xml").read_bytes(),
            headers={"Content-Type": "application/rss+xml; charset=utf-8"},
        ),
    )
    return make_project(
        replace={'source = "feeds/world.xml"': f'source = "{world}"\nname = "World desk"'},
        # No retries here: this is about one attempt's limits (test_feed_outage.py retries).
        extra=f"\n[fetch]\ntimeout = {TIMEOUT}\nconcurrency = 4\nretry_for = 0\n",
    )


def add_bad_feeds(project: Path, server: FeedServer) -> None:
    tables = "".join(
        f'\n[[feeds]]\nsource = "{server.route(f"/{n}.xml", route)}"\ndesk = "Europe"\nname = "{name}"\n'
        for n, (name, (route, _warning)) in enumerate(BAD_FEEDS.items())
    )
    project.write_text(project.read_text() + tables)


def story_ids(out: Path) -> list[str]:
    edition = json.loads((out / "daily.json").read_text())
    return [item["id"] for desk in edition["desks"] for item in desk["items"]]


def test_build_leaves_out_feeds_that_hang_fail_or_flood_within_the_timeout_and_warns(
    make_project: MakeProject, feed_server: FeedServer, tmp_path: Path
) -> None:
    project = feeds_project(make_project, feed_server)
    started = time.monotonic()
    healthy = run(project, "build", "--out", str(tmp_path / "healthy"))
    healthy_seconds = time.monotonic() - started
    assert healthy.exit_code == 0, healthy.stderr
    add_bad_feeds(project, feed_server)

    started = time.monotonic()
    faulty = run(project, "build", "--out", str(tmp_path / "faulty"))
    faulty_seconds = time.monotonic() - started

    assert faulty.exit_code == 0, faulty.output + faulty.stderr
    assert "Traceback" not in faulty.stderr and "error:" not in faulty.stderr
    # Exactly the stories of the healthy run: the good feeds, the HTTP one included, are all there.
    assert story_ids(tmp_path / "faulty") == story_ids(tmp_path / "healthy") != []
    assert healthy.stdout.splitlines()[0] == faulty.stdout.splitlines()[0]  # "daily: N stories in M desks"
    # One warning per bad feed, naming it and saying what went wrong, for the editor: on
    # stderr and in the edition's JSON.
    warnings = [line for line in faulty.stderr.splitlines() if line.startswith("warning: ")]
    assert sorted(warnings) == sorted(f"warning: feed {name}: {why}" for name, (_, why) in BAD_FEEDS.items())
    recorded = json.loads((tmp_path / "faulty" / "daily.json").read_text())["warnings"]
    assert sorted(recorded) == sorted(f"feed {name}: {why}" for name, (_, why) in BAD_FEEDS.items())
    # The bad feeds are fetched side by side and each costs at most its timeout: the run takes
    # about one timeout longer (not three, one after another), and never waits out a 30 s hang.
    assert faulty_seconds - healthy_seconds < TIMEOUT + 1.5, (healthy_seconds, faulty_seconds)
    # The floods were cut off instead of read to the end (what the server managed to write
    # includes what the kernel buffered for a reader that had already stopped).
    for n, name in enumerate(BAD_FEEDS):
        if name in ("Flooding desk", "Oversized desk"):
            assert feed_server.requests_for(f"/{n}.xml")[0].sent < FIFTY_MB / 2


def test_send_freezes_an_edition_of_the_healthy_feeds_within_the_timeout(
    make_project: MakeProject, feed_server: FeedServer, tmp_path: Path
) -> None:
    project = feeds_project(make_project, feed_server)
    healthy = run(project, "build", "--out", str(tmp_path / "healthy"))
    assert healthy.exit_code == 0, healthy.stderr
    add_bad_feeds(project, feed_server)

    started = time.monotonic()
    sent = run(project, "send", "--list", "daily", secret=None)

    assert sent.exit_code == 0, sent.output + sent.stderr
    assert time.monotonic() - started < TIMEOUT + 3
    assert "daily-2026-11-25: sent 1, skipped 0, suppressed 0, failed 0" in sent.output
    with sqlite3.connect(project.parent / "state" / "digest.sqlite3") as db:
        frozen = json.loads(db.execute("SELECT content FROM editions").fetchone()[0])
    assert frozen["list"] == "daily"
    frozen_ids = [item["id"] for desk in frozen["desks"] for item in desk["items"]]
    assert frozen_ids == story_ids(tmp_path / "healthy")
    # What went wrong is frozen with the edition, though `digest send` does not print it (below).
    assert sorted(frozen["warnings"]) == sorted(f"feed {name}: {why}" for name, (_, why) in BAD_FEEDS.items())


def test_send_warns_about_the_feeds_it_left_out(make_project: MakeProject, feed_server: FeedServer) -> None:
    project = feeds_project(make_project, feed_server)
    add_bad_feeds(project, feed_server)
    sent = run(project, "send", "--list", "daily", secret=None)
    assert sent.exit_code == 0, sent.output + sent.stderr
    for name, (_route, why) in BAD_FEEDS.items():
        assert f"feed {name}: {why}" in sent.stderr
