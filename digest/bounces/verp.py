"""VERP return paths: ``[transports.smtp] return_path = "bounces+{token}@bounces.example.org"``.

A bounce goes to the envelope sender (MAIL FROM), and MTAs keep that address intact in the
bounce's To, Delivered-To or X-Original-To, however vague the report itself is. Putting a
signed token for the recipient's ledger row there (``make_token``) lets a bounce name
its recipient. The token is lowercase letters, digits and one "-", so it survives MTAs that
fold the local part's case, and it is short enough (at most 30 characters) that the local
part stays within RFC 5321's 64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from email.headerregistry import Address

from digest.address import address_key

MARK = "{token}"
# make_token's shape: the row id in base 36, "-", 16 base32 characters of MAC.
_REF, _MAC = r"[0-9a-z]{1,13}", r"[a-z2-7]{16}"
TOKEN = f"{_REF}-{_MAC}"
LONGEST_TOKEN = "z" * 13 + "-" + "a" * 16
MAX_LOCAL_PART = 64
PURPOSE = "bounce"  # Purpose.BOUNCE of digest.send.unsubscribe, which imports this module
# Tokens of their own HMAC context (no unsubscribe token is one, nor the reverse) and a MAC
# cut to 80 bits, which keeps the address short; forging one means sending 2^80 guesses
# through the bounce mailbox. MIN 16-byte secrets are checked where the secret is read.
_BOUNCE_CONTEXT = b"digest-bounce\x00"
_BOUNCE_MAC_BYTES = 10
_BOUNCE_TOKEN = re.compile(f"({_REF})-({_MAC})")


def make_token(secret: bytes, list_name: str, edition_id: str, email: str, ref: int) -> str:
    """The VERP token of one message: its ledger row ``ref`` and a MAC binding it to the list,
    edition and address, e.g. "k3x9-mfrggzdfmztwq2lk".

    Compact enough for a local part (a URL token with the address would not fit in 64
    characters), and case-free (base 36 and lowercase base32) for MTAs that fold case. The row
    says who; the MAC, over what the row must hold, makes a forged or reused id fail: a
    reset database that gave the id to someone else cannot misattribute a bounce.
    """
    if ref < 1:
        raise ValueError("a bounce token names a ledger row (a positive id)")
    mac = _bounce_mac(secret, list_name, edition_id, email, ref)
    return f"{_base36(ref)}-{base64.b32encode(mac).decode('ascii').lower()}"


def token_ref(token: str) -> int | None:
    """The ledger row a bounce token names, not yet checked (``check_token`` does)."""
    found = _BOUNCE_TOKEN.fullmatch(token.lower())
    return int(found.group(1), 36) if found else None


def check_token(secret: bytes, token: str, list_name: str, edition_id: str, email: str) -> bool:
    """Whether ``token`` was made for this list, edition and address (its row's, looked up)."""
    ref = token_ref(token)
    if ref is None:
        return False
    expected = make_token(secret, list_name, edition_id, email, ref)
    return hmac.compare_digest(expected, token.lower())


def _bounce_mac(secret: bytes, list_name: str, edition_id: str, email: str, ref: int) -> bytes:
    fields = "\n".join([PURPOSE, list_name, edition_id, address_key(email), str(ref)])
    return hmac.new(secret, _BOUNCE_CONTEXT + fields.encode("utf-8"), hashlib.sha256).digest()[
        :_BOUNCE_MAC_BYTES
    ]


def _base36(number: int) -> str:
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits or "0"


def check_template(template: str) -> str:
    """The template, checked: one {token} in the local part of an address that fits SMTP."""
    template = template.strip()
    if template.count(MARK) != 1:
        raise ValueError('must contain {token} once, like "bounces+{token}@bounces.example.org"')
    local, _, domain = address(template, LONGEST_TOKEN).rpartition("@")
    if MARK in domain or not local:
        raise ValueError("{token} belongs in the part before the @")
    try:
        Address(addr_spec=f"{local}@{domain}")
    except (ValueError, IndexError) as exc:
        raise ValueError(f"is not an address once {{token}} is filled in: {exc}") from None
    if len(local) > MAX_LOCAL_PART:
        spare = MAX_LOCAL_PART - len(LONGEST_TOKEN)
        raise ValueError(f"the part before the @ may have at most {spare} characters besides {{token}}")
    return template


def address(template: str, token: str) -> str:
    """The envelope sender of one message."""
    return template.replace(MARK, token)


def pattern(templates: Iterable[str]) -> re.Pattern[str] | None:
    """What finds a token in a header: any of the templates with a token in place of {token}."""
    alternatives = []
    for template in dict.fromkeys(templates):
        before, _, after = template.partition(MARK)
        alternatives.append(f"{re.escape(before)}({TOKEN}){re.escape(after)}")
    if not alternatives:
        return None
    return re.compile("|".join(f"(?:{alt})" for alt in alternatives), re.IGNORECASE)


def find_tokens(found: re.Pattern[str] | None, texts: Iterable[str]) -> list[str]:
    """Every token in ``texts`` (lowercased, in order, once each)."""
    if found is None:
        return []
    tokens: dict[str, None] = {}
    for text in texts:
        for match in found.finditer(text):
            token = next(group for group in match.groups() if group)
            tokens.setdefault(token.lower())
    return list(tokens)
