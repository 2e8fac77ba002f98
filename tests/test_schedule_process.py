"""`digest schedule` as a real process, sending to a real SMTP server."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.conftest import MakeProject
from tests.smtpd import SmtpServer
from tests.test_send import CROWD, SECRET, fresh_feeds, server, smtp_project, wait_for

__all__ = ["server"]  # the SMTP server fixture


def due_in(seconds: int) -> str:
    """A six-field cron expression for a moment ``seconds`` from now, in Kyiv time."""
    moment = dt.datetime.now(ZoneInfo("Europe/Kyiv")) + dt.timedelta(seconds=seconds)
    return f"{moment.second} {moment.minute} {moment.hour} * * *"


def start_scheduler(project: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(project), *extra, "schedule"],
        env={**os.environ, "DIGEST_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def scheduled(make_project: MakeProject, server: SmtpServer, csv: str, seconds: int) -> Path:
    project = smtp_project(make_project, server, csv=csv)
    project.write_text(
        project.read_text().replace('schedule = "0 7 * * *"', f'schedule = "{due_in(seconds)}"')
    )
    fresh_feeds(project)
    return project


def test_a_list_due_in_a_few_seconds_arrives_and_sigterm_exits_cleanly(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = scheduled(make_project, server, "email,name\nanna@example.org,Anna\nbob@example.org,Bob\n", 4)
    process = start_scheduler(project, "--log-format", "json")
    try:
        wait_for(lambda: len(server.messages) == 2, timeout=30)
        time.sleep(0.5)  # the job records its result right after the last message
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    names = [event.get("event") for event in events]
    for expected in ("start", "planned", "job_fired", "edition_frozen", "batch_sent", "job_done", "stopped"):
        assert expected in names, (expected, names)
    done = next(event for event in events if event.get("event") == "job_done")
    assert done["result"] == "sent" and done["list"] == "daily"
    assert sorted(a for m in server.messages for a in m.rcpt_tos) == ["anna@example.org", "bob@example.org"]
    assert SECRET not in err


def test_sigterm_during_a_scheduled_send_then_resume_sends_everyone_once(
    make_project: MakeProject, server: SmtpServer
) -> None:
    project = scheduled(make_project, server, CROWD, 3)
    # Slow enough that all 300 take seconds, so a busy machine cannot finish them before the
    # signal lands; the bound is then what was accepted when it landed plus the batches in flight.
    server.slow(0.03)
    process = start_scheduler(project)
    wait_for(lambda: len(server.messages) >= 40, timeout=40)
    at_signal = len(server.messages)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopping after the batch in flight" in err
    in_flight = 2 * 20  # two connections, one batch of 20 each (BATCH_PER_CONNECTION)
    assert len(server.messages) <= at_signal + in_flight < 300
    server.clear_faults()
    finish = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(project), "send", "--list", "daily"],
        env={**os.environ, "DIGEST_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finish.returncode == 0, finish.stderr
    counts = Counter(a for m in server.messages for a in m.rcpt_tos)
    assert len(counts) == 300 and set(counts.values()) == {1}
