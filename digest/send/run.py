"""`digest send`: freeze the list's edition, fill the ledger, and send batch by batch.

The order of work is what makes a crash harmless: the edition is frozen (and its stories
marked seen) before anything is sent; a recipient is in the ledger before any batch can
claim them (on a database server the first variants go out while the rest go in:
``digest.send.filling``), and the send ends only once all are; a batch is claimed in the
ledger before it goes out and recorded right after.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from itertools import groupby
from zoneinfo import ZoneInfo

import jinja2

from digest.bounces.process import suppress_refused
from digest.collector import fix_mmap_threshold, steady
from digest.config import Config, MailingList
from digest.edition import build_edition
from digest.edition.frozen import freeze_edition, frozen_edition
from digest.errors import DigestError
from digest.ingest.collect import Retry
from digest.model import Edition, Variant
from digest.render import Greeting, Rendered, environment, render_edition, render_greeting
from digest.render.message import make_message_id
from digest.results.guardrail import GuardrailHold, check_guardrail
from digest.send.filling import Filling
from digest.send.hold import Held, decide_hold, hold_deadline, required_labels, say_missing
from digest.send.importing import import_logged
from digest.send.recipients import recipients
from digest.send.recording import Recorder, result_of
from digest.send.summary import SendSummary
from digest.send.transports import create_transport
from digest.send.transports.base import Batch, Envelope, Transport
from digest.send.unsubscribe import Addresser
from digest.state import Store
from digest.state.imports import OnStaged
from digest.state.ledger_types import PENDING, SENT, SKIPPED, SUPPRESSED, Claimed, Position, Result, Status
from digest.state.owner import owner_id
from digest.state.recipients import Group, desk_groups

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def edition_id_for(config: Config, mailing_list: MailingList, now: dt.datetime) -> tuple[str, dt.date]:
    day = now.astimezone(ZoneInfo(config.list_timezone(mailing_list))).date()
    return f"{mailing_list.name}-{day.isoformat()}", day


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
        edition_id: str | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        """``now`` is the edition's moment; ``clock`` is the wall clock for claims, retries and
        holds (a held scheduled run keeps its ``now`` while the clock moves on). ``sleep``
        waits between feed retries (default: the stop event given to ``send``, else time.sleep).
        ``edition_id``: another frozen edition of the list than today's (a resend of it).
        """
        self.config = config
        self.clock = clock
        self._sleep = sleep
        self._stop: threading.Event | None = None
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
        self.edition_id = edition_id or self.edition_id
        self.timezone = config.list_timezone(self.list)
        self.list_desks = config.list_desks(self.list)
        self.sender = config.settings.newsroom.sender
        self.addresser = Addresser(
            config, self.list, env=self.env, backend=self.transport_config.backend, transport=self.alias
        )
        base_url = config.settings.server.base_url
        if self.transport_config.backend != "outbox" and not base_url.startswith("https://"):
            log.warning(
                "[server] base_url %s is not https: Gmail and Yahoo ignore one-click unsubscribe", base_url
            )
        self._rendered: dict[str, Rendered | None] = {}
        self._jinja: jinja2.Environment | None = None

    # -- the edition ---------------------------------------------------------------------

    def edition(self, *, freeze: bool) -> Edition:
        """Today's frozen edition, or a new one (frozen and its stories marked seen if asked)."""
        frozen = frozen_edition(self.store.editions, self.edition_id)
        if frozen is not None:
            return frozen
        edition = build_edition(
            self.config,
            self.list.name,
            now=self.now,
            store=self.store,
            cache=self.store.feeds,
            retry=self._retry(freeze),
        )
        for warning in edition.warnings:  # a feed left out must not go unnoticed in a scheduled run
            log.warning("%s", warning, extra={"event": "edition_warning", "list": self.list.name})
        self._hold_for_required_feeds(edition)
        say_missing(self.config, self.list, self.edition_id, edition.missing_feeds)
        if edition.is_empty:
            # Another sender may have frozen it while this one read the feeds: its stories are
            # now marked seen, so this build found none of them new.
            frozen = frozen_edition(self.store.editions, self.edition_id)
            if frozen is None and freeze:
                # Nothing to send, but the feeds were read: close (or open) their gaps now, or a
                # feed back after an outage would warn about its old stories every day.
                self.store.gaps.settle(edition)
            return frozen or edition
        if freeze:
            if not freeze_edition(self.store.editions, edition, now=self.now):
                # Another sender froze it first: send exactly what it froze.
                return frozen_edition(self.store.editions, self.edition_id) or edition
            log.info(
                "edition %s frozen: %d stories for list %s",
                self.edition_id,
                len(edition.items),
                self.list.name,
                extra={"event": "edition_frozen", "list": self.list.name, "edition": self.edition_id},
            )
        return edition

    def _retry(self, freeze: bool) -> Retry | None:
        """Feeds are tried again only before an edition freezes: a dry run does not wait."""
        if not freeze:
            return None
        sleep = self._sleep or (self._stop.wait if self._stop is not None else time.sleep)
        return Retry(
            self.config.settings.fetch.retry_for, clock=lambda: self.clock().timestamp(), sleep=sleep
        )

    def _hold_for_required_feeds(self, edition: Edition) -> None:
        hold = decide_hold(
            edition.missing_feeds,
            required_labels(self.config, self.list),
            hold_deadline(self.config, self.list, self.day),
            self.clock(),
        )
        if hold is not None:
            raise Held(hold)

    @functools.cached_property
    def greeting(self) -> Greeting:
        """The greeting's wording from the templates; each recipient's name is put in it."""
        self._jinja = self._jinja or environment(self.config)
        return render_greeting(self._jinja)

    def rendered(self, edition: Edition, key: str, *, freeze: bool) -> Rendered | None:
        """The variant's content (None when the subscriber's desks have nothing today)."""
        if key not in self._rendered:
            stored = self.store.editions.variant(self.edition_id, key)
            if stored is None:
                variant = Variant.from_key(key).select(edition)
                if not variant.is_empty:
                    self._jinja = self._jinja or environment(self.config)
                    stored = render_edition(self.config, variant, self._jinja)
                    if freeze:
                        self.store.editions.save_variant(
                            self.edition_id, key, stored, [i.id for i in variant.items]
                        )
            self._rendered[key] = stored
        return self._rendered[key]

    # -- recipients ------------------------------------------------------------------------

    def import_subscribers(self, problems: list[str], on_staged: OnStaged | None = None) -> None:
        """The list's subscriber file into the store, its bad rows logged and added to ``problems``."""
        import_logged(self.config, self.store, self.list, problems, now=self.clock(), on_staged=on_staged)

    def variant_of(self, desks: tuple[str, ...] | None) -> str:
        """A reader's variant key: their desks that the list still has (none left: all)."""
        known = {desk.casefold(): desk for desk in self.list_desks}
        chosen = [known[desk.casefold()] for desk in desks or () if desk.casefold() in known]
        return Variant.of(chosen or None, self.list_desks).key

    def groups(self, edition: Edition) -> dict[Group, Status]:
        """The list's variants, each pending, or skipped when its desks have nothing today."""
        return self.statuses(edition, desk_groups(self.store.engine, self.list.name, self.variant_of))

    def statuses(self, edition: Edition, groups: Iterable[Group]) -> dict[Group, Status]:
        """Each of ``groups`` pending, or skipped when its desks have nothing today."""
        return {
            group: SKIPPED if Variant.from_key(group.key).select(edition).is_empty else PENDING
            for group in groups
        }

    def render_all(self, edition: Edition, groups: Mapping[Group, Status], *, freeze: bool) -> None:
        """Render (and, frozen, keep) every variant that has readers and stories, before any is
        sent: a template that fails must stop the send before its first batch, not midway."""
        for group, status in groups.items():
            if status == PENDING:
                self.rendered(edition, group.key, freeze=freeze)

    # -- sending ---------------------------------------------------------------------------

    def envelope(self, row: Claimed) -> Envelope:
        message_id = make_message_id(self.edition_id, row.email, self.sender)
        greeting = self.greeting.to(row.name)
        return self.addresser.envelope(
            row.email, row.name, message_id, greeting, bounce=(self.edition_id, row.id)
        )

    def batch(self, key: str, content: Rendered, envelopes: list[Envelope]) -> Batch:
        """One variant of this edition, to these recipients, with the list's headers."""
        return Batch(
            edition_id=self.edition_id,
            list_name=self.list.name,
            variant=key,
            content=content,
            sender=self.sender,
            date=self.now,
            envelopes=tuple(envelopes),
            headers=self.addresser.list_headers,
        )

    def send(self, *, progress: Progress | None = None, stop: threading.Event | None = None) -> SendSummary:
        self._stop = stop
        fix_mmap_threshold()
        self.store.readers.expire_pending(self.clock())
        # Before the edition is built: a held list freezes nothing, marks no story seen.
        if (guard := self.guardrail(write=True)) is not None:
            return SendSummary(self.list.name, self.edition_id, guardrail=guard)
        try:
            edition = self.edition(freeze=True)
        except Held as held:
            return SendSummary(self.list.name, self.edition_id, held=held.hold)
        if edition.is_empty:
            return SendSummary(
                self.list.name, self.edition_id, empty=True, missing_feeds=edition.missing_feeds
            )
        problems: list[str] = []
        sent_before = self.store.ledger.counts(self.edition_id).get(SENT, 0)
        self.store.ledger.retry_failed(self.edition_id, now=self.now)
        filling, groups = recipients(self, edition, problems)
        try:
            # On a database server the import and the fill are its work, beside the renders and
            # then the sends; on SQLite, the fill after the renders, whose saves would wait for
            # it (one writer): ``recipients`` chose.
            self.render_all(edition, groups, freeze=True)
            if not filling.started:
                filling.run()
            todo = self._todo(groups, sent_before, filling)
            with steady():  # what lives through the batches is out of the collector's passes
                sent_now, stopped = self._send_batches(edition, todo, filling, progress, stop)
            filling.wait()
        finally:
            filling.close()
        counts = self.store.ledger.counts(self.edition_id)
        return SendSummary(
            self.list.name,
            self.edition_id,
            counts=dict(counts),
            problems=tuple(problems),
            failures=tuple(self.store.ledger.failures(self.edition_id)),
            stopped=stopped,
            missing_feeds=edition.missing_feeds,
            sent_now=sent_now,
            sent_before=sent_before,
            bounced=self.store.ledger.refused(self.edition_id),
        )

    def _todo(self, groups: Mapping[Group, Status], sent_before: int, filling: Filling) -> int:
        """How many recipients the send has left, for its progress: the ledger's pending rows;
        while it still fills, the active readers of the variants with stories, less those the
        edition reached already."""
        if filling.over:
            total = self.store.ledger.counts(self.edition_id)
            return total.get(PENDING, 0) + total.get("sending", 0)
        readers = sum(group.readers for group, status in groups.items() if status == PENDING)
        return max(readers - sent_before, 0)

    def _send_batches(
        self,
        edition: Edition,
        todo: int,
        filling: Filling,
        progress: Progress | None,
        stop: threading.Event | None,
    ) -> tuple[int, bool]:
        """Claim, send and record batch after batch until none is left (and the ledger is
        filled) or ``stop`` is set; returns how many were accepted now and whether it was
        stopped."""
        transport = create_transport(self.transport_config, self.config.root, self.env)
        owner = owner_id()
        done = sent_now = 0
        transport.open()
        ledger = self.store.ledger
        # On a database server, outcomes are written while the next batch is claimed and
        # addressed; the transport waits for them before anything more goes out.
        recorder = Recorder(ledger, owner, self.clock, deferred=ledger.on_server)
        after: Position | None = None
        size = transport.max_batch
        try:
            stopped = True
            while not (stop and stop.is_set()):
                seen = filling.parts
                claimed = ledger.claim(
                    self.edition_id, owner, size, now=self.clock(), after=after, list_name=self.list.name
                )
                if not claimed:
                    if filling.more(seen):
                        continue
                    stopped = False
                    break
                after = claimed[-1].position
                sent_now += self._send_claimed(transport, recorder, edition, claimed)
                done += len(claimed)
                if progress:
                    progress(done, todo)
            recorder.ready()
            return sent_now, stopped
        finally:
            # What this sender still holds goes back once what it sent is written: after an error,
            # the batch in hand (none of it went out: a transport reports partial success).
            recorder.close()
            try:
                ledger.release(self.edition_id, owner)
            finally:
                transport.close()

    def _send_claimed(
        self,
        transport: Transport,
        recorder: Recorder,
        edition: Edition,
        claimed: list[Claimed],
    ) -> int:
        """Send one claimed batch and record every outcome; returns how many were accepted.

        Each outcome is recorded as the transport reports it, before that connection (or
        request stream) sends again; whatever it did not report is recorded at the end.
        """
        results: list[Result] = [
            (row.id, SUPPRESSED, None, "suppressed") for row in claimed if row.suppressed
        ]
        refused: list[tuple[str, str]] = []
        recorded: set[int] = set()
        sendable = sorted((row for row in claimed if not row.suppressed), key=lambda row: row.variant)
        for key, rows_iter in groupby(sendable, key=lambda row: row.variant):
            rows = list(rows_iter)
            content = self.rendered(edition, key, freeze=True)
            if content is None:
                results += [(row.id, SKIPPED, None, "no stories in the chosen desks today") for row in rows]
                continue
            record = recorder.of(rows)
            outcomes = transport.send(
                self.batch(key, content, [self.envelope(row) for row in rows]), record, recorder.ready
            )
            recorded |= record.recorded
            results += [result_of(row, outcome) for row, outcome in zip(rows, outcomes, strict=True)]
            refused += [
                (row.email, o.error or "") for row, o in zip(rows, outcomes, strict=True) if o.permanent
            ]
        recorder.record([result for result in results if result[0] not in recorded], done=claimed)
        if refused:
            # After the ledger: a crash in between leaves a row that says why, and no event lost
            # for good (the row is not retried, but `digest bounces` events are idempotent anyway).
            recorder.ready()
            suppress_refused(self.store, self.list.name, self.edition_id, refused, now=self.clock())
        return sum(status == SENT for _, status, _, _ in results)

    def guardrail(self, *, write: bool) -> GuardrailHold | None:
        guard, name = self.config.settings.guardrail, self.list.name
        return check_guardrail(self.store, guard, name, self.edition_id, now=self.clock(), write=write)
