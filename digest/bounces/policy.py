"""What a report does to the recipients it was tied to: decided here, applied by ``process``.

- A hard bounce (5.x.x, or a failure with no status) suppresses the address for every list
  at once: mailing a dead address again only costs the domain's reputation.
- A soft bounce (4.x.x that the MTA gave up on: a full mailbox, a server down for days) is
  counted; the address is suppressed when it is the ``[bounces] soft_limit``-th within
  ``soft_days``, since a mailbox full for weeks is as dead as a missing one.
- A complaint (an ARF report) suppresses the address for every list: Gmail and Yahoo
  throttle senders whose readers mark their mail as spam.
- An unsubscribe mailed to the List-Unsubscribe mailto: leaves the token's list, as a
  one-click unsubscribe does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from digest.address import address_key
from digest.bounces.parse import Category, Report
from digest.state.events import DeliveryEvent, Kind
from digest.state.suppressions import Reason


@dataclass(frozen=True, slots=True)
class Whom:
    """A recipient a report was tied to, and how (by a checked token, or by its address)."""

    email: str
    list_name: str | None
    edition_id: str | None
    by: str  # "token", "address"


@dataclass(frozen=True, slots=True)
class Decision:
    """One event to record and, once it is new, what it does: leave ``scope`` (None: every
    list) for ``reason``, or (``soft``) leave every list if the soft limit is reached."""

    event: DeliveryEvent
    reason: Reason | None
    scope: str | None = None
    soft: bool = False


def report_key(raw: bytes, message_id: str | None) -> str:
    """What makes a report's events the same however often it is read: its Message-ID (the
    same report in two folders), else its bytes."""
    basis = message_id.encode("utf-8", "replace") if message_id else raw
    return hashlib.sha256(basis).hexdigest()[:32]


def decide(report: Report, whom: Sequence[Whom], *, key: str, now: dt.datetime) -> list[Decision]:
    """The decisions for a bounce, complaint or mailed unsubscribe tied to ``whom``."""
    decisions = []
    reason: Reason | None
    for person in whom:
        if report.category == Category.COMPLAINT:
            kind, reason, source = Kind.COMPLAINT, Reason.COMPLAINED, "arf"
        elif report.category == Category.UNSUBSCRIBE:
            kind, reason, source = Kind.UNSUBSCRIBE, Reason.UNSUBSCRIBED, "mailto"
        elif report.category == Category.BOUNCE:
            hard = _hard(report, person.email)
            kind, reason, source = (
                (Kind.HARD_BOUNCE, Reason.BOUNCED, "dsn") if hard else (Kind.SOFT_BOUNCE, None, "dsn")
            )
        else:
            continue
        event = DeliveryEvent(
            event_id=f"{source}:{key}:{address_key(person.email)}",
            source=source,
            kind=kind,
            occurred_at=now,
            list_name=person.list_name,
            edition_id=person.edition_id,
            email=person.email,
            detail=report.detail,
        )
        scope = person.list_name if kind == Kind.UNSUBSCRIBE else None
        decisions.append(Decision(event, reason, scope, soft=kind == Kind.SOFT_BOUNCE))
    return decisions


def _hard(report: Report, email: str) -> bool:
    """Hard when the recipient's own failure is, else when any failure of the report is: a
    token names the recipient even when the report names a forwarding address instead."""
    own = [f for f in report.failures if address_key(f.email) == address_key(email)]
    return any(f.hard for f in own or report.failures)


def refused_at_send(list_name: str, edition_id: str, email: str, reply: str, now: dt.datetime) -> Decision:
    """A permanent refusal of the address at send time (5xx to RCPT): a hard bounce."""
    event = DeliveryEvent(
        event_id=f"smtp:{edition_id}:{address_key(email)}",
        source="smtp",
        kind=Kind.HARD_BOUNCE,
        occurred_at=now,
        list_name=list_name,
        edition_id=edition_id,
        email=email,
        detail=reply[:1000],
    )
    return Decision(event, Reason.BOUNCED)


def soft_limit_reached(count: int, limit: int) -> bool:
    return count >= limit
