"""What `digest send`, `jobs` and `serve` print: each thing once, and only what is true."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import time_machine
from click.testing import CliRunner

from digest.cli import cli
from digest.schedule.job import run_list
from tests.conftest import NOW, MakeProject
from tests.test_cli_send import SECRET, free_port
from tests.test_send import run

EDITION = "daily-2026-11-25"


def with_bad_rows(make_project: MakeProject, bad: int) -> Path:
    project = make_project()
    rows = "".join(f"not-an-address-{n},Broken,,\n" for n in range(bad))
    (project.parent / "subscribers" / "daily.csv").write_text(
        f"email,name,desks,status\nreader@example.org,Reader,,\n{rows}"
    )
    return project


def test_each_subscriber_problem_is_printed_once(make_project: MakeProject) -> None:
    project = with_bad_rows(make_project, 2)
    for args in (["send", "--list", "daily", "--dry-run"], ["send", "--list", "daily"]):
        result = run(project, *args)
        assert result.exit_code == 0, result.stderr
        assert result.stderr.count("daily.csv:3: 'not-an-address-0' is not a valid email address") == 1
        assert result.stderr.count("daily.csv:4:") == 1


def test_past_fifty_subscriber_problems_one_line_counts_the_rest(make_project: MakeProject) -> None:
    project = with_bad_rows(make_project, 60)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if "is not a valid email address" in line]
    assert len(problems) == 50 and len(set(problems)) == 50
    more = [line for line in result.stderr.splitlines() if "more subscriber problems" in line]
    assert len(more) == 1 and more[0].startswith("warning: … and 10 more subscriber problems in ")
    assert f"{EDITION}: sent 1, skipped 0, suppressed 0, failed 0" in result.output


def test_subscriber_problems_are_json_events_with_log_format_json(make_project: MakeProject) -> None:
    project = with_bad_rows(make_project, 60)
    result = run(project, "--log-format", "json", "send", "--list", "daily")
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    problems = [e for e in events if e.get("event") == "subscriber_problem"]
    assert len(problems) == 50
    assert problems[0]["list"] == "daily" and problems[0]["line"] == 3
    assert problems[0]["path"].endswith("daily.csv")
    assert [e["message"] for e in events if e.get("event") == "subscriber_problems_omitted"] == [
        f"… and 10 more subscriber problems in {project.parent / 'subscribers' / 'daily.csv'} "
        "(`digest subscribers check` lists them)"
    ]


def test_a_second_send_says_it_sent_nothing_now(make_project: MakeProject) -> None:
    project = make_project()
    first = run(project, "send", "--list", "daily")
    assert f"{EDITION}: sent 1, skipped 0, suppressed 0, failed 0 (via outbox " in first.output
    second = run(project, "send", "--list", "daily")
    assert second.exit_code == 0, second.stderr
    assert (
        f"{EDITION}: sent 0 now (1 earlier), skipped 0, suppressed 0, failed 0 (via outbox " in second.output
    )


def jobs(project: Path) -> str:
    with time_machine.travel(NOW, tick=False):
        result = CliRunner().invoke(cli, ["--config", str(project), "jobs"])
    assert result.exit_code == 0, result.output + result.stderr
    return result.output


def test_jobs_creates_no_state_database(make_project: MakeProject) -> None:
    project = make_project()
    output = jobs(project)
    assert output.splitlines()[1].endswith("once `digest schedule` runs  none yet")
    assert "scheduler: not running" in output
    assert not (project.parent / "state").exists()


def test_jobs_shows_an_edition_sent_by_hand_and_the_scheduler_run_after_it(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project()
    assert run(project, "send", "--list", "daily").exit_code == 0
    output = jobs(project)
    row = output.splitlines()[1]
    assert row.endswith(f"{EDITION}, 2026-11-25 06:30 EET (04:30 UTC): sent 1, failed 0")
    assert "last scheduled run" not in output  # there was none

    # The scheduled run that day finds everyone sent, and records it as honestly.
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    with time_machine.travel(NOW.replace(hour=5, minute=1), tick=False):
        assert run_list(str(project), "daily") == "sent"
    output = jobs(project)
    assert output.splitlines()[1].endswith(f"{EDITION}, 2026-11-25 06:30 EET (04:30 UTC): sent 1, failed 0")
    assert (
        "daily: last scheduled run 2026-11-25 07:00 EET (05:00 UTC): sent — "
        "sent 0 now (1 earlier), skipped 0, suppressed 0, failed 0"
    ) in output


def start_serve(project: Path, port: int, *extra: str, stderr: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(project), *extra, "serve", "--port", str(port)],
        env={**os.environ, "DIGEST_SECRET": SECRET},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz")
            return process
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)


def answers_that_werkzeug_colours(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/no-such-page").status_code == 404  # yellow
    assert httpx.post(f"{base}/unsubscribe/forged", data={}).status_code == 400  # bold red


def test_serve_access_log_has_no_colour_codes_when_stderr_is_a_pipe(project: Path) -> None:
    for extra in ((), ("--log-format", "json")):
        port = free_port()
        process = start_serve(project, port, *extra, stderr=subprocess.PIPE)
        try:
            answers_that_werkzeug_colours(port)
        finally:
            process.terminate()
            _, err = process.communicate(timeout=10)
        log = err.decode()
        assert "\x1b[" not in log
        if extra:  # every line is JSON; the access log is in the messages
            log = "\n".join(json.loads(line)["message"] for line in log.splitlines())
        assert '"GET /no-such-page HTTP/1.1" 404' in log and '"POST /unsubscribe/… HTTP/1.1" 400' in log


def test_serve_json_log_on_a_terminal_has_no_colour_codes(project: Path) -> None:
    port = free_port()
    terminal, stderr = pty.openpty()
    process = start_serve(project, port, "--log-format", "json", stderr=stderr)
    os.close(stderr)
    try:
        answers_that_werkzeug_colours(port)
        log = b""
        deadline = time.monotonic() + 10
        while b" 400 " not in log and time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.2)[0]:
                log += os.read(terminal, 65536)
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.close(terminal)
    assert b'"GET /no-such-page HTTP/1.1\\" 404' in log and b" 400 " in log
    assert b"\x1b[" not in log
