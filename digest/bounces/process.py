"""Tie each report to its recipient and apply what ``policy`` decides, through the store.

Who a report is about, in order of trust:

1. a return-path token (VERP) whose MAC checks against the ledger row it names: the message
   digest sent to that recipient of that edition, whatever the report's text says;
2. without one, the addresses the report names, but only those digest has sent to (the
   send ledger), so that backscatter or a forged report cannot suppress a stranger or
   anyone at will; the edition is then the latest one sent to the address.

Anything else is kept whole in ``unattributed_mail`` with its reason. Events are recorded
first and only the new ones act, so reading the same mailbox twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from digest.bounces import verp
from digest.bounces.parse import Category, Report, read
from digest.bounces.policy import Decision, Whom, decide, refused_at_send, report_key, soft_limit_reached
from digest.config import Bounces, Config
from digest.send.unsubscribe import Purpose, read_token
from digest.state import Store
from digest.state.events import Kind
from digest.state.suppressions import Reason

log = logging.getLogger(__name__)

# What a message turned out to be, as `digest bounces` counts them.
COUNTED = {
    Kind.HARD_BOUNCE: "hard bounces",
    Kind.SOFT_BOUNCE: "soft bounces",
    Kind.COMPLAINT: "complaints",
    Kind.UNSUBSCRIBE: "unsubscribes",
}


@dataclass
class Tally:
    """What one run read: messages by what they were, and the addresses it suppressed."""

    counts: Counter[str] = field(default_factory=Counter)
    suppressed: set[str] = field(default_factory=set)

    @property
    def unattributed(self) -> int:
        return self.counts["unattributed"]


class Processor:
    """Reads reports for one state store, signed with the secret the mail was sent with."""

    def __init__(self, config: Config, store: Store, secret: bytes, *, now: dt.datetime) -> None:
        self.store = store
        self.secret = secret
        self.now = now
        self.policy: Bounces = config.settings.bounces
        templates = [getattr(t, "return_path", None) for t in config.settings.transports.values()]
        self.pattern = verp.pattern(t for t in templates if t)

    def handle(self, raw: bytes, origin: str, tally: Tally) -> str:
        """Read one message and act on it; returns what it was (also counted in ``tally``)."""
        try:
            report = read(raw)
        except Exception as exc:  # mail from anywhere: keep what cannot be read, go on
            log.warning("cannot read %s: %r", origin, exc)
            return self._keep(raw, None, origin, f"unreadable: {exc!r}", tally)
        if report.category in (Category.AUTO_REPLY, Category.NOT_A_FAILURE):
            outcome = f"ignored ({report.category})"
            tally.counts[outcome] += 1
            return outcome
        whom, why = self._whom(report)
        if not whom:
            return self._keep(raw, report.message_id, origin, why, tally)
        decisions = decide(report, whom, key=report_key(raw, report.message_id), now=self.now)
        new = self.apply(decisions, tally)
        outcome = COUNTED[decisions[0].event.kind] if new else "already read"
        tally.counts[outcome] += 1
        return outcome

    def apply(self, decisions: Sequence[Decision], tally: Tally) -> int:
        """Record the events; the new ones suppress as decided. Returns how many were new."""
        recorded = self.store.events.record([d.event for d in decisions], now=self.now)
        new = {event.event_id for event in recorded}
        since = self.now - dt.timedelta(days=self.policy.soft_days)
        for decision in decisions:
            event = decision.event
            if event.event_id not in new or event.email is None:
                continue
            reason = decision.reason
            source = f"{event.source}: {event.detail}"[:200]
            if decision.soft:
                count = self.store.events.count(event.email, Kind.SOFT_BOUNCE, since=since)
                if not soft_limit_reached(count, self.policy.soft_limit):
                    continue
                reason, source = Reason.BOUNCED, f"{count} soft bounces in {self.policy.soft_days} days"
            if reason is None:
                continue
            self.store.readers.leave(decision.scope, event.email, reason=reason, source=source, now=self.now)
            tally.suppressed.add(event.email)
        return len(new)

    def _whom(self, report: Report) -> tuple[list[Whom], str]:
        """The recipients ``report`` is about, or none and why."""
        if report.category == Category.UNSUBSCRIBE:
            found = read_token(self.secret, report.unsubscribe_token or "", purpose=Purpose.UNSUBSCRIBE)
            if found is None:
                return [], "an unsubscribe request whose token is not valid"
            return [Whom(found[1], found[0], None, "token")], ""
        tokens = verp.find_tokens(self.pattern, report.envelope_texts)
        for token in tokens:
            ref = verp.token_ref(token)
            row = self.store.events.recipient_of(ref) if ref is not None else None
            if row is not None and verp.check_token(self.secret, token, *row):
                return [Whom(row[2], row[0], row[1], "token")], ""
        candidates = [f.email for f in report.failures]
        if report.category == Category.COMPLAINT and report.complainant:
            candidates.append(report.complainant)
        whom = []
        for address in dict.fromkeys(candidates):
            sent = self.store.events.last_sent_to(address)
            if sent is not None:
                whom.append(Whom(address, sent[0], sent[1], "address"))
        if whom:
            return whom, ""
        if tokens:
            return [], f"a return-path token that does not check ({len(tokens)} found)"
        if report.category == Category.UNKNOWN:
            return [], "not recognised as a bounce, complaint or unsubscribe"
        named = ", ".join(candidates) or "no address"
        return [], f"a {report.category} without a return-path token, naming {named} (not a recipient)"

    def _keep(self, raw: bytes, message_id: str | None, origin: str, reason: str, tally: Tally) -> str:
        self.store.unattributed.keep(raw, message_id=message_id, origin=origin, reason=reason, now=self.now)
        tally.counts["unattributed"] += 1
        log.warning("kept %s unattributed: %s", origin, reason, extra={"event": "bounce_unattributed"})
        return "unattributed"


def suppress_refused(
    store: Store, list_name: str, edition_id: str, refused: Sequence[tuple[str, str]], *, now: dt.datetime
) -> None:
    """Recipients the server refused for good at send time: hard bounces, suppressed at once."""
    if not refused:
        return
    decisions = [refused_at_send(list_name, edition_id, email, reply, now) for email, reply in refused]
    new = {event.event_id for event in store.events.record([d.event for d in decisions], now=now)}
    for decision in decisions:
        event = decision.event
        if event.event_id in new and event.email is not None:
            store.readers.leave(
                None, event.email, reason=Reason.BOUNCED, source=f"smtp: {event.detail}", now=now
            )
            log.warning(
                "%s refused for good (%s): suppressed for every list",
                event.email,
                event.detail,
                extra={"event": "refused", "list": list_name, "edition": edition_id},
            )
