"""Many addresses leaving at once: ``Readers.leave`` for a whole batch of provider events.

A provider's event webhook can bring thousands of bounces in one request, and it waits only
a few seconds for the answer: one transaction per address (``Readers.leave``) would take
far longer than that on SQLite, where each commit syncs the disk. ``leave_many`` does the
same writes (the suppression every send checks, the reader's new status, a history row)
with a few statements per chunk of addresses, inside the caller's transaction, so that the
caller can store the events that caused them in the same one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from digest.address import address_key
from digest.state import schema
from digest.state.queries import among, insert_ignoring
from digest.state.readers import LEFT
from digest.state.suppressions import ALL_LISTS, Reason

# Applied in this order, so that when one batch says an address both bounced and complained,
# what its record ends with does not depend on the order the provider listed them in: the
# broadest reason (a complaint, which matters most for the domain's reputation) is the last.
ORDER = (Reason.UNSUBSCRIBED, Reason.BOUNCED, Reason.COMPLAINED)


@dataclass(frozen=True, slots=True)
class Leaving:
    """One address leaving ``list_name`` (None: every list, as a bounce or complaint does)."""

    list_name: str | None
    email: str
    reason: Reason


def leave_many(conn: Connection, leavings: Iterable[Leaving], *, source: str, now: dt.datetime) -> int:
    """``Readers.leave`` for each of ``leavings``, in ``conn``'s transaction; how many readers'
    records changed status. Leaving again the same way changes nothing."""
    groups: dict[Reason, dict[tuple[str, str], None]] = {reason: {} for reason in ORDER}
    for leaving in leavings:
        key = (address_key(leaving.email), leaving.list_name or ALL_LISTS)
        groups[leaving.reason].setdefault(key)
    changed = 0
    for reason in ORDER:
        pairs = list(groups[reason])
        if pairs:
            changed += _leave(conn, reason, pairs, source=source[:200], now=now)
    return changed


def _leave(
    conn: Connection, reason: Reason, pairs: list[tuple[str, str]], *, source: str, now: dt.datetime
) -> int:
    """One reason's (address, list) pairs: suppressions first, then the readers' status."""
    conn.execute(
        insert_ignoring(conn, schema.suppressions),
        [
            {
                "email": email,
                "list_name": list_name,
                "reason": reason.value,
                "source": source,
                "created_at": now,
            }
            for email, list_name in pairs
        ],
    )
    by_list: dict[str, list[str]] = {}
    for email, list_name in pairs:
        by_list.setdefault(list_name, []).append(email)
    changed: list[tuple[str, str]] = []
    for list_name, emails in by_list.items():
        changed.extend(_set_status(conn, reason, list_name, emails, now))
    if changed:
        event = LEFT[reason].value
        conn.execute(
            insert(schema.subscriber_events),
            [
                {"list_name": name, "email": email, "at": now, "event": event, "detail": source}
                for name, email in changed
            ],
        )
    return len(changed)


def _set_status(
    conn: Connection, reason: Reason, list_name: str, emails: list[str], now: dt.datetime
) -> list[tuple[str, str]]:
    """Give the readers of ``emails`` on ``list_name`` (``*``: on every list) the status of
    ``reason``; the (list, address) of each whose status changed."""
    table = schema.subscribers
    status = LEFT[reason].value
    where = [among(conn, table.c.email, emails), table.c.status != status]
    if list_name != ALL_LISTS:
        where.append(table.c.list_name == list_name)
    changed = [
        (name, email) for name, email in conn.execute(select(table.c.list_name, table.c.email).where(*where))
    ]
    conn.execute(update(table).where(*where).values(status=status, updated_at=now))
    return changed
