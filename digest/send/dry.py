"""`digest send --dry-run`: what a send would do now, changing nothing."""

from __future__ import annotations

from collections import Counter

from digest.model import Variant
from digest.send.hold import Held
from digest.send.run import Sender
from digest.send.summary import SendSummary
from digest.state.recipients import dry_counts


def dry_run(sender: Sender) -> SendSummary:
    """What ``sender.send()`` would do now: no edition frozen, no story marked seen, nothing sent."""
    name, edition_id = sender.list.name, sender.edition_id
    if (guard := sender.guardrail(write=False)) is not None:
        return SendSummary(name, edition_id, guardrail=guard, dry_run=True)
    try:
        edition = sender.edition(freeze=False)
    except Held as held:
        return SendSummary(name, edition_id, held=held.hold, dry_run=True)
    if edition.is_empty:
        return SendSummary(name, edition_id, empty=True, dry_run=True)
    problems: list[str] = []
    sender.import_subscribers(problems)
    groups = sender.groups(edition)
    sender.render_all(edition, groups, freeze=False)
    counts, by_key = dry_counts(sender.store.engine, edition_id, name, groups)
    variants: Counter[str] = Counter()
    for key, count in by_key.items():
        variants[Variant.from_key(key).label(sender.list_desks)] += count
    return SendSummary(
        name, edition_id, counts=dict(counts), problems=tuple(problems), variants=dict(variants), dry_run=True
    )
