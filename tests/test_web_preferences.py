"""/preferences/<token>: readers choose their desks and name, or leave, from the link in every digest."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.test import Client, TestResponse

from digest.config import Config, load_config
from digest.send.unsubscribe import Purpose, make_token
from digest.state import Store
from digest.state.readers import ReaderStatus
from digest.web import make_app
from tests.conftest import MakeProject

SECRET = b"0123456789abcdef-test-secret"
EMAIL = "anna.kovalenko@example.org"
NOW = dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC)
DESKS = ["Ukraine", "North America", "Business", "Europe", "Culture"]
BASE = "https://news.example.org"
SERVER = f'[server]\nbase_url = "{BASE}/digest"\n'


@dataclass
class Site:
    client: Client
    store: Store
    config: Config

    def path(self, token: str | None = None) -> str:
        return f"/preferences/{token if token is not None else _token()}"

    def get(self, token: str | None = None) -> TestResponse:
        return self.client.get(self.path(token))

    def post(self, data: dict[str, object], token: str | None = None, **headers: str) -> TestResponse:
        return self.client.post(self.path(token), data=data, headers=headers)


def _token(email: str = EMAIL, purpose: Purpose = Purpose.PREFERENCES, list_name: str = "daily") -> str:
    # A confirmation token must expire; this one is still good, so only its purpose is wrong.
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=1) if purpose is Purpose.CONFIRM else None
    return make_token(SECRET, list_name, email, purpose=purpose, expires=expires)


@pytest.fixture
def site(tmp_path: Path, make_project: MakeProject) -> Iterator[Site]:
    config = load_config(make_project(extra=SERVER))
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    store.readers.add("daily", EMAIL, name="Anna", desks=["Ukraine", "Business"], now=NOW)
    app = make_app(config, lambda: store, SECRET, clock=lambda: NOW)
    yield Site(Client(app), store, config)
    store.close()


def _ticked(page: str) -> list[str]:
    return re.findall(r'name="desks" value="([^"]+)" checked', page)


def test_get_shows_every_desk_with_the_current_choice_and_the_name(site: Site) -> None:
    response = site.get()
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert re.findall(r'name="desks" value="([^"]+)"', page) == DESKS
    assert _ticked(page) == ["Ukraine", "Business"]
    assert 'name="name" value="Anna"' in page
    assert "an***@example.org" in page and EMAIL not in page
    # The unsubscribe button is a form of its own, posting this page's own action.
    forms = re.findall(r"<form.*?</form>", page, re.S)
    assert len(forms) == 2 and 'value="unsubscribe"' in forms[1] and 'name="desks"' not in forms[1]
    assert "<script" not in page.lower()
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert site.store.readers.get("daily", EMAIL).desks == ("Ukraine", "Business")  # type: ignore[union-attr]


def test_a_reader_of_every_desk_sees_them_all_ticked(site: Site) -> None:
    site.store.readers.add("daily", "all@example.org", name="", desks=None, now=NOW)
    assert _ticked(site.get(_token("all@example.org")).get_data(as_text=True)) == DESKS


def test_post_saves_desks_and_name_and_the_store_shows_them(site: Site) -> None:
    response = site.post({"desks": ["Culture", "Europe"], "name": "  Anna\nK. "})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Saved." in page and _ticked(page) == ["Europe", "Culture"]
    reader = site.store.readers.get("daily", EMAIL)
    assert reader is not None
    assert reader.desks == ("Europe", "Culture") and reader.name == "Anna K."
    assert reader.status is ReaderStatus.ACTIVE
    assert [event.event for event in site.store.readers.history(EMAIL)][-1] == "preferences changed"


def test_every_desk_ticked_is_stored_as_all_and_unknown_desks_are_ignored(site: Site) -> None:
    assert site.post({"desks": [*DESKS, "Sport"], "name": "Anna"}).status_code == 200
    assert site.store.readers.get("daily", EMAIL).desks is None  # type: ignore[union-attr]
    site.post({"desks": ["Sport", "Culture"], "name": "Anna"})
    assert site.store.readers.get("daily", EMAIL).desks == ("Culture",)  # type: ignore[union-attr]


def test_no_desk_asks_to_confirm_and_then_unsubscribes(site: Site) -> None:
    for form in ({"name": "Anna"}, {"name": "Anna", "desks": ["Sport"]}):
        response = site.post(form)
        page = response.get_data(as_text=True)
        assert response.status_code == 200 and "No desks means unsubscribing" in page
        assert 'value="unsubscribe"' in page and 'href="/preferences/' in page
        reader = site.store.readers.get("daily", EMAIL)
        assert reader is not None and reader.status is ReaderStatus.ACTIVE
        assert reader.desks == ("Ukraine", "Business")  # nothing changed yet
    response = site.post({"action": "unsubscribe"})
    assert response.status_code == 200 and "You are unsubscribed" in response.get_data(as_text=True)
    assert site.store.readers.get("daily", EMAIL).status is ReaderStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    assert site.store.suppressions.count() == {"unsubscribed": 1}
    # Now the page says the address is not subscribed, and saving changes nothing.
    for response in (site.get(), site.post({"desks": ["Europe"], "name": "X"})):
        page = response.get_data(as_text=True)
        assert response.status_code == 200 and "is not subscribed" in page and "/subscribe/daily" in page
        assert 'name="desks"' not in page
    assert site.store.readers.get("daily", EMAIL).name == "Anna"  # type: ignore[union-attr]


def test_the_unsubscribe_button_leaves_at_once(site: Site) -> None:
    assert site.post({"action": "unsubscribe"}).status_code == 200
    assert site.store.readers.get("daily", EMAIL).status is ReaderStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    assert site.post({"action": "unsubscribe"}).status_code == 200  # twice is harmless


@pytest.mark.parametrize("email", ["nobody@example.org", "pending@example.org"])
def test_an_address_that_is_not_an_active_reader_gets_a_page_saying_so(site: Site, email: str) -> None:
    if email.startswith("pending"):
        site.store.readers.sign_up("daily", email, name="P", desks=None, url="u", ip=None, now=NOW)
    response = site.get(_token(email))
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "is not subscribed" in page and email not in page
    assert site.post({"desks": ["Europe"]}, _token(email)).status_code == 200
    reader = site.store.readers.get("daily", email)
    assert reader is None or reader.status is ReaderStatus.PENDING


def _bad_tokens() -> dict[str, str]:
    good = _token()
    payload, mac = good.split(".")
    flipped = payload[:5] + ("A" if payload[5] != "A" else "B") + payload[6:]
    return {
        "forged": make_token(b"another-secret-of-16+bytes", "daily", EMAIL, purpose=Purpose.PREFERENCES),
        "altered": f"{flipped}.{mac}",
        "truncated": good[:-3],
        "unsubscribe token": _token(purpose=Purpose.UNSUBSCRIBE),
        "confirm token": _token(purpose=Purpose.CONFIRM),
        "unknown list": _token(list_name="weekly"),
        "garbage": "not-a-token",
        "empty": "",
    }


@pytest.mark.parametrize("kind", list(_bad_tokens()))
def test_bad_tokens_get_the_same_400_as_unsubscribe(site: Site, kind: str) -> None:
    token = _bad_tokens()[kind]
    unsubscribe = site.client.get("/unsubscribe/not-a-token")
    for response in (
        site.get(token),
        site.post({"desks": ["Europe"]}, token),
        site.post({"action": "unsubscribe"}, token),
    ):
        assert response.status_code == 400 == unsubscribe.status_code
        assert response.headers["Cache-Control"] == "no-store"
        assert 'name="desks"' not in response.get_data(as_text=True)
    reader = site.store.readers.get("daily", EMAIL)
    assert (
        reader is not None
        and reader.status is ReaderStatus.ACTIVE
        and reader.desks == ("Ukraine", "Business")
    )


def test_a_preferences_token_does_not_unsubscribe_on_the_unsubscribe_page(site: Site) -> None:
    assert site.client.post(f"/unsubscribe/{_token()}", data={"confirm": "yes"}).status_code == 400
    assert site.store.readers.get("daily", EMAIL).status is ReaderStatus.ACTIVE  # type: ignore[union-attr]


CROSS_SITE = {
    "another origin": {"Origin": "https://evil.example"},
    "same host, other scheme": {"Origin": "http://news.example.org"},
    "fetch metadata": {"Sec-Fetch-Site": "cross-site"},
    "same-site subdomain": {"Sec-Fetch-Site": "same-site", "Origin": "null"},
    # Origin null and no fetch metadata: a sandboxed frame or a data: page, never one of ours
    # (every browser that sends Origin null for our no-referrer pages sends Sec-Fetch-Site too).
    "null origin alone": {"Origin": "null"},
}


@pytest.mark.parametrize("headers", list(CROSS_SITE.values()), ids=list(CROSS_SITE))
def test_cross_site_posts_are_refused(site: Site, headers: dict[str, str]) -> None:
    for form in ({"desks": ["Europe"], "name": "X"}, {"action": "unsubscribe"}, {"name": "X"}):
        response = site.post(form, **headers)
        assert response.status_code == 403
    reader = site.store.readers.get("daily", EMAIL)
    assert reader is not None and reader.status is ReaderStatus.ACTIVE
    assert (reader.name, reader.desks) == ("Anna", ("Ukraine", "Business"))


SAME_SITE = {
    "base_url's origin": {"Origin": BASE},
    "fetch metadata": {"Sec-Fetch-Site": "same-origin", "Origin": "null"},
    "no browser": {},
}


@pytest.mark.parametrize("headers", list(SAME_SITE.values()), ids=list(SAME_SITE))
def test_posts_from_our_own_page_are_accepted(site: Site, headers: dict[str, str]) -> None:
    assert site.post({"desks": ["Europe"], "name": "Anna"}, **headers).status_code == 200
    assert site.store.readers.get("daily", EMAIL).desks == ("Europe",)  # type: ignore[union-attr]


def test_a_store_that_fails_asks_to_try_again(tmp_path: Path, make_project: MakeProject) -> None:
    config = load_config(make_project(extra=SERVER))
    store = Store(f"sqlite:///{tmp_path}/s.db").migrate()
    store.close()
    (tmp_path / "s.db").unlink()
    (tmp_path / "s.db").mkdir()  # no database can be opened there
    client = Client(make_app(config, lambda: Store(f"sqlite:///{tmp_path}/s.db"), SECRET))
    assert client.get(f"/preferences/{_token()}").status_code == 503
