"""Unsubscribe tokens: round trips, and every way a token can be bad reads as None."""

from __future__ import annotations

import base64
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


def test_wrong_version_is_refused_even_with_a_valid_mac() -> None:
    import hashlib
    import hmac

    payload = b"\x02daily\nanna@example.org"
    mac = hmac.new(SECRET, b"digest-unsubscribe\x00" + payload, hashlib.sha256).digest()
    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    assert read_token(SECRET, f"{encode(payload)}.{encode(mac)}", purpose=Purpose.UNSUBSCRIBE) is None


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
