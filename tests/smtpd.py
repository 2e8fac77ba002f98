"""A real SMTP server for transport tests: aiosmtpd on 127.0.0.1, a free port, a background thread.

aiosmtpd keeps its defaults, so it checks what a real server checks: a 32 MiB size limit and
data lines of at most 1001 octets (longer ones get ``500 Line too long``). It stores every
accepted message, records every RCPT and DATA it answered, and fails on request:

    with SmtpServer() as server:
        server.reply("451 4.3.0 Try again later", to="anna@example.org", times=2)  # at RCPT
        server.reply("554 5.7.1 Rejected", times=1)  # at DATA, for the next message
        server.drop(times=1)  # hang up on the next DATA without answering
        server.drop(times=1, after_reply=True)  # accept the next message, then hang up
        server.slow(0.5, times=1)  # answer the next DATA half a second late
        server.hold()  # keep every DATA waiting (clients connected, nothing accepted) …
        server.release()  # … until now
        ...
        assert len(server.received_by("anna@example.org")) == 1

``SmtpServer(auth=("user", "secret"))`` offers AUTH PLAIN and LOGIN (without TLS too) and
accepts only that login. ``SmtpServer(tls="starttls")`` requires STARTTLS, ``tls="ssl"`` speaks
TLS from the first byte; both use a throwaway self-signed certificate for 127.0.0.1 that
``server.client_context`` trusts. The ``smtp_server`` fixture is a plain server for one test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Command = Literal["RCPT", "DATA"]


@dataclass(frozen=True)
class Received:
    """One accepted message, as the server got it (after dot-unstuffing, CRLF line ends)."""

    peer: tuple[str, int]
    tls: bool
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message_id: str | None


@dataclass(frozen=True)
class Attempt:
    """One RCPT or DATA and what the server did: its reply, "dropped" or "abandoned"."""

    command: Command
    recipients: tuple[str, ...]
    reply: str


@dataclass
class _Fault:
    command: Command
    recipients: frozenset[str] | None
    remaining: int | None
    reply: str | None = None
    drop: Literal["before", "after"] | None = None
    delay: float = 0.0


def free_port() -> int:
    """A port nothing listens on (at least right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpServer:
    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: Literal["starttls", "ssl"] | None = None,
        **smtp_options: Any,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.auth = auth
        self.logins: list[str] = []
        self._messages: list[Received] = []
        self._attempts: list[Attempt] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._smtp_options = smtp_options
        if auth:
            self._smtp_options.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller: Controller | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self.client_context: ssl.SSLContext | None = None
        """A client context that trusts this server's certificate (with tls only)."""
        if tls:
            server_context, self.client_context = _tls_contexts(self.host)
            if tls == "starttls":
                self._smtp_options.update(tls_context=server_context, require_starttls=True)
            else:
                self._ssl_context = server_context

    # -- life cycle

    def start(self) -> SmtpServer:
        # Another process may grab the free port before aiosmtpd binds it: try a few.
        for _ in range(5):
            port = free_port()
            controller = Controller(
                _Handler(self),
                hostname=self.host,
                port=port,
                ssl_context=self._ssl_context,
                **self._smtp_options,
            )
            try:
                controller.start()
            except (OSError, RuntimeError):
                continue
            self._controller, self.port = controller, port
            return self
        raise RuntimeError("cannot start the SMTP test server")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults

    def reply(
        self,
        status: str,
        *,
        to: str | Iterable[str] | None = None,
        times: int | None = None,
        at: Command | None = None,
    ) -> None:
        """Answer ``status`` instead of 250: at RCPT for the given recipients, else at DATA.

        ``times=None`` means for ever. A 421 also closes the connection, as servers do.
        """
        self._add(_Fault(at or ("RCPT" if to else "DATA"), _recipients(to), times, reply=status))

    def drop(
        self, *, times: int = 1, to: str | Iterable[str] | None = None, after_reply: bool = False
    ) -> None:
        """Close the connection at DATA: before answering, or right after accepting the message."""
        self._add(_Fault("DATA", _recipients(to), times, drop="after" if after_reply else "before"))

    def slow(self, delay: float, *, times: int | None = None, to: str | Iterable[str] | None = None) -> None:
        """Wait ``delay`` seconds before answering DATA (a client that gives up first loses it)."""
        self._add(_Fault("DATA", _recipients(to), times, delay=delay))

    def hold(self) -> None:
        """Keep every DATA waiting until ``release``: senders start, none gets ahead."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- what happened

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def received_by(self, address: str) -> list[Received]:
        return [message for message in self.messages if address in message.rcpt_tos]

    def attempts_for(self, address: str, command: Command | None = None) -> list[Attempt]:
        return [
            attempt
            for attempt in self.attempts
            if address in attempt.recipients and (command is None or attempt.command == command)
        ]

    # -- used by the handler, on the server's thread

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take(self, command: Command, recipients: Iterable[str]) -> _Fault | None:
        wanted = set(recipients)
        with self._lock:
            for fault in self._faults:
                if fault.command != command or fault.remaining == 0:
                    continue
                if fault.recipients is not None and not fault.recipients & wanted:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def _record(self, command: Command, recipients: Iterable[str], reply: str) -> None:
        with self._lock:
            self._attempts.append(Attempt(command, tuple(recipients), reply))

    def _store(self, received: Received) -> None:
        with self._lock:
            self._messages.append(received)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.auth is not None
        user, password = self.auth
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        if ok:
            with self._lock:
                self.logins.append(user)
        # handled=False lets aiosmtpd answer the 535 itself (True would leave the client waiting).
        return AuthResult(success=ok, handled=False)


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self.owner._take("RCPT", [address])
        status = await self._apply(fault, server, "RCPT", [address])
        if status is None:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            status = "250 OK"
        self.owner._record("RCPT", [address], status)
        return status

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        while not self.owner._open.is_set():
            await asyncio.sleep(0.01)
        recipients = list(envelope.rcpt_tos)
        fault = self.owner._take("DATA", recipients)
        status = await self._apply(fault, server, "DATA", recipients)
        if status is not None:
            self.owner._record("DATA", recipients, status)
            return status
        raw = bytes(envelope.original_content or b"")
        headers = BytesHeaderParser().parsebytes(raw)
        self.owner._store(
            Received(
                peer=tuple(session.peer),  # type: ignore[arg-type]
                # session.ssl is set after STARTTLS only; the transport knows either way.
                tls=server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(recipients),
                data=raw,
                message_id=headers["Message-ID"],
            )
        )
        self.owner._record("DATA", recipients, "250 OK")
        if fault is not None and fault.drop == "after":
            # Runs once this handler returned, i.e. after the 250 is written: close() flushes it.
            asyncio.get_running_loop().call_soon(_hang_up, server)
        return "250 OK"

    async def _apply(
        self, fault: _Fault | None, server: SMTP, command: Command, recipients: list[str]
    ) -> str | None:
        """The reply a fault forces (None: go on as normal); a drop never returns."""
        if fault is None:
            return None
        if fault.delay:
            try:
                await asyncio.sleep(fault.delay)
            except asyncio.CancelledError:
                # The client hung up while we were slow: aiosmtpd cancels the session.
                self.owner._record(command, recipients, "abandoned")
                raise
        if fault.drop == "before":
            self.owner._record(command, recipients, "dropped")
            _hang_up(server)
            # aiosmtpd cancels this session when it sees the connection lost.
            await asyncio.Event().wait()
        if fault.reply and fault.reply.startswith("421"):
            asyncio.get_running_loop().call_soon(_hang_up, server)
        return fault.reply


def _hang_up(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


def _tls_contexts(host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``host``: the server's context and a client's that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "digest test SMTP server")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # load_cert_chain reads only files.
    with tempfile.TemporaryDirectory() as folder:
        chain = Path(folder, "server.pem")
        chain.write_bytes(key_pem + pem)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(chain)
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client


def _recipients(to: str | Iterable[str] | None) -> frozenset[str] | None:
    if to is None:
        return None
    return frozenset([to] if isinstance(to, str) else to)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server (no AUTH, no TLS) for one test."""
    with SmtpServer() as server:
        yield server


__all__ = ["Attempt", "Received", "SmtpServer", "free_port", "smtp_server"]
