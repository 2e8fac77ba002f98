"""DKIM signing: dkimpy verifies what digest signs, for RSA, Ed25519 and both, on the wire too."""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import Relaxed

from digest.config import SmtpOptions
from digest.dkimkey import load_key
from digest.errors import TransportError
from digest.render import Rendered
from digest.render.message import Composer, list_id, make_message_id
from digest.send.dkim import Signature, Signer, create_signer, relaxed_body, relaxed_headers, signed_names
from digest.send.transports.base import Batch, Envelope
from digest.send.transports.smtp import create
from tests.conftest import greeted
from tests.dkimkeys import DOMAIN, Dns, ed25519_seed, rsa_pem, signature_tags
from tests.smtpd import SmtpServer

SENDER = "The Morning Ledger <digest@news.example.org>"
EDITION = "daily-2026-11-25"
DATE = dt.datetime(2026, 11, 25, 5, 0, tzinfo=dt.UTC)
NOW = 1_795_000_000
CONTENT = Rendered(
    subject="The Morning Ledger · 25 November: Kyiv’s grid holds",
    preheader="Three stories",
    html="<!doctype html><html><body><p>%%greeting%%,</p><p>"
    + "Engineers  restored power,\tdistrict by district. " * 150
    + '</p><p><a href="%%unsubscribe_url%%">Unsubscribe</a></p></body></html>',
    # Indented lines, a tab, trailing spaces and a line starting with "." (dot-stuffed on the wire).
    text="%%greeting%%,\n\n   1. Grid repairs  \n\tcontinue\n.hidden dot line\n\nUnsubscribe: %%unsubscribe_url%%\n\n\n",
)


def key(kind: str) -> bytes:
    return rsa_pem() if kind == "rsa" else ed25519_seed()


def signer(*kinds: str) -> Signer:
    return Signer(
        [Signature(DOMAIN.encode(), kind.encode(), load_key(key(kind))) for kind in kinds], lambda: NOW
    )


def dns(*kinds: str) -> Dns:
    published = Dns()
    for kind in kinds:
        published.publish(kind, key(kind))
    return published


def batch(n: int = 3) -> Batch:
    envelopes = []
    for i in range(n):
        url = f"https://news.example.org/unsubscribe/token{i}"
        envelopes.append(
            Envelope(
                greeted(f"reader{i}@example.org", f"Reader {i}", url),
                make_message_id(EDITION, f"reader{i}@example.org", SENDER),
                {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
            )
        )
    headers = {"List-Id": list_id(SENDER, "daily", "The Morning Ledger")}
    return Batch(EDITION, "daily", "all", CONTENT, SENDER, DATE, tuple(envelopes), headers)


def message(index: int = 0) -> bytes:
    one = batch(index + 1)
    return one.message(one.envelopes[index]).as_bytes()


# -- signatures dkimpy accepts ---------------------------------------------------------------


@pytest.mark.parametrize("kinds", [("rsa",), ("ed25519",), ("rsa", "ed25519")])
def test_dkimpy_verifies_every_signature(kinds: tuple[str, ...]) -> None:
    signed = signer(*kinds).sign(message())
    for index, kind in enumerate(kinds):
        assert dns(*kinds).verify(signed, index)
        tags = signature_tags(signed, index)
        assert (tags[b"s"], tags[b"d"], tags[b"c"]) == (kind.encode(), DOMAIN.encode(), b"relaxed/relaxed")
        assert tags[b"a"] == (b"rsa-sha256" if kind == "rsa" else b"ed25519-sha256")


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_the_header_is_dkimpys_own_byte_for_byte(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    original = message()
    headers = [name for name, _value in dkim.rfc822_parse(original)[0]]
    monkeypatch.setattr(time, "time", lambda: NOW)  # dkimpy's t=
    expected = dkim.sign(
        original,
        kind.encode(),
        DOMAIN.encode(),
        key(kind),
        include_headers=list(signed_names(headers)),
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=b"rsa-sha256" if kind == "rsa" else b"ed25519-sha256",
    )
    assert signer(kind).sign(original) == expected + original


def test_the_one_click_headers_and_the_rest_are_signed_and_from_is_oversigned() -> None:
    signed = signer("ed25519").sign(message())
    names = signature_tags(signed)[b"h"].split(b":")
    assert names == [
        b"from",
        b"from",  # once more than present: a From added on the way breaks the signature
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"list-id",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
        b"mime-version",
        b"content-type",
    ]


def test_only_the_headers_present_are_named() -> None:
    plain = b"From: a@news.example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
    assert signature_tags(signer("rsa").sign(plain))[b"h"] == b"from:from:to:subject"
    with pytest.raises(ValueError, match="without From"):
        signer("rsa").sign(b"To: b@example.org\r\n\r\nbody\r\n")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Engineers  restored", b"Engineers  restorer"),  # the body
        (b"Subject: The Morning", b"Subject: The Evening"),
        (b"token0", b"tokenX"),  # the one-click URL (and the body's link)
        (
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            b"List-Unsubscribe-Post: List-Unsubscribe=Two",
        ),
        (b"\r\nFrom: ", b"\r\nFrom: Mallory <m@evil.example>\r\nFrom: "),  # a second From
    ],
)
@pytest.mark.parametrize("kinds", [("rsa",), ("ed25519",)])
def test_a_changed_message_fails_verification(kinds: tuple[str, ...], old: bytes, new: bytes) -> None:
    signed = signer(*kinds).sign(message())
    head = signed.index(b"\r\nFrom: ")  # change the message, not the signature header
    assert old in signed[head:]
    tampered = signed[:head] + signed[head:].replace(old, new, 1)
    assert dns(*kinds).verify(signed)
    assert not dns(*kinds).verify(tampered)


def test_a_signature_under_another_key_fails() -> None:
    signed = signer("ed25519").sign(message())
    other = Dns().publish("ed25519", rsa_pem())  # the selector's record holds an RSA key
    assert not other.verify(signed)


def test_relaxed_whitespace_changes_in_transit_still_verify() -> None:
    signed = signer("rsa", "ed25519").sign(message())
    # Runs of spaces and tabs count as one space; empty lines at the end count for nothing.
    relaxed = signed.replace(b"Engineers  restored", b"Engineers \t restored", 1) + b"\r\n\r\n"
    assert relaxed != signed
    assert dns("rsa", "ed25519").verify_all(relaxed)


# -- the quick canonicalization is dkimpy's ----------------------------------------------------


def test_relaxed_body_equals_dkimpys_on_random_bodies() -> None:
    rng = random.Random(8463)
    pieces = [b"a", b"b", b" ", b"  ", b"\t", b"\r\n", b"\r\n\r\n", b"\n", b"\r", b".", b"=20"]
    for _ in range(3000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
        # dkimpy's parser turns bare LFs into CRLF before canonicalizing; so does relaxed_body.
        normalized = dkim.rfc822_parse(b"X: y\r\n\r\n" + body)[1]
        assert relaxed_body(body) == Relaxed.canonicalize_body(normalized), body


def test_signing_a_composers_pieces_gives_the_same_header() -> None:
    sent = batch(3)
    composer = Composer(CONTENT, sender=SENDER, edition_id=EDITION, date=DATE, headers=sent.headers)
    signing = signer("rsa", "ed25519")
    for envelope in sent.envelopes:
        pieces = composer.message_pieces(envelope.recipient, envelope.message_id or "", envelope.headers)
        assert pieces is not None
        data = b"".join(pieces)
        assert signing.sign(data, pieces) == signing.sign(data)
        assert signing.sign(data, pieces[1:]) == signing.sign(data)  # pieces that don't add up: ignored
    assert signing._pieces, "the variant's long pieces are remembered"


def test_odd_line_ends_are_read_as_dkimpy_reads_them() -> None:
    # Bare LFs (not what digest composes): signed as a verifier will read them, pieces or not.
    odd = b"From: a@news.example.org\nSubject: x\n\nline one \n\tline two\r\n\r\n"
    signing = signer("ed25519")
    assert dns("ed25519").verify(signing.sign(odd))
    assert signing.sign(odd, [odd[:28], odd[28:]]) == signing.sign(odd)


def test_relaxed_headers_equal_dkimpys() -> None:
    headers = dkim.rfc822_parse(
        b"From:  A  <a@x.org> \r\nSubject: folded\r\n\tover  two\r\nTo:b@x.org\r\nX-Tab:\tv\r\n\r\n"
    )[0]
    assert relaxed_headers(headers) == Relaxed.canonicalize_headers(headers)


# -- the SMTP transport signs what goes on the wire ----------------------------------------------


def write_keys(tmp_path: Path) -> list[dict[str, str]]:
    (tmp_path / "dkim-rsa.pem").write_bytes(rsa_pem())
    return [
        {"domain": DOMAIN, "selector": "rsa", "key_file": "dkim-rsa.pem"},
        {"domain": DOMAIN, "selector": "ed25519", "key_env": "DIGEST_DKIM_ED25519"},
    ]


def test_signed_messages_verify_after_a_round_trip_through_an_smtp_server(tmp_path: Path) -> None:
    env = {"DIGEST_DKIM_ED25519": ed25519_seed().decode()}
    sent = batch(4)
    with SmtpServer() as server:
        settings = {"port": server.port, "connections": 2, "backoff": 0.01, "dkim": write_keys(tmp_path)}
        transport = create(SmtpOptions.model_validate(settings), env, tmp_path)
        assert all(outcome.ok for outcome in transport.send(sent))
        received = [m.data for m in server.messages]
    assert len(received) == 4
    published = dns("rsa", "ed25519")
    for data in received:
        assert b"\r\n.hidden dot line" in data  # the server undid the dot-stuffing
        assert published.verify(data, 0) and published.verify(data, 1)
        assert signature_tags(data, 0)[b"s"] == b"rsa" and signature_tags(data, 1)[b"s"] == b"ed25519"
    tampered = received[0].replace(b"Engineers", b"Engineerz", 1)  # (any one: they arrive in any order)
    assert not published.verify(tampered, 0) and not published.verify(tampered, 1)


def test_without_dkim_nothing_is_signed(tmp_path: Path) -> None:
    assert create_signer((), {}, tmp_path) is None
    assert create(SmtpOptions(), {}, tmp_path).signer is None


def test_a_key_env_that_is_not_set_stops_the_transport(tmp_path: Path) -> None:
    options = SmtpOptions.model_validate({"dkim": write_keys(tmp_path)})
    with pytest.raises(TransportError, match="DIGEST_DKIM_ED25519 is not set") as caught:
        create(options, {}, tmp_path)
    assert "ed25519._domainkey.news.example.org" in str(caught.value)


def test_a_key_file_gone_since_the_config_was_read_stops_the_transport(tmp_path: Path) -> None:
    options = SmtpOptions.model_validate(
        {"dkim": {"domain": DOMAIN, "selector": "s", "key_file": "gone.pem"}}
    )
    with pytest.raises(TransportError, match="cannot read the DKIM key file"):
        create(options, {}, tmp_path)


def test_a_1024_bit_key_signs_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "small.pem").write_bytes(rsa_pem(1024))
    options = SmtpOptions.model_validate(
        {"dkim": {"domain": DOMAIN, "selector": "s", "key_file": "small.pem"}}
    )
    made = create_signer(options.dkim, {}, tmp_path)
    assert made is not None and "has 1024 bits" in caplog.text
    assert Dns().publish("s", rsa_pem(1024)).verify(made.sign(message()))
