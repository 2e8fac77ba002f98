"""SendGrid's signed Event Webhook: every request verified, every event stored once, each with its effect.

Payloads follow SendGrid's documented event examples (the custom_args digest's SendGrid
transport sets come back as top-level keys), and are signed here with an ECDSA P-256 key
made by the test, as SendGrid signs them: the timestamp header's value, then the raw body.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from werkzeug.test import Client

from digest.config import load_config
from digest.state import Store, forgotten, schema
from digest.state.readers import ReaderStatus
from digest.web import make_app
from digest.web.app import MAX_BODY
from digest.web.webhooks import KEY_ENV, SIGNATURE_HEADER, TIMESTAMP_HEADER
from digest.web.webhooks import MAX_BODY as WEBHOOK_MAX_BODY
from tests.conftest import NOW, MakeProject
from tests.test_cli_send import free_port
from tests.test_send import run

pytest_plugins = ["tests.pgserver"]

SECRET = b"0123456789abcdef-test-secret"
URL = "/webhooks/sendgrid"
EDITION = "daily-2026-11-25"
ANNA, BORIS, CHEN = "anna@example.org", "boris@example.org", "chen@example.org"
WEEKLY = '\n[[lists]]\nname = "weekly"\nsubscribers = "subscribers/daily.csv"\n'


class Signer:
    """SendGrid's side: a key pair, and requests signed with it."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(der).decode()  # as SendGrid's Mail Settings show it

    def headers(self, body: bytes, at: dt.datetime = NOW) -> dict[str, str]:
        timestamp = str(int(at.timestamp()))
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: timestamp,
        }


SIGNER = Signer()  # one key pair for the module: making one takes a moment


def event(kind: str, email: str, n: int = 0, **fields: Any) -> dict[str, Any]:
    """One event as SendGrid posts it, with digest's custom_args (edition_id, list)."""
    return {
        "email": email,
        "timestamp": int(NOW.timestamp()) - 60,
        "smtp-id": f"<14c5d75ce93.dfd.64b469.{n}@ismtpd-555>",
        "event": kind,
        "category": ["daily"],
        # Opaque, as SendGrid's are: unique per event, naming no one.
        "sg_event_id": base64.b64encode(
            hashlib.sha256(f"{kind} {email} {n}".encode()).digest()[:16]
        ).decode(),
        "sg_message_id": f"14c5d75ce93.dfd.64b469.filter0001.16648.{n}.0",
        "edition_id": EDITION,
        "list": "daily",
        **fields,
    }


def body_of(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


@dataclass
class Hook:
    client: Client
    store: Store

    def post(self, events: list[dict[str, Any]], at: dt.datetime = NOW) -> int:
        body = body_of(events)
        return self.client.post(URL, data=body, headers=SIGNER.headers(body, at)).status_code

    def rows(self) -> list[dict[str, Any]]:
        table = schema.delivery_events
        with self.store.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(table).order_by(table.c.id))]

    def count(self, table: Any) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def status(self, list_name: str, email: str) -> ReaderStatus | None:
        reader = self.store.readers.get(list_name, email)
        return reader.status if reader else None

    def nothing_stored(self) -> bool:
        return (self.count(schema.delivery_events), self.count(schema.suppressions)) == (0, 0)


def _app(make_project: MakeProject, store: Store, env: dict[str, str]) -> Client:
    config = load_config(make_project(extra=WEEKLY))
    return Client(make_app(config, lambda: store, SECRET, clock=lambda: NOW, env=env))


@pytest.fixture(params=["sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite; a test parametrized with ``indirect=True`` runs on PostgreSQL too."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/s.db"
    return str(request.getfixturevalue("postgres_url"))


BOTH = pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def hook(url: str, make_project: MakeProject) -> Iterator[Hook]:
    store = Store(url).migrate()
    for list_name in ("daily", "weekly"):
        for email in (ANNA, BORIS, CHEN):
            store.readers.add(list_name, email, name="", desks=None, now=NOW - dt.timedelta(days=9))
    yield Hook(_app(make_project, store, {KEY_ENV: SIGNER.public}), store)
    store.close()


@BOTH
def test_a_valid_batch_is_stored_tied_to_its_edition_and_its_effects_applied(hook: Hook) -> None:
    story = "https://news.example.org/2026/11/25/grain-corridor"
    batch = [
        event("processed", ANNA),
        event("delivered", ANNA, response="250 OK"),
        event("open", ANNA, useragent="Mozilla/5.0", ip="192.0.2.10"),
        event("click", ANNA, url=story, url_offset={"index": 0, "type": "html"}),
        event("bounce", BORIS, type="bounce", status="5.1.1", reason="550 5.1.1 unknown user"),
        event("spamreport", CHEN),
        event("a_type_from_2030", ANNA),
    ]
    assert hook.post(batch) == 200
    rows = hook.rows()
    assert [(r["kind"], r["email"]) for r in rows] == [
        ("delivered", ANNA),
        ("open", ANNA),
        ("click", ANNA),
        ("hard_bounce", BORIS),
        ("complaint", CHEN),
    ]
    assert {(r["source"], r["edition_id"], r["list_name"]) for r in rows} == {("sendgrid", EDITION, "daily")}
    assert [r["url"] for r in rows if r["kind"] == "click"] == [story]
    assert rows[0]["event_id"] == "sendgrid:" + event("delivered", ANNA)["sg_event_id"]
    assert rows[0]["occurred_at"] == NOW - dt.timedelta(seconds=60) and rows[0]["received_at"] == NOW
    assert "550 5.1.1 unknown user" in rows[3]["detail"]
    assert hook.status("daily", ANNA) is ReaderStatus.ACTIVE
    for list_name in ("daily", "weekly"):
        assert hook.status(list_name, BORIS) is ReaderStatus.BOUNCED
        assert hook.status(list_name, CHEN) is ReaderStatus.COMPLAINED
    assert hook.store.suppressions.count() == {"bounced": 1, "complained": 1}
    found = hook.store.suppressions.is_suppressed(BORIS, "weekly")
    assert found is not None and (found.list_name, found.source) == ("*", "sendgrid")


@BOTH
def test_a_retried_delivery_counts_once(hook: Hook) -> None:
    batch = [event("bounce", BORIS, type="bounce"), event("click", ANNA, url="https://news.example.org/a")]
    assert hook.post([*batch, batch[1]]) == 200  # the same event twice in one batch
    history = len(hook.store.readers.history(BORIS))
    # SendGrid retries what it thinks failed, signed anew a few minutes later.
    assert hook.post(batch, at=NOW + dt.timedelta(seconds=1)) == 200
    assert hook.post(list(reversed(batch))) == 200
    assert [r["kind"] for r in hook.rows()] == ["hard_bounce", "click"]
    assert len(hook.store.readers.history(BORIS)) == history
    assert [e.list_name for e in hook.store.readers.history(BORIS) if e.event == "bounced"] == [
        "daily",
        "weekly",
    ]


@BOTH
def test_a_retry_that_arrives_while_the_first_delivery_is_storing_counts_once(hook: Hook) -> None:
    # SendGrid retries a batch whose answer was slow: both deliveries can be in flight at once.
    batch = [event("bounce", f"r{n}@example.org", n, type="bounce") for n in range(1500)]
    batch += [event("unsubscribe", ANNA), event("spamreport", BORIS)]
    body = body_of(batch)
    statuses: list[int] = []

    def deliver() -> None:
        statuses.append(hook.client.post(URL, data=body, headers=SIGNER.headers(body)).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200, 200]
    assert hook.count(schema.delivery_events) == 1502
    assert hook.store.suppressions.count() == {"bounced": 1500, "unsubscribed": 1, "complained": 1}
    assert [e.event for e in hook.store.readers.history(BORIS)].count("complained") == 2


def _refusals() -> dict[str, tuple[dict[str, str], bytes]]:
    body = body_of([event("spamreport", ANNA), event("unsubscribe", BORIS)])
    good = SIGNER.headers(body)
    other = Signer().headers(body)
    altered = body.replace(b"spamreport", b"delivered!")
    stale = SIGNER.headers(body, NOW - dt.timedelta(minutes=10, seconds=1))
    ahead = SIGNER.headers(body, NOW + dt.timedelta(minutes=6))
    bits = bytearray(base64.b64decode(good[SIGNATURE_HEADER]))
    bits[-1] ^= 1
    flipped = base64.b64encode(bytes(bits)).decode()
    return {
        "forged signature": ({**good, SIGNATURE_HEADER: base64.b64encode(b"\x30" * 70).decode()}, body),
        "one bit flipped": ({**good, SIGNATURE_HEADER: flipped}, body),
        "signed with another key": (other, body),
        "body altered": (good, altered),
        "body cut short": (good, body[:-1]),
        "timestamp altered": ({**good, TIMESTAMP_HEADER: str(int(NOW.timestamp()) - 1)}, body),
        "signature missing": ({k: v for k, v in good.items() if k != SIGNATURE_HEADER}, body),
        "timestamp missing": ({k: v for k, v in good.items() if k != TIMESTAMP_HEADER}, body),
        "no headers": ({"Content-Type": "application/json"}, body),
        "stale": (stale, body),
        "from the future": (ahead, body),
        "timestamp not a number": ({**good, TIMESTAMP_HEADER: "yesterday"}, body),
        "signature not base64": ({**good, SIGNATURE_HEADER: "not base64 at all!"}, body),
        "signature empty": ({**good, SIGNATURE_HEADER: ""}, body),
    }


@pytest.mark.parametrize("case", _refusals())
def test_an_unsigned_forged_or_stale_request_is_refused_and_changes_nothing(hook: Hook, case: str) -> None:
    headers, body = _refusals()[case]
    response = hook.client.post(URL, data=body, headers=headers)
    assert 400 <= response.status_code < 500, case
    assert response.status_code in (401, 403)
    assert hook.nothing_stored()
    assert hook.status("daily", ANNA) is hook.status("daily", BORIS) is ReaderStatus.ACTIVE


def test_a_signed_body_that_is_not_events_is_a_400(hook: Hook) -> None:
    for body in (b"not json", b'{"event": "bounce"}', b"\xff\xfe"):
        status = hook.client.post(URL, data=body, headers=SIGNER.headers(body)).status_code
        assert status in (400, 403) if body == b"\xff\xfe" else status == 400
    assert hook.nothing_stored()


@pytest.mark.parametrize("value", [None, "", "not a key", base64.b64encode(b"\x30\x03\x01\x01\x00").decode()])
def test_without_a_usable_key_the_webhook_answers_503_and_stores_nothing(
    tmp_path: Path, make_project: MakeProject, value: str | None
) -> None:
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    client = _app(make_project, store, {} if value is None else {KEY_ENV: value})
    body = body_of([event("spamreport", ANNA)])
    response = client.post(URL, data=body, headers=SIGNER.headers(body))
    assert response.status_code == 503
    assert Hook(client, store).nothing_stored()
    store.close()


def test_a_key_pasted_with_line_breaks_still_works(tmp_path: Path, make_project: MakeProject) -> None:
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    wrapped = "\n".join(SIGNER.public[i : i + 64] for i in range(0, len(SIGNER.public), 64))
    hook = Hook(_app(make_project, store, {KEY_ENV: f" {wrapped}\n"}), store)
    assert hook.post([event("delivered", ANNA)]) == 200 and len(hook.rows()) == 1
    store.close()


@pytest.mark.parametrize(
    ("fields", "kind", "reason"),
    [
        (
            {"event": "bounce", "type": "bounce", "status": "5.0.0", "reason": "550 no mailbox"},
            "hard_bounce",
            "bounced",
        ),
        ({"event": "bounce", "status": "5.0.0", "reason": "550 no mailbox"}, "hard_bounce", "bounced"),
        ({"event": "dropped", "reason": "Bounced Address"}, "dropped", "bounced"),
        ({"event": "dropped", "reason": "Invalid"}, "dropped", "bounced"),
        ({"event": "dropped", "reason": "Spam Reporting Address"}, "dropped", "complained"),
        ({"event": "spamreport"}, "complaint", "complained"),
    ],
    ids=[
        "bounce",
        "bounce without a type",
        "dropped bounced",
        "dropped invalid",
        "dropped spam reporter",
        "spamreport",
    ],
)
def test_bounces_drops_and_complaints_suppress_for_every_list(
    hook: Hook, fields: dict[str, Any], kind: str, reason: str
) -> None:
    assert hook.post([{**event("x", ANNA), **fields}]) == 200
    assert [r["kind"] for r in hook.rows()] == [kind]
    assert hook.store.suppressions.count() == {reason: 1}
    for list_name in ("daily", "weekly", "a list made next year"):
        found = hook.store.suppressions.is_suppressed(ANNA, list_name)
        assert found is not None and found.reason == reason
    assert {hook.status(name, ANNA) for name in ("daily", "weekly")} == {ReaderStatus(reason)}


@pytest.mark.parametrize(
    "reason", ["Spam Content", "Invalid SMTPAPI header", "Recipient List over Package Quota"]
)
def test_a_drop_for_the_message_not_the_address_suppresses_nothing(hook: Hook, reason: str) -> None:
    assert hook.post([event("dropped", ANNA, reason=reason)]) == 200
    assert [(r["kind"], r["detail"]) for r in hook.rows()] == [("dropped", reason)]
    assert hook.store.suppressions.count() == {}


@pytest.mark.parametrize("kind", ["unsubscribe", "group_unsubscribe"])
def test_unsubscribes_leave_only_their_list(hook: Hook, kind: str) -> None:
    extra = (
        {"asm_group_id": 10, "useragent": "Mozilla/5.0", "ip": "192.0.2.4"}
        if kind == "group_unsubscribe"
        else {}
    )
    assert hook.post([event(kind, ANNA, **extra), event(kind, BORIS, list="weekly")]) == 200
    assert [r["kind"] for r in hook.rows()] == ["unsubscribe", "unsubscribe"]
    assert (hook.status("daily", ANNA), hook.status("weekly", ANNA)) == (
        ReaderStatus.UNSUBSCRIBED,
        ReaderStatus.ACTIVE,
    )
    assert (hook.status("daily", BORIS), hook.status("weekly", BORIS)) == (
        ReaderStatus.ACTIVE,
        ReaderStatus.UNSUBSCRIBED,
    )
    found = hook.store.suppressions.is_suppressed(ANNA, "daily")
    assert found is not None and (found.list_name, found.reason, found.source) == (
        "daily",
        "unsubscribed",
        "sendgrid",
    )
    assert hook.store.suppressions.is_suppressed(ANNA, "weekly") is None


def test_an_unsubscribe_from_mail_of_no_list_leaves_every_list(hook: Hook) -> None:
    unplaced = {k: v for k, v in event("unsubscribe", ANNA).items() if k not in ("list", "edition_id")}
    assert hook.post([unplaced]) == 200
    assert hook.rows()[0]["edition_id"] is None
    assert {hook.status(name, ANNA) for name in ("daily", "weekly")} == {ReaderStatus.UNSUBSCRIBED}


def test_blocked_and_deferred_are_soft_bounces_that_suppress_nothing(hook: Hook) -> None:
    batch = [
        event("bounce", ANNA, 1, type="blocked", status="4.0.0", reason="421 try again later"),
        event("deferred", ANNA, 2, response="400 mailbox full", attempt="3"),
    ]
    assert hook.post(batch) == 200
    assert [(r["kind"], r["detail"]) for r in hook.rows()] == [
        ("soft_bounce", "blocked: 4.0.0: 421 try again later"),
        ("soft_bounce", "deferred: 400 mailbox full: 3"),
    ]
    assert hook.store.suppressions.count() == {}
    assert hook.status("daily", ANNA) is ReaderStatus.ACTIVE


def test_malformed_and_unknown_events_are_counted_not_errors(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    batch: list[Any] = [
        "text",
        7,
        {"event": "bounce"},
        event("open", "not-an-address"),
        event("group_resubscribe", ANNA),
    ]
    with caplog.at_level("INFO", logger="digest.serve"):
        assert hook.post([*batch, event("open", ANNA)]) == 200
    assert len(hook.rows()) == 1
    line = next(r.getMessage() for r in caplog.records if "sendgrid webhook" in r.getMessage())
    assert (
        line == "sendgrid webhook: 1 events, 1 new, 0 readers left; ignored group_resubscribe 1, malformed 4"
    )
    assert ANNA not in caplog.text


def test_the_webhook_takes_big_batches_and_other_routes_keep_their_cap(hook: Hook) -> None:
    batch = [event("delivered", f"reader{n}@example.org", n) for n in range(1000)]
    assert len(body_of(batch)) > 4 * MAX_BODY
    assert hook.post(batch) == 200 and hook.count(schema.delivery_events) == 1000
    too_big = b"[" + b" " * WEBHOOK_MAX_BODY + b"]"
    assert hook.client.post(URL, data=too_big, headers=SIGNER.headers(too_big)).status_code == 413
    big_form = b"List-Unsubscribe=One-Click&x=" + b"a" * MAX_BODY
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert hook.client.post("/unsubscribe/x", data=big_form, headers=form).status_code == 413


def test_only_post_and_a_browser_on_another_site_is_refused(hook: Hook) -> None:
    assert hook.client.get(URL).status_code == 405
    body = body_of([event("spamreport", ANNA)])
    cross = {**SIGNER.headers(body), "Origin": "https://evil.example"}
    assert hook.client.post(URL, data=body, headers=cross).status_code == 403
    assert hook.nothing_stored()


def test_a_store_failure_is_a_503_and_the_retry_applies_everything_once(
    hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.web import webhooks

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("disk full")

    batch = [event("bounce", BORIS, type="bounce"), event("open", ANNA)]
    monkeypatch.setattr(webhooks, "leave_many", broken)
    assert hook.post(batch) == 503
    assert hook.nothing_stored()  # the events went with their effects' transaction
    monkeypatch.undo()
    assert hook.post(batch) == 200
    assert len(hook.rows()) == 2 and hook.status("weekly", BORIS) is ReaderStatus.BOUNCED


def test_forgetting_an_address_hashes_its_events_and_later_ones(hook: Hook) -> None:
    mentioned = "https://news.example.org/track?to=anna@example.org"
    hook.post(
        [
            event("click", ANNA, url=mentioned),
            event("bounce", ANNA, 1, type="bounce", reason=f"550 {ANNA}: no"),
        ]
    )
    hook.post([event("click", BORIS, url="https://news.example.org/a")])
    key = forgotten.forget_key(SECRET)
    erased = forgotten.forget(hook.store.engine, ANNA, key, now=NOW)
    hashed = forgotten.keyed_hash(key, ANNA)
    assert erased.deliveries == 2
    rows = hook.rows()
    assert [(r["email"], r["url"], r["detail"]) for r in rows[:2]] == [(hashed, None, ""), (hashed, None, "")]
    assert rows[2]["email"] == BORIS
    # Clicks keep coming after the forgetting: they keep the hash and suppress no one by name.
    assert hook.post([event("open", ANNA, 5), event("spamreport", ANNA, 6)]) == 200
    assert {r["email"] for r in hook.rows()} == {hashed, BORIS}
    assert [s.email for s in hook.store.suppressions.every()] == [hashed]
    assert ANNA not in json.dumps(hook.rows(), default=str)


def _serve(project: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    command = [sys.executable, "-m", "digest", "--config", str(project), "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return process, base
        except httpx.TransportError:
            assert time.monotonic() < deadline and process.poll() is None, "digest serve did not start"
            time.sleep(0.05)


def test_through_digest_serve_a_forgery_changes_nothing_the_next_send_skips_who_bounced_or_complained_and_the_report_counts_the_click(
    make_project: MakeProject,
) -> None:
    project = make_project()
    (project.parent / "subscribers" / "daily.csv").write_text(
        f"email,name\n{ANNA},Anna\n{BORIS},Boris\n{CHEN},Chen\n"
    )
    env = {**os.environ, "DIGEST_SECRET": SECRET.decode(), KEY_ENV: SIGNER.public}
    process, base = _serve(project, env)
    now = dt.datetime.now(dt.UTC)  # the server's own clock checks the timestamp
    batch = [
        event("bounce", ANNA, type="bounce"),
        event("spamreport", BORIS),
        event("click", CHEN, url="https://x.example/"),
    ]
    body = body_of(batch)
    try:
        forged = {**Signer().headers(body, now)}
        assert httpx.post(f"{base}{URL}", content=body, headers=forged).status_code == 403
        stale = SIGNER.headers(body, now - dt.timedelta(hours=1))
        assert httpx.post(f"{base}{URL}", content=body, headers=stale).status_code == 403
        with Store(f"sqlite:///{project.parent / 'state' / 'digest.sqlite3'}") as store:
            assert Hook(Client(lambda *a: None), store).nothing_stored()
        assert httpx.post(f"{base}{URL}", content=body, headers=SIGNER.headers(body, now)).status_code == 200

        sent = run(project, "send", "--list", "daily", secret=SECRET.decode())
        assert sent.exit_code == 0, sent.output + sent.stderr
        assert "sent 1," in sent.output and "suppressed 2" in sent.output
        outbox = list((project.parent / "outbox" / "daily-2026-11-25").glob("*.eml"))
        assert len(outbox) == 1 and CHEN in outbox[0].read_text()

        # The reader clicks the first story of the edition they got; SendGrid reports it.
        with Store(f"sqlite:///{project.parent / 'state' / 'digest.sqlite3'}") as store:
            story = json.loads(store.editions.contents([EDITION])[EDITION])
        first = next(item for desk in story["desks"] for item in desk["items"])
        click = body_of([event("click", CHEN, 9, url=first["url"])])
        assert (
            httpx.post(f"{base}{URL}", content=click, headers=SIGNER.headers(click, now)).status_code == 200
        )
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "sendgrid webhook: refused a signature that does not verify" in err
    assert ANNA not in err and BORIS not in err
    report = run(project, "report", "--list", "daily", "--format", "json", secret=SECRET.decode())
    assert report.exit_code == 0, report.output
    (results,) = json.loads(report.output)["editions"]
    assert results["edition"] == EDITION and results["sent"] == 1
    # The first batch named this edition in its custom args too: its bounce, complaint and
    # click (on a link that is no story) count for it, beside the story click.
    assert (results["hard_bounces"], results["complaints"]) == (1, 1)
    assert (results["clicks"], results["other_clicks"]) == (2, 1)
    assert [(s["url"], s["clicks"]) for s in results["top_stories"]] == [(first["url"], 1)]
