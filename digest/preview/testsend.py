"""A test send from the preview: this variant, to one address, through one transport.

Never to the list and never into the ledger: one Envelope in one Batch, straight to the
transport (send_one), the subject prefixed ``[TEST] ``. The transport's own rules
apply: any transport but the outbox needs DIGEST_SECRET. The unsubscribe link and headers
are the test address's own, so clicking them cannot unsubscribe a real subscriber.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email

from digest.config import Config, TransportConfig
from digest.errors import DigestError, TransportError
from digest.preview.model import Preview
from digest.render.message import make_message_id
from digest.send.transports import send_one
from digest.send.transports.base import Batch, Outcome
from digest.send.unsubscribe import Addresser

log = logging.getLogger("digest.preview")

TEST_PREFIX = "[TEST] "


class Refused(Exception):
    """A test send that did not happen: the HTTP status to answer and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def valid_address(value: Any) -> str:
    """Exactly one address, syntax checked; anything that could be a list of them is refused."""
    if not isinstance(value, str) or not value.strip():
        raise Refused(400, 'give the address to send the test to in "to"')
    value = value.strip()
    if any(c in value for c in ",;") or any(c.isspace() for c in value):
        raise Refused(400, "a test goes to exactly one address: no commas, semicolons or spaces")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise Refused(400, f"{value!r} is not an email address: {exc}") from None


def send_test(
    config: Config,
    preview: Preview,
    to: str,
    alias: str | None,
    *,
    env: Mapping[str, str],
    now: dt.datetime,
) -> str:
    """Send ``preview``'s variant to ``to`` through ``alias`` (default: the list's transport).

    Returns what happened, for the editor; raises Refused when nothing was sent.
    """
    if preview.empty:
        raise Refused(400, "nothing sent: this variant has no stories, so `digest send` would skip it")
    mailing_list = config.mailing_list(preview.list_name)
    alias = alias or mailing_list.transport
    transport_config = config.settings.transports.get(alias)
    if transport_config is None:
        names = ", ".join(config.settings.transports)
        raise Refused(400, f"no transport named {alias!r} (transports: {names})")
    try:
        addresser = Addresser(
            config, mailing_list, env=env, backend=transport_config.backend, transport=alias
        )
    except DigestError as exc:
        raise Refused(400, f"nothing sent through {alias!r}: {exc}") from None
    sender = config.settings.newsroom.sender
    # Its own edition id: its own outbox folder, Message-ID and provider tags, apart from the real send.
    edition_id = f"{preview.edition.id}-test"
    envelope = addresser.envelope(
        to, preview.recipient.name, make_message_id(edition_id, to, sender), preview.recipient.greeting
    )
    batch = Batch(
        edition_id=edition_id,
        list_name=mailing_list.name,
        variant=preview.variant_key,
        content=dataclasses.replace(preview.rendered, subject=TEST_PREFIX + preview.rendered.subject),
        sender=sender,
        date=now,
        envelopes=(envelope,),
        headers=addresser.list_headers,
    )
    outcome = _deliver(config, transport_config, alias, batch, env)
    if not outcome.accepted:
        raise Refused(502, f"{alias} refused {to}: {outcome.error}")
    log.info("preview: test of %s (%s) sent to %s via %s", edition_id, preview.variant_key, to, alias)
    where = f" ({outcome.provider_id})" if transport_config.backend == "outbox" else ""
    return f"sent to {to} via {alias}{where}"


def _deliver(
    config: Config, transport_config: TransportConfig, alias: str, batch: Batch, env: Mapping[str, str]
) -> Outcome:
    """The one message's outcome; Refused when the transport could not be asked."""
    try:
        return send_one(transport_config, config.root, env, batch)
    except TransportError as exc:
        raise Refused(502, f"{alias}: {exc}") from None
    except DigestError as exc:
        raise Refused(400, str(exc)) from None
    except Exception as exc:  # a provider's surprise is reported, not a crash of the preview
        log.exception("preview: test send through %s failed", alias)
        raise Refused(502, f"{alias}: {type(exc).__name__}: {exc}") from None
