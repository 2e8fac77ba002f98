"""A real Postfix for the tests: a private instance in a temporary folder, on a free local port.

Debian's postfix package provides the binaries (`make test` installs it when missing). The
instance accepts mail for any user of example.org on 127.0.0.1 (``local_recipient_maps`` is
empty, so an unknown user is accepted and then bounced by local delivery, which produces a
real DSN rather than a refusal at RCPT), and delivers everything for bounces.example.org to
one Maildir: the bounce mailbox a VERP return path points at. Postfix runs its daemons as
its own user; as root, the tests start it like `make test` would on a server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTFIX = "/usr/sbin/postfix"
BOUNCE_DOMAIN = "bounces.example.org"
LOCAL_DOMAIN = "example.org"

_MASTER = """\
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostfixServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="digest-postfix-"))
        self.config = self.folder / "etc"
        self.port = _free_port()
        self.maildir = self.folder / "mail" / "bounces"
        self.log = self.folder / "maillog"

    def start(self) -> PostfixServer:
        if not Path(POSTFIX).exists():
            pytest.fail("Postfix is missing: `make test` installs Debian's postfix package")
        if os.geteuid() != 0:
            pytest.skip("a private Postfix instance needs root (its daemons run as the postfix user)")
        owner = pwd.getpwnam("postfix")
        self.folder.chmod(0o755)  # mkdtemp makes it 0700: Postfix must reach its folders
        self.config.mkdir()
        (self.folder / "queue").mkdir()  # root's; Postfix makes its own folders inside
        for private in ("mail", "data"):
            (self.folder / private).mkdir()
            shutil.chown(self.folder / private, owner.pw_uid, owner.pw_gid)
        (self.config / "master.cf").write_text(
            _MASTER.replace("smtp      inet", f"127.0.0.1:{self.port} inet")
        )
        (self.config / "main.cf").write_text(self._main_cf(owner.pw_uid, owner.pw_gid))
        (self.config / "dynamicmaps.cf").write_text("")
        subprocess.run([POSTFIX, "-c", str(self.config), "start"], check=True, capture_output=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Postfix did not start: {self.log_text()}")
                time.sleep(0.1)

    def _main_cf(self, uid: int, gid: int) -> str:
        return f"""\
compatibility_level = 3.6
queue_directory = {self.folder}/queue
data_directory = {self.folder}/data
maillog_file = {self.log}
maillog_file_prefixes = {self.folder}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{LOCAL_DOMAIN}
mydomain = {LOCAL_DOMAIN}
myorigin = $myhostname
mydestination = {LOCAL_DOMAIN}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
recipient_delimiter =
virtual_mailbox_domains = {BOUNCE_DOMAIN}
virtual_mailbox_base = {self.folder}/mail
virtual_mailbox_maps = static:bounces/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtputf8_enable = no
biff = no
delay_warning_time = 0
"""

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def wait_for_mail(self, count: int, timeout: float = 30) -> list[Path]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = sorted((self.maildir / "new").glob("*")) if (self.maildir / "new").exists() else []
            if len(found) >= count:
                return found
            time.sleep(0.2)
        pytest.fail(f"Postfix delivered no bounce to {self.maildir} in {timeout} s: {self.log_text()}")

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.config), "stop"], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postfix() -> Iterator[PostfixServer]:
    server = PostfixServer().start()
    try:
        yield server
    finally:
        server.stop()
