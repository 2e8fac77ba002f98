"""Where bounce reports are read from: Maildir folders, mbox files, .eml files, and IMAP.

Files are only read: the MTA, procmail or fetchmail that fills them owns them, and reading
twice is harmless (events are stored once). An IMAP mailbox is emptied as it is read: each
message is moved to ``[bounces] processed_folder`` once it has been handled (kept as
unattributed counts as handled: it is in the state store, whole).
"""

from __future__ import annotations

import imaplib
import mailbox
import re
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from digest.config import Bounces
from digest.errors import DigestError

# The UID in a FETCH answer's first line, e.g. b'3 (UID 17 RFC822 {2130}'.
_UID = re.compile(rb"\bUID (\d+)\b")


def read_paths(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    """(origin, message) for every message in these Maildir folders, mbox files and .eml files."""
    for path in paths:
        if path.is_dir():
            if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
                raise DigestError(f"{path} is a folder but not a Maildir (no cur/, new/ and tmp/)")
            box: mailbox.Mailbox[mailbox.MaildirMessage] | mailbox.mbox = mailbox.Maildir(path, create=False)
        elif not path.is_file():
            raise DigestError(f"{path} does not exist")
        elif _looks_like_mbox(path):
            box = mailbox.mbox(path, create=False)
        else:
            yield str(path), path.read_bytes()
            continue
        try:
            for key in sorted(box.keys()):
                yield f"{path}#{key}", box.get_bytes(key)
        finally:
            box.close()


def _looks_like_mbox(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(5) == b"From "


class MailboxClient(Protocol):
    """What ``fetch`` needs of an IMAP connection (imaplib's, or a fake in tests)."""

    def messages(self) -> Iterator[tuple[str, bytes]]: ...

    def processed(self, uid: str) -> None: ...

    def close(self) -> None: ...


class ImapMailbox:
    """An IMAP4 mailbox over TLS: messages of ``folder`` in, handled ones moved out."""

    def __init__(self, options: Bounces, password: str, *, context: ssl.SSLContext | None = None) -> None:
        assert options.imap_host and options.imap_user
        self.options = options
        self.where = f"{options.imap_user}@{options.imap_host}:{options.imap_port}/{options.folder}"
        try:
            self.imap = imaplib.IMAP4_SSL(
                options.imap_host, options.imap_port, ssl_context=context or ssl.create_default_context()
            )
            self.imap.login(options.imap_user, password)
            _ok(self.imap.select(_quoted(options.folder)), f"select {options.folder}")
            self.imap.create(_quoted(options.processed_folder))  # "already exists" is fine
            # Servers (Dovecot) list MOVE only once logged in; imaplib keeps what they said before.
            _typ, listed = self.imap.capability()
        except (imaplib.IMAP4.error, OSError) as exc:
            raise DigestError(f"cannot read the bounce mailbox {self.where}: {exc}") from None
        after_login = listed[0].decode("ascii", "replace").upper().split() if listed and listed[0] else []
        # RFC 6851 MOVE is one atomic step; without it, a crash between COPY and EXPUNGE only
        # means the message is read again next time, which changes nothing.
        self.move = "MOVE" in {*self.imap.capabilities, *after_login}

    def messages(self) -> Iterator[tuple[str, bytes]]:
        _typ, data = self.imap.uid("SEARCH", "ALL")
        found = data[0] if data and isinstance(data[0], bytes) else b""
        for uid in found.decode("ascii").split():
            _typ, parts = self.imap.uid("FETCH", uid, "(RFC822)")
            for part in parts:
                if isinstance(part, tuple) and _UID.search(part[0]):
                    yield uid, part[1]

    def processed(self, uid: str) -> None:
        """Move a handled message to the processed folder (copy and expunge without MOVE)."""
        target = _quoted(self.options.processed_folder)
        if self.move:
            _ok(self.imap.uid("MOVE", uid, target), "move")
            return
        _ok(self.imap.uid("COPY", uid, target), "copy")
        self.imap.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
        self.imap.expunge()

    def close(self) -> None:
        try:
            self.imap.close()
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def open_imap(options: Bounces, env: Mapping[str, str], root: Path | None = None) -> ImapMailbox:
    """Log in to the ``[bounces]`` mailbox; ``root`` is config.toml's folder (for imap_ca_file)."""
    if not options.imap_host:
        raise DigestError("no bounce mailbox: set [bounces] imap_host and imap_user in the config")
    password = env.get(options.password_env)
    if not password:
        raise DigestError(
            f"${options.password_env} is not set",
            hint="`digest bounces fetch` reads the IMAP password from it",
        )
    return ImapMailbox(options, password, context=tls_context(options, root or Path.cwd()))


def tls_context(options: Bounces, root: Path) -> ssl.SSLContext:
    """The system's trust store, or ``imap_ca_file``'s CAs: the certificate is always checked."""
    if not options.imap_ca_file:
        return ssl.create_default_context()
    path = (root / Path(options.imap_ca_file).expanduser()).resolve()
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise DigestError(
            f"cannot read the IMAP CA file {path}: {exc}",
            hint="[bounces] imap_ca_file names PEM certificates, relative to config.toml",
        ) from None


def fetch(client: MailboxClient, handle: Callable[[bytes, str], object]) -> int:
    """Handle every message of the mailbox and move each out once handled; how many."""
    done = 0
    try:
        for uid, raw in list(client.messages()):
            handle(raw, f"imap uid {uid}")
            client.processed(uid)
            done += 1
    finally:
        client.close()
    return done


def _ok(answer: tuple[str, Sequence[object]], what: str) -> None:
    if answer[0] != "OK":
        raise DigestError(f"the bounce mailbox refused to {what}: {answer[1]!r}")


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
