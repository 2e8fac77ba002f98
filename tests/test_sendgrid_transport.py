"""The SendGrid transport and suppression sync against real peers.

Prism serves SendGrid's official OpenAPI spec and validates every request body against it, so an
accepted send proves the payload's shape. A local sink (tests/sendgrid_sink.py) plays the
answers Prism cannot: rate limits, outages, refusals, a server that hangs.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from digest.config import SendGridOptions
from digest.errors import TransportError
from digest.render import Rendered
from digest.render.message import list_id, make_message_id
from digest.send.sendgrid_sync import fetch_suppressions, sync_suppressions
from digest.send.transports import create_transport
from digest.send.transports.base import Batch, Envelope, Outcome
from digest.send.transports.sendgrid import SendGridPayload, SendGridTransport
from digest.state import Store
from tests.conftest import greeted
from tests.sendgrid_sink import Reply, Request, SendGridSink, errors

# The session fixtures prism_url and prism_suppressions_url.
pytest_plugins = ["tests.prism"]

KEY = "SG.test-key-must-never-be-printed.0123456789"
SENDER = "The Morning Ledger <digest@news.example.org>"
NOW = dt.datetime(2026, 11, 25, 4, 30, tzinfo=dt.UTC)
RENDERED = Rendered(
    subject="Drones hit two substations near Kharkiv, and 7 more stories",
    preheader="Your morning briefing",
    html=(
        '<p>%%greeting%%,</p><p>Grain &amp; insurance</p><a href="%%preferences_url%%">Manage your desks</a>'
        '<a href="%%unsubscribe_url%%">Unsubscribe</a>'
    ),
    text=(
        "%%greeting%%,\n\nGrain & insurance\n\nManage your desks: %%preferences_url%%\n"
        "Unsubscribe: %%unsubscribe_url%%\n"
    ),
)
TRICKY_NAME = 'Zoë "Z" <O\'Neil> & Co'


class Sleeps(list[float]):
    """The injected sleep: records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def envelope(number: int, name: str = "", email: str | None = None) -> Envelope:
    email = email or f"reader{number}@example.org"
    url = f"https://news.example.org/u/tok{number}?list=daily&v=1"
    return Envelope(
        greeted(email, name, url, f"https://news.example.org/p/tok{number}?list=daily&v=1"),
        make_message_id("daily-2026-11-25", email, SENDER),
        {"List-Unsubscribe": f"<{url}>, <mailto:unsubscribe@news.example.org?subject=tok{number}>"},
    )


def make_batch(envelopes: list[Envelope] | int) -> Batch:
    if isinstance(envelopes, int):
        envelopes = [envelope(number, f"Reader {number}") for number in range(envelopes)]
    return Batch(
        edition_id="daily-2026-11-25",
        list_name="daily",
        variant="all",
        content=RENDERED,
        sender=SENDER,
        date=NOW,
        envelopes=tuple(envelopes),
        headers={"List-Id": list_id(SENDER, "daily", "The Morning Ledger")},
    )


def transport(url: str, sleeps: Sleeps | None = None, **options: Any) -> SendGridTransport:
    return SendGridTransport(
        SendGridOptions(api_url=url, **options), KEY, sleep=Sleeps() if sleeps is None else sleeps
    )


def all_accepted(outcomes: list[Outcome]) -> bool:
    return all(outcome.accepted for outcome in outcomes)


# --- Prism: SendGrid's own schema checks every request ---


def test_prism_accepts_a_batch_of_three(prism_url: str) -> None:
    batch = make_batch([envelope(1, TRICKY_NAME), envelope(2), envelope(3, "Reader Three")])
    outcomes = transport(prism_url, categories=["digest"]).send(batch)
    assert [outcome.email for outcome in outcomes] == [e.recipient.email for e in batch.envelopes]
    assert all_accepted(outcomes), outcomes


def test_prism_accepts_2500_recipients_in_three_requests(prism_url: str) -> None:
    sender = transport(prism_url, batch_size=1000)
    sizes: list[int] = []
    post = sender._post

    def counting_post(body: dict[str, Any]) -> Any:  # a spy: the real request still goes out
        sizes.append(len(body["personalizations"]))
        return post(body)

    sender._post = counting_post  # type: ignore[method-assign]
    outcomes = sender.send(make_batch(2500))
    assert sizes == [1000, 1000, 500]
    assert len(outcomes) == 2500 and all_accepted(outcomes)


def test_prism_accepts_sandbox_mode_asm_and_ip_pool(prism_url: str) -> None:
    options = {"sandbox_mode": True, "asm_group_id": 4242, "ip_pool": "newsletters", "categories": ["a", "b"]}
    assert all_accepted(transport(prism_url, **options).send(make_batch(2)))


def test_prism_refuses_a_bad_address_and_the_request_is_not_retried(prism_url: str) -> None:
    sleeps = Sleeps()
    outcomes = transport(prism_url, sleeps).send(
        make_batch([envelope(1), envelope(2, email="not-an-address")])
    )
    assert not any(outcome.accepted for outcome in outcomes)
    assert "SendGrid answered 400" in (outcomes[0].error or "")
    assert sleeps == []


# --- the sink: the payload in detail ---


def test_payload_in_detail() -> None:
    batch = make_batch([envelope(1, TRICKY_NAME), envelope(2), envelope(3, "Three", "Reader1@Example.org")])
    with SendGridSink() as sink:
        outcomes = transport(sink.url, categories=["digest", "daily"]).send(batch)
    assert [o.accepted for o in outcomes] == [True, True, False]
    assert outcomes[2].error == "duplicate address in batch"
    assert outcomes[0].provider_id == "sink-message-1"
    [request] = sink.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert body["from"] == {"email": "digest@news.example.org", "name": "The Morning Ledger"}
    assert body["subject"] == RENDERED.subject
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert body["content"][0]["value"] == RENDERED.text  # the text keeps the rendered markers
    assert "%%greeting%%" not in body["content"][1]["value"]
    assert "%%greeting_html%%" in body["content"][1]["value"]
    assert 'href="%%unsubscribe_url_html%%"' in body["content"][1]["value"]
    assert 'href="%%preferences_url_html%%"' in body["content"][1]["value"]
    assert body["categories"] == ["digest", "daily"]  # the list name once
    assert body["headers"] == {"List-Id": '"The Morning Ledger" <daily.news.example.org>'}
    assert "asm" not in body and "mail_settings" not in body
    first, second = body["personalizations"]
    url = "https://news.example.org/u/tok1?list=daily&v=1"
    preferences = "https://news.example.org/p/tok1?list=daily&v=1"
    assert first["to"] == [{"email": "reader1@example.org", "name": TRICKY_NAME}]
    assert first["substitutions"] == {
        "%%greeting%%": f"Hello, {TRICKY_NAME}",
        "%%unsubscribe_url%%": url,
        "%%preferences_url%%": preferences,
        "%%greeting_html%%": "Hello, Zoë &quot;Z&quot; &lt;O&#x27;Neil&gt; &amp; Co",
        "%%unsubscribe_url_html%%": html.escape(url),
        "%%preferences_url_html%%": html.escape(preferences),
    }
    assert first["headers"] == {"List-Unsubscribe": batch.envelopes[0].headers["List-Unsubscribe"]}
    assert first["custom_args"] == {"edition_id": "daily-2026-11-25", "list": "daily"}
    assert second["to"] == [{"email": "reader2@example.org"}]
    assert second["substitutions"]["%%greeting%%"] == "Hello"
    addresses = [p["to"][0]["email"].casefold() for p in body["personalizations"]]
    assert len(addresses) == len(set(addresses))
    for header in ("To", "From", "Subject", "Content-Type", "List-Unsubscribe"):
        assert header not in body["headers"]


def test_options_add_asm_sandbox_and_ip_pool() -> None:
    with SendGridSink([Reply(200)]) as sink:  # sandbox mode answers 200
        outcomes = transport(sink.url, sandbox_mode=True, asm_group_id=7, ip_pool="news").send(make_batch(1))
    assert all_accepted(outcomes)
    body = sink.requests[0].json
    assert body["asm"] == {"group_id": 7}
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert body["ip_pool_name"] == "news"


def test_a_batch_is_split_by_batch_size() -> None:
    with SendGridSink() as sink:
        outcomes = transport(sink.url, batch_size=1000).send(make_batch(2500))
    assert [len(r.json["personalizations"]) for r in sink.requests] == [1000, 1000, 500]
    assert {o.provider_id for o in outcomes[:1000]} == {"sink-message-1"}
    assert {o.provider_id for o in outcomes[2000:]} == {"sink-message-3"}


def test_oversized_substitutions_fail_only_that_recipient() -> None:
    batch = make_batch([envelope(1), envelope(2, "N" * 6000), envelope(3)])
    with SendGridSink() as sink:
        outcomes = transport(sink.url).send(batch)
    assert [o.accepted for o in outcomes] == [True, False, True]
    assert "10000" in (outcomes[1].error or "")
    assert len(sink.requests[0].json["personalizations"]) == 2


def test_reserved_headers_are_refused_before_anything_is_sent() -> None:
    bad = Envelope(greeted("a@example.org"), "<id@x>", {"Subject": "mine"})
    with SendGridSink() as sink, pytest.raises(TransportError, match="Subject"):
        transport(sink.url).send(make_batch([envelope(1), bad]))
    assert sink.requests == []


# --- the sink: answers and retries ---


def test_429_waits_until_the_reset_then_sends() -> None:
    reset = int(time.time()) + 2
    sleeps = Sleeps()
    with SendGridSink([Reply(429, errors("too many requests"), {"X-RateLimit-Reset": str(reset)})]) as sink:
        outcomes = transport(sink.url, sleeps).send(make_batch(2))
    assert all_accepted(outcomes)
    assert len(sink.requests) == 2
    [waited] = sleeps
    assert reset - time.time() - 1 < waited <= 2


def test_429_without_a_reset_backs_off() -> None:
    sleeps = Sleeps()
    with SendGridSink([Reply(429)]) as sink:
        assert all_accepted(transport(sink.url, sleeps, backoff=2.0).send(make_batch(1)))
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 2.0


def test_5xx_is_retried_with_growing_backoff() -> None:
    sleeps = Sleeps()
    with SendGridSink([Reply(500), Reply(503)]) as sink:
        outcomes = transport(sink.url, sleeps, backoff=1.0).send(make_batch(2))
    assert all_accepted(outcomes) and outcomes[0].provider_id == "sink-message-3"
    assert len(sink.requests) == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_backoff_is_capped() -> None:
    sleeps = Sleeps()
    with SendGridSink([Reply(500)] * 4) as sink:
        transport(sink.url, sleeps, backoff=50.0, retries=3).send(make_batch(1))
    assert max(sleeps) <= 60 and sleeps[-1] >= 30


def test_retries_exhausted_fail_the_request_naming_the_status() -> None:
    sleeps = Sleeps()
    with SendGridSink([Reply(500, errors("internal error"))] * 3) as sink:
        outcomes = transport(sink.url, sleeps, retries=2).send(make_batch(2))
    assert len(sink.requests) == 3 and len(sleeps) == 2
    assert not any(o.accepted for o in outcomes)
    assert outcomes[0].error == "SendGrid answered 500: internal error (gave up after 3 attempts)"


@pytest.mark.parametrize("status", [400, 413])
def test_refusals_fail_the_request_without_retrying(status: int) -> None:
    sleeps = Sleeps()
    reply = Reply(status, errors("The from address does not match a verified Sender Identity.", field="from"))
    with SendGridSink([reply]) as sink:
        outcomes = transport(sink.url, sleeps).send(make_batch(2))
    assert len(sink.requests) == 1 and sleeps == []
    assert outcomes[1].error == (
        f"SendGrid answered {status}: The from address does not match a verified Sender Identity. (field from)"
    )


@pytest.mark.parametrize("status", [401, 403])
def test_bad_credentials_raise_without_showing_the_key(status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the library logs each answer's body at DEBUG
    message = "The provided authorization grant is invalid, expired, or revoked"
    # A gateway that echoes the credentials it refused.
    reply = Reply(status, errors(f"{message}: Bearer {KEY}"))
    with SendGridSink([reply]) as sink, pytest.raises(TransportError) as caught:
        transport(sink.url).send(make_batch(2))
    assert message in str(caught.value) and "SENDGRID_API_KEY" in str(caught.value)
    assert len(sink.requests) == 1
    assert f"POST Response: {status}" in caplog.text and "Bearer [redacted]" in caplog.text
    assert KEY not in str(caught.value) and KEY not in caplog.text


def test_the_debug_log_has_each_request_size_not_its_body(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    batch = make_batch(3)
    with SendGridSink() as sink:
        transport(sink.url).send(batch)
    size = len(sink.requests[0].body)
    assert f"POST {sink.url}/v3/mail/send: {size} bytes" in caplog.messages
    # A whole request is about 1 MB: formatting it for a level nobody reads cost 2.5 µs a reader.
    assert not any(envelope.recipient.email in caplog.text for envelope in batch.envelopes)


def test_bad_credentials_after_an_accepted_request_are_outcomes() -> None:
    with SendGridSink([Reply(202), Reply(401, errors("revoked"))]) as sink:
        outcomes = transport(sink.url, batch_size=2).send(make_batch(4))
    assert len(sink.requests) == 2
    assert [o.accepted for o in outcomes] == [True, True, False, False]
    assert "revoked" in (outcomes[3].error or "")


def test_a_hanging_server_times_out_is_retried_then_fails() -> None:
    sleeps = Sleeps()
    started = time.monotonic()
    with SendGridSink([Reply(delay=5), Reply(delay=5)]) as sink:
        outcomes = transport(sink.url, sleeps, timeout=0.5, retries=1).send(make_batch(2))
    assert time.monotonic() - started < 4
    assert len(sink.requests) == 2 and len(sleeps) == 1
    assert outcomes[0].error == "no answer from SendGrid: timed out (gave up after 2 attempts)"


def test_no_server_is_retried_then_fails() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    outcomes = transport(f"http://127.0.0.1:{port}", sleeps, retries=1).send(make_batch(1))
    assert len(sleeps) == 1
    assert "no answer from SendGrid" in (outcomes[0].error or "")


# --- options and create() ---


def test_create_takes_the_key_from_the_environment_only(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="SENDGRID_API_KEY"):
        create_transport(SendGridOptions(), tmp_path, env={})
    made = create_transport(SendGridOptions(batch_size=250), tmp_path, env={"SENDGRID_API_KEY": KEY})
    assert made.name == "sendgrid" and made.max_batch == 250
    assert KEY not in repr(made)


@pytest.mark.parametrize(
    "options",
    [{"batch_size": 1001}, {"batch_size": 0}, {"categories": [str(n) for n in range(10)]}, {"api_key": KEY},
     {"api_url": "api.sendgrid.com"}, {"categories": [""]}],
)  # fmt: skip
def test_options_are_validated(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SendGridOptions(**options)


def test_payload_builds_requests_without_sending() -> None:
    payload = SendGridPayload(make_batch(5), SendGridOptions(batch_size=2))
    assert [len(body["personalizations"]) for _, body in payload.requests()] == [2, 2, 1]


@pytest.mark.parametrize("char", ["&", "<", ">", '"', "'"])
def test_each_character_html_would_misread_is_escaped_in_the_html_substitution(char: str) -> None:
    (_positions, body), *_ = SendGridPayload(
        make_batch([envelope(1, f"O{char}Neil")]), SendGridOptions()
    ).requests()
    substitutions = body["personalizations"][0]["substitutions"]
    assert substitutions["%%greeting%%"] == f"Hello, O{char}Neil"
    assert substitutions["%%greeting_html%%"] == f"Hello, O{html.escape(char)}Neil"


def test_substitutions_of_up_to_10000_utf8_bytes_are_sent_and_larger_refused() -> None:
    def size(name: str) -> tuple[int, str | None]:
        payload = SendGridPayload(make_batch([envelope(1, name)]), SendGridOptions())
        if payload.refused:
            return -1, payload.refused[0].error
        (_positions, body), *_ = payload.requests()
        values = body["personalizations"][0]["substitutions"].items()
        return sum(len(key.encode()) + len(value.encode()) for key, value in values), None

    base, _ = size("a")
    # "é" is 2 bytes in UTF-8 and appears in the text and the HTML value: 4 bytes a letter.
    largest = "a" + "é" * ((10_000 - base) // 4) + "a" * ((10_000 - base) % 4 // 2)
    accepted, _ = size(largest)
    assert 9_999 <= accepted <= 10_000  # 4 bytes a character would be far more: bytes are counted
    refused, error = size(largest + "a")
    assert refused == -1
    assert error == (
        f"substitutions of {accepted + 2} bytes exceed SendGrid's 10000 per recipient (a very long name or link?)"
    )


# --- suppressions ---


def test_fetch_suppressions_from_prism(prism_suppressions_url: str) -> None:
    rows = list(fetch_suppressions(prism_suppressions_url, KEY))
    assert {reason for _, reason in rows} == {"unsubscribed", "bounced", "complained"}
    assert all("@" in email for email, _ in rows)


def test_fetch_suppressions_pages_through_each_list() -> None:
    def answer(request: Request) -> Reply:
        if not request.path.endswith("/bounces"):
            return Reply(200, [])
        offset = int(request.query["offset"][0])
        count = {0: 500, 500: 500, 1000: 12}[offset]
        return Reply(200, [{"email": f"b{offset + n}@example.org", "created": 1} for n in range(count)])

    with SendGridSink(default=answer) as sink:
        rows = list(fetch_suppressions(sink.url, KEY))
    assert len(rows) == 1012 and {reason for _, reason in rows} == {"bounced"}
    bounces = [r for r in sink.requests if r.path == "/v3/suppression/bounces"]
    assert [r.query["offset"] for r in bounces] == [["0"], ["500"], ["1000"]]
    assert {r.query["limit"][0] for r in sink.requests} == {"500"}
    assert {r.path for r in sink.requests} == {
        f"/v3/suppression/{n}" for n in ("unsubscribes", "bounces", "spam_reports")
    }


def test_fetch_suppressions_errors_carry_sendgrid_message() -> None:
    with (
        SendGridSink([Reply(401, errors("authorization required"))]) as sink,
        pytest.raises(TransportError, match="authorization required") as caught,
    ):
        list(fetch_suppressions(sink.url, KEY))
    assert KEY not in str(caught.value)


def test_sync_suppressions_counts_new_rows(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.sqlite3'}").migrate()
    try:
        rows = [("a@example.org", "bounced"), ("A@example.org", "bounced"), ("b@example.org", "complained")]
        assert sync_suppressions(store.suppressions, rows) == {
            "unsubscribed": 0,
            "bounced": 1,
            "complained": 1,
        }
        assert store.suppressions.is_suppressed("a@example.org", "weekly") is not None
    finally:
        store.close()
