"""``POST /webhooks/sendgrid``: SendGrid's signed Event Webhook.

Every request is checked before anything in it is believed: SendGrid signs the value of the
``X-Twilio-Email-Event-Webhook-Timestamp`` header followed by the raw body with ECDSA
(P-256, SHA-256), and sends the signature in ``X-Twilio-Email-Event-Webhook-Signature``. The
check is the sendgrid library's own (``EventWebhook``), against the public key SendGrid shows
in its Mail Settings, given to digest as ``SENDGRID_WEBHOOK_PUBLIC_KEY``.

Answers:

- 503 when the key is not set (or not a usable key): nothing is read or stored. Not a 404,
  because SendGrid retries any non-2xx for a day: a deployment that lost its key keeps the
  events waiting at SendGrid rather than having them thrown away.
- 401 without the two headers; 403 for a signature that does not verify (forged, another
  key, an altered body) or a timestamp more than 10 minutes old or 5 minutes ahead (a
  recorded request replayed later); 400 for a signed body that is not SendGrid's JSON.
  Nothing is stored for any of them.
- 200 once every event is stored, with its effect on who gets mail in the same transaction
  (digest.state.leaving), each event once by its ``sg_event_id``; 503 if the store failed,
  so SendGrid sends the batch again (the events already stored count once).

CSRF does not apply: SendGrid posts with no ``Origin``, ``Sec-Fetch-Site`` or ``Referer``,
which digest.web.guard lets through, and a browser could not forge the signature anyway.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import Connection
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from digest.state import forgotten
from digest.state.events import DeliveryEvent
from digest.state.leaving import leave_many
from digest.web import pages
from digest.web.sendgrid_events import SOURCE, Batch, read_batch

if TYPE_CHECKING:
    from digest.state import Store
    from digest.web.app import Site, WebRequest

log = logging.getLogger("digest.serve")

KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
ENDPOINT = "sendgrid-webhook"
# SendGrid batches events: 10,000 of them are 3-5 MB. Only this route takes bodies this big.
MAX_BODY = 8 * 1024 * 1024
BODY_LIMITS = {ENDPOINT: MAX_BODY}
STALE_AFTER = dt.timedelta(minutes=10)
# Clocks differ a little; a timestamp further ahead than this was not made just now.
AHEAD_BY = dt.timedelta(minutes=5)


class Refused(Exception):
    """A request that is not SendGrid's: its status, and why (for the log, never the answer)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@functools.lru_cache(maxsize=4)
def _public_key(value: str) -> ec.EllipticCurvePublicKey | None:
    """The key SendGrid shows (base64 DER, as pasted), read by the library's helper; None if unusable."""
    try:
        key = EventWebhook().convert_public_key_to_ecdsa("".join(value.split()))
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def configured_key(env: Mapping[str, str]) -> ec.EllipticCurvePublicKey | None:
    value = env.get(KEY_ENV, "").strip()
    return _public_key(value) if value else None


def verify(
    key: ec.EllipticCurvePublicKey,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: dt.datetime,
) -> None:
    """Raise Refused unless SendGrid signed ``timestamp`` + ``body`` with ``key`` just now."""
    if not signature or not timestamp:
        raise Refused(401, "unsigned")
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise Refused(403, "a timestamp that is not unix seconds")
    signed_at = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    if signed_at < now - STALE_AFTER:
        raise Refused(403, f"a stale timestamp ({signed_at:%Y-%m-%dT%H:%M:%SZ})")
    if signed_at > now + AHEAD_BY:
        raise Refused(403, f"a timestamp in the future ({signed_at:%Y-%m-%dT%H:%M:%SZ})")
    try:
        payload = body.decode("utf-8")  # the helper takes text; this decodes back to the same bytes
        base64.b64decode(signature.strip(), validate=True)
    except (UnicodeDecodeError, binascii.Error) as exc:
        raise Refused(403, f"a body or signature that cannot be read ({type(exc).__name__})") from None
    try:
        good = EventWebhook().verify_signature(payload, signature.strip(), timestamp, public_key=key)
    except Exception as exc:  # a malformed signature is a forged one, however the library says so
        raise Refused(403, f"a signature that does not verify ({type(exc).__name__})") from None
    if not good:
        raise Refused(403, "a signature that does not verify")


def sendgrid_webhook(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    key = configured_key(site.env)
    if key is None:
        log.warning("sendgrid webhook: %s is not set to SendGrid's verification key: refused", KEY_ENV)
        return _answer(503, "the event webhook is not configured\n")
    now = site.clock()
    body = request.get_data(cache=True)  # App read it once already, against this route's cap
    try:
        verify(
            key, body, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER), now=now
        )
        batch = read_batch(_json(body), now=now)
        if batch is None:
            raise Refused(400, "a signed body that is not a JSON array of events")
    except Refused as refused:
        log.warning("sendgrid webhook: refused %s", refused)
        return _answer(refused.status, "refused\n")
    try:
        new, changed = store_batch(site.store(), batch, now=now, forget_key=forgotten.forget_key(site.secret))
    except Exception:
        log.exception(
            "sendgrid webhook: could not store %d events; SendGrid will send them again", len(batch.events)
        )
        return _answer(503, "try again\n")
    ignored = ", ".join(f"{name} {count}" for name, count in sorted(batch.ignored.items()))
    log.info(
        "sendgrid webhook: %d events, %d new, %d readers left%s",
        len(batch.events),
        len(new),
        changed,
        f"; ignored {ignored}" if ignored else "",
    )
    return _answer(200, "ok\n")


def store_batch(
    store: Store, batch: Batch, *, now: dt.datetime, forget_key: bytes | None = None
) -> tuple[list[DeliveryEvent], int]:
    """Record the batch's events and apply the effects of those that are new, chunk by chunk,
    each chunk's effects in the transaction that stores its events; (the new events, how
    many readers' records changed). With ``forget_key``, events of forgotten addresses are
    stored under their hash (digest.state.forgotten) and change nothing."""
    if forget_key is not None:
        _hash_the_forgotten(store, batch, forget_key)
    changed = [0]

    def apply(conn: Connection, fresh: list[DeliveryEvent]) -> None:
        effects = [batch.effects[e.event_id] for e in fresh if e.event_id in batch.effects]
        if effects:
            changed[0] += leave_many(conn, effects, source=SOURCE, now=now)

    new = store.events.record(batch.events, now=now, then=apply)
    return new, changed[0]


def _hash_the_forgotten(store: Store, batch: Batch, key: bytes) -> None:
    """Opens and clicks keep coming for days after an address is forgotten: storing them as
    they come would write the address back, and a bounce would suppress it by name. They keep
    the hash instead, and need no effect: the hashed suppression already holds for every list."""
    with store.engine.connect() as conn:
        if not forgotten.any_forgotten(conn):
            return
        hashes = {e.email: forgotten.keyed_hash(key, e.email) for e in batch.events if e.email}
        gone = forgotten.forgotten_among(conn, hashes.values())
    if not gone:
        return
    for position, event in enumerate(batch.events):
        hashed = hashes.get(event.email or "")
        if hashed in gone:
            batch.events[position] = dataclasses.replace(event, email=hashed, url=None, detail="")
            batch.effects.pop(event.event_id, None)


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        raise Refused(400, "a signed body that is not JSON") from None


def _answer(status: int, text: str) -> Response:
    # Plain text for a machine; the same headers as every page.
    return Response(text, status, mimetype="text/plain", headers=pages.SECURITY_HEADERS)


ROUTES = [(Rule("/webhooks/sendgrid", endpoint=ENDPOINT, methods=["POST"]), sendgrid_webhook)]
