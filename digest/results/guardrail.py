"""The guardrail: a list whose last edition drew too many complaints or hard bounces is held.

Evaluated at the start of every send of a list (`digest send`, `digest schedule`), on the
list's previous edition, from the delivery events recorded so far: by then a day's complaints
and bounces have come in. A hold is written to ``list_holds`` and lasts until an editor runs
`digest lists resume NAME`; a resume is sticky for that edition (its rates cannot hold the
list again), and the next edition is judged afresh.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from digest.config import Guardrail
from digest.errors import DigestError
from digest.results import EditionResults, edition_results
from digest.results.format import percent
from digest.state import Store
from digest.state.holds import ListHold


@dataclass(frozen=True, slots=True)
class GuardrailHold:
    """The list is held because ``edition_id``'s rates reached the guardrail's lines."""

    list_name: str
    edition_id: str
    reason: str
    held_at: dt.datetime

    @classmethod
    def of(cls, hold: ListHold) -> GuardrailHold:
        return cls(hold.list_name, hold.edition_id, hold.reason, hold.held_at)

    def describe(self) -> str:
        return (
            f"held by the guardrail since {self.held_at:%Y-%m-%d %H:%M} UTC: {self.reason}; nothing is "
            f"sent to {self.list_name} until an editor runs `digest lists resume {self.list_name}`"
        )


def over_the_line(results: EditionResults, guard: Guardrail) -> str | None:
    """Why the edition's rates hold its list, or None when they do not (or it sent too few)."""
    if results.sent < guard.min_sent:
        return None
    complaint, bounce = results.complaint_rate, results.bounce_rate
    if complaint is not None and complaint >= guard.complaint_rate:
        base = "delivered" if results.delivered is not None else "sent"
        return (
            f"edition {results.edition_id} had a complaint rate of {percent(complaint)} "
            f"({results.complaints:,} of {results.complaint_base:,} {base}), at or over "
            f"[guardrail] complaint_rate {percent(guard.complaint_rate)}"
        )
    if bounce is not None and bounce >= guard.bounce_rate:
        return (
            f"edition {results.edition_id} had a hard-bounce rate of {percent(bounce)} "
            f"({results.hard_bounces:,} of {results.sent:,} sent), at or over "
            f"[guardrail] bounce_rate {percent(guard.bounce_rate)}"
        )
    return None


def previous_edition(store: Store, list_name: str, edition_id: str) -> str | None:
    """The list's latest edition before ``edition_id`` that sent anything."""
    for candidate in store.editions.ids(list_name, limit=5):
        if candidate != edition_id and store.ledger.last_sent(candidate) is not None:
            return candidate
    return None


def check_guardrail(
    store: Store, guard: Guardrail, list_name: str, edition_id: str, *, now: dt.datetime, write: bool = True
) -> GuardrailHold | None:
    """Whether the list may send ``edition_id``: None if so, else the hold (recorded if ``write``).

    A hold in force stays until resumed, whatever the rates say now. ``write=False`` (a dry
    run) says what a send would decide and records nothing.
    """
    stored = store.holds.get(list_name)
    if stored is not None and stored.active:
        return GuardrailHold.of(stored)
    previous = previous_edition(store, list_name, edition_id)
    if previous is None or (stored is not None and stored.edition_id == previous):
        return None  # nothing sent before, or an editor resumed this very edition's hold
    try:
        results = edition_results(store, previous)
    except DigestError:
        return None  # an edition frozen before editions kept their content: nothing to judge it by
    reason = over_the_line(results, guard)
    if reason is None:
        return None
    if not write:
        return GuardrailHold(list_name, previous, reason, now)
    held = store.holds.hold(list_name, previous, reason, now=now)
    # Not active: an editor resumed it between the two statements; the send goes ahead.
    return GuardrailHold.of(held) if held.active else None
