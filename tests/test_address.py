"""One normalisation of addresses, and one Addresser for every message's links and list headers."""

from __future__ import annotations

import logging

import pytest
from email_validator import EmailNotValidError

from digest.address import address_key, normalize_address
from digest.config import Config
from digest.errors import DigestError
from digest.send.unsubscribe import (
    DEMO_SECRET,
    Addresser,
    Purpose,
    checking_secret,
    list_unsubscribe_headers,
    read_token,
    signing_secret,
)

SECRET = "addresser-test-secret-0123456789"


def test_address_key_strips_and_folds() -> None:
    assert address_key("  Anna.Koval@Example.ORG \n") == "anna.koval@example.org"
    assert address_key("Straße@Example.org") == "strasse@example.org"  # casefold, not lower


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        (" Anna@Example.org ", "anna@example.org"),
        ("anna@xn--bcher-kva.example", "anna@bücher.example"),  # IDNA: the Unicode form
        ("Олена@Приклад.укр", "олена@приклад.укр"),
    ],
)
def test_normalize_address_validates_then_keys(typed: str, key: str) -> None:
    assert normalize_address(typed) == key


def test_normalize_address_refuses_what_is_not_an_address() -> None:
    with pytest.raises(EmailNotValidError, match="An email address must have an @-sign"):
        normalize_address("not-an-address")


def test_preview_and_build_sign_with_the_demo_secret_when_none_is_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert signing_secret({}, None) == DEMO_SECRET
        assert signing_secret({"DIGEST_SECRET": SECRET}, None) == SECRET.encode()
    assert caplog.records == []


def test_the_outbox_warns_and_real_transports_refuse_without_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert signing_secret({}, "outbox") == DEMO_SECRET
    assert "DIGEST_SECRET is not set" in caplog.text
    with pytest.raises(DigestError, match="DIGEST_SECRET is not set: unsubscribe links must be signed"):
        signing_secret({}, "smtp")
    with pytest.raises(DigestError, match="DIGEST_SECRET is digest's public demo secret"):
        signing_secret({"DIGEST_SECRET": DEMO_SECRET.decode()}, "sendgrid")


def test_the_endpoint_needs_the_secret_the_mail_was_signed_with() -> None:
    assert checking_secret({"DIGEST_SECRET": SECRET}) == SECRET.encode()
    with pytest.raises(DigestError, match="DIGEST_SECRET is not set: the endpoint cannot check"):
        checking_secret({})
    with pytest.raises(DigestError, match="is only 5 bytes long"):
        checking_secret({"DIGEST_SECRET": "short"})


def test_an_addresser_gives_each_recipient_their_own_link_and_the_lists_headers(config: Config) -> None:
    (daily,) = config.settings.lists
    titled = daily.model_copy(update={"title": "Morning Ledger"})
    addresser = Addresser(config, titled, env={"DIGEST_SECRET": SECRET}, backend="smtp")
    assert not addresser.demo
    recipient, headers = addresser.recipient("Anna@Example.org", "Anna")
    token = recipient.unsubscribe_url.rsplit("/", 1)[1]
    assert recipient.unsubscribe_url == f"http://127.0.0.1:8080/unsubscribe/{token}"
    assert (recipient.email, recipient.name) == ("Anna@Example.org", "Anna")
    assert read_token(SECRET.encode(), token, purpose=Purpose.UNSUBSCRIBE) == ("daily", "anna@example.org")
    sender = config.settings.newsroom.sender
    assert headers == list_unsubscribe_headers("http://127.0.0.1:8080", sender, token)
    assert addresser.list_headers == {"List-Id": '"Morning Ledger" <daily.news.example.org>'}
    _same, everything = addresser.message("Anna@Example.org", "Anna")
    assert everything == {**addresser.list_headers, **headers}
    envelope = addresser.envelope("Anna@Example.org", "Anna", "<id@news.example.org>")
    assert (envelope.recipient, envelope.headers, envelope.message_id) == (
        recipient,
        headers,
        "<id@news.example.org>",
    )


def test_an_addresser_for_a_preview_is_demo_signed_without_a_secret(config: Config) -> None:
    (daily,) = config.settings.lists
    addresser = Addresser(config, daily, env={}, backend=None)
    recipient, _headers = addresser.recipient("anna@example.org", "")
    assert addresser.demo
    token = recipient.unsubscribe_url.rsplit("/", 1)[1]
    assert read_token(DEMO_SECRET, token, purpose=Purpose.UNSUBSCRIBE) == ("daily", "anna@example.org")
