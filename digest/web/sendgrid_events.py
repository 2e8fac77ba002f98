"""What SendGrid's Event Webhook reports, read as digest's delivery events and their effects.

SendGrid posts a JSON array of events, each an object with ``event``, ``email``,
``timestamp``, ``sg_event_id`` and fields of its kind, plus the ``custom_args`` the sender
set as top-level keys: digest's SendGrid transport sets ``edition_id`` and ``list`` on every
recipient, which tie each event to its edition. This module only reads; the webhook
(digest.web.webhooks) checks the signature first and stores what this returns.

What each event does:

- ``bounce`` of type ``bounce`` (or without a type, as older events come): a hard bounce,
  suppressed for every list; of type ``blocked`` (or any other): a soft bounce, recorded only.
- ``dropped``: recorded; when SendGrid dropped it because the address bounced before or is
  invalid, suppressed for every list as a bounce; because it reported spam before, as a
  complaint; because it unsubscribed at SendGrid, unsubscribed from the list.
- ``deferred``: a soft bounce, recorded only (the soft-bounce policy counts them).
- ``spamreport``: a complaint, suppressed for every list.
- ``unsubscribe``, ``group_unsubscribe``: unsubscribed from the event's list (every list when
  the event names none: it came from mail digest cannot place, and SendGrid itself stops all
  mail to that address, as ``digest suppressions sync`` records it).
- ``delivered``, ``open``, ``click`` (with its URL): recorded for the edition's results.
- ``processed``, ``group_resubscribe`` and unknown types: counted and ignored. A
  resubscription through SendGrid does not lift a suppression; only signing up again does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from digest.state.events import DeliveryEvent, Kind
from digest.state.leaving import Leaving
from digest.state.suppressions import Reason

SOURCE = "sendgrid"
# Event ids of every source share one unique column: ours are marked as SendGrid's.
ID_PREFIX = "sendgrid:"
MAX_DETAIL = 500
MAX_URL = 2000
MAX_NAME = 200

# SendGrid's reasons for dropping a message that say the address itself is bad.
_INVALID = frozenset({"invalid", "invalid address", "invalid email", "invalid email address"})


@dataclass
class Batch:
    """One request's events, the effect of each (by event id), and what was left out, by why."""

    events: list[DeliveryEvent] = field(default_factory=list)
    effects: dict[str, Leaving] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)


def read_batch(payload: Any, *, now: dt.datetime) -> Batch | None:
    """The events of a decoded webhook body; None when it is not SendGrid's JSON array."""
    if not isinstance(payload, list):
        return None
    batch = Batch()
    seen: set[str] = set()
    for item in payload:
        if not isinstance(item, dict):
            batch.ignored["malformed"] += 1
            continue
        read = read_event(item, now=now)
        if isinstance(read, str):
            batch.ignored[read] += 1
            continue
        event, effect = read
        if event.event_id in seen:  # one event twice in a batch: the first is the one stored
            batch.ignored["repeated"] += 1
            continue
        seen.add(event.event_id)
        batch.events.append(event)
        if effect is not None:
            batch.effects[event.event_id] = effect
    return batch


def read_event(item: dict[str, Any], *, now: dt.datetime) -> tuple[DeliveryEvent, Leaving | None] | str:
    """One event and its effect on who gets mail; or why it is ignored (its type, or "malformed")."""
    classified = _classify(item)
    if classified is None:
        kind_name = item.get("event")
        return kind_name[:40] if isinstance(kind_name, str) and kind_name else "malformed"
    kind, reason, detail = classified
    email = item.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return "malformed"
    list_name = _name(item.get("list"))
    url = item.get("url") if kind is Kind.CLICK else None
    event = DeliveryEvent(
        event_id=_event_id(item),
        source=SOURCE,
        kind=kind,
        occurred_at=_occurred(item.get("timestamp"), now),
        list_name=list_name,
        edition_id=_name(item.get("edition_id")),
        email=email,
        url=url[:MAX_URL] if isinstance(url, str) else None,
        detail=detail[:MAX_DETAIL],
    )
    if reason is None:
        return event, None
    # Unsubscribing is from one list; a bad address or a complaint is a matter for all of them.
    scope = list_name if reason is Reason.UNSUBSCRIBED else None
    return event, Leaving(scope, email, reason)


def _classify(item: dict[str, Any]) -> tuple[Kind, Reason | None, str] | None:
    """(kind, suppression reason or None, detail) of an event; None for a type not recorded."""
    name = item.get("event")
    if name == "bounce":
        bounce_type = _text(item.get("type")).lower() or "bounce"
        detail = _detail(bounce_type, item.get("status"), item.get("reason"))
        # Only SendGrid's own "bounce" type is permanent; "blocked" (and anything new) may pass later.
        if bounce_type == "bounce":
            return Kind.HARD_BOUNCE, Reason.BOUNCED, detail
        return Kind.SOFT_BOUNCE, None, detail
    if name == "deferred":
        return Kind.SOFT_BOUNCE, None, _detail("deferred", item.get("response"), item.get("attempt"))
    if name == "dropped":
        why = _text(item.get("reason"))
        return Kind.DROPPED, _dropped(why), why
    if name == "spamreport":
        return Kind.COMPLAINT, Reason.COMPLAINED, ""
    if name in ("unsubscribe", "group_unsubscribe"):
        group = item.get("asm_group_id")
        return Kind.UNSUBSCRIBE, Reason.UNSUBSCRIBED, _detail(name, f"group {group}" if group else "")
    simple = {"delivered": Kind.DELIVERED, "open": Kind.OPEN, "click": Kind.CLICK}
    if isinstance(name, str) and name in simple:
        return simple[name], None, _detail(_text(item.get("response")))
    return None


def _dropped(why: str) -> Reason | None:
    """What a drop says about the address: SendGrid drops mail to addresses on its own lists."""
    text = why.strip().lower()
    if text.startswith("bounced address") or text in _INVALID:
        return Reason.BOUNCED
    if text.startswith("spam reporting address"):
        return Reason.COMPLAINED
    if text.startswith("unsubscribed address"):
        return Reason.UNSUBSCRIBED
    return None  # spam content, a bad SMTPAPI header, a quota: about the message, not the reader


def _event_id(item: dict[str, Any]) -> str:
    given = item.get("sg_event_id")
    if isinstance(given, str) and given.strip():
        return ID_PREFIX + given.strip()
    # SendGrid always sends one; should it not, the same event delivered again still has the
    # same content, hence the same id, and counts once.
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return ID_PREFIX + "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _occurred(value: Any, now: dt.datetime) -> dt.datetime:
    """The event's unix time; when it is missing or absurd, when it reached us."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return now
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (ValueError, OverflowError, OSError):
        return now


def _name(value: Any) -> str | None:
    """A custom arg naming a list or an edition, if it is one."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        return None
    return value.strip()


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _detail(*parts: Any) -> str:
    return ": ".join(text for text in map(_text, parts) if text)
