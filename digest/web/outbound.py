"""Confirmation emails, sent off the request's thread.

The sign-up answer must not tell a new address from a known one, and sending takes time (an
SMTP dialogue, an API call) that only some sign-ups spend: done in the request, the answer's
timing would say which addresses were mailed. So the request only queues the email, and a
small pool of threads per worker sends it. The pool's threads are not daemons: a worker that
stops gracefully sends what it queued first.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for

from digest.address import mask_address
from digest.config import MailingList
from digest.send.confirmation import Confirmation, ConfirmationMailer
from digest.send.transports.base import Outcome

log = logging.getLogger("digest.serve")

SENDERS = 2


class Outbound:
    """A worker's queue of confirmation emails."""

    def __init__(self, mailer: ConfirmationMailer, threads: int = SENDERS) -> None:
        self.mailer = mailer
        self._threads = threads
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Future[Outcome | None]] = set()

    def submit(self, mailing_list: MailingList, confirmation: Confirmation, now: dt.datetime) -> None:
        with self._lock:
            # Made on first use, so a server's workers each start their own after forking.
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="digest-confirm")
            future = self._pool.submit(self._send, mailing_list, confirmation, now)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def wait(self, timeout: float = 60) -> None:
        """Until every email queued so far is sent or has failed (tests; shutting down)."""
        with self._lock:
            pending = set(self._pending)
        wait_for(pending, timeout=timeout)

    def _done(self, future: Future[Outcome | None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _send(
        self, mailing_list: MailingList, confirmation: Confirmation, now: dt.datetime
    ) -> Outcome | None:
        who = mask_address(confirmation.email)
        try:
            outcome = self.mailer.send(mailing_list, confirmation, now)
        except Exception:
            log.exception("could not send a confirmation email for %s to %s", mailing_list.name, who)
            return None
        if outcome.accepted:
            log.info("sent a confirmation email for %s to %s", mailing_list.name, who)
        else:
            # The address stays pending: signing up again after the hour sends another. Servers
            # quote the address in their errors; the log gets it masked.
            error = (outcome.error or "").replace(confirmation.email, who)
            log.warning("could not send a confirmation email for %s to %s: %s", mailing_list.name, who, error)
        return outcome
