"""The guardrail end to end through the real `digest` command: a list whose edition reached the
complaint or hard-bounce line is held; `digest send`, the scheduled run and a dry run refuse;
`digest jobs`, `digest lists held` and the preview say so; `digest lists resume` releases it
and the next edition goes out."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.config import load_config
from digest.preview.model import Previewer, Selection
from digest.schedule.job import run_list
from digest.state import Store
from digest.state.events import DeliveryEvent, Kind
from digest.statefile import state_url
from tests.conftest import NOW, MakeProject

pytest_plugins = ["tests.pgserver"]

DAY_ONE, DAY_TWO, DAY_THREE = "daily-2026-11-25", "daily-2026-11-26", "daily-2026-11-27"
READERS = 40
SECRET = "guardrail-test-secret-0123456789"


def story(n: int, day: int) -> dict[str, str]:
    published = NOW + dt.timedelta(days=day, hours=-2, minutes=n)
    return {
        "id": f"https://news.example.org/later/{day}-{n}",
        "url": f"https://news.example.org/later/{day}-{n}",
        "title": f"A story of day {day}, number {n}",
        "summary": "Something happened.",
        "date_published": published.isoformat(),
        "tags": ["Culture"],
    }


def later_stories(project: Path) -> None:
    """A feed with stories for the next two mornings, so each day's edition has news."""
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Later",
        "items": [story(n, day) for day in (1, 2) for n in range(2)],
    }
    (project.parent / "feeds" / "later.json").write_text(json.dumps(feed))


@pytest.fixture(params=["sqlite", "postgresql"])
def project(
    request: pytest.FixtureRequest, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    replace = {}
    if request.param == "postgresql":
        replace['url = "sqlite:///state/digest.sqlite3"'] = (
            f'url = "{request.getfixturevalue("postgres_url")}"'
        )
    path = make_project(
        replace,
        extra='\n[[feeds]]\nsource = "feeds/later.json"\ndesk = "Culture"\n\n[guardrail]\nmin_sent = 20\n',
    )
    rows = "".join(f"reader{n}@example.org,Reader {n}\n" for n in range(READERS))
    (path.parent / "subscribers" / "daily.csv").write_text("email,name\n" + rows)
    later_stories(path)
    return path


def run(project: Path, day: int, *args: str) -> Result:
    with time_machine.travel(NOW + dt.timedelta(days=day), tick=False):
        return CliRunner().invoke(cli, ["--config", str(project), *args])


def report(project: Path, kind: Kind, count: int, edition: str = DAY_ONE, source: str = "arf") -> None:
    """``count`` readers of ``edition`` complained (or bounced), as an ARF report or DSN records it."""
    config = load_config(project)
    with Store(state_url(config)).migrate() as store:
        store.events.record(
            [
                DeliveryEvent(
                    f"{source}-{edition}-{n}",
                    source,
                    kind,
                    NOW + dt.timedelta(hours=2),
                    list_name="daily",
                    edition_id=edition,
                    email=f"reader{n}@example.org",
                )
                for n in range(count)
            ],
            now=NOW + dt.timedelta(hours=2),
        )


@pytest.mark.parametrize(
    ("kind", "count", "rate"),
    [
        (Kind.COMPLAINT, 1, "a complaint rate of 2.50% (1 of 40 sent)"),
        (Kind.HARD_BOUNCE, 2, "a hard-bounce rate of 5.00% (2 of 40 sent)"),
    ],
)
def test_the_guardrail_holds_and_an_editor_resumes(project: Path, kind: Kind, count: int, rate: str) -> None:
    first = run(project, 0, "send", "--list", "daily")
    assert first.exit_code == 0, first.output
    assert f"{DAY_ONE}: sent {READERS}," in first.output
    report(project, kind, count)

    held = run(project, 1, "send", "--list", "daily")
    assert held.exit_code == 77, held.output
    assert (
        f"{DAY_TWO}: held by the guardrail since 2026-11-26 04:30 UTC: edition {DAY_ONE} had {rate}"
        in held.output
    )
    assert "until an editor runs `digest lists resume daily`" in held.output
    config = load_config(project)
    with Store(state_url(config)).migrate() as store:
        assert store.editions.frozen(DAY_TWO) is None  # nothing frozen: its stories wait

    dry = run(project, 1, "send", "--list", "daily", "--dry-run")
    assert dry.exit_code == 0 and "dry run, nothing sent: would be held by the guardrail" in dry.output

    # The scheduler's job runs the same send, records the refusal and logs why.
    logged: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("digest.schedule").addHandler(handler)
    try:
        with time_machine.travel(NOW + dt.timedelta(days=1, minutes=31), tick=False):
            assert run_list(str(project), "daily") == "held"
    finally:
        logging.getLogger("digest.schedule").removeHandler(handler)
    assert any(
        f"edition {DAY_ONE} had {rate}" in r.getMessage() and r.levelno == logging.ERROR for r in logged
    )
    with Store(state_url(config)).migrate() as store:
        last = store.runs.last("daily")
        assert last is not None and "`digest lists resume daily`" in last.detail

    jobs = run(project, 1, "jobs")
    assert jobs.exit_code == 0, jobs.output
    assert (
        f"daily: HELD: held by the guardrail since 2026-11-26 04:30 UTC: edition {DAY_ONE} had {rate}"
        in jobs.output
    )
    assert f"daily: results of {DAY_ONE}: sent {READERS} · bounces" in jobs.output
    listed = run(project, 1, "lists", "held")
    assert listed.exit_code == 0 and listed.output.startswith("daily: held by the guardrail since")

    with time_machine.travel(NOW + dt.timedelta(days=1), tick=False):
        shown = Previewer().preview(config, "daily", None, Selection())
    assert shown.held is not None and f"edition {DAY_ONE} had {rate}" in shown.held
    assert shown.last_result is not None and shown.last_result.startswith(f"{DAY_ONE}: sent {READERS} · ")

    resumed = run(project, 1, "lists", "resume", "daily")
    assert resumed.exit_code == 0, resumed.output
    assert f"daily: resumed; the hold for {DAY_ONE}" in resumed.output
    assert run(project, 1, "lists", "held").output.strip() == "no list is held"
    assert "is not held by the guardrail" in run(project, 1, "lists", "resume", "daily").output

    # The resume is sticky: the same edition's rates do not hold the list again.
    second = run(project, 1, "send", "--list", "daily")
    assert second.exit_code == 0, second.output
    assert f"{DAY_TWO}: sent {READERS}," in second.output
    third = run(project, 2, "send", "--list", "daily")
    assert third.exit_code == 0 and f"{DAY_THREE}: sent {READERS}," in third.output

    # A later edition over the line holds the list again.
    report(project, kind, count, edition=DAY_THREE)
    again = run(project, 3, "send", "--list", "daily")
    assert again.exit_code == 77 and f"edition {DAY_THREE} had {rate}" in again.output


def test_below_the_lines_or_the_sample_nothing_is_held(project: Path) -> None:
    assert run(project, 0, "send", "--list", "daily").exit_code == 0
    report(project, Kind.HARD_BOUNCE, 1)  # 2.5%: over the report's 2% line, under the guardrail's 5%
    assert run(project, 1, "send", "--list", "daily").exit_code == 0
    text = run(project, 1, "report", "--edition", DAY_ONE).output
    assert "bounce rate 2.50% (hard bounces of sent): OVER the line (2%)" in text
    assert "opens not reported, clicks not reported" in text  # the outbox reports nothing
    # Too few messages to judge: 40 sent, and [guardrail] min_sent raised to 100.
    project.write_text(project.read_text().replace("min_sent = 20", "min_sent = 100"))
    report(project, Kind.COMPLAINT, 5, edition=DAY_TWO)
    assert run(project, 2, "send", "--list", "daily").exit_code == 0


def test_a_config_can_move_the_lines(make_project: MakeProject) -> None:
    project = make_project(extra="\n[guardrail]\ncomplaint_rate = 0.001\nbounce_rate = 0.1\nmin_sent = 500\n")
    guard = load_config(project).settings.guardrail
    assert (guard.complaint_rate, guard.bounce_rate, guard.min_sent) == (0.001, 0.1, 500)
    bad = make_project(extra='\n[guardrail]\ncomplaint_rate = "0.3%"\n')
    result = CliRunner().invoke(cli, ["--config", str(bad), "jobs"])
    assert result.exit_code == 1 and "guardrail.complaint_rate" in result.output
