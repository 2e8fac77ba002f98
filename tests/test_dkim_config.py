"""[transports.<alias>.dkim] in config.toml: keys checked when the config loads, each problem at its line."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from digest.config import load_config
from digest.dkimkey import KeyProblem, load_key
from digest.errors import ConfigError
from tests.conftest import MakeProject
from tests.dkimkeys import DOMAIN, Dns, ed25519_seed, rsa_pem

SMTP = '\n[transports.mail]\nbackend = "smtp"\nhost = "smtp.example.org"\n'


def dkim_table(key: str, selector: str = "s1", header: str = "[transports.mail.dkim]") -> str:
    return f'\n{header}\ndomain = "{DOMAIN}"\nselector = "{selector}"\n{key}\n'


def line_of(path: Path, text: str, nth: int = 1) -> int:
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(text)]
    return lines[nth - 1]


def problems(path: Path) -> list[ConfigError]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.problems)


def test_one_table_or_an_array_of_them(make_project: MakeProject) -> None:
    path = make_project(extra=SMTP + dkim_table('key_file = "rsa.pem"'))
    (path.parent / "rsa.pem").write_bytes(rsa_pem())
    (signer,) = load_config(path).settings.transports["mail"].dkim  # type: ignore[union-attr]
    assert (signer.domain, signer.selector, signer.key_file) == (DOMAIN, "s1", "rsa.pem")
    both = SMTP + dkim_table('key_file = "rsa.pem"', "rsa", "[[transports.mail.dkim]]")
    both += dkim_table('key_env = "DIGEST_DKIM_ED25519"', "ed", "[[transports.mail.dkim]]")
    path = make_project(extra=both)
    assert [s.selector for s in load_config(path).settings.transports["mail"].dkim] == ["rsa", "ed"]  # type: ignore[union-attr]


def test_a_missing_key_file_is_named_at_its_line(make_project: MakeProject) -> None:
    path = make_project(extra=SMTP + dkim_table('key_file = "keys/dkim.pem"'))
    (problem,) = problems(path)
    assert problem.line == line_of(path, "key_file")
    assert "transports.mail.dkim.key_file: key file 'keys/dkim.pem' not found" in str(problem)
    assert "openssl genrsa" in str(problem)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key: at all!", "neither a PEM private key nor a base64 Ed25519 key"),
        (b"", "is empty"),
        (base64.b64encode(b"x" * 16), "holds 16 bytes of base64"),
        (b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", "is a public key"),
        (b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "is not a PEM private key"),
    ],
)
def test_a_bad_key_file_is_refused_at_its_line(
    make_project: MakeProject, content: bytes, message: str
) -> None:
    path = make_project(extra=SMTP + dkim_table('key_file = "dkim.key"'))
    (path.parent / "dkim.key").write_bytes(content)
    (problem,) = problems(path)
    assert problem.line == line_of(path, "key_file")
    assert message in str(problem)


def test_an_rsa_key_under_1024_bits_is_refused(make_project: MakeProject) -> None:
    path = make_project(extra=SMTP + dkim_table('key_file = "weak.pem"'))
    (path.parent / "weak.pem").write_bytes(weak_rsa_pem(tmp=path.parent))
    (problem,) = problems(path)
    assert problem.line == line_of(path, "key_file")
    assert "RSA key of 512 bits, too weak" in str(problem) and "RFC 8301" in str(problem)


def test_an_rsa_key_of_1024_bits_loads_with_a_warning_at_its_line(
    make_project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_project(extra=SMTP + dkim_table('key_file = "small.pem"'))
    (path.parent / "small.pem").write_bytes(rsa_pem(1024))
    with caplog.at_level(logging.WARNING):
        load_config(path)
    assert f"config.toml:{line_of(path, 'key_file')}: " in caplog.text
    assert "RSA key of 1024 bits; RFC 8301 asks for 2048" in caplog.text


def test_a_key_env_is_checked_when_it_is_set_and_not_before(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_project(extra=SMTP + dkim_table('key_env = "DIGEST_DKIM_KEY"'))
    monkeypatch.delenv("DIGEST_DKIM_KEY", raising=False)
    load_config(path)  # build, preview and serve need no key; the transport refuses to start without it
    monkeypatch.setenv("DIGEST_DKIM_KEY", "garbage!")
    (problem,) = problems(path)
    assert problem.line == line_of(path, "key_env")
    assert "transports.mail.dkim.key_env: $DIGEST_DKIM_KEY is neither a PEM" in str(problem)
    # A PEM on one line, its line breaks written as \n (systemd, .env files), is read as PEM.
    monkeypatch.setenv("DIGEST_DKIM_KEY", rsa_pem().decode().replace("\n", "\\n"))
    load_config(path)


@pytest.mark.parametrize("key", ["", 'key_file = "a.pem"\nkey_env = "X"'])
def test_one_key_source_is_required(make_project: MakeProject, key: str) -> None:
    path = make_project(extra=SMTP + dkim_table(key))
    (problem,) = problems(path)
    assert "give the private key as key_file or as key_env" in str(problem)
    assert problem.line == line_of(path, "[transports.mail.dkim]")


def test_domain_selector_and_unknown_keys_are_checked(make_project: MakeProject) -> None:
    table = '\n[transports.mail.dkim]\ndomain = "not a domain"\nselector = "_bad"\nkey_env = "K"\nalgorithm = "rsa"\n'
    path = make_project(extra=SMTP + table)
    found = {problem.line: str(problem) for problem in problems(path)}
    assert 'a domain name like "news.example.org"' in found[line_of(path, "domain")]
    assert 'a selector like "2026-ed"' in found[line_of(path, "selector")]
    assert "unknown key 'algorithm'" in found[line_of(path, "algorithm")]


def test_two_keys_under_one_selector_are_refused(make_project: MakeProject) -> None:
    twice = dkim_table('key_env = "A"', "s1", "[[transports.mail.dkim]]")
    twice += dkim_table('key_env = "B"', "s1", "[[transports.mail.dkim]]")
    (problem,) = problems(make_project(extra=SMTP + twice))
    assert "each signer needs its own selector" in str(problem)


# -- the keys themselves ---------------------------------------------------------------------


def weak_rsa_pem(tmp: Path) -> bytes:
    """A 512-bit RSA key: cryptography refuses to make one, OpenSSL still does."""
    out = tmp / "weak-source.pem"
    made = subprocess.run(["openssl", "genrsa", "-out", str(out), "512"], capture_output=True)
    if made.returncode:
        pytest.skip(f"openssl cannot make a 512-bit key here: {made.stderr.decode()[:200]}")
    return out.read_bytes()


def test_keys_from_openssl_and_dknewkey_sign_and_match_the_dns_record_they_print(tmp_path: Path) -> None:
    ed = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True, check=True)
    assert load_key(ed.stdout).algorithm == "ed25519-sha256"
    subprocess.run(
        [sys.executable, "-m", "dkim.dknewkey", "--ktype", "ed25519", str(tmp_path / "ed")], check=True
    )
    key = load_key((tmp_path / "ed.key").read_bytes())
    assert key.dns_record() == (tmp_path / "ed.dns").read_text().strip()
    assert load_key(ed25519_seed()).bits == 256 and load_key(rsa_pem()).bits == 2048
    record = Dns().publish("s", rsa_pem()).records[f"s._domainkey.{DOMAIN}."]
    assert record.startswith(b"v=DKIM1; k=rsa; p=MIIBIjAN")


def test_other_kinds_of_key_are_refused() -> None:
    ecdsa = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyProblem, match=r"another kind \(EC\); DKIM signs with RSA or Ed25519"):
        load_key(ecdsa)
    encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(KeyProblem, match="is encrypted"):
        load_key(encrypted)
