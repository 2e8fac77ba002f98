"""The SMTP transport: a few smtplib connections, one thread each, sharing a queue and a rate.

Modelled on Django's SMTP backend (open / send / close, closes only what it opened), with what a
newsletter needs on top: several connections at once, a rate limit across all of them, retries
with backoff for temporary replies (4xx) and dropped connections, and one Outcome per recipient
whatever happens, so the send ledger always knows what was accepted.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from types import TracebackType

from digest.config.transports import SmtpOptions
from digest.errors import TransportError
from digest.render.message import Composer
from digest.retry import RetryPolicy
from digest.send.dkim import Signer, create_signer
from digest.send.transports.base import Batch, Envelope, Outcome, Ready, Record
from digest.send.transports.smtp_wire import (
    Connection,
    Failure,
    RateLimiter,
    SSLConnection,
    classify,
    describe,
    message_bytes,
    reply,
)

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
BATCH_PER_CONNECTION = 20
# Composers kept (one per variant being sent); a send has a few dozen variants at most.
MAX_COMPOSERS = 64
SMTPUTF8_OPTIONS = ("SMTPUTF8", "BODY=8BITMIME")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A login read from the environment; the password never shows in a repr."""

    username: str
    password: str = field(repr=False)
    source: str = ""
    """Which variables they came from, for error hints."""


@dataclass
class _Run:
    """One batch on its way: what its workers share."""

    batch: Batch
    composer: Composer | None
    sender: str
    record: Record | None
    ready: Ready | None
    jobs: queue.SimpleQueue[int] = field(default_factory=queue.SimpleQueue)
    outcomes: list[Outcome | None] = field(init=False)
    lost: list[str] = field(default_factory=list)
    # What record or ready raised (it must stop the send, not be taken for one message's failure).
    unrecorded: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.outcomes = [None] * len(self.batch.envelopes)

    def recorded(self, index: int, outcome: Outcome) -> bool:
        """Hand one outcome to ``record``; False (and the send stops) when that failed."""
        record = self.record
        return record is None or self._went_through(lambda: record([(index, outcome)]))

    def ready_to_send(self) -> bool:
        """Call ``ready`` before a message goes out; False (and the send stops) when that failed."""
        return self.ready is None or self._went_through(self.ready)

    def _went_through(self, call: Callable[[], object]) -> bool:
        try:
            call()
        except BaseException as exc:
            self.unrecorded.append(exc)
            self.stop.set()
            return False
        return True


class _Unreachable(Exception):
    """A worker's connection could not be reopened: it stops taking messages."""


class SmtpTransport:
    """Sends each recipient their own message over a pool of SMTP connections."""

    name = "smtp"

    def __init__(
        self,
        options: SmtpOptions,
        credentials: Credentials | None = None,
        tls_context: ssl.SSLContext | None = None,
        signer: Signer | None = None,
    ) -> None:
        """``tls_context`` is for "starttls" and "ssl"; by default the system's CAs and host name checks.
        ``signer`` DKIM-signs each message's bytes as they go on the wire (``create`` makes it from
        the options' ``dkim`` keys).
        """
        self.options = options
        self.credentials = credentials
        self.signer = signer
        self.max_batch = BATCH_PER_CONNECTION * options.connections
        self.where = f"{options.host}:{options.port}"
        # None marks a slot whose connection was lost; its worker reopens it when it needs it.
        self._connections: list[smtplib.SMTP | None] = []
        self._limiter = RateLimiter(options.rate)
        # Waits go through the send's stop event rather than the policy's sleep, so that an
        # interrupted send does not sit out a retry's backoff.
        self._retry = RetryPolicy(options.backoff, cap=MAX_BACKOFF)
        self._composers: dict[tuple[object, ...], Composer | None] = {}
        if options.security != "none" and tls_context is None:
            tls_context = ssl.create_default_context()
        self._tls = tls_context

    def __repr__(self) -> str:
        return f"<SmtpTransport {self.where} security={self.options.security} open={len(self._connections)}>"

    def __enter__(self) -> SmtpTransport:
        self.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open ``connections`` connections; TransportError when not even one can be opened.

        Calling it while open does nothing. Servers that cap connections per client may refuse
        some of them: the transport then goes on with the ones it got.
        """
        if self._connections:
            return
        wanted = self.options.connections
        opened: list[smtplib.SMTP | None] = []
        errors: list[TransportError] = []
        with ThreadPoolExecutor(max_workers=wanted, thread_name_prefix="smtp-open") as pool:
            for future in [pool.submit(self._connect) for _ in range(wanted)]:
                try:
                    opened.append(future.result())
                except TransportError as exc:
                    errors.append(exc)
        if not opened:
            raise errors[0]
        if errors:
            log.warning("opened %d of %d SMTP connections: %s", len(opened), wanted, errors[0])
        self._connections = opened

    def send(self, batch: Batch, record: Record | None = None, ready: Ready | None = None) -> list[Outcome]:
        """Deliver every envelope; one Outcome each, in the batch's order, whatever happens.

        Each connection calls ``ready`` before each message, and hands the message's outcome to
        ``record`` and waits for it before the next (the Transport contract). Opens (and
        afterwards closes) the connections itself when the transport is not open.
        """
        if not batch.envelopes:
            return []
        sender = parseaddr(batch.sender)[1]
        if "@" not in sender:
            raise TransportError(f"the sender {batch.sender!r} has no email address to send from")
        opened_here = not self._connections
        if opened_here:
            self.open()
        try:
            return self._send(batch, sender, record, ready)
        finally:
            if opened_here:
                self.close()

    def close(self) -> None:
        """Say QUIT on every connection this transport opened; errors don't matter any more."""
        connections, self._connections = self._connections, []
        for connection in connections:
            if connection is None:
                continue
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()

    def _composer(self, batch: Batch) -> Composer | None:
        """The batch's variant, encoded once for all its recipients (and the next batches')."""
        key = (batch.content, batch.sender, batch.edition_id, batch.date, tuple(batch.headers.items()))
        if key not in self._composers:
            if len(self._composers) >= MAX_COMPOSERS:
                self._composers.clear()
            try:
                composer: Composer | None = Composer(
                    batch.content,
                    sender=batch.sender,
                    edition_id=batch.edition_id,
                    date=batch.date,
                    headers=batch.headers,
                )
            except Exception:
                # The fast way is an optimisation: each message can still be composed on its own.
                log.exception("cannot prepare variant %s for fast composing", batch.variant)
                composer = None
            self._composers[key] = composer
        return self._composers[key]

    def _send(self, batch: Batch, sender: str, record: Record | None, ready: Ready | None) -> list[Outcome]:
        run = _Run(batch, self._composer(batch), sender, record, ready)
        for index in range(len(batch.envelopes)):
            run.jobs.put(index)
        workers = [
            threading.Thread(target=self._work, args=(slot, run), name=f"smtp-{slot}", daemon=True)
            for slot in range(min(len(self._connections), len(batch.envelopes)))
        ]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        except BaseException:
            # Interrupted: let each worker finish (and record) the message it holds, so that
            # nothing is left half-sent and unrecorded, then give up.
            run.stop.set()
            for worker in workers:
                worker.join()
            raise
        if run.unrecorded:
            raise run.unrecorded[0]
        # Left over only when every worker lost its server: they were never tried.
        reason = f"not sent: {run.lost[-1]}" if run.lost else "not sent"
        return [
            outcome or Outcome.failed(envelope.recipient.email, reason)
            for outcome, envelope in zip(run.outcomes, batch.envelopes, strict=True)
        ]

    def _work(self, slot: int, run: _Run) -> None:
        while not run.stop.is_set():
            try:
                index = run.jobs.get_nowait()
            except queue.Empty:
                return
            if not run.ready_to_send():
                return
            envelope = run.batch.envelopes[index]
            unreachable = False
            try:
                outcome = self._deliver(slot, run.batch, run.composer, envelope, run.sender, run.stop)
            except _Unreachable as exc:
                # The other workers may still reach the server: leave the queue to them.
                outcome, unreachable = Outcome.failed(envelope.recipient.email, str(exc)), True
                run.lost.append(str(exc))
            except Exception as exc:
                # A bug must cost one message, not the batch's outcomes.
                log.exception("unexpected error sending to %s", envelope.recipient.email)
                outcome = Outcome.failed(envelope.recipient.email, f"unexpected error: {exc!r}")
                self._discard(slot)
            run.outcomes[index] = outcome
            if not run.recorded(index, outcome) or unreachable:
                return

    def _deliver(
        self,
        slot: int,
        batch: Batch,
        composer: Composer | None,
        envelope: Envelope,
        sender: str,
        stop: threading.Event,
    ) -> Outcome:
        email = envelope.recipient.email
        # Non-ASCII addresses need SMTPUTF8, and the message its headers in UTF-8.
        international = not (sender.isascii() and email.isascii())
        try:
            data, message_id = message_bytes(batch, composer, envelope, international, self.signer)
        except (ValueError, TypeError) as exc:
            return Outcome.failed(email, f"cannot compose the message: {exc}")
        attempt = 0
        # VERP: this message's own envelope sender, so that its bounce names its recipient.
        mail_from = envelope.return_path or sender
        while True:
            failure = self._attempt(slot, data, mail_from, email, international)
            if failure is None:
                return Outcome.ok(email, message_id)
            if failure.kind in ("permanent", "rejected") or attempt >= self.options.retries:
                if failure.kind == "unreachable":
                    raise _Unreachable(failure.reason)
                if failure.kind in ("permanent", "rejected"):
                    return Outcome.failed(email, failure.reason, permanent=failure.kind == "rejected")
                return Outcome.failed(email, f"{failure.reason} (gave up after {attempt + 1} attempts)")
            attempt += 1
            log.info("retrying %s (%d/%d): %s", email, attempt, self.options.retries, failure.reason)
            if stop.wait(self._retry.backoff(attempt - 1)):
                return Outcome.failed(email, f"not sent: interrupted after {failure.reason}")

    def _attempt(
        self, slot: int, data: bytes, sender: str, email: str, international: bool
    ) -> Failure | None:
        connection = self._connections[slot]
        if connection is None:
            try:
                connection = self._connections[slot] = self._connect()
            except TransportError as exc:
                return Failure(exc.message, "unreachable")
        self._limiter.wait()
        try:
            options: tuple[str, ...] = ()
            if international:
                connection.ehlo_or_helo_if_needed()
                if not connection.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError(
                        "One or more source or delivery addresses require internationalized email "
                        "support, but the server does not advertise the required SMTPUTF8 capability"
                    )
                options = SMTPUTF8_OPTIONS
            connection.sendmail(sender, [email], data, mail_options=options)
        except (smtplib.SMTPException, OSError) as exc:
            failure = classify(exc)
            # smtplib itself closes the socket after a 421; a drop leaves it in an unknown state.
            if failure.kind == "dropped" or connection.sock is None:
                self._discard(slot)
            return failure
        # The server said 250 to DATA: accepted, whatever happens to the connection next.
        return None

    def _discard(self, slot: int) -> None:
        connection, self._connections[slot] = self._connections[slot], None
        if connection is not None:
            connection.close()

    def _connect(self) -> smtplib.SMTP:
        options = self.options
        connection: smtplib.SMTP | None = None
        try:
            if options.security == "ssl":
                connection = SSLConnection(
                    options.host,
                    options.port,
                    local_hostname=options.helo,
                    timeout=options.timeout,
                    context=self._tls,
                )
            else:
                connection = Connection(
                    options.host, options.port, local_hostname=options.helo, timeout=options.timeout
                )
                if options.security == "starttls":
                    connection.starttls(context=self._tls)
            # EHLO now, so that a server refusing us says so in open() rather than per message.
            connection.ehlo_or_helo_if_needed()
            if self.credentials:
                connection.login(self.credentials.username, self.credentials.password)
        except smtplib.SMTPAuthenticationError as exc:
            if connection is not None:
                connection.close()
            assert self.credentials is not None
            raise TransportError(
                f"the SMTP server {self.where} refused the login as {self.credentials.username!r}: "
                f"{reply(exc.smtp_code, exc.smtp_error)}",
                hint=f"check {self.credentials.source}",
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            if connection is not None:
                connection.close()
            raise TransportError(f"cannot connect to the SMTP server {self.where}: {describe(exc)}") from None
        return connection


def create(options: SmtpOptions, env: Mapping[str, str], root: Path) -> SmtpTransport:
    """An SmtpTransport; the login comes from the environment variables the options name."""
    credentials = None
    if options.username_env and options.password_env:
        credentials = Credentials(
            username=_variable(env, options.username_env),
            password=_variable(env, options.password_env),
            source=f"${options.username_env} and ${options.password_env}",
        )
    return SmtpTransport(options, credentials, signer=create_signer(options.dkim, env, root))


def _variable(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise TransportError(
            f"the environment variable {name} is not set", hint="the SMTP transport reads its login from it"
        )
    return value
