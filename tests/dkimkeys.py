"""DKIM keys made for the tests, and a DNS stub that publishes their public halves.

dkimpy's verifier looks the key up with ``dnsfunc(name, timeout=…)``; ``Dns`` answers from a
dict, so the tests check real signatures against real keys without a network.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass, field

import dkim
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.dkimkey import load_key

DOMAIN = "news.example.org"


@functools.cache
def rsa_pem(bits: int = 2048) -> bytes:
    """A PKCS #8 PEM RSA key (as ``openssl genrsa`` writes it), made once per size per run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@functools.cache
def ed25519_seed() -> bytes:
    """An Ed25519 key as dkimpy's ``dknewkey --ktype ed25519`` writes it: the base64 seed."""
    return base64.b64encode(bytes(nacl.signing.SigningKey.generate()))


@dataclass
class Dns:
    """TXT records by name, answered the way dkimpy's ``dnsfunc`` must."""

    records: dict[str, bytes] = field(default_factory=dict)

    def publish(self, selector: str, key: bytes, domain: str = DOMAIN) -> Dns:
        self.records[f"{selector}._domainkey.{domain}."] = load_key(key).dns_record().encode("ascii")
        return self

    def __call__(self, name: bytes | str, timeout: float = 5) -> bytes:
        text = name.decode("ascii") if isinstance(name, bytes) else name
        return self.records.get(text, b"")

    def verify(self, message: bytes, index: int = 0) -> bool:
        """dkimpy's verdict on the ``index``-th DKIM-Signature of ``message``."""
        try:
            return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=self))
        except dkim.DKIMException:  # what dkim.verify() also reads as "no"
            return False

    def verify_all(self, message: bytes) -> bool:
        count = sum(
            1 for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if line.startswith(b"DKIM-")
        )
        return count > 0 and all(self.verify(message, index) for index in range(count))


def signature_tags(message: bytes, index: int = 0) -> dict[bytes, bytes]:
    """The tags of the ``index``-th DKIM-Signature (h= with its spaces removed)."""
    headers, _body = dkim.rfc822_parse(message)
    values = [value for name, value in headers if name.lower() == b"dkim-signature"]
    tags: dict[bytes, bytes] = dkim.util.parse_tag_value(values[index])
    return {tag: b"".join(value.split()) for tag, value in tags.items()}
