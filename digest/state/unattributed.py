"""Mail `digest bounces` could not tie to a recipient: kept whole, so nothing is dropped unseen.

A bounce without a valid return-path token and without an address digest ever sent to, a
report it cannot read, a forged token: each is stored with where it came from and why it
was kept, counted by every `digest bounces` run and listed by `digest bounces unattributed`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, select

from digest.state import schema


@dataclass(frozen=True, slots=True)
class Kept:
    id: int
    message_id: str | None
    origin: str
    reason: str
    received_at: dt.datetime
    size: int


class Unattributed:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def keep(self, raw: bytes, *, message_id: str | None, origin: str, reason: str, now: dt.datetime) -> bool:
        """Store the message unless the same bytes are already kept (a mailbox read twice)."""
        table = schema.unattributed_mail
        with self.engine.begin() as conn:
            same = select(table.c.raw).where(func.length(table.c.raw) == len(raw))
            if message_id is not None:
                same = same.where(table.c.message_id == message_id)
            if any(stored == raw for stored in conn.execute(same).scalars()):
                return False
            conn.execute(
                table.insert().values(
                    message_id=message_id, origin=origin[:1000], reason=reason, raw=raw, received_at=now
                )
            )
        return True

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.unattributed_mail)).scalar_one())

    def listing(self, limit: int = 100) -> list[Kept]:
        """The most recent first."""
        table = schema.unattributed_mail
        query = select(
            table.c.id,
            table.c.message_id,
            table.c.origin,
            table.c.reason,
            table.c.received_at,
            func.length(table.c.raw),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(table.c.id.desc()).limit(limit)).all()
        return [Kept(*row) for row in rows]

    def raw(self, kept_id: int) -> bytes | None:
        table = schema.unattributed_mail
        with self.engine.connect() as conn:
            found = conn.execute(select(table.c.raw).where(table.c.id == kept_id)).scalar()
        return bytes(found) if found is not None else None

    def drop(self, kept_id: int) -> bool:
        """Forget one kept message (an editor has dealt with it)."""
        with self.engine.begin() as conn:
            table = schema.unattributed_mail
            return bool(conn.execute(delete(table).where(table.c.id == kept_id)).rowcount)
