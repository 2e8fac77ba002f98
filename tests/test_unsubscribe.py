"""Unsubscribe tokens: round trips, and every way a token can be bad reads as None."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re

import pytest

from digest.errors import DigestError
from digest.send import unsubscribe
from digest.send.unsubscribe import (
    MAX_TOKEN_CHARS,
    MIN_SECRET_BYTES,
    SECRET_ENV,
    Purpose,
    list_unsubscribe_headers,
    mailto_unsubscribe,
    make_token,
    preferences_url,
    read_token,
    secret_from_env,
    unsubscribe_url,
)

SECRET = b"0123456789abcdef-test-secret"
OTHER = b"fedcba9876543210-test-secret"
EMAIL = "Anna.Kovalenko@Example.org"
NOW = dt.datetime(2026, 11, 25, 4, 30, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=48)


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


def test_very_long_input_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)

    def no_work(*_args: object) -> None:
        raise AssertionError("an over-long token was decoded or its MAC computed")

    # Neither decoding nor the MAC may run: a flood of huge tokens must cost next to nothing.
    monkeypatch.setattr(unsubscribe, "_b64decode", no_work)
    monkeypatch.setattr(unsubscribe, "_mac", no_work)
    assert read_token(SECRET, token + "A" * 2000, purpose=Purpose.UNSUBSCRIBE) is None


def test_make_token_refuses_what_it_could_not_read_back() -> None:
    fields = r"^a token needs a list name and an address, neither containing a newline$"
    with pytest.raises(ValueError, match=fields):
        make_token(SECRET, "daily\nweekly", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    with pytest.raises(ValueError, match=fields):
        make_token(SECRET, "", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    with pytest.raises(
        ValueError, match=r"^list name and address are too long for a token \(\d+ characters\)$"
    ):
        make_token(SECRET, "daily", "a" * 1000 + "@example.org", purpose=Purpose.UNSUBSCRIBE)
    with pytest.raises(ValueError, match=r"^the unsubscribe secret must be at least 16 bytes$"):
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
    assert preferences_url("https://news.example.org", "T.K") == "https://news.example.org/preferences/T.K"
    assert preferences_url("https://news.example.org/", "T.K") == "https://news.example.org/preferences/T.K"
    # Only the slashes are trimmed: a base URL with a path keeps all of it.
    assert unsubscribe_url("https://example.org/FAX/", "T.K") == "https://example.org/FAX/unsubscribe/T.K"
    assert preferences_url("https://example.org/FAX/", "T.K") == "https://example.org/FAX/preferences/T.K"
    assert (
        mailto_unsubscribe("The Morning Ledger <digest@news.example.org>", "T.K")
        == "mailto:digest@news.example.org?subject=unsubscribe%20T.K"
    )
    assert mailto_unsubscribe("digest@news.example.org", "T.K").startswith("mailto:digest@news.example.org?")
    with pytest.raises(ValueError, match=r"^'nobody' is not an email address$"):
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
    token = make_token(SECRET, "daily", EMAIL, purpose=made, expires=LATER)
    expected = ("daily", "anna.kovalenko@example.org") if made == read else None
    assert read_token(SECRET, token, purpose=read, now=NOW) == expected
    if made != Purpose.CONFIRM:
        token = make_token(SECRET, "daily", EMAIL, purpose=made)
        assert read_token(SECRET, token, purpose=read, now=NOW) == expected


# -- tokens that expire (format 3) ---------------------------------------------------------------


def test_a_confirmation_token_must_expire() -> None:
    with pytest.raises(ValueError, match="a confirm token must expire"):
        make_token(SECRET, "daily", EMAIL, purpose=Purpose.CONFIRM)
    with pytest.raises(ValueError, match=r"^a token's expiry must be an aware datetime$"):
        make_token(SECRET, "daily", EMAIL, purpose=Purpose.CONFIRM, expires=LATER.replace(tzinfo=None))


def test_an_expiring_token_works_until_its_second_then_never() -> None:
    token = make_token(SECRET, "daily", EMAIL, purpose=Purpose.CONFIRM, expires=LATER)
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert (
        payload == b"\x03confirm\ndaily\nanna.kovalenko@example.org\n" + str(int(LATER.timestamp())).encode()
    )
    expected = ("daily", "anna.kovalenko@example.org")
    for now in (NOW, LATER - dt.timedelta(seconds=1), LATER - dt.timedelta(microseconds=1)):
        assert read_token(SECRET, token, purpose=Purpose.CONFIRM, now=now) == expected
    for now in (LATER, LATER + dt.timedelta(days=365)):
        assert read_token(SECRET, token, purpose=Purpose.CONFIRM, now=now) is None
    # Without a clock of its own it reads the real one: 2026-11-27 has passed or it has not.
    real = read_token(SECRET, token, purpose=Purpose.CONFIRM)
    assert real == (expected if dt.datetime.now(dt.UTC) < LATER else None)


def test_an_expiry_cannot_be_moved_or_dropped() -> None:
    token = make_token(SECRET, "daily", EMAIL, purpose=Purpose.CONFIRM, expires=NOW)
    _payload, mac = token.split(".")
    later = base64.urlsafe_b64encode(
        b"\x03confirm\ndaily\nanna.kovalenko@example.org\n" + str(int(LATER.timestamp()) + 10**6).encode()
    )
    assert (
        read_token(SECRET, f"{later.rstrip(b'=').decode()}.{mac}", purpose=Purpose.CONFIRM, now=NOW) is None
    )
    # A confirmation token without an expiry, even well signed, is refused.
    assert (
        read_token(SECRET, _signed(b"\x02confirm\ndaily\nanna@example.org"), purpose=Purpose.CONFIRM) is None
    )


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
        b"\x04unsubscribe\ndaily\nanna@example.org",  # a format this code does not know
        b"\x03unsubscribe\ndaily\nanna@example.org",  # format 3 without its expiry
        b"\x03unsubscribe\ndaily\nanna@example.org\n0179500000",  # an expiry not in its one spelling
        b"\x03unsubscribe\ndaily\nanna@example.org\n-1",
        b"\x03unsubscribe\ndaily\nanna@example.org\n1795000000\n1",
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
    read = read_token(
        SECRET, _signed(b"\x02preferences\ndaily\nanna@example.org"), purpose=Purpose.PREFERENCES
    )
    assert read == ("daily", "anna@example.org")
    confirm = b"\x03confirm\ndaily\nanna@example.org\n1800000000"
    read = read_token(SECRET, _signed(confirm), purpose=Purpose.CONFIRM, now=NOW)
    assert read == ("daily", "anna@example.org")


# -- exact edges, and what each refusal says ------------------------------------------------


def _address_of_payload_bytes(size: int, list_name: str = "daily") -> str:
    """An address that makes the format-2 unsubscribe payload exactly ``size`` bytes long."""
    fixed = len(b"\x02unsubscribe\n") + len(list_name.encode()) + len(b"\n")
    domain = "@example.org"
    return "a" * (size - fixed - len(domain)) + domain


def test_a_token_of_exactly_the_maximum_length_is_made_and_read() -> None:
    # 717 payload bytes encode to 956 characters; with the dot and the 43-character MAC: 1000.
    address = _address_of_payload_bytes(717)
    token = make_token(SECRET, "daily", address, purpose=Purpose.UNSUBSCRIBE)
    assert len(token) == MAX_TOKEN_CHARS == 1000
    assert read_token(SECRET, token, purpose=Purpose.UNSUBSCRIBE) == ("daily", address)


def test_one_byte_more_is_too_long_for_a_token() -> None:
    # 718 bytes encode to 958 characters (base64 has no 957): 1002 in all.
    with pytest.raises(
        ValueError, match=r"^list name and address are too long for a token \(1002 characters\)$"
    ):
        make_token(SECRET, "daily", _address_of_payload_bytes(718), purpose=Purpose.UNSUBSCRIBE)


def test_a_well_signed_token_one_character_over_the_maximum_is_refused_unread() -> None:
    # Only a reader that counts first refuses this: the signature and payload are good.
    payload = b"\x02unsubscribe\ndaily\n" + _address_of_payload_bytes(717).encode()
    over = _signed(payload + b"xx")  # 719 bytes: 959 characters, 1003 in all
    exact = _signed(payload)
    assert (len(exact), len(over)) == (1000, 1003)
    assert read_token(SECRET, exact, purpose=Purpose.UNSUBSCRIBE) is not None
    assert read_token(SECRET, over, purpose=Purpose.UNSUBSCRIBE) is None


@pytest.mark.parametrize("token", [None, b"abc.def", 12, ["a", "b"]])
def test_a_token_that_is_not_text_is_refused_without_raising(token: object) -> None:
    assert read_token(SECRET, token, purpose=Purpose.UNSUBSCRIBE) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("list_name", "address"),
    [
        ("Morning Ledger", "anna@example.org"),  # a space is not a field separator
        ("daily\tdigest", "anna@example.org"),
        ("daily", '"anna kovalenko"@example.org'),
        ("daily", "olena@приклад.ї"),  # its payload's encoding ends in "X" (see below)
    ],
)
def test_whitespace_and_every_last_character_round_trip(list_name: str, address: str) -> None:
    token = make_token(SECRET, list_name, address, purpose=Purpose.UNSUBSCRIBE)
    assert read_token(SECRET, token, purpose=Purpose.UNSUBSCRIBE) == (list_name, address)


def test_only_the_padding_is_stripped_from_an_encoding() -> None:
    # "ї" is D1 97 in UTF-8: a payload whose length is a multiple of three and ends in 0x97
    # encodes to a last character "X", which must survive the stripping of "=".
    token = make_token(SECRET, "daily", "olena@приклад.ї", purpose=Purpose.UNSUBSCRIBE)
    assert token.split(".")[0].endswith("X")
    assert base64.urlsafe_b64decode(token.split(".")[0]).endswith("ї".encode())


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("part", [0, 1], ids=["payload", "mac"])
def test_a_last_character_changed_only_in_its_spare_bits_is_refused(part: int) -> None:
    # A 32-byte MAC is 43 characters, whose last carries 2 bits nobody reads; so does a payload
    # of 3n+2 bytes. Setting them decodes to the same bytes, so only the canonical check stops it.
    token = make_token(SECRET, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    pieces = token.split(".")
    assert len(base64.urlsafe_b64decode(pieces[0] + "=" * (-len(pieces[0]) % 4))) % 3 == 2
    last = _ALPHABET.index(pieces[part][-1])
    assert last % 4 == 0  # spare bits unset, as the encoder leaves them
    pieces[part] = pieces[part][:-1] + _ALPHABET[last + 1]
    altered = ".".join(pieces)
    padded = pieces[part] + "=" * (-len(pieces[part]) % 4)
    assert base64.urlsafe_b64decode(padded) == base64.urlsafe_b64decode(
        token.split(".")[part] + "=" * (-len(pieces[part]) % 4)
    )
    assert read_token(SECRET, altered, purpose=Purpose.UNSUBSCRIBE) is None


@pytest.mark.parametrize(
    ("list_name", "email"),
    [
        ("daily\nweekly", "anna@example.org"),
        ("daily", "anna\n@example.org"),  # address_key strips the ends, not the middle
        ("", "anna@example.org"),
        ("daily", ""),
        ("daily", "  \n "),
    ],
)
def test_make_token_says_why_it_refuses_a_list_or_address(list_name: str, email: str) -> None:
    with pytest.raises(
        ValueError, match=r"^a token needs a list name and an address, neither containing a newline$"
    ):
        make_token(SECRET, list_name, email, purpose=Purpose.UNSUBSCRIBE)


def test_a_secret_of_exactly_the_minimum_length_signs() -> None:
    secret = b"s" * MIN_SECRET_BYTES
    token = make_token(secret, "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    assert read_token(secret, token, purpose=Purpose.UNSUBSCRIBE) == ("daily", "anna@example.org")
    with pytest.raises(ValueError, match=r"^the unsubscribe secret must be at least 16 bytes$"):
        make_token(secret[:-1], "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)
    with pytest.raises(TypeError, match=r"^the unsubscribe secret must be bytes$"):
        make_token(secret.decode(), "daily", "anna@example.org", purpose=Purpose.UNSUBSCRIBE)  # type: ignore[arg-type]


def test_secret_from_env_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "  from-the-environment-0123  ")
    assert secret_from_env() == b"from-the-environment-0123"
    monkeypatch.delenv(SECRET_ENV)
    assert secret_from_env() is None


@pytest.mark.parametrize(("raw", "size"), [("x" * 15, 15), ("ї" * 7, 14), (" short ", 5)])
def test_secret_from_env_says_how_short_a_secret_is(raw: str, size: int) -> None:
    message = rf"^\$DIGEST_SECRET is only {size} bytes long; unsubscribe links signed with it could be forged"
    with pytest.raises(DigestError, match=message):
        secret_from_env({SECRET_ENV: raw})
    assert secret_from_env({SECRET_ENV: "ї" * 8}) == "ї".encode() * 8  # 16 bytes, though 8 characters


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://news.example.org", "https://news.example.org/unsubscribe/T.K"),
        ("https://news.example.org///", "https://news.example.org/unsubscribe/T.K"),
        ("https://example.org/BOX", "https://example.org/BOX/unsubscribe/T.K"),
        ("https://example.org/newsX/", "https://example.org/newsX/unsubscribe/T.K"),
    ],
)
def test_unsubscribe_url_strips_only_trailing_slashes(base_url: str, url: str) -> None:
    assert unsubscribe_url(base_url, "T.K") == url


@pytest.mark.parametrize(
    ("sender", "mailto"),
    [
        ("Xenia's Xpress <X@news.example.org>", "mailto:X@news.example.org?subject=unsubscribe%20T.K"),
        ("a+b!c$d*e@example.org", "mailto:a+b!c$d*e@example.org?subject=unsubscribe%20T.K"),
        ("anna kovalenko@example.org", "mailto:anna%20kovalenko@example.org?subject=unsubscribe%20T.K"),
    ],
)
def test_mailto_keeps_the_address_characters_it_may(sender: str, mailto: str) -> None:
    assert mailto_unsubscribe(sender, "T.K") == mailto


@pytest.mark.parametrize(
    "sender", ["nobody", "", "digest@news.example.org\r\nBcc: x@y.org", "Ledger <digest@news.example.org>\n"]
)
def test_mailto_refuses_what_is_not_one_address(sender: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(repr(sender))} is not an email address$"):
        mailto_unsubscribe(sender, "T.K")
