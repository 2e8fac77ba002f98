"""Each list's readers, as the state store keeps them: status, desks, consent and history.

A reader comes from the list's subscriber file (source ``file``), signs up on the web and
confirms (``signup``), or is added by an editor (``editor``). What the reader then does
(confirm, change desks, unsubscribe) is theirs: the file never undoes it (digest.state.imports
applies that rule). Leaving is recorded twice in one transaction: the reader's status here,
and a suppression, which is what every send checks before it mails anyone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from digest.address import address_key
from digest.state import forgotten, schema
from digest.state.queries import insert_ignoring
from digest.state.suppressions import ALL_LISTS, Reason, applies_to


class ReaderStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class Source(StrEnum):
    FILE = "file"
    SIGNUP = "signup"
    EDITOR = "editor"


class Event(StrEnum):
    """What ``subscriber_events`` records, one row each."""

    IMPORTED = "imported"
    FILE_CHANGED = "changed by the file"
    REMOVED = "removed from the file"
    ADDED = "added by an editor"
    SIGNED_UP = "signed up"
    CONFIRMED = "confirmed"
    PREFERENCES = "preferences changed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    EXPIRED = "expired unconfirmed"


# A suppression's reason → the status it gives the reader.
LEFT = {
    Reason.UNSUBSCRIBED: ReaderStatus.UNSUBSCRIBED,
    Reason.BOUNCED: ReaderStatus.BOUNCED,
    Reason.COMPLAINED: ReaderStatus.COMPLAINED,
}
GONE = frozenset(LEFT.values())


def desks_value(desks: Sequence[str] | None) -> str | None:
    """How the ``desks`` column stores a choice: a JSON array, or NULL for every desk."""
    return None if desks is None else json.dumps(list(desks), ensure_ascii=False)


def desks_of(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(json.loads(value))


@dataclass(frozen=True, slots=True)
class Consent:
    """When and where the address signed up, and when and where it confirmed."""

    signed_up_at: dt.datetime | None = None
    signup_url: str | None = None
    signup_ip: str | None = None
    confirmed_at: dt.datetime | None = None
    confirm_url: str | None = None
    confirm_ip: str | None = None


@dataclass(frozen=True, slots=True)
class Reader:
    list_name: str
    email: str
    name: str
    desks: tuple[str, ...] | None
    status: ReaderStatus
    source: Source
    created_at: dt.datetime
    updated_at: dt.datetime
    consent: Consent
    confirm_sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    list_name: str
    at: dt.datetime
    event: str
    detail: str


@dataclass(frozen=True, slots=True)
class SignUp:
    """What a sign-up did. ``send_confirmation``: mail a confirmation link now (False when the
    address is already active, or was sent one within the hour)."""

    status: ReaderStatus
    send_confirmation: bool


CONFIRM_INTERVAL = dt.timedelta(hours=1)
PENDING_FOR = dt.timedelta(days=7)


def _reader(row: Any) -> Reader:
    m = row._mapping
    return Reader(
        list_name=m["list_name"],
        email=m["email"],
        name=m["name"],
        desks=desks_of(m["desks"]),
        status=ReaderStatus(m["status"]),
        source=Source(m["source"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        consent=Consent(
            m["signed_up_at"],
            m["signup_url"],
            m["signup_ip"],
            m["confirmed_at"],
            m["confirm_url"],
            m["confirm_ip"],
        ),
        confirm_sent_at=m["confirm_sent_at"],
    )


def record_event(
    conn: Connection, list_name: str, email: str, event: Event, now: dt.datetime, detail: str = ""
) -> None:
    conn.execute(
        insert(schema.subscriber_events).values(
            list_name=list_name, email=email, at=now, event=event.value, detail=detail
        )
    )


class Readers:
    """The repository of the ``subscribers`` table and its history."""

    def __init__(self, engine: Engine, forget_key: Callable[[], bytes] | None = None) -> None:
        """``forget_key`` gives the key of forgotten addresses' hashes (digest.state.forgotten),
        so that confirming lifts a forgotten address's hashed suppression too."""
        self.engine = engine
        self.forget_key = forget_key

    # -- reading -------------------------------------------------------------------------

    def get(self, list_name: str, email: str) -> Reader | None:
        table = schema.subscribers
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table).where(table.c.list_name == list_name, table.c.email == address_key(email))
            ).first()
        return _reader(row) if row else None

    def of_address(self, email: str) -> list[Reader]:
        """The address's record on every list it is on."""
        table = schema.subscribers
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table).where(table.c.email == address_key(email)).order_by(table.c.list_name)
            )
            return [_reader(row) for row in rows]

    def history(self, email: str) -> list[HistoryEvent]:
        """What happened to the address, on every list, oldest first."""
        table = schema.subscriber_events
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.list_name, table.c.at, table.c.event, table.c.detail)
                .where(table.c.email == address_key(email))
                .order_by(table.c.at, table.c.id)
            )
            return [HistoryEvent(*row) for row in rows]

    def counts(self, list_name: str) -> Counter[str]:
        """The list's readers by status."""
        table = schema.subscribers
        with self.engine.connect() as conn:
            query = select(table.c.status, func.count()).where(table.c.list_name == list_name)
            rows = conn.execute(query.group_by(table.c.status)).all()
        return Counter({status: count for status, count in rows})

    def of_list(self, list_name: str, *, statuses: Sequence[ReaderStatus] | None = None) -> Iterator[Reader]:
        """The list's readers in address order (only those of ``statuses``, if given), streamed."""
        table = schema.subscribers
        query = select(table).where(table.c.list_name == list_name)
        if statuses is not None:
            query = query.where(table.c.status.in_([s.value for s in statuses]))
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=2000).execute(query.order_by(table.c.email)):
                yield _reader(row)

    # -- an editor's changes ----------------------------------------------------------------

    def add(
        self, list_name: str, email: str, *, name: str, desks: Sequence[str] | None, now: dt.datetime
    ) -> Reader | None:
        """Add the address as active at once (source ``editor``); None if it is already on the
        list (the caller says why: an editor cannot re-subscribe someone who left)."""
        key = address_key(email)
        with self.engine.begin() as conn:
            values = {
                "list_name": list_name,
                "email": key,
                "name": name,
                "desks": desks_value(desks),
                "status": ReaderStatus.ACTIVE.value,
                "source": Source.EDITOR.value,
                "created_at": now,
                "updated_at": now,
            }
            added = conn.execute(insert_ignoring(conn, schema.subscribers).values(values)).rowcount
            if not added:
                return None
            record_event(conn, list_name, key, Event.ADDED, now, f"desks: {_label(desks)}")
        return self.get(list_name, key)

    # -- what readers do -----------------------------------------------------------------

    def sign_up(
        self,
        list_name: str,
        email: str,
        *,
        name: str,
        desks: Sequence[str] | None,
        url: str,
        ip: str | None,
        now: dt.datetime,
    ) -> SignUp:
        """Record a sign-up from the web form. A new address becomes pending; one that left
        keeps its status until it confirms; an active one is left as it is. The name and
        desks given are kept for when the address confirms."""
        key = address_key(email)
        table = schema.subscribers
        where = (table.c.list_name == list_name, table.c.email == key)
        with self.engine.begin() as conn:
            # Locked (PostgreSQL; SQLite's writer lock already serializes): two sign-ups of one
            # address at once must not both decide to send a confirmation.
            row = conn.execute(select(table).where(*where).with_for_update()).first()
            if row is None:
                conn.execute(
                    insert(table).values(
                        list_name=list_name,
                        email=key,
                        name=name,
                        desks=desks_value(desks),
                        status=ReaderStatus.PENDING.value,
                        source=Source.SIGNUP.value,
                        created_at=now,
                        updated_at=now,
                        signed_up_at=now,
                        signup_url=url,
                        signup_ip=ip,
                        confirm_sent_at=now,
                    )
                )
                record_event(conn, list_name, key, Event.SIGNED_UP, now, url)
                return SignUp(ReaderStatus.PENDING, True)
            reader = _reader(row)
            if reader.status is ReaderStatus.ACTIVE:
                return SignUp(reader.status, False)
            recent = reader.confirm_sent_at is not None and now - reader.confirm_sent_at < CONFIRM_INTERVAL
            # A reader who left gets no mail whatever the record says, so the wishes of this
            # sign-up can wait in it for the confirmation.
            changes: dict[str, object] = {
                "signed_up_at": now,
                "signup_url": url,
                "signup_ip": ip,
                "name": name,
                "desks": desks_value(desks),
            }
            if not recent:
                changes["confirm_sent_at"] = now
            conn.execute(update(table).where(*where).values(updated_at=now, **changes))
            record_event(conn, list_name, key, Event.SIGNED_UP, now, url)
            return SignUp(reader.status, not recent)

    def confirm(
        self,
        list_name: str,
        email: str,
        *,
        url: str,
        ip: str | None,
        now: dt.datetime,
    ) -> Reader | None:
        """Make the address active and lift what kept it from the list; None when there is no
        sign-up to confirm (it expired, or the address was forgotten). Confirming an active
        address changes nothing, so a second click is harmless."""
        key = address_key(email)
        table = schema.subscribers
        where = (table.c.list_name == list_name, table.c.email == key)
        with self.engine.begin() as conn:
            row = conn.execute(select(table).where(*where).with_for_update()).first()
            if row is None:
                return None
            reader = _reader(row)
            if reader.status is ReaderStatus.ACTIVE:
                return reader
            conn.execute(
                update(table)
                .where(*where)
                .values(
                    status=ReaderStatus.ACTIVE.value,
                    updated_at=now,
                    confirmed_at=now,
                    confirm_url=url,
                    confirm_ip=ip,
                )
            )
            sup = schema.suppressions
            conn.execute(delete(sup).where(sup.c.email == key, applies_to(list_name)))
            if self.forget_key is not None:
                forgotten.lift(conn, self.forget_key(), key)
            record_event(conn, list_name, key, Event.CONFIRMED, now, url)
            return _reader(conn.execute(select(table).where(*where)).one())

    def set_preferences(
        self, list_name: str, email: str, *, name: str, desks: Sequence[str] | None, now: dt.datetime
    ) -> Reader | None:
        """Save an active reader's name and desks; None when the address is not an active reader."""
        key = address_key(email)
        table = schema.subscribers
        where = (table.c.list_name == list_name, table.c.email == key)
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(table)
                .where(*where, table.c.status == ReaderStatus.ACTIVE.value)
                .values(name=name, desks=desks_value(desks), updated_at=now)
            ).rowcount
            if not changed:
                return None
            record_event(conn, list_name, key, Event.PREFERENCES, now, f"desks: {_label(desks)}")
            return _reader(conn.execute(select(table).where(*where)).one())

    def leave(
        self, list_name: str | None, email: str, *, reason: Reason, source: str, now: dt.datetime
    ) -> bool:
        """The address leaves ``list_name`` (None: every list, as a bounce or complaint does).

        Records the suppression every send checks and the reader's new status, in one
        transaction; False when it had already left that way.
        """
        key = address_key(email)
        table = schema.subscribers
        with self.engine.begin() as conn:
            added = conn.execute(
                insert_ignoring(conn, schema.suppressions).values(
                    email=key,
                    list_name=list_name or ALL_LISTS,
                    reason=reason.value,
                    source=source[:200],
                    created_at=now,
                )
            ).rowcount
            where = [table.c.email == key, table.c.status != LEFT[reason].value]
            if list_name is not None:
                where.append(table.c.list_name == list_name)
            lists = conn.execute(select(table.c.list_name).where(*where)).scalars().all()
            conn.execute(update(table).where(*where).values(status=LEFT[reason].value, updated_at=now))
            event = Event(LEFT[reason].value)
            for name in lists:
                record_event(conn, name, key, event, now, source)
        return bool(added or lists)

    def expire_pending(self, now: dt.datetime, *, after: dt.timedelta = PENDING_FOR) -> int:
        """Delete the sign-ups never confirmed within ``after``; how many went."""
        table = schema.subscribers
        stale = (text(schema.PENDING_READERS), table.c.signed_up_at < now - after)
        with self.engine.begin() as conn:
            rows = conn.execute(select(table.c.list_name, table.c.email).where(*stale)).all()
            conn.execute(delete(table).where(*stale))
            for list_name, email in rows:
                record_event(conn, list_name, email, Event.EXPIRED, now)
        return len(rows)


def _label(desks: Sequence[str] | None) -> str:
    return "all" if desks is None else ";".join(desks) or "none"
