"""A real Dovecot IMAP server for the tests: a private instance in a temporary folder.

Debian's dovecot-imapd package provides the binaries (`make test` installs it when missing).
The instance listens for IMAP over implicit TLS (imaps, ``ssl = required``) on a free port
of 127.0.0.1, with a self-signed certificate made here for 127.0.0.1 and localhost (the
client is given it as its CA: verification stays on). One user logs in with a plain
password (a passwd-file); its mail is a Maildir in the temporary folder. It needs root, like
the Postfix of tests/postfix.py: the master and auth run as root, the login processes as
Debian's ``dovenull`` and the mail process as ``dovecot`` (Dovecot refuses root for both).
"""

from __future__ import annotations

import datetime as dt
import imaplib
import ipaddress
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOVECOT = "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "imap-test-password-0123"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed(cert: Path, key: Path) -> None:
    """A certificate for 127.0.0.1 and localhost, signed by its own key (valid for a day)."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)


class DovecotServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user = USER
        self.password = PASSWORD
        self.maildir = self.folder / "mail" / USER / "Maildir"
        self.cert = self.folder / "cert.pem"
        self.conf = self.folder / "dovecot.conf"
        self.log = self.folder / "dovecot.log"

    def start(self) -> DovecotServer:
        if not Path(DOVECOT).exists():
            pytest.fail("Dovecot is missing: `make test` installs Debian's dovecot-imapd package")
        if os.geteuid() != 0:
            pytest.skip("a private Dovecot instance needs root here (its processes run as root)")
        self.folder.chmod(0o755)
        key = self.folder / "key.pem"
        self_signed(self.cert, key)
        (self.folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        for sub in ("run", "state", "mail"):
            (self.folder / sub).mkdir()
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        # Dovecot refuses mail access as root: the mail belongs to its "dovecot" user.
        owner = pwd.getpwnam("dovecot")
        for path in (self.folder / "mail", *(self.folder / "mail").rglob("*")):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.uid, self.gid = owner.pw_uid, owner.pw_gid
        self.conf.write_text(self._conf(key))
        # Dovecot forks into the background: its output goes to a file, not a pipe held open.
        errors = self.folder / "stderr"
        with errors.open("w") as sink:
            started = subprocess.run([DOVECOT, "-c", str(self.conf)], stdout=sink, stderr=sink)
        if started.returncode != 0:
            pytest.fail(f"Dovecot did not start: {errors.read_text()}{self.log_text()}")
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"Dovecot did not listen on {self.port}: {self.log_text()}")
                time.sleep(0.1)

    def _conf(self, key: Path) -> str:
        return f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {self.folder}/run
state_dir = {self.folder}/state
instance_name = digest-test-{self.port}
log_path = {self.log}
info_log_path = {self.log}
default_internal_user = root
default_internal_group = root
default_login_user = dovenull
first_valid_uid = {self.uid}
first_valid_gid = {self.gid}
ssl = required
ssl_cert = <{self.cert}
ssl_key = <{key}
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.folder}/passwd
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={self.folder}/mail/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""

    def client(self) -> imaplib.IMAP4_SSL:
        """A logged-in connection that trusts the test certificate (for checks and set-up)."""
        imap = imaplib.IMAP4_SSL(
            self.host, self.port, ssl_context=ssl.create_default_context(cafile=str(self.cert))
        )
        imap.login(self.user, self.password)
        return imap

    def count(self, folder: str) -> int:
        """How many messages are in ``folder`` (0 if it does not exist)."""
        imap = self.client()
        try:
            typ, data = imap.status(f'"{folder}"', "(MESSAGES)")
            if typ != "OK":
                return 0
            line = data[0].decode() if isinstance(data[0], bytes) else ""
            return int(line.rsplit("MESSAGES ", 1)[1].rstrip(")"))
        finally:
            imap.logout()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        subprocess.run(
            [DOVECOT, "-c", str(self.conf), "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        pid_file = self.folder / "run" / "master.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer().start()
    try:
        yield server
    finally:
        server.stop()
