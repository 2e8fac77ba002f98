"""Unsubscribe tokens: round trips, and every way a token can be bad reads as None."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from digest.errors import DigestError
from digest.send.unsubscribe import (
    SECRET_ENV,
    Purpose,
    list_unsubscribe_headers,
    mailto_unsubscribe,
    make_token,
    read_token,
    secret_from_env,
    unsubscribe_url,
)

SECRET = b"0123456789abcdef-test-secret"
OTHER = b"fedcba9876543210-test-secret"
EMAIL = "Anna.Kovalenko@Example.org"


def _flip(char: str) -> str:
    return "B" if char == "A" else "A"


def test_round_trip() -> None:
    token = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    assert read_token(SECRET, token, purpose=Purpose.UNSUBSCRIBE) == ("daily", "anna@example.org")
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", token)


def test_unicode_list_and_address_round_trip() -> None:
    token = make_token(SECRET, "вечірній", "Олена@приклад.укр", purpose=Purpose.UNSUBSCRIBE)
    assert read_token(SECRET, token, purpose=Purpose.UNSUBSCRIBE) == ("вечірній", "олена@приклад.укр")


def test_address_is_case_folded() -> None:
    token = make_token(SECRET, "daily", EMAIL, purpose=Purpose.UNSUBSCRIBE)
    assert read_token(SECRET, token, purpose=Purpose.UNSUBSCRIBE) == ("daily", "anna.kovalenko@example.org")
    assert token == make_token(SECRET, "daily", "anna.kovalenko@example.org", purpose=Purpose.UNSUBSCRIBE)
    assert token == make_token(SECRET, "daily", " ANNA.KOVALENKO@EXAMPLE.ORG ", purpose=Purpose.UNSUBSCRIBE)


def test_tokens_differ_per_list_address_and_secret() -> None:
    tokens = {
        make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE),
        make_token(SECRET, "weekly", "anna@example.org", purpose=Purpose.UNSUBSCRIBE),
        make_token(SECRET, "daily", "boris@example.org", purpose=Purpose.UNSUBSCRIBE),
        make_token(OTHER, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE),
    }
    assert len(tokens) == 4


def test_a_token_for_one_list_only_ever_names_that_list() -> None:
    # The list comes from the signed payload, so "use the daily token for weekly" has no
    # spelling; splicing the weekly payload onto the daily MAC does not verify.
    daily = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    weekly = make_token(SECRET, "weekly", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    assert read_token(SECRET, daily, purpose=Purpose.UNSUBSCRIBE) == ("daily", "anna@example.org")
    spliced = weekly.split(".")[0] + "." + daily.split(".")[1]
    assert read_token(SECRET, spliced, purpose=Purpose.UNSUBSCRIBE) is None


@pytest.mark.parametrize("part", [0, 1], ids=["payload", "mac"])
def test_every_single_character_change_is_refused(part: int) -> None:
    token = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    pieces = token.split(".")
    for index in range(len(pieces[part])):
        text = pieces[part]
        altered = list(pieces)
        altered[part] = text[:index] + _flip(text[index]) + text[index + 1 :]
        assert read_token(SECRET, ".".join(altered), purpose=Purpose.UNSUBSCRIBE) is None, index


def test_every_prefix_is_refused() -> None:
    token = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    for length in range(len(token)):
        assert read_token(SECRET, token[:length], purpose=Purpose.UNSUBSCRIBE) is None, length


def test_forged_with_another_secret() -> None:
    assert (
        read_token(
            SECRET,
            make_token(OTHER, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE),
            purpose=Purpose.UNSUBSCRIBE,
        )
        is None
    )


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "garbage",
        "not.a-token",
        "a.b.c",
        "////.////",
        "ZGFpbHk=.AAAA",
        "😀.😀",
        "\x00\n.\r\n",
        "A" * 5000,
        "A" * 600 + "." + "A" * 600,
    ],
)
def test_garbage_is_refused(token: str) -> None:
    assert read_token(SECRET, token, purpose=Purpose.UNSUBSCRIBE) is None


def test_padded_and_standard_base64_spellings_are_refused() -> None:
    token = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    payload, mac = token.split(".")
    assert read_token(SECRET, f"{payload}.{mac}=", purpose=Purpose.UNSUBSCRIBE) is None
    assert read_token(SECRET, f"{payload}==.{mac}", purpose=Purpose.UNSUBSCRIBE) is None
    assert read_token(SECRET, f" {token}", purpose=Purpose.UNSUBSCRIBE) is None
    assert read_token(SECRET, f"{token}\n", purpose=Purpose.UNSUBSCRIBE) is None


def test_very_long_input_is_refused_before_any_work() -> None:
    token = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    assert read_token(SECRET, token + "A" * 2000, purpose=Purpose.UNSUBSCRIBE) is None


def test_make_token_refuses_what_it_could_not_read_back() -> None:
    with pytest.raises(ValueError):
        make_token(SECRET, "daily\nweekly", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    with pytest.raises(ValueError):
        make_token(SECRET, "", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    with pytest.raises(ValueError):
        make_token(SECRET, "daily", "a" * 1000 + "@example.org", purpose=Purpose.UNSUBSCRIBE)
    with pytest.raises(ValueError):
        make_token(b"short", "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    with pytest.raises(TypeError):
        make_token("a string secret of length", "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)  # type: ignore[arg-type]


def test_secret_from_env() -> None:
    assert secret_from_env({}) is None
    assert secret_from_env({SECRET_ENV: ""}) is None
    assert secret_from_env({SECRET_ENV: "  "}) is None
    assert secret_from_env({SECRET_ENV: "x" * 16}) == b"x" * 16
    with pytest.raises(DigestError, match="longer random secret") as caught:
        secret_from_env({SECRET_ENV: "hunter2"})
    assert "secrets.token_urlsafe(32)" in str(caught.value)


def test_urls() -> None:
    assert (
        unsubscribe_url("https://news.example.org", "TOK.EN") == "https://news.example.org/unsubscribe/TOK.EN"
    )
    assert unsubscribe_url("https://news.example.org/", "T.K") == "https://news.example.org/unsubscribe/T.K"
    assert (
        mailto_unsubscribe("The Morning Ledger <digest@news.example.org>", "T.K")
        == "mailto:digest@news.example.org?subject=unsubscribe%20T.K"
    )
    assert mailto_unsubscribe("digest@news.example.org", "T.K").startswith("mailto:digest@news.example.org?")
    with pytest.raises(ValueError):
        mailto_unsubscribe("nobody", "T.K")


def test_headers_https_first_then_mailto_and_one_click() -> None:
    token = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    headers = list_unsubscribe_headers(
        "https://news.example.org", "The Morning Ledger <digest@news.example.org>", token
    )
    assert headers == {
        "List-Unsubscribe": (
            f"<https://news.example.org/unsubscribe/{token}>, "
            f"<mailto:digest@news.example.org?subject=unsubscribe%20{token}>"
        ),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_headers_without_https_do_not_offer_one_click() -> None:
    # RFC 8058 only allows one-click on an https URI: a local preview must not claim it.
    headers = list_unsubscribe_headers("http://127.0.0.1:8080", "digest@news.example.org", "T.K")
    assert headers == {
        "List-Unsubscribe": "<http://127.0.0.1:8080/unsubscribe/T.K>, <mailto:digest@news.example.org?subject=unsubscribe%20T.K>"
    }


# -- purposes, and the links sent before tokens had one -----------------------------------

# Made by digest before tokens named their purpose (format 1): links already in inboxes.
SENT_BEFORE_SECRET = b"links-sent-before-purposes-0123"
SENT_BEFORE = "AWRhaWx5CmhhbHluYS5ib25kYXJAZXhhbXBsZS5vcmc.7MvPD8PVuny_8hunQ8qKOh33OtTPEOyZB7hKAqTSiLk"
SENT_BEFORE_UNICODE = (
    "AWRhaWx5CtC-0LvQtdC90LBA0L_RgNC40LrQu9Cw0LQu0YPQutGA.9cKatnrpt1nkb7-CH2riecb1qYsGUV9-2LMCwzu3fAA"
)


def test_a_token_sent_before_purposes_still_unsubscribes() -> None:
    assert read_token(SENT_BEFORE_SECRET, SENT_BEFORE, purpose=Purpose.UNSUBSCRIBE) == (
        "daily",
        "halyna.bondar@example.org",
    )
    assert read_token(SENT_BEFORE_SECRET, SENT_BEFORE_UNICODE, purpose=Purpose.UNSUBSCRIBE) == (
        "daily",
        "олена@приклад.укр",
    )


@pytest.mark.parametrize("other", [p for p in Purpose if p != Purpose.UNSUBSCRIBE])
def test_a_token_sent_before_purposes_is_nothing_but_an_unsubscribe_token(other: Purpose) -> None:
    assert read_token(SENT_BEFORE_SECRET, SENT_BEFORE, purpose=other) is None


@pytest.mark.parametrize("made", list(Purpose))
@pytest.mark.parametrize("read", list(Purpose))
def test_a_token_is_refused_for_any_other_purpose(made: Purpose, read: Purpose) -> None:
    token = make_token(SECRET, "daily", EMAIL, purpose=made)
    expected = ("daily", "anna.kovalenko@example.org") if made == read else None
    assert read_token(SECRET, token, purpose=read) == expected


def test_a_new_token_names_its_purpose_in_format_2() -> None:
    token = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert payload == b"\x02unsubscribe\ndaily\nanna@example.org"


def test_make_token_refuses_a_purpose_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="'delete' is not a valid Purpose"):
        make_token(SECRET, "daily", EMAIL, purpose="delete")  # type: ignore[arg-type]


def _signed(payload: bytes) -> str:
    """A token for ``payload`` signed as digest signs (to test what the reader does with it)."""
    mac = hmac.new(SECRET, b"digest-unsubscribe\x00" + payload, hashlib.sha256).digest()
    encode = base64.urlsafe_b64encode
    return f"{encode(payload).rstrip(b'=').decode()}.{encode(mac).rstrip(b'=').decode()}"


def test_signing_matches_the_reader() -> None:
    payload = b"\x02unsubscribe\ndaily\nanna@example.org"
    assert _signed(payload) == make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x03unsubscribe\ndaily\nanna@example.org",  # a format this code does not know
        b"\x00daily\nanna@example.org",
        b"\x02unsubscribe\ndaily\nanna@example.org\nextra",  # one field too many
        b"\x02daily\nanna@example.org",  # no purpose field in format 2
        b"\x01unsubscribe\ndaily\nanna@example.org",  # format 1 with a purpose: too many fields
        b"\x02unsubscribe\n\nanna@example.org",  # no list
        b"\x02unsubscribe\ndaily\n",  # no address
        b"\x01\nanna@example.org",
        b"\x01daily\n",
        b"\x02unsubscribe\ndaily\n\xff@example.org",  # not UTF-8
    ],
)
def test_a_well_signed_payload_of_the_wrong_shape_is_refused(payload: bytes) -> None:
    assert read_token(SECRET, _signed(payload), purpose=Purpose.UNSUBSCRIBE) is None


def test_the_well_shaped_payloads_are_read() -> None:
    read = read_token(SECRET, _signed(b"\x01daily\nanna@example.org"), purpose=Purpose.UNSUBSCRIBE)
    assert read == ("daily", "anna@example.org")
    read = read_token(SECRET, _signed(b"\x02confirm\ndaily\nanna@example.org"), purpose=Purpose.CONFIRM)
    assert read == ("daily", "anna@example.org")
