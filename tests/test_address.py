"""One normalisation of addresses, and one Addresser for every message's links and list headers."""

from __future__ import annotations

import logging

import pytest
from email_validator import EmailNotValidError

from digest.address import address_key, normalize_address
from digest.bounces import verp
from digest.config import Config, load_config
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
from tests.conftest import MakeProject

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
    # No mailbox reads mailed unsubscribes in this config ([bounces] unsubscribe_address, a
    # return_path): no mailto: is advertised, only the link.
    assert headers == list_unsubscribe_headers("http://127.0.0.1:8080", None, token)
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


# -- each refusal and warning of the secret rules, word for word ---------------------------

GENERATE = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'


@pytest.mark.parametrize(
    ("env", "backend", "message", "hint"),
    [
        (
            {},
            "smtp",
            "DIGEST_SECRET is not set: unsubscribe links must be signed before mail goes out",
            f"set it to a long random value, e.g. {GENERATE}",
        ),
        (
            {"DIGEST_SECRET": DEMO_SECRET.decode()},
            "sendgrid",
            "DIGEST_SECRET is digest's public demo secret: anyone could forge the unsubscribe links "
            "of mail signed with it",
            f"use it only with the outbox; set a long random value of your own, e.g. {GENERATE}",
        ),
        (
            {"DIGEST_SECRET": "short"},
            "smtp",
            "$DIGEST_SECRET is only 5 bytes long; unsubscribe links signed with it could be forged",
            f"use a longer random secret (at least 16 bytes), e.g. {GENERATE}",
        ),
    ],
)
def test_signing_secret_refusals_say_what_and_how_to_fix_it(
    env: dict[str, str], backend: str, message: str, hint: str
) -> None:
    with pytest.raises(DigestError) as caught:
        signing_secret(env, backend)
    assert (caught.value.message, caught.value.hint) == (message, hint)


@pytest.mark.parametrize(
    ("env", "secret", "warning"),
    [
        (
            {},
            DEMO_SECRET,
            "DIGEST_SECRET is not set: the unsubscribe links in these outbox messages are signed with the "
            "public demo secret, so anyone could forge them",
        ),
        (
            {"DIGEST_SECRET": DEMO_SECRET.decode()},
            DEMO_SECRET,
            "DIGEST_SECRET is the public demo secret: anyone could forge the unsubscribe links in these "
            "outbox messages (fine for a demo, never for real mail)",
        ),
        ({"DIGEST_SECRET": SECRET}, SECRET.encode(), None),
    ],
)
def test_the_outbox_signs_with_any_secret_and_warns_about_a_forgeable_one(
    caplog: pytest.LogCaptureFixture, env: dict[str, str], secret: bytes, warning: str | None
) -> None:
    with caplog.at_level(logging.WARNING):
        assert signing_secret(env, "outbox") == secret
    assert [record.getMessage() for record in caplog.records] == ([warning] if warning else [])


def test_the_endpoint_says_where_to_find_the_secret() -> None:
    with pytest.raises(DigestError) as caught:
        checking_secret({})
    assert caught.value.hint == (
        "set it to the secret the mail was sent with; for `make demo`'s links, see the README's Quick start"
    )


def test_an_addresser_for_real_mail_refuses_without_a_secret(config: Config) -> None:
    (daily,) = config.settings.lists
    with pytest.raises(DigestError, match="DIGEST_SECRET is not set: unsubscribe links must be signed"):
        Addresser(config, daily, env={}, backend="smtp")
    with pytest.raises(DigestError, match="DIGEST_SECRET is digest's public demo secret"):
        Addresser(config, daily, env={"DIGEST_SECRET": DEMO_SECRET.decode()}, backend="smtp")


def test_every_way_to_address_a_recipient_keeps_their_name_and_greeting(config: Config) -> None:
    (daily,) = config.settings.lists
    addresser = Addresser(config, daily, env={"DIGEST_SECRET": SECRET}, backend="smtp")
    recipient, headers = addresser.recipient("anna@example.org", "Anna", "Dear Anna,")
    assert (recipient.name, recipient.greeting) == ("Anna", "Dear Anna,")
    assert addresser.message("anna@example.org", "Anna", "Dear Anna,") == (
        recipient,
        {**addresser.list_headers, **headers},
    )
    envelope = addresser.envelope("anna@example.org", "Anna", "<id@news.example.org>", "Dear Anna,")
    assert envelope.recipient == recipient
    # Without a greeting, none: the templates word the default.
    assert addresser.message("anna@example.org", "Anna")[0].greeting == ""
    assert addresser.envelope("anna@example.org", "Anna", "<id@news.example.org>").recipient.greeting == ""


@pytest.mark.parametrize("mailbox", [False, True], ids=["link only", "link and mailto"])
def test_recipients_reuse_the_lists_header_template(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch, mailbox: bool
) -> None:
    # Parsing the sender once per list, not per recipient, is the template's whole point.
    import digest.send.unsubscribe as unsubscribe

    if mailbox:
        addresser = _mail_addresser(make_project)
    else:
        config = load_config(make_project())
        addresser = Addresser(config, config.settings.lists[0], env={"DIGEST_SECRET": SECRET}, backend="smtp")
    built: list[str] = []

    def counting(base_url: str, sender: str, token: str) -> dict[str, str]:
        built.append(token)
        return list_unsubscribe_headers(base_url, sender, token)

    monkeypatch.setattr(unsubscribe, "list_unsubscribe_headers", counting)
    for email in ("anna@example.org", "boris@example.org", "olena@приклад.укр"):
        recipient, headers = addresser.recipient(email, "")
        token = recipient.unsubscribe_url.rsplit("/", 1)[1]
        assert headers == list_unsubscribe_headers("http://127.0.0.1:8080", addresser.mailbox, token)
    assert built == []


def test_without_a_template_each_recipient_gets_the_same_headers(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in that also occurs in the URL would be replaced there too: the template is
    # given up and each recipient's headers are built on their own, with the same result.
    import digest.send.unsubscribe as unsubscribe

    monkeypatch.setattr(unsubscribe, "_TOKEN_MARK", "127.0.0.1")
    (daily,) = config.settings.lists
    addresser = Addresser(config, daily, env={"DIGEST_SECRET": SECRET}, backend="smtp")
    recipient, headers = addresser.recipient("anna@example.org", "Anna", "Dear Anna,")
    token = recipient.unsubscribe_url.rsplit("/", 1)[1]
    assert headers == {"List-Unsubscribe": f"<http://127.0.0.1:8080/unsubscribe/{token}>"}
    assert headers == list_unsubscribe_headers("http://127.0.0.1:8080", None, token)
    assert read_token(SECRET.encode(), token, purpose=Purpose.UNSUBSCRIBE) == ("daily", "anna@example.org")


# -- the envelope sender, the mailed unsubscribe and the preferences link -------------------

RETURN_PATH = "bounces+{token}@bounces.example.org"
MAIL_TRANSPORT = f'\n[transports.mail]\nbackend = "smtp"\nreturn_path = "{RETURN_PATH}"\n'


def _mail_addresser(make_project: MakeProject, extra: str = "", transport: str | None = None) -> Addresser:
    config = load_config(
        make_project(replace={'transport = "outbox"': 'transport = "mail"'}, extra=MAIL_TRANSPORT + extra)
    )
    (daily,) = config.settings.lists
    return Addresser(config, daily, env={"DIGEST_SECRET": SECRET}, backend="smtp", transport=transport)


@pytest.mark.parametrize("row", [1, 4242])
def test_each_message_gets_a_return_path_bound_to_its_ledger_row(make_project: MakeProject, row: int) -> None:
    # A bounce finds its reader through this address alone: the row id, and a MAC over
    # the list, edition and address that makes a reused or forged id fail.
    addresser = _mail_addresser(make_project)
    envelope = addresser.envelope("Anna@Example.org", "Anna", "<id@x>", bounce=("2026-12-01", row))
    assert envelope.return_path is not None
    local, _, domain = envelope.return_path.partition("@")
    assert domain == "bounces.example.org" and local.startswith("bounces+")
    token = local.removeprefix("bounces+")
    assert verp.token_ref(token) == row
    assert verp.check_token(SECRET.encode(), token, "daily", "2026-12-01", "anna@example.org")
    assert not verp.check_token(SECRET.encode(), token, "daily", "2026-12-02", "anna@example.org")
    assert not verp.check_token(SECRET.encode(), token, "weekly", "2026-12-01", "anna@example.org")
    assert not verp.check_token(SECRET.encode(), token, "daily", "2026-12-01", "boris@example.org")
    # The rest of the envelope is the recipient's own, as without a return path.
    recipient, headers = addresser.recipient("Anna@Example.org", "Anna")
    assert (envelope.recipient, envelope.headers, envelope.message_id) == (recipient, headers, "<id@x>")


@pytest.mark.parametrize(
    "bounce", [None, ("2026-12-01", 0)], ids=["no ledger row (a test send)", "row id 0 (none yet)"]
)
def test_a_message_without_a_ledger_row_keeps_the_plain_sender(
    make_project: MakeProject, bounce: tuple[str, int] | None
) -> None:
    addresser = _mail_addresser(make_project)
    assert addresser.envelope("anna@example.org", "", "<id@x>", bounce=bounce).return_path is None


def test_the_return_path_is_the_transports_the_mail_goes_through(make_project: MakeProject) -> None:
    # A test send through another transport must not borrow the list's bounce address.
    plain = _mail_addresser(make_project, transport="outbox")
    assert plain.return_path is None
    assert plain.envelope("anna@example.org", "", "<id@x>", bounce=("2026-12-01", 7)).return_path is None
    chosen = _mail_addresser(make_project, transport="mail")
    assert chosen.return_path == RETURN_PATH
    listed = _mail_addresser(make_project)
    assert listed.return_path == RETURN_PATH


def test_the_mailed_unsubscribe_goes_to_the_bounce_mailbox_unless_one_is_named(
    make_project: MakeProject,
) -> None:
    # `digest bounces` reads the return path's mailbox anyway: "unsubscribe <token>" sent
    # there is read; a named [bounces] unsubscribe_address wins.
    addresser = _mail_addresser(make_project)
    assert addresser.mailbox == "bounces+unsubscribe@bounces.example.org"
    recipient, headers = addresser.recipient("anna@example.org", "")
    token = recipient.unsubscribe_url.rsplit("/", 1)[1]
    assert headers == list_unsubscribe_headers("http://127.0.0.1:8080", addresser.mailbox, token)
    assert (
        f"<mailto:bounces+unsubscribe@bounces.example.org?subject=unsubscribe%20{token}>"
        in (headers["List-Unsubscribe"])
    )
    named = _mail_addresser(
        make_project, extra='\n[bounces]\nunsubscribe_address = "leave@news.example.org"\n'
    )
    assert named.mailbox == "leave@news.example.org"
    recipient, headers = named.recipient("anna@example.org", "")
    token = recipient.unsubscribe_url.rsplit("/", 1)[1]
    assert f"<mailto:leave@news.example.org?subject=unsubscribe%20{token}>" in headers["List-Unsubscribe"]


def test_each_recipient_gets_a_preferences_link_that_cannot_unsubscribe(make_project: MakeProject) -> None:
    config = load_config(make_project(extra='\n[server]\nbase_url = "https://news.example.org/"\n'))
    (daily,) = config.settings.lists
    addresser = Addresser(config, daily, env={"DIGEST_SECRET": SECRET}, backend="smtp")
    recipient, _headers = addresser.recipient("Anna@Example.org", "Anna")
    assert recipient.preferences_url is not None
    prefix = "https://news.example.org/preferences/"
    assert recipient.preferences_url.startswith(prefix)
    token = recipient.preferences_url.removeprefix(prefix)
    assert read_token(SECRET.encode(), token, purpose=Purpose.PREFERENCES) == ("daily", "anna@example.org")
    assert read_token(SECRET.encode(), token, purpose=Purpose.UNSUBSCRIBE) is None
    assert recipient.unsubscribe_url.startswith("https://news.example.org/unsubscribe/")


def test_without_a_template_the_mailed_unsubscribe_is_still_advertised(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    import digest.send.unsubscribe as unsubscribe

    monkeypatch.setattr(unsubscribe, "_TOKEN_MARK", "bounces")  # also in the mailbox: no template
    addresser = _mail_addresser(make_project)
    recipient, headers = addresser.recipient("anna@example.org", "")
    token = recipient.unsubscribe_url.rsplit("/", 1)[1]
    assert headers == list_unsubscribe_headers(
        "http://127.0.0.1:8080", "bounces+unsubscribe@bounces.example.org", token
    )
