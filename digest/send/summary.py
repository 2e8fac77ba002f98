"""What one `digest send` (or scheduled run) did, and how it is told in one line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from digest.config import Config, OutboxOptions
from digest.results.guardrail import GuardrailHold
from digest.send.hold import Hold
from digest.state.ledger_types import FAILED, SENT, SKIPPED, SUPPRESSED


@dataclass(frozen=True, slots=True)
class SendSummary:
    list_name: str
    edition_id: str
    empty: bool = False
    counts: Mapping[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()
    variants: Mapping[str, int] = field(default_factory=dict)
    dry_run: bool = False
    stopped: bool = False
    # Of counts[SENT]: accepted during this run, and recorded before it began (the rest were
    # sent meanwhile by other senders of the same edition).
    sent_now: int = 0
    sent_before: int = 0
    # The list waits for a required feed (nothing was sent); feeds the edition went out without.
    held: Hold | None = None
    missing_feeds: tuple[str, ...] = ()
    # The list is held by the guardrail (nothing was frozen or sent) until an editor resumes it.
    guardrail: GuardrailHold | None = None
    # Of counts[FAILED]: refused for good at send time, so suppressed and never tried again.
    bounced: int = 0

    @property
    def failed(self) -> int:
        """Failures a later run tries again: what makes `digest send` exit 1. A recipient
        refused for good is not one: it is handled (suppressed as a hard bounce), and counting
        it would make every later run of the edition fail for something no one can fix."""
        return self.counts.get(FAILED, 0) - self.bounced

    def describe(self) -> str:
        """The counts in one line, e.g. "sent 0 now (11 earlier), skipped 0, suppressed 1, failed 0".

        The ledger counts the whole edition: a second run the same day must not claim the
        first run's messages as its own.
        """
        total = self.counts.get(SENT, 0)
        others = max(total - self.sent_now - self.sent_before, 0)
        elsewhere = [
            f"{count:,} {when}"
            for count, when in ((self.sent_before, "earlier"), (others, "by other senders"))
            if count
        ]
        sent = f"sent {self.sent_now:,} now ({', '.join(elsewhere)})" if elsewhere else f"sent {total:,}"
        rest = [f"{name} {self.counts.get(name, 0):,}" for name in (SKIPPED, SUPPRESSED)]
        rest.append(f"failed {self.failed:,}")
        if self.bounced:
            rest.append(f"bounced {self.bounced:,} (refused for good, now suppressed)")
        return ", ".join([sent, *rest])


def transport_label(config: Config, alias: str) -> str:
    """The transport as a summary names it: by its alias, an outbox by its folder."""
    transport = config.settings.transports[alias]
    if not isinstance(transport, OutboxOptions):
        return alias
    return f"outbox {config.resolve(transport.path)}"
