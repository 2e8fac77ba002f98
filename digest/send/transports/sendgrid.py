"""The SendGrid transport: a batch becomes one or more ``POST /v3/mail/send`` requests.

The order of work follows django-anymail: build the payload (``SendGridPayload`` turns a Batch
into request bodies, one personalization per recipient), post it, read the status. The variant
is uploaded once per request; SendGrid fills in each recipient's greeting and own links
through substitutions.

Retries and the in-flight window
--------------------------------
SendGrid has no idempotency key. A request that SendGrid accepted but whose 202 never reached us
(a timeout, or a connection dropped after the body went out) looks exactly like one that failed:
retrying it may deliver its messages twice, not retrying may lose them. We retry timeouts and
dropped connections, as the issue asks, so the window is one request: at most ``batch_size``
recipients may get the edition twice, and only when SendGrid's answer is lost. A 429 or a 5xx is
an answer (SendGrid says it did not take the request) and is retried without that risk.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from http.client import HTTPException
from pathlib import Path
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from digest.address import address_key
from digest.config.transports import SendGridOptions
from digest.errors import TransportError
from digest.ingest.sanitize import one_line
from digest.render.context import PLACEHOLDERS
from digest.render.message import placeholder_values
from digest.retry import RetryPolicy
from digest.send.transports.base import Batch, Outcome, Ready, Record
from digest.send.transports.sendgrid_api import (
    API_KEY_VARIABLE,
    close_client,
    describe_failure,
    error_message,
    make_client,
)

log = logging.getLogger(__name__)

MAX_SUBSTITUTION_BYTES = 10_000
# SendGrid refuses these in `headers`: they come from the payload's own fields or from SendGrid.
RESERVED_HEADERS = frozenset(
    {
        "to", "from", "subject", "reply-to", "cc", "bcc", "content-type", "content-transfer-encoding",
        "x-sg-id", "x-sg-eid", "received", "dkim-signature",
    }
)  # fmt: skip
# Substitutions apply the same value to every part, but the HTML needs it escaped: the text part
# keeps the rendered markers and the HTML part's are renamed, so each gets its own value.
TEXT_MARKERS = dict(PLACEHOLDERS)
HTML_MARKERS = {key: f"%%{key}_html%%" for key in PLACEHOLDERS}
# The length of every recipient's substitution keys, in characters.
_MARKER_CHARS = sum(len(marker) for marker in (*TEXT_MARKERS.values(), *HTML_MARKERS.values()))


class SendGridPayload:
    """A Batch → the JSON bodies of its requests, built one field at a time.

    Envelopes SendGrid would refuse on their own (an address twice, substitutions too large)
    get a failed Outcome in ``refused`` instead of taking their whole request down with them.
    """

    def __init__(self, batch: Batch, options: SendGridOptions) -> None:
        self.batch = batch
        self.options = options
        self.refused: dict[int, Outcome] = {}
        self.common = self._common()
        self.personalizations = self._personalizations()

    def requests(self) -> Iterator[tuple[list[int], dict[str, Any]]]:
        """(positions of the envelopes in the batch, request body), ``batch_size`` at a time."""
        size = self.options.batch_size
        for start in range(0, len(self.personalizations), size):
            chunk = self.personalizations[start : start + size]
            yield (
                [position for position, _ in chunk],
                {
                    "personalizations": [item for _, item in chunk],
                    **self.common,
                },
            )

    def _common(self) -> dict[str, Any]:
        batch, options = self.batch, self.options
        name, address = parseaddr(batch.sender)
        if "@" not in address:
            raise TransportError(f"the sender {batch.sender!r} has no email address")
        sender = {"email": address, **({"name": one_line(name)} if name else {})}
        body_html = batch.content.html
        for key, marker in PLACEHOLDERS.items():
            body_html = body_html.replace(marker, HTML_MARKERS[key])
        categories = list(dict.fromkeys([*options.categories, one_line(batch.list_name)]))
        data: dict[str, Any] = {
            "from": sender,
            "subject": batch.content.subject,
            # multipart/alternative order: text first, HTML last (the preferred part).
            "content": [
                {"type": "text/plain", "value": batch.content.text},
                {"type": "text/html", "value": body_html},
            ],
            "categories": categories,
        }
        headers = _headers(batch.headers, "the batch", set())
        if headers:
            data["headers"] = headers
        if options.asm_group_id is not None:
            data["asm"] = {"group_id": options.asm_group_id}
        if options.ip_pool:
            data["ip_pool_name"] = options.ip_pool
        if options.sandbox_mode:
            data["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return data

    def _personalizations(self) -> list[tuple[int, dict[str, Any]]]:
        batch = self.batch
        # Top-level custom_args is a string in SendGrid's schema; the object goes per recipient.
        custom_args = {"edition_id": batch.edition_id, "list": batch.list_name}
        seen: set[str] = set()
        allowed: set[str] = set()
        items = []
        for position, envelope in enumerate(batch.envelopes):
            recipient = envelope.recipient
            key = address_key(recipient.email)
            if key in seen:
                self.refused[position] = Outcome.failed(recipient.email, "duplicate address in batch")
                continue
            seen.add(key)
            substitutions = _substitutions(placeholder_values(recipient))
            # A character is at most 4 bytes in UTF-8: count the bytes only when that could matter.
            size = 4 * (_MARKER_CHARS + sum(map(len, substitutions.values())))
            if size > MAX_SUBSTITUTION_BYTES:
                size = sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items())
            if size > MAX_SUBSTITUTION_BYTES:
                self.refused[position] = Outcome.failed(
                    recipient.email,
                    f"substitutions of {size} bytes exceed SendGrid's {MAX_SUBSTITUTION_BYTES} "
                    "per recipient (a very long name or link?)",
                )
                continue
            name = one_line(recipient.name)
            item: dict[str, Any] = {
                "to": [{"email": recipient.email, "name": name} if name else {"email": recipient.email}],
                "substitutions": substitutions,
                "custom_args": custom_args,
            }
            if envelope.headers:
                item["headers"] = _headers(envelope.headers, f"the envelope of {recipient.email}", allowed)
            items.append((position, item))
        return items


def _substitutions(values: Mapping[str, str]) -> dict[str, str]:
    # Plain loops: a comprehension makes a function object per call, which costs more here.
    substitutions = {}
    for key, value in values.items():
        substitutions[TEXT_MARKERS[key]] = value
    for key, value in values.items():
        # Most values have none of the characters html.escape replaces: looking is cheaper.
        if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
            value = html.escape(value)
        substitutions[HTML_MARKERS[key]] = value
    return substitutions


def _headers(headers: Mapping[str, str], where: str, allowed: set[str]) -> dict[str, str]:
    """``headers`` for SendGrid, each value on one line; ``allowed``: the names already found
    not to be reserved (every envelope of a batch has the same, so each is checked once)."""
    if not allowed.issuperset(headers):
        for name in headers:
            if name.strip().casefold() in RESERVED_HEADERS:
                # Silently dropping it would send something other than what was asked for.
                raise TransportError(f"SendGrid does not let {where} set the {name} header")
        allowed.update(headers)
    return {name: one_line(value) for name, value in headers.items()}


@dataclass(frozen=True, slots=True)
class _Answer:
    accepted: bool
    message_id: str | None = None
    error: str | None = None


def _outcome(email: str, answer: _Answer) -> Outcome:
    """One recipient's share of a request's answer."""
    if answer.accepted:
        return Outcome.ok(email, answer.message_id)
    return Outcome.failed(email, answer.error or "refused")


class SendGridTransport:
    """Posts each batch as up to ``batch_size`` personalizations per request.

    Retries 429 (after its ``Retry-After`` or ``X-RateLimit-Reset``), 5xx, timeouts and dropped
    connections up to ``retries`` times; after that the request's recipients fail with the last
    reason. 400 and 413 fail the request's recipients at once; 401, 403, 404 and a redirect
    (credentials, a wrong ``api_url``) raise TransportError, unless part of the batch was already
    accepted, which must be reported.
    """

    name = "sendgrid"

    def __init__(
        self,
        options: SendGridOptions,
        api_key: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.max_batch = options.batch_size
        self._api_key = api_key
        self._retry = RetryPolicy(options.backoff, clock=clock, sleep=sleep)
        self._client: SendGridAPIClient | None = None

    def open(self) -> None:
        if self._client is None:
            self._client = make_client(self.options.api_url, self._api_key, self.options.timeout)

    def close(self) -> None:
        """Close the connections kept open between requests."""
        if self._client is not None:
            close_client(self._client)
        self._client = None

    def send(self, batch: Batch, record: Record | None = None, ready: Ready | None = None) -> list[Outcome]:
        payload = SendGridPayload(batch, self.options)
        outcomes: dict[int, Outcome] = dict(payload.refused)
        if record is not None and outcomes:
            record(list(outcomes.items()))
        accepted_any = False
        for positions, body in payload.requests():
            if ready is not None:
                ready()
            try:
                answer = self._post(body)
            except TransportError as exc:
                if not accepted_any:
                    raise
                # Raising now would lose the outcomes of what SendGrid already took; the next
                # batch raises instead.
                answer = _Answer(False, error=str(exc))
            accepted_any = accepted_any or answer.accepted
            answered = [
                (position, _outcome(batch.envelopes[position].recipient.email, answer))
                for position in positions
            ]
            outcomes.update(answered)
            # Before the next request: a crash then resends at most this one request's recipients.
            if record is not None:
                record(answered)
        return [outcomes[position] for position in range(len(batch.envelopes))]

    def _post(self, body: dict[str, Any]) -> _Answer:
        self.open()
        assert self._client is not None
        attempt = 0
        while True:
            try:
                response = self._client.client.mail.send.post(request_body=body)
            except HTTPError as exc:
                status = exc.status_code
                problem = self._redact(f"SendGrid answered {status}: {error_message(exc)}")
                if status in (401, 403, 404) or 300 <= status < 400:
                    hint = (
                        f"check {API_KEY_VARIABLE} and its scopes"
                        if status in (401, 403)
                        else "check api_url"
                    )
                    raise TransportError(problem, hint=hint) from None
                if status == 429:
                    delay = self._retry.server_wait(exc.headers, attempt)
                elif status >= 500:
                    delay = self._retry.backoff(attempt)
                else:
                    return _Answer(False, error=problem)
            except (OSError, HTTPException) as exc:
                problem = self._redact(f"no answer from SendGrid: {describe_failure(exc)}")
                delay = self._retry.backoff(attempt)
            else:
                message_id = response.headers.get("X-Message-Id") if response.headers else None
                return _Answer(True, message_id=message_id)
            if attempt >= self.options.retries:
                return _Answer(False, error=f"{problem} (gave up after {attempt + 1} attempts)")
            attempt += 1
            log.info("retry %d of %d in %.1f s: %s", attempt, self.options.retries, delay, problem)
            self._retry.sleep(delay)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text


def create(options: SendGridOptions, env: Mapping[str, str], root: Path) -> SendGridTransport:
    api_key = (env.get(API_KEY_VARIABLE) or "").strip()
    if not api_key:
        raise TransportError("no SendGrid API key", hint=f"set the {API_KEY_VARIABLE} environment variable")
    return SendGridTransport(options, api_key)
