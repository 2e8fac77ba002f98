"""`digest send`: freeze the list's edition, fill the ledger, and send batch by batch.

The order of work is what makes a crash harmless: the edition is frozen (and its stories
marked seen) before anything is sent; every recipient is in the ledger before the first
batch; a batch is claimed in the ledger before it goes out and recorded right after.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from itertools import groupby
from zoneinfo import ZoneInfo

import jinja2

from digest.config import Config, MailingList
from digest.edition import build_edition
from digest.edition.frozen import variant_of
from digest.errors import DigestError
from digest.model import Edition
from digest.render import Rendered, environment, render_edition
from digest.render.message import Recipient, list_id, make_message_id
from digest.send.summary import SendSummary
from digest.send.transports import create_transport
from digest.send.transports.base import Batch, Envelope, Outcome, Transport
from digest.send.unsubscribe import (
    DEMO_SECRET,
    list_unsubscribe_headers,
    make_token,
    secret_from_env,
    unsubscribe_url,
)
from digest.state import Store
from digest.state.ledger import FAILED, PENDING, SENT, SKIPPED, SUPPRESSED, Claimed, Entry
from digest.state.owner import owner_id
from digest.subscribers import Problem, Subscriber, unique_subscribers

log = logging.getLogger(__name__)

ALL_DESKS = "all"
CLAIM_TIMEOUT = dt.timedelta(minutes=10)

# Subscriber-file problems logged by one run; the rest are counted in one line.
SHOWN_PROBLEMS = 50

SECRET_RECIPE = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
# Stands in for an unsubscribe token in header templates; no URL or address contains it.
_TOKEN_MARK = "\x00token\x00"

Progress = Callable[[int, int], None]


def edition_id_for(config: Config, mailing_list: MailingList, now: dt.datetime) -> tuple[str, dt.date]:
    day = now.astimezone(ZoneInfo(config.list_timezone(mailing_list))).date()
    return f"{mailing_list.name}-{day.isoformat()}", day


def variant_key(desks: tuple[str, ...] | None, list_desks: tuple[str, ...]) -> str:
    """The same key for every subscriber who gets the same desks."""
    if desks is None or tuple(desks) == list_desks:
        return ALL_DESKS
    return "+".join(desks)


def variant_desks(key: str) -> tuple[str, ...] | None:
    return None if key == ALL_DESKS else tuple(key.split("+"))


class Sender:
    """Sends one list's edition of the day through one transport."""

    def __init__(
        self,
        config: Config,
        list_name: str,
        store: Store,
        *,
        transport_alias: str | None = None,
        now: dt.datetime,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.list = config.mailing_list(list_name)
        self.store = store
        self.now = now
        self.env = os.environ if env is None else env
        self.alias = transport_alias or self.list.transport
        if self.alias not in config.settings.transports:
            names = ", ".join(config.settings.transports)
            raise DigestError(f"no transport named {self.alias!r} in {config.path} (transports: {names})")
        self.transport_config = config.settings.transports[self.alias]
        self.edition_id, self.day = edition_id_for(config, self.list, now)
        self.list_desks = tuple(
            d for d in config.settings.desks.order if not self.list.desks or d in self.list.desks
        )
        self.sender = config.settings.newsroom.sender
        self.secret = self._secret()
        base_url = config.settings.server.base_url
        if self.transport_config.backend != "outbox" and not base_url.startswith("https://"):
            log.warning(
                "[server] base_url %s is not https: Gmail and Yahoo ignore one-click unsubscribe", base_url
            )
        self._rendered: dict[str, Rendered | None] = {}
        self._jinja: jinja2.Environment | None = None
        self._header_template: dict[str, str] | None = None

    def _secret(self) -> bytes:
        secret = secret_from_env(self.env)
        if secret is not None:
            return secret
        if self.transport_config.backend != "outbox":
            raise DigestError(
                "DIGEST_SECRET is not set: unsubscribe links must be signed before mail goes out",
                hint=f"set it to a long random value, e.g. {SECRET_RECIPE}",
            )
        log.warning(
            "DIGEST_SECRET is not set: these outbox messages carry unsubscribe links anyone could forge"
        )
        return DEMO_SECRET

    # -- the edition ---------------------------------------------------------------------

    def edition(self, *, freeze: bool) -> Edition:
        """Today's frozen edition, or a new one (frozen and its stories marked seen if asked)."""
        frozen = self.store.frozen_edition(self.edition_id)
        if frozen is not None:
            return frozen
        edition = build_edition(self.config, self.list.name, now=self.now, store=self.store, cache=self.store)
        for warning in edition.warnings:  # a feed left out must not go unnoticed in a scheduled run
            log.warning("%s", warning, extra={"event": "edition_warning", "list": self.list.name})
        if edition.is_empty:
            # Another sender may have frozen it while this one read the feeds: its stories are
            # now marked seen, so this build found none of them new.
            return self.store.frozen_edition(self.edition_id) or edition
        if freeze:
            if not self.store.record_edition(edition, now=self.now):
                # Another sender froze it first: send exactly what it froze.
                return self.store.frozen_edition(self.edition_id) or edition
            log.info(
                "edition %s frozen: %d stories for list %s",
                self.edition_id,
                len(edition.items),
                self.list.name,
                extra={"event": "edition_frozen", "list": self.list.name, "edition": self.edition_id},
            )
        return edition

    def rendered(self, edition: Edition, key: str, *, freeze: bool) -> Rendered | None:
        """The variant's content (None when the subscriber's desks have nothing today)."""
        if key not in self._rendered:
            stored = self.store.variant(self.edition_id, key)
            if stored is None:
                variant = variant_of(edition, variant_desks(key))
                if not variant.is_empty:
                    self._jinja = self._jinja or environment(self.config)
                    stored = render_edition(self.config, variant, self._jinja)
                    if freeze:
                        self.store.save_variant(self.edition_id, key, stored, [i.id for i in variant.items])
            self._rendered[key] = stored
        return self._rendered[key]

    # -- recipients ------------------------------------------------------------------------

    def subscribers(self, problems: list[str]) -> Iterator[Subscriber]:
        """The file's valid rows; each bad row is added to ``problems`` and the first ones logged.

        Logged here, as they are read, and nowhere else: a scheduled run has no summary to
        print them, and `digest send` must not print them twice.
        """
        path = self.config.resolve(self.list.subscribers)
        for row in unique_subscribers(path, self.list_desks):
            if not isinstance(row, Problem):
                yield row
                continue
            problems.append(str(row))
            if len(problems) <= SHOWN_PROBLEMS:
                event = {"event": "subscriber_problem", "list": self.list.name, "line": row.line}
                log.warning("%s", row, extra={**event, "path": str(row.path)})
        if len(problems) > SHOWN_PROBLEMS:
            log.warning(
                "… and %d more subscriber problems in %s (`digest subscribers check` lists them)",
                len(problems) - SHOWN_PROBLEMS,
                path,
                extra={"event": "subscriber_problems_omitted", "list": self.list.name, "path": str(path)},
            )

    def entries(self, edition: Edition, problems: list[str], *, freeze: bool) -> Iterator[Entry]:
        for subscriber in self.subscribers(problems):
            key = variant_key(subscriber.desks, self.list_desks)
            if subscriber.status != "active":
                yield Entry(
                    subscriber.key, subscriber.name, key, SUPPRESSED, "unsubscribed in the subscriber file"
                )
            elif self.rendered(edition, key, freeze=freeze) is None:
                yield Entry(
                    subscriber.key, subscriber.name, key, SKIPPED, "no stories in the chosen desks today"
                )
            else:
                yield Entry(subscriber.key, subscriber.name, key)

    # -- sending ---------------------------------------------------------------------------

    def envelope(self, row: Claimed) -> Envelope:
        token = make_token(self.secret, self.list.name, row.email)
        base = self.config.settings.server.base_url
        return Envelope(
            recipient=Recipient(row.email, row.name, unsubscribe_url(base, token)),
            message_id=make_message_id(self.edition_id, row.email, self.sender),
            headers=self._unsubscribe_headers(token),
        )

    def _unsubscribe_headers(self, token: str) -> dict[str, str]:
        """``list_unsubscribe_headers`` for this list, made once with a stand-in for the token.

        Parsing the sender's address costs more than the rest of an envelope, and the token
        is the only thing that differs between recipients.
        """
        if self._header_template is None:
            base = self.config.settings.server.base_url
            template = list_unsubscribe_headers(base, self.sender, _TOKEN_MARK)
            # The stand-in must come out exactly where a token would, else build them one by one.
            sample = "sample.token"
            filled = {name: value.replace(_TOKEN_MARK, sample) for name, value in template.items()}
            self._header_template = (
                template if filled == list_unsubscribe_headers(base, self.sender, sample) else {}
            )
        if not self._header_template:
            return list_unsubscribe_headers(self.config.settings.server.base_url, self.sender, token)
        return {name: value.replace(_TOKEN_MARK, token) for name, value in self._header_template.items()}

    def send(self, *, progress: Progress | None = None, stop: threading.Event | None = None) -> SendSummary:
        edition = self.edition(freeze=True)
        if edition.is_empty:
            return SendSummary(self.list.name, self.edition_id, empty=True)
        problems: list[str] = []
        sent_before = self.store.ledger.counts(self.edition_id).get(SENT, 0)
        self.store.ledger.add(self.edition_id, self.entries(edition, problems, freeze=True), now=self.now)
        self.store.ledger.retry_failed(self.edition_id, now=self.now)
        total = self.store.ledger.counts(self.edition_id)
        todo = total.get(PENDING, 0) + total.get("sending", 0)
        transport = create_transport(
            self.transport_config.backend, self.transport_config.options, self.config.root, self.env
        )
        owner = owner_id()
        done = sent_now = 0
        stopped = False
        transport.open()
        try:
            while not (stop and stop.is_set()):
                now = dt.datetime.now(dt.UTC)
                claimed = self.store.ledger.claim(
                    self.edition_id, owner, transport.max_batch, now=now, claim_timeout=CLAIM_TIMEOUT
                )
                if not claimed:
                    break
                try:
                    sent_now += self._send_claimed(transport, edition, owner, claimed)
                except BaseException:
                    # The transport raised before any outcome: nothing of this batch went out
                    # (a transport reports partial success as outcomes), so the next run may send it.
                    self.store.ledger.release(self.edition_id, owner, now=dt.datetime.now(dt.UTC))
                    raise
                done += len(claimed)
                if progress:
                    progress(done, todo)
            else:
                stopped = True
        finally:
            transport.close()
        counts = self.store.ledger.counts(self.edition_id)
        return SendSummary(
            self.list.name,
            self.edition_id,
            counts=dict(counts),
            problems=tuple(problems),
            failures=tuple(self.store.ledger.failures(self.edition_id)),
            stopped=stopped,
            sent_now=sent_now,
            sent_before=sent_before,
        )

    def _send_claimed(
        self, transport: Transport, edition: Edition, owner: str, claimed: list[Claimed]
    ) -> int:
        """Send one claimed batch and record every outcome; returns how many were accepted."""
        suppressed = self.store.suppressions.suppressed_among((row.email for row in claimed), self.list.name)
        results: list[tuple[int, str, str | None, str | None]] = [
            (row.id, SUPPRESSED, None, "suppressed") for row in claimed if row.email in suppressed
        ]
        sendable = sorted(
            (row for row in claimed if row.email not in suppressed), key=lambda row: row.variant
        )
        for key, rows_iter in groupby(sendable, key=lambda row: row.variant):
            rows = list(rows_iter)
            content = self.rendered(edition, key, freeze=True)
            if content is None:
                results += [(row.id, SKIPPED, None, "no stories in the chosen desks today") for row in rows]
                continue
            batch = Batch(
                edition_id=self.edition_id,
                list_name=self.list.name,
                variant=key,
                content=content,
                sender=self.sender,
                date=self.now,
                envelopes=tuple(self.envelope(row) for row in rows),
                headers={"List-Id": list_id(self.sender, self.list.name, self.list.title or self.list.name)},
            )
            outcomes = transport.send(batch)
            results += [_result(row, outcome) for row, outcome in zip(rows, outcomes, strict=True)]
        self.store.ledger.finish(owner, results, now=dt.datetime.now(dt.UTC))
        return sum(status == SENT for _, status, _, _ in results)

    def dry_run(self) -> SendSummary:
        """What a send would do now, changing nothing."""
        edition = self.edition(freeze=False)
        if edition.is_empty:
            return SendSummary(self.list.name, self.edition_id, empty=True, dry_run=True)
        problems: list[str] = []
        counts: Counter[str] = Counter()
        variants: Counter[str] = Counter()
        chunk: list[Entry] = []

        def flush() -> None:
            suppressed = self.store.suppressions.suppressed_among((e.email for e in chunk), self.list.name)
            already = self.store.ledger.sent_among(self.edition_id, (e.email for e in chunk))
            for entry in chunk:
                if entry.email in already:
                    counts[SENT] += 1
                elif entry.status == PENDING and entry.email in suppressed:
                    counts[SUPPRESSED] += 1
                else:
                    counts[entry.status] += 1
                    if entry.status == PENDING:
                        variants[entry.variant] += 1
            chunk.clear()

        for entry in self.entries(edition, problems, freeze=False):
            chunk.append(entry)
            if len(chunk) >= 1000:
                flush()
        flush()
        return SendSummary(
            self.list.name,
            self.edition_id,
            counts=dict(counts),
            problems=tuple(problems),
            variants=dict(variants),
            dry_run=True,
        )


def _result(row: Claimed, outcome: Outcome) -> tuple[int, str, str | None, str | None]:
    if outcome.accepted:
        return (row.id, SENT, outcome.provider_id, None)
    return (row.id, FAILED, None, outcome.error)
