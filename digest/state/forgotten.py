"""Forgetting a person (`digest subscribers forget`): every trace of the address goes, but one.

What stays is a keyed hash of the address: HMAC-SHA256 of its ``address_key`` under a key
derived from the newsroom's secret (``$DIGEST_SECRET``, the secret that signs its links). It
replaces the address in the send ledger and the resends, so an edition's counts stay right,
and it is kept as a suppression for every list, so that an import of a subscriber file that
still has the address skips it. Only the owner signing up and confirming again lifts it
(``Readers.confirm``). Without the secret nobody can tell which address a hash was; with a
different secret the hash no longer matches, so the secret must not change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, case, delete, func, literal, null, select, update

from digest.address import address_key
from digest.state import schema
from digest.state.queries import among, insert_ignoring
from digest.state.suppressions import ALL_LISTS, Reason

# A hash can never be taken for an address: it has no "@".
PREFIX = "forgotten:"
SOURCE = "forgotten"
_PURPOSE = b"digest forgotten addresses v1"


def forget_key(secret: bytes) -> bytes:
    """The key of the forgotten hashes, derived from the signing secret (never the secret itself)."""
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def keyed_hash(key: bytes, email: str) -> str:
    """What is kept of a forgotten address: ``forgotten:`` and its HMAC-SHA256, in hex."""
    return PREFIX + hmac.new(key, address_key(email).encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What ``forget`` erased: the lists the address was on, and the rows it rewrote."""

    hashed: str
    lists: tuple[str, ...]
    events: int
    ledger: int
    resends: int
    suppressions: int
    deliveries: int = 0  # delivery events (bounces, opens, clicks…) that now carry the hash


def forget(engine: Engine, email: str, key: bytes, *, now: dt.datetime) -> Forgotten:
    """Erase the address (folded with ``address_key``) from every table, in one transaction."""
    email = address_key(email)
    hashed = keyed_hash(key, email)
    readers, events = schema.subscribers, schema.subscriber_events
    ledger, resends, sup = schema.ledger, schema.resends, schema.suppressions
    with engine.begin() as conn:
        lists = tuple(conn.execute(select(readers.c.list_name).where(readers.c.email == email)).scalars())
        conn.execute(delete(readers).where(readers.c.email == email))
        erased_events = conn.execute(delete(events).where(events.c.email == email)).rowcount
        rewritten = []
        for table in (ledger, resends):
            # A provider's error or message id (the outbox's is a file name) may quote the address.
            values: dict[str, object] = {"email": hashed}
            for column in (table.c.error, table.c.provider_id):
                mentions = func.lower(func.coalesce(column, "")).contains(email, autoescape=True)
                values[column.name] = case((mentions, null()), else_=column)
            if table is ledger:
                values["name"] = ""
            rewritten.append(
                conn.execute(update(table).where(table.c.email == email).values(values)).rowcount
            )
        deliveries = _hash_deliveries(conn, email, hashed)
        dropped = conn.execute(delete(sup).where(sup.c.email == email)).rowcount
        conn.execute(
            insert_ignoring(conn, sup).values(
                email=hashed,
                list_name=ALL_LISTS,
                reason=Reason.UNSUBSCRIBED.value,
                source=SOURCE,
                created_at=now,
            )
        )
        limits = schema.rate_limits
        conn.execute(delete(limits).where(func.lower(limits.c.key).contains(email, autoescape=True)))
    _wipe_free_space(engine)
    return Forgotten(hashed, lists, erased_events, rewritten[0], rewritten[1], dropped, deliveries)


def _hash_deliveries(conn: Connection, email: str, hashed: str) -> int:
    """The address's delivery events keep the hash, so an edition's results stay right; a
    bounce's diagnostic or a clicked URL that quotes the address loses that text."""
    table = schema.delivery_events
    detail = func.lower(table.c.detail).contains(email, autoescape=True)
    url = func.lower(func.coalesce(table.c.url, "")).contains(email, autoescape=True)
    values = {
        "email": hashed,
        "detail": case((detail, literal("")), else_=table.c.detail),
        "url": case((url, null()), else_=table.c.url),
    }
    return conn.execute(update(table).where(table.c.email == email).values(values)).rowcount


def _wipe_free_space(engine: Engine) -> None:
    """Have the database rewrite itself, so the deleted rows are not left in free pages (nor
    in SQLite's write-ahead log) for anyone reading the file's bytes."""
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        if engine.dialect.name == "sqlite":
            driver.execute("VACUUM")  # type: ignore[union-attr]
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        else:
            driver.autocommit = True  # type: ignore[union-attr]
            for table in (
                "subscribers",
                "subscriber_events",
                "send_ledger",
                "resends",
                "suppressions",
                "delivery_events",
            ):
                driver.execute(f"VACUUM {table}")  # type: ignore[union-attr]
            driver.autocommit = False  # type: ignore[union-attr]
    finally:
        raw.close()


def forgotten_among(conn: Connection, hashes: Iterable[str]) -> set[str]:
    """Those of ``hashes`` that are forgotten addresses."""
    sup = schema.suppressions
    query = select(sup.c.email).where(
        among(conn, sup.c.email, hashes), sup.c.list_name == ALL_LISTS, sup.c.source == literal(SOURCE)
    )
    return set(conn.execute(query).scalars())


def any_forgotten(conn: Connection) -> bool:
    sup = schema.suppressions
    found = conn.execute(
        select(sup.c.email)
        .where(sup.c.email.startswith(PREFIX, autoescape=True), sup.c.list_name == ALL_LISTS)
        .limit(1)
    ).first()
    return found is not None


def lift(conn: Connection, key: bytes, email: str) -> int:
    """The owner signed up and confirmed again: the hashed suppression goes."""
    sup = schema.suppressions
    return conn.execute(delete(sup).where(sup.c.email == keyed_hash(key, email))).rowcount
