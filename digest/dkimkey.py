"""DKIM private keys: read once, checked for strength, ready to sign a digest.

Here rather than in ``digest.send`` because config.toml's checks read the keys too (a key file
that is missing, unreadable or weak is a config problem with its line), and ``digest.config``
never imports the send path.

Two kinds of key: RSA (``rsa-sha256``, RFC 6376; RFC 8301 refuses fewer than 1024 bits) and
Ed25519 (``ed25519-sha256``, RFC 8463). Both may come as PEM (``openssl genrsa``, ``openssl
genpkey -algorithm ed25519``), and Ed25519 also as dkimpy's ``dknewkey --ktype ed25519``
writes it: the base64 of the 32-byte seed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Literal

import nacl.signing
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]

# RFC 8301: verifiers must not accept signatures under 1024 bits; signers should use 2048.
MIN_RSA_BITS = 1024
RECOMMENDED_RSA_BITS = 2048
_PKCS1 = padding.PKCS1v15()
_PREHASHED = utils.Prehashed(hashes.SHA256())


class KeyProblem(ValueError):
    """A key that cannot sign, in words for the person who configured it."""


@dataclass(frozen=True)
class PrivateKey:
    """A parsed key; ``sign`` takes the SHA-256 digest of the signed header fields."""

    algorithm: Algorithm
    bits: int
    public: bytes = field(repr=False)
    """The DNS record's ``p=``: DER SubjectPublicKeyInfo (RSA) or the raw 32 bytes (Ed25519)."""
    _rsa: rsa.RSAPrivateKey | None = field(default=None, repr=False)
    _ed25519: nacl.signing.SigningKey | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """The DNS record's ``k=``."""
        return "rsa" if self._rsa is not None else "ed25519"

    @property
    def weak(self) -> bool:
        """Signs, but under RFC 8301's recommended size: worth a warning."""
        return self._rsa is not None and self.bits < RECOMMENDED_RSA_BITS

    def sign(self, digest: bytes) -> bytes:
        if self._rsa is not None:
            # OpenSSL through cryptography: about 40 times quicker than dkimpy's pure-Python
            # RSA (and the same PKCS #1 v1.5 signature, which is deterministic).
            return self._rsa.sign(digest, _PKCS1, _PREHASHED)
        assert self._ed25519 is not None
        # RFC 8463: Ed25519 signs the SHA-256 digest itself (PureEdDSA over 32 bytes), as dkimpy does.
        return self._ed25519.sign(digest).signature

    def dns_record(self) -> str:
        """The TXT record to publish at ``<selector>._domainkey.<domain>``."""
        return f"v=DKIM1; k={self.kind}; p={base64.b64encode(self.public).decode('ascii')}"


def load_key(data: bytes) -> PrivateKey:
    """The key in ``data`` (PEM, or dknewkey's base64 Ed25519 seed); KeyProblem if unusable."""
    text = data.strip()
    if not text:
        raise KeyProblem("is empty")
    if text.startswith(b"-----BEGIN"):
        # An environment variable set from a one-line file (systemd, .env) may spell its line
        # breaks as a backslash and an "n".
        if b"\n" not in text:
            text = text.replace(b"\\n", b"\n")
        return _from_pem(text)
    try:
        seed = base64.b64decode(b"".join(text.split()), validate=True)
    except binascii.Error:
        raise KeyProblem("is neither a PEM private key nor a base64 Ed25519 key") from None
    if len(seed) != 32:
        raise KeyProblem(
            f"holds {len(seed)} bytes of base64; an Ed25519 key in dknewkey's form has 32 (or use PEM)"
        )
    return _ed25519_key(seed)


def _from_pem(text: bytes) -> PrivateKey:
    if b"PUBLIC KEY" in text.split(b"\n", 1)[0]:
        raise KeyProblem("is a public key; DKIM signs with the private key (publish the public one in DNS)")
    try:
        key = serialization.load_pem_private_key(text, password=None)
    except TypeError:
        raise KeyProblem("is encrypted; give the key without a passphrase (keep the file private)") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyProblem(f"is not a PEM private key that can be read ({_first_line(exc)})") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return _ed25519_key(raw)
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = type(key).__name__.removesuffix("PrivateKey").lstrip("_")
        raise KeyProblem(f"holds a key of another kind ({kind}); DKIM signs with RSA or Ed25519")
    if key.key_size < MIN_RSA_BITS:
        raise KeyProblem(
            f"is an RSA key of {key.key_size} bits, too weak: receivers ignore DKIM signatures under "
            f"{MIN_RSA_BITS} bits (RFC 8301); make one of {RECOMMENDED_RSA_BITS}"
        )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PrivateKey("rsa-sha256", key.key_size, public, _rsa=key)


def _ed25519_key(seed: bytes) -> PrivateKey:
    signing = nacl.signing.SigningKey(seed)
    return PrivateKey("ed25519-sha256", 256, bytes(signing.verify_key), _ed25519=signing)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
