"""What `digest subscribers` does with a list's readers: import, export, add, show, forget.

The commands in digest.cli.subscribers are thin: each calls one function here, which works
on the state store (digest.state.readers and friends) and the config, and returns what to print.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TextIO

from email_validator import EmailNotValidError

from digest.address import normalize_address
from digest.config import Config, MailingList
from digest.errors import DigestError
from digest.state import Store
from digest.state.forgotten import Forgotten, forget, forgotten_among, keyed_hash
from digest.state.import_report import ImportReport
from digest.state.imports import import_subscribers
from digest.state.readers import GONE, HistoryEvent, Reader
from digest.state.suppressions import ALL_LISTS
from digest.subscribers import COLUMNS, EXPORT_COLUMNS, Problem, Subscriber, read_subscribers

log = logging.getLogger(__name__)


def address(email: str) -> str:
    """An address an editor typed, normalized and folded; a DigestError if it is none."""
    try:
        return normalize_address(email)
    except EmailNotValidError as exc:
        raise DigestError(f"{email!r} is not an email address: {exc}") from None


def import_list(
    config: Config, store: Store, mailing_list: MailingList, *, now: dt.datetime, force: bool = False
) -> ImportReport:
    """Import the list's subscriber file; a DigestError for a list that has none."""
    path = config.subscriber_file(mailing_list)
    if path is None:
        raise DigestError(
            f"list {mailing_list.name} has no subscriber file: its readers sign up on the web",
            hint="set `subscribers` in its [[lists]] table to import one",
        )
    return import_subscribers(
        store, mailing_list.name, path, config.list_desks(mailing_list), now=now, force=force
    )


def _when(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def export_list(store: Store | None, config: Config, mailing_list: MailingList, out: TextIO) -> int:
    """Write the list's readers as a subscriber CSV (``COLUMNS``) with the store's status, source
    and dates after it (``EXPORT_COLUMNS``); it imports back without changing anything.

    Desks the list no longer has are left out (none left: every desk, as a send takes it).
    """
    desks = config.list_desks(mailing_list)
    known = {desk.casefold(): desk for desk in desks}
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*COLUMNS, *EXPORT_COLUMNS))
    written = 0
    for reader in store.readers.of_list(mailing_list.name) if store else ():
        chosen = [known[desk.casefold()] for desk in reader.desks or () if desk.casefold() in known]
        writer.writerow(
            [
                reader.email,
                reader.name,
                ";".join(chosen),
                reader.status.value,
                reader.source.value,
                _when(reader.created_at),
                _when(reader.updated_at),
                _when(reader.consent.confirmed_at),
            ]
        )
        written += 1
    return written


def chosen_desks(text: str | None, list_desks: tuple[str, ...]) -> tuple[str, ...] | None:
    """``"A;B"`` → the list's desks so named, in its order; None (every desk) for nothing."""
    wanted = [desk.strip() for desk in (text or "").split(";") if desk.strip()]
    known = {desk.casefold(): desk for desk in list_desks}
    for desk in wanted:
        if desk.casefold() not in known:
            raise DigestError(f"desk {desk!r} is not one of this list's desks ({', '.join(list_desks)})")
    folded = {desk.casefold() for desk in wanted}
    return tuple(desk for desk in list_desks if desk.casefold() in folded) or None


def add_reader(
    store: Store,
    config: Config,
    mailing_list: MailingList,
    email: str,
    *,
    name: str,
    desks: str | None,
    now: dt.datetime,
) -> Reader:
    """Add an address as an active reader at once (source ``editor``), unless it left: only
    its owner can come back, by signing up and confirming again."""
    key = address(email)
    list_name = mailing_list.name
    chosen = chosen_desks(desks, config.list_desks(mailing_list))
    left = _left(store, list_name, key)
    if left:
        raise DigestError(
            f"{key} {left}: only its owner can re-subscribe, by signing up again and confirming",
            hint="digest never re-subscribes an address on someone else's word",
        )
    added = store.readers.add(list_name, key, name=name, desks=chosen, now=now)
    if added is None:
        reader = store.readers.get(list_name, key)
        status = reader.status.value if reader else "there"
        raise DigestError(f"{key} is already on {list_name} ({status})")
    return added


def _left(store: Store, list_name: str, key: str) -> str | None:
    """How the address left the list, if it did (None: it may be added)."""
    reader = store.readers.get(list_name, key)
    if reader is not None and reader.status in GONE:
        return f"left {list_name} ({reader.status.value} on {reader.updated_at:%Y-%m-%d})"
    suppression = store.suppressions.is_suppressed(key, list_name)
    if suppression is not None:
        scope = "every list" if suppression.list_name == ALL_LISTS else list_name
        return f"left {scope} ({suppression.reason} on {suppression.created_at:%Y-%m-%d})"
    if store.forget_key is not None:
        with store.engine.connect() as conn:
            if forgotten_among(conn, [keyed_hash(store.forget_key(), key)]):
                return "was forgotten (`digest subscribers forget`)"
    return None


@dataclass(frozen=True, slots=True)
class Sent:
    edition_id: str
    status: str
    sent_at: dt.datetime | None
    resends: int


@dataclass(frozen=True, slots=True)
class AddressRecord:
    """Everything the store has about one address, for `digest subscribers show`."""

    email: str
    readers: list[Reader]
    history: list[HistoryEvent]
    editions: list[Sent]
    suppressions: list[str]


def address_record(store: Store, email: str) -> AddressRecord:
    key = address(email)
    editions = [Sent(*row) for row in store.ledger.of_address(key)]
    suppressions = [
        f"{'every list' if s.list_name == ALL_LISTS else s.list_name}: {s.reason} "
        f"({s.source}, {s.created_at:%Y-%m-%d %H:%M} UTC)"
        for s in store.suppressions.of_address(key)
    ]
    return AddressRecord(
        key, store.readers.of_address(key), store.readers.history(key), editions, suppressions
    )


def describe_record(record: AddressRecord, desks_of: Mapping[str, tuple[str, ...]]) -> Iterator[str]:
    """`digest subscribers show`'s lines; ``desks_of`` gives each list's desks."""
    if not (record.readers or record.history or record.editions or record.suppressions):
        yield f"{record.email}: not on any list, and nothing was ever sent to it"
        return
    yield record.email
    for reader in record.readers:
        chosen = "all" if reader.desks is None else ";".join(reader.desks) or "none"
        consent = reader.consent
        yield f"  {reader.list_name}: {reader.status.value} (source {reader.source.value}), desks {chosen}"
        if reader.name:
            yield f"    name: {reader.name}"
        yield f"    added {_stamp(reader.created_at)}, last changed {_stamp(reader.updated_at)}"
        if consent.signed_up_at:
            where = f"at {consent.signup_url} from {consent.signup_ip or '-'}"
            yield f"    signed up {_stamp(consent.signed_up_at)} {where}"
        if consent.confirmed_at:
            where = f"at {consent.confirm_url} from {consent.confirm_ip or '-'}"
            yield f"    confirmed {_stamp(consent.confirmed_at)} {where}"
    if record.suppressions:
        yield "  suppressed: " + "; ".join(record.suppressions)
    if record.history:
        yield "  history:"
        for event in record.history:
            detail = f" ({event.detail})" if event.detail else ""
            yield f"    {_stamp(event.at)} {event.list_name}: {event.event}{detail}"
    yield f"  editions sent: {len(record.editions)}" + ("" if record.editions else " (none)")
    for sent in record.editions:
        when = f" {_stamp(sent.sent_at)}" if sent.sent_at else ""
        extra = f", resent {sent.resends}×" if sent.resends else ""
        yield f"    {sent.edition_id}: {sent.status}{when}{extra}"


def _stamp(moment: dt.datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def forget_address(store: Store, email: str, key: bytes, *, now: dt.datetime) -> Forgotten:
    """Erase the address (``digest.state.forgotten.forget``); logs only its keyed hash."""
    erased = forget(store.engine, address(email), key, now=now)
    log.info(
        "forgot an address, kept as %s",
        erased.hashed,
        extra={"event": "subscriber_forgotten", "hashed": erased.hashed},
    )
    return erased


def lines_in_files(config: Config, key: str) -> Iterator[Problem]:
    """Where the lists' subscriber files still have the address (file and line, not the address)."""
    for mailing_list in config.settings.lists:
        path = config.subscriber_file(mailing_list)
        if path is None or not path.is_file():
            continue
        for row in read_subscribers(path, config.list_desks(mailing_list)):
            if isinstance(row, Subscriber) and row.key == key:
                yield Problem(path, row.line, "still has the forgotten address: delete the row")
