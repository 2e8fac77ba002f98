"""An edition's results (`digest report`) from a seeded ledger, delivery events and a real frozen
edition, on SQLite and on a real PostgreSQL server; and the guardrail's holds repository."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import insert

from digest.cli import cli
from digest.config import Config, load_config
from digest.edition import build_edition
from digest.edition.frozen import freeze_edition
from digest.model import Edition
from digest.results import edition_results
from digest.results.format import as_json, format_text, one_line
from digest.state import Store, schema
from digest.state.events import DeliveryEvent, Kind
from digest.state.suppressions import Reason
from digest.statefile import state_url
from tests.conftest import NOW, MakeProject

pytest_plugins = ["tests.pgserver"]

EDITION = "daily-2026-11-25"
SENT_AT = NOW + dt.timedelta(minutes=1)
LATER = NOW + dt.timedelta(hours=3)


def freeze(store: Store, config: Config, day: int = 0) -> Edition:
    edition = build_edition(config, "daily", now=NOW, store=None)
    edition = dataclasses.replace(edition, date=edition.date + dt.timedelta(days=day))
    assert freeze_edition(store.editions, edition, now=NOW + dt.timedelta(days=day))
    return edition


def ledger(store: Store, edition_id: str, rows: list[tuple[str, str]], sent_at: dt.datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            insert(schema.ledger),
            [
                {
                    "edition_id": edition_id,
                    "email": email,
                    "name": "",
                    "variant": "all",
                    "status": status,
                    "attempts": 1,
                    "sent_at": sent_at if status == "sent" else None,
                    "updated_at": sent_at,
                }
                for email, status in rows
            ],
        )


def reader(n: int) -> str:
    return f"reader{n}@example.org"


def event(n: int, kind: Kind, who: int, *, source: str = "sendgrid", url: str | None = None) -> DeliveryEvent:
    return DeliveryEvent(
        f"{source}-{n}",
        source,
        kind,
        LATER,
        list_name="daily",
        edition_id=EDITION,
        email=reader(who),
        url=url,
    )


def seed(store: Store, config: Config) -> Edition:
    """200 recipients: 190 sent, 5 failed, 5 suppressed; SendGrid's events; web unsubscribes."""
    edition = freeze(store, config)
    statuses = ["sent"] * 190 + ["failed"] * 5 + ["suppressed"] * 5
    ledger(store, EDITION, [(reader(n), status) for n, status in enumerate(statuses)], SENT_AT)
    items = [item for desk in edition.desks for item in desk.items]
    events = [event(n, Kind.DELIVERED, n) for n in range(180)]
    events += [event(200 + n, Kind.HARD_BOUNCE, 180 + n) for n in range(4)]
    events += [
        event(210, Kind.SOFT_BOUNCE, 185),
        event(211, Kind.SOFT_BOUNCE, 185),
        event(212, Kind.SOFT_BOUNCE, 186),
    ]
    events += [event(220, Kind.COMPLAINT, 7), event(221, Kind.UNSUBSCRIBE, 8)]
    events += [event(300 + n, Kind.OPEN, n % 60) for n in range(90)]  # 60 readers, 90 opens
    # The first story: 12 clicks by 10 readers, one link tagged by a newsletter tool; the second 5.
    events += [event(400 + n, Kind.CLICK, n % 10, url=items[0].url) for n in range(11)]
    events += [event(420, Kind.CLICK, 3, url=items[0].url + "?utm_source=digest#top")]
    events += [event(430 + n, Kind.CLICK, n, url=items[1].url) for n in range(5)]
    events += [event(440, Kind.CLICK, 1, url=edition.desks[-1].more_url)]
    events += [event(450, Kind.CLICK, 2, url="https://digest.example.org/archive/daily/2026-11-25")]
    events += [event(460, Kind.DELIVERED, 0)]  # the same report twice counts once
    events += [event(0, Kind.DELIVERED, 0)]
    store.events.record(events, now=LATER)
    # Unsubscribes on our pages: two after this edition, one before it was sent.
    for n, source in ((20, "web"), (21, "one-click"), (22, "preferences")):
        store.readers.leave("daily", reader(n), reason=Reason.UNSUBSCRIBED, source=source, now=LATER)
    store.readers.leave("daily", reader(23), reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    # An editor's unsubscribe is no reader's choice; a provider's is counted from its event.
    store.readers.leave("daily", reader(24), reason=Reason.UNSUBSCRIBED, source="editor", now=LATER)
    return edition


def test_counts_rates_desks_and_top_stories(store: Store, config: Config) -> None:
    edition = seed(store, config)
    results = edition_results(store, EDITION)
    assert (results.recipients, results.sent, results.failed) == (200, 190, 5)
    assert results.delivered == 180
    assert (results.hard_bounces, results.soft_bounces, results.complaints) == (4, 2, 1)
    assert dict(results.unsubscribes) == {"link": 2, "one-click": 1, "mailto": 0, "provider": 1}
    assert (results.opens, results.clicks, results.click_readers) == (60, 19, 10)
    assert results.complaint_rate == pytest.approx(1 / 180)  # of delivered: SendGrid reports them
    assert results.bounce_rate == pytest.approx(4 / 190)
    top = results.top_stories
    assert top[0].title == edition.items[0].title and (top[0].clicks, top[0].readers) == (12, 10)
    assert top[1].title == edition.items[1].title and top[1].clicks == 5
    assert len(top) == 2
    per_desk = {desk.desk: desk.clicks for desk in results.desks}
    assert list(per_desk) == [desk.name for desk in edition.desks]
    assert sum(per_desk.values()) == 18 and results.other_clicks == 1
    assert per_desk[edition.desks[-1].name] >= 1  # its "More from" link


def test_text_and_json(store: Store, config: Config) -> None:
    edition = seed(store, config)
    text = format_text(edition_results(store, EDITION))
    assert "recipients 200: sent 190, failed 5" in text
    assert "delivered 180, hard bounces 4, soft bounces 2, dropped 0, complaints 1" in text
    assert "unsubscribes 4 (link 2, one-click 1, mailto 0, provider 1)" in text
    assert "opened by 60, clicks 19 (by 10 readers)" in text
    assert "complaint rate 0.56% of delivered: OVER the line (0.3%, Gmail's)" in text
    assert "bounce rate 2.11% (hard bounces of sent): OVER the line (2%)" in text
    assert edition.items[0].title in text
    data = as_json(edition_results(store, EDITION))
    assert data["complaint_rate_of"] == "delivered" and data["top_stories"][0]["clicks"] == 12
    assert json.loads(json.dumps(data)) == data
    assert (
        one_line(edition_results(store, EDITION)) == "sent 190 · bounces 2.1% · complaints 0.56% · clicks 19"
    )


def test_an_smtp_edition_says_not_reported(store: Store, config: Config) -> None:
    freeze(store, config)
    ledger(store, EDITION, [(reader(n), "sent") for n in range(50)], SENT_AT)
    store.events.record(
        [event(1, Kind.HARD_BOUNCE, 3, source="dsn"), event(2, Kind.COMPLAINT, 4, source="arf")], now=LATER
    )
    results = edition_results(store, EDITION)
    assert results.delivered is None and results.opens is None and results.clicks is None
    assert results.complaint_rate == pytest.approx(1 / 50)  # of sent: SMTP reports no delivery
    text = format_text(results)
    assert "delivered not reported" in text and "opens not reported, clicks not reported" in text
    assert "complaint rate 2.00% of sent (deliveries not reported)" in text
    assert "clicks per desk" not in text
    assert one_line(results).endswith("clicks not reported")
    assert as_json(results)["clicks"] is None and as_json(results)["complaint_rate_of"] == "sent"


def test_an_unsubscribe_counts_for_the_latest_edition_sent_to_the_reader(
    store: Store, config: Config
) -> None:
    freeze(store, config)
    freeze(store, config, day=1)
    ledger(store, EDITION, [(reader(1), "sent"), (reader(2), "sent")], SENT_AT)
    ledger(store, "daily-2026-11-26", [(reader(1), "sent")], SENT_AT + dt.timedelta(days=1))
    for n in (1, 2):
        store.readers.leave(
            "daily", reader(n), reason=Reason.UNSUBSCRIBED, source="web", now=LATER + dt.timedelta(days=1)
        )
    assert edition_results(store, EDITION).unsubscribes["link"] == 1
    assert edition_results(store, "daily-2026-11-26").unsubscribes["link"] == 1


def test_holds_are_sticky_once_resumed(store: Store) -> None:
    held = store.holds.hold("daily", "daily-2026-11-25", "too many complaints", now=NOW)
    assert held.active and [hold.list_name for hold in store.holds.active()] == ["daily"]
    again = store.holds.hold("daily", "daily-2026-11-25", "another reason", now=LATER)
    assert again.reason == "too many complaints" and again.held_at == NOW
    resumed = store.holds.resume("daily", by="editor", now=LATER)
    assert resumed is not None and resumed.resumed_by == "editor"
    assert store.holds.resume("daily", by="editor", now=LATER) is None
    # The resumed edition cannot hold the list again; a later one can.
    assert not store.holds.hold("daily", "daily-2026-11-25", "again", now=LATER).active
    later = store.holds.hold("daily", "daily-2026-11-26", "bounces", now=LATER)
    assert later.active and later.edition_id == "daily-2026-11-26" and later.resumed_at is None


def run(project: Path, *args: str) -> tuple[int, str]:
    with time_machine.travel(LATER, tick=False):
        result = CliRunner().invoke(cli, ["--config", str(project), *args])
    return result.exit_code, result.output


def test_digest_report_through_the_cli(make_project: MakeProject) -> None:
    project = make_project(extra='\n[[lists]]\nname = "weekly"\nschedule = "0 9 * * mon"\n')
    config = load_config(project)
    code, output = run(project, "report")
    assert code == 0 and "daily: no edition yet" in output and not (project.parent / "state").exists()
    with Store(state_url(config)).migrate() as store:
        seed(store, config)
    code, output = run(project, "report")
    assert code == 0, output
    assert f"{EDITION} (list daily)" in output and "weekly: no edition yet" in output
    code, output = run(project, "report", "--list", "daily", "--format", "json")
    data = json.loads(output)
    assert [e["edition"] for e in data["editions"]] == [EDITION] and data["lists_without_editions"] == []
    assert data["editions"][0]["sent"] == 190 and data["editions"][0]["clicks"] == 19
    code, output = run(project, "report", "--edition", "daily-2026-01-01")
    assert code == 1 and "no edition daily-2026-01-01 in the state database" in output
