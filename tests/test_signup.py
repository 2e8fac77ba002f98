"""Sign-up with double opt-in: the form, the confirmation email in a real outbox, the confirm link.

The app runs in process (werkzeug's test client) over a SQLite store on disk, under a clock the
tests move. Browsers are imitated by their headers: our own form posts with ``Origin: null``
and ``Sec-Fetch-Site: same-origin`` (our pages send ``Referrer-Policy: no-referrer``), as
Chromium does.
"""

from __future__ import annotations

import datetime as dt
import email
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from werkzeug.test import Client, TestResponse

from digest.config import load_config
from digest.send.unsubscribe import Purpose, make_token, read_token
from digest.state import Store
from digest.state.readers import ReaderStatus
from digest.state.suppressions import Reason
from digest.web import make_app
from digest.web.app import MAX_BODY, App
from tests.conftest import NOW, MakeProject

SECRET = b"0123456789abcdef-test-secret"
ANNA = "anna.kovalenko@example.org"
OURS = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
NEWSROOM = "https://news.example.org"
SERVER = f"""
[server]
base_url = "https://digest.example.org"
signup_origins = ["{NEWSROOM}"]
signups_per_minute = 5
"""
DESKS = ["Ukraine", "North America", "Business", "Europe", "Culture"]


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Web:
    client: Client
    app: App
    store: Store
    clock: Clock
    outbox: Path
    ip: str = "203.0.113.7"
    extra: dict[str, str] = field(default_factory=dict)

    def sign_up(
        self,
        address: str = ANNA,
        *,
        headers: dict[str, str] | None = None,
        ip: str | None = None,
        **data: Any,
    ) -> TestResponse:
        form = {"email": address, "name": "Anna", **data}
        return self.client.post(
            "/subscribe/daily",
            data=form,
            headers=OURS if headers is None else headers,
            environ_overrides={"REMOTE_ADDR": ip or self.ip},
        )

    def mails(self, address: str = ANNA) -> list[EmailMessage]:
        """The confirmation emails in the outbox for ``address`` (the outbox keeps the latest)."""
        self.app.site.outbound().wait()
        found = sorted((self.outbox / "daily-confirm").glob(f"{address}.*.eml"))
        return [
            cast(EmailMessage, email.message_from_bytes(path.read_bytes(), policy=policy.default))
            for path in found
        ]

    def token(self, address: str = ANNA) -> str:
        (message,) = self.mails(address)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        return text.split("/confirm/", 1)[1].split()[0]

    def status(self, address: str = ANNA) -> ReaderStatus | None:
        reader = self.store.readers.get("daily", address)
        return reader.status if reader else None


def web_for(project: Path, store: Store, clock: Clock) -> Web:
    app = cast(App, make_app(load_config(project), lambda: store, SECRET, clock=clock))
    return Web(Client(app), app, store, clock, project.parent / "outbox")


@pytest.fixture
def project(make_project: MakeProject) -> Path:
    return make_project(extra=SERVER)


@pytest.fixture
def web(project: Path, tmp_path: Path) -> Iterator[Web]:
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    yield web_for(project, store, Clock(NOW))
    store.close()


# -- the journey ------------------------------------------------------------------------------


def test_the_form_has_labelled_fields_every_desk_ticked_and_a_honeypot(web: Web) -> None:
    page = web.client.get("/subscribe/daily")
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    html = page.text
    assert '<label for="email">' in html and 'id="email" name="email"' in html
    assert '<label for="name">' in html and 'id="name" name="name"' in html
    for desk in DESKS:
        assert f'<input type="checkbox" name="desks" value="{desk}" checked> {desk}</label>' in html
    assert 'name="website" tabindex="-1"' in html and "<script" not in html
    assert "The Morning Ledger" in html


def test_sign_up_mail_confirm_and_the_reader_is_active_with_their_desks(web: Web) -> None:
    answer = web.sign_up(desks=["Business", "Culture"])
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    reader = web.store.readers.get("daily", ANNA)
    assert reader is not None and reader.status is ReaderStatus.PENDING
    assert reader.desks == ("Business", "Culture") and reader.name == "Anna"
    assert reader.consent.signup_url == "https://digest.example.org/subscribe/daily"
    assert reader.consent.signup_ip == "203.0.113.7"

    (message,) = web.mails()
    assert message["To"] == f"Anna <{ANNA}>" and message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"] == "Confirm your subscription to daily"
    assert "List-Unsubscribe" not in message
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    token = web.token()
    assert f"https://digest.example.org/confirm/{token}" in html
    assert read_token(SECRET, token, purpose=Purpose.CONFIRM, now=NOW) == ("daily", ANNA)
    assert not web.store.ledger.row("daily-confirm", ANNA)  # no edition, no ledger

    # A mail scanner opens the link: nothing changes.
    for _ in range(3):
        page = web.client.get(f"/confirm/{token}")
        assert page.status_code == 200 and '<form method="post">' in page.text
    assert web.status() is ReaderStatus.PENDING

    web.clock.advance(hours=2)
    done = web.client.post(
        f"/confirm/{token}", headers=OURS, environ_overrides={"REMOTE_ADDR": "198.51.100.9"}
    )
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert (
        "<li>Business</li>" in done.text
        and "<li>Culture</li>" in done.text
        and "<li>Europe</li>" not in done.text
    )
    preferences = done.text.split('href="https://digest.example.org/preferences/', 1)[1].split('"', 1)[0]
    assert read_token(SECRET, preferences, purpose=Purpose.PREFERENCES) == ("daily", ANNA)
    assert read_token(SECRET, preferences, purpose=Purpose.CONFIRM, now=NOW) is None
    reader = web.store.readers.get("daily", ANNA)
    assert reader is not None and reader.status is ReaderStatus.ACTIVE
    assert reader.consent.confirmed_at == NOW + dt.timedelta(hours=2)
    assert reader.consent.confirm_ip == "198.51.100.9"

    again = web.client.post(f"/confirm/{token}", headers=OURS)  # confirming twice is harmless
    assert again.status_code == 200 and again.text == done.text
    events = [event.event for event in web.store.readers.history(ANNA)]
    assert events == ["signed up", "confirmed"]


def test_no_desks_ticked_means_every_desk_and_all_ticked_too(web: Web) -> None:
    web.sign_up(desks=[])
    web.sign_up("bob@example.org", desks=DESKS)
    for address in (ANNA, "bob@example.org"):
        reader = web.store.readers.get("daily", address)
        assert reader is not None and reader.desks is None


def test_a_json_sign_up_gets_a_json_answer(web: Web) -> None:
    body = {"email": ANNA, "name": "Anna", "desks": ["Europe"]}
    answer = web.client.post("/subscribe/daily", json=body, headers={"Origin": NEWSROOM})
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.json is not None and answer.json["ok"] is True and "confirm" in answer.json["message"]
    assert answer.headers["Access-Control-Allow-Origin"] == NEWSROOM and answer.headers["Vary"] == "Origin"
    reader = web.store.readers.get("daily", ANNA)
    assert reader is not None and reader.desks == ("Europe",)
    assert reader.consent.signup_url == NEWSROOM
    assert len(web.mails()) == 1
    for bad in (
        b"[1, 2]",
        b"{not json",
        json.dumps({"email": 5}).encode(),
        json.dumps({"desks": "x"}).encode(),
    ):
        refused = web.client.post(
            "/subscribe/daily", data=bad, content_type="application/json", headers={"Origin": NEWSROOM}
        )
        assert refused.status_code == 400 and refused.json is not None and refused.json["ok"] is False


def test_an_embedded_form_on_the_newsrooms_site_is_accepted(web: Web) -> None:
    headers = {
        "Origin": NEWSROOM,
        "Referer": f"{NEWSROOM}/newsletters?utm=x#form",
        "Sec-Fetch-Site": "cross-site",
    }
    answer = web.sign_up(headers=headers)
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    reader = web.store.readers.get("daily", ANNA)
    assert reader is not None and reader.consent.signup_url == f"{NEWSROOM}/newsletters"
    preflight = web.client.options(
        "/subscribe/daily", headers={"Origin": NEWSROOM, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == NEWSROOM
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    evil = web.client.options(
        "/subscribe/daily",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert evil.status_code == 403 and "Access-Control-Allow-Origin" not in evil.headers
    assert web.client.options("/confirm/x").status_code == 405


# -- refusals -----------------------------------------------------------------------------------


CROSS_SITE = {
    "evil origin": {"Origin": "https://evil.example"},
    "evil origin, same-origin claim": {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
    "null origin from another site": {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    "a sibling site": {"Origin": "null", "Sec-Fetch-Site": "same-site"},
    "null origin and nothing else": {"Origin": "null"},
    "evil referer": {"Referer": "https://evil.example/page"},
    "cross-site, no Origin to check": {"Sec-Fetch-Site": "cross-site", "Referer": f"{NEWSROOM}/"},
    "newsroom posting to confirm": {"Origin": NEWSROOM},
}


@pytest.mark.parametrize("name", CROSS_SITE)
def test_a_cross_site_post_is_refused_and_nothing_is_stored(web: Web, name: str) -> None:
    headers = CROSS_SITE[name]
    if "confirm" in name:
        token = make_token(
            SECRET, "daily", ANNA, purpose=Purpose.CONFIRM, expires=NOW + dt.timedelta(hours=1)
        )
        web.sign_up()
        answer = web.client.post(f"/confirm/{token}", headers=headers)
        assert answer.status_code == 403 and web.status() is ReaderStatus.PENDING
        return
    answer = web.sign_up(headers=headers)
    assert answer.status_code == 403 and "own pages" in answer.text
    assert web.status() is None and web.mails() == []


def test_unsubscribe_refuses_cross_site_forms_but_keeps_one_click(web: Web) -> None:
    token = make_token(SECRET, "daily", ANNA, purpose=Purpose.UNSUBSCRIBE)
    refused = web.client.post(
        f"/unsubscribe/{token}", data={"confirm": "yes"}, headers={"Origin": "https://evil.example"}
    )
    assert refused.status_code == 403
    assert web.store.suppressions.is_suppressed(ANNA, "daily") is None
    one_click = web.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert web.store.suppressions.is_suppressed(ANNA, "daily") is not None


def test_the_honeypot_answers_as_usual_and_does_nothing(web: Web) -> None:
    normal = web.sign_up("bob@example.org")
    trapped = web.sign_up(website="https://spam.example")
    assert trapped.status_code == normal.status_code == 200 and trapped.text == normal.text
    assert web.status() is None and web.mails() == []


def test_too_many_sign_ups_from_one_client_get_429_for_the_rest_of_the_minute(web: Web) -> None:
    web.clock.now = NOW.replace(second=10)
    for n in range(5):
        assert web.sign_up(f"r{n}@example.org").status_code == 200
    over = web.sign_up("r5@example.org")
    assert over.status_code == 429 and over.headers["Retry-After"] == "50"
    assert web.status("r5@example.org") is None
    assert web.sign_up("r5@example.org", ip="203.0.113.8").status_code == 200  # another client
    web.clock.advance(seconds=50)
    assert web.sign_up("r6@example.org").status_code == 200  # a new minute
    json_over = [
        web.client.post(
            "/subscribe/daily",
            json={"email": f"j{n}@example.org"},
            headers=OURS,
            environ_overrides={"REMOTE_ADDR": web.ip},
        )
        for n in range(6)
    ]
    assert [a.status_code for a in json_over] == [200] * 4 + [429] * 2
    assert json_over[-1].json is not None and json_over[-1].json["ok"] is False


def test_the_limit_is_shared_by_two_apps_on_one_database(project: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    one, two = Store(url).migrate(), Store(url).migrate()
    clock = Clock(NOW)
    first, second = web_for(project, one, clock), web_for(project, two, clock)
    answers = [(first if n % 2 else second).sign_up(f"r{n}@example.org").status_code for n in range(8)]
    assert answers == [200] * 5 + [429] * 3
    one.close()
    two.close()


def test_trusted_proxies_name_the_client_from_x_forwarded_for(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project(extra=SERVER + 'trusted_proxies = 1\nconsent_ip = "network"\n')
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    web = web_for(project, store, Clock(NOW))
    for n in range(5):
        # The proxy is the same; the clients it reports differ, whatever they claim further left.
        headers = {**OURS, "X-Forwarded-For": f"10.0.0.1, 192.0.2.{n}"}
        assert web.sign_up(f"r{n}@example.org", headers=headers, ip="127.0.0.1").status_code == 200
    spoofing = [
        web.sign_up(
            f"s{n}@example.org",
            headers={**OURS, "X-Forwarded-For": f"10.0.0.{n}, 192.0.2.77"},
            ip="127.0.0.1",
        )
        for n in range(6)
    ]
    assert [a.status_code for a in spoofing] == [200] * 5 + [429]
    reader = store.readers.get("daily", "r3@example.org")
    assert reader is not None and reader.consent.signup_ip == "192.0.2.0"
    store.close()


def test_an_oversized_body_is_refused(web: Web) -> None:
    body = {"email": ANNA, "name": "x" * (MAX_BODY + 10)}
    assert web.client.post("/subscribe/daily", data=body, headers=OURS).status_code == 413
    assert web.client.post("/subscribe/daily", json=body, headers=OURS).status_code == 413
    assert web.status() is None


def test_bad_addresses_and_desks_show_the_form_again(web: Web) -> None:
    for data in ({"email": "not-an-address"}, {"email": ANNA, "desks": ["Sport"]}):
        answer = web.client.post("/subscribe/daily", data=data, headers=OURS)
        assert (
            answer.status_code == 400
            and 'role="alert"' in answer.text
            and '<form method="post"' in answer.text
        )
    assert web.status() is None
    assert web.client.get("/subscribe/monthly").status_code == 404
    assert web.client.post("/subscribe/monthly", data={"email": ANNA}, headers=OURS).status_code == 404


def test_the_answer_is_the_same_for_new_pending_active_and_unsubscribed(web: Web) -> None:
    web.sign_up("pending@example.org")
    web.sign_up("active@example.org")
    web.client.post(f"/confirm/{web.token('active@example.org')}", headers=OURS)
    web.store.readers.leave("daily", "active@example.org", reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    web.sign_up("left@example.org")
    web.client.post(f"/confirm/{web.token('left@example.org')}", headers=OURS)
    web.store.readers.leave("daily", "left@example.org", reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    web.sign_up("still@example.org")
    web.client.post(f"/confirm/{web.token('still@example.org')}", headers=OURS)
    web.clock.advance(minutes=5)  # a new minute for the rate limit
    answers = {}
    for address in ("new@example.org", "pending@example.org", "still@example.org", "left@example.org"):
        response = web.sign_up(address)
        headers = sorted((k, v) for k, v in response.headers.items() if k != "Date")
        answers[address] = (response.status_code, response.data, tuple(headers))
    assert len(set(answers.values())) == 1, answers


def test_a_pending_address_gets_one_confirmation_email_an_hour(web: Web) -> None:
    web.sign_up()
    (first,) = web.mails()
    for minutes in (1, 20, 59):
        web.clock.now = NOW + dt.timedelta(minutes=minutes)
        assert web.sign_up().status_code == 200
        (same,) = web.mails()
        assert same["Message-ID"] == first["Message-ID"]  # the outbox was not written again
    web.clock.now = NOW + dt.timedelta(minutes=61)
    web.sign_up()
    (second,) = web.mails()
    assert second["Message-ID"] != first["Message-ID"]


def test_unconfirmed_sign_ups_expire_after_seven_days_without_a_cron(web: Web) -> None:
    web.sign_up()
    token = web.token()
    web.clock.advance(days=6, hours=23)
    web.sign_up("bob@example.org")
    assert web.status() is ReaderStatus.PENDING
    web.clock.advance(hours=1, minutes=1)
    web.sign_up("carol@example.org")  # the sign-up path does the chores, at most once a minute
    assert web.status() is None and web.status("bob@example.org") is ReaderStatus.PENDING
    assert web.client.post(f"/confirm/{token}", headers=OURS).status_code == 400


def _bad_confirm_tokens() -> dict[str, str]:
    later = NOW + dt.timedelta(hours=48)
    good = make_token(SECRET, "daily", ANNA, purpose=Purpose.CONFIRM, expires=later)
    payload, mac = good.split(".")
    flip = lambda text, i: text[:i] + ("B" if text[i] == "A" else "A") + text[i + 1 :]  # noqa: E731
    return {
        "expired": make_token(
            SECRET, "daily", ANNA, purpose=Purpose.CONFIRM, expires=NOW - dt.timedelta(seconds=1)
        ),
        "forged": make_token(
            b"another-secret-of-16-bytes", "daily", ANNA, purpose=Purpose.CONFIRM, expires=later
        ),
        "payload altered": f"{flip(payload, 5)}.{mac}",
        "mac altered": f"{payload}.{flip(mac, 10)}",
        "truncated": good[:-3],
        "cut at the dot": payload + ".",
        "an unsubscribe token": make_token(SECRET, "daily", ANNA, purpose=Purpose.UNSUBSCRIBE),
        "a preferences token": make_token(SECRET, "daily", ANNA, purpose=Purpose.PREFERENCES),
        "unknown list": make_token(SECRET, "monthly", ANNA, purpose=Purpose.CONFIRM, expires=later),
        "empty": "",
        "garbage": "hello",
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_bad_confirmation_token_gets_the_same_400_and_changes_nothing(web: Web, method: str) -> None:
    web.sign_up()
    answers = set()
    for name, token in _bad_confirm_tokens().items():
        response = web.client.open(f"/confirm/{token}", method=method, headers=OURS)
        assert response.status_code == 400, name
        answers.add(response.data)
    assert len(answers) == 1
    assert web.status() is ReaderStatus.PENDING


def test_healthz_checks_the_database(project: Path, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    web = web_for(project, store, Clock(NOW))
    assert web.client.get("/healthz").status_code == 200
    store.close()
    (tmp_path / "s.db").unlink()
    (tmp_path / "s.db").mkdir()  # the file is gone and cannot be made again: the database is down
    down = web.client.get("/healthz")
    assert down.status_code == 503 and down.text == "unavailable\n"
