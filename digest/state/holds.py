"""Lists held by the guardrail (digest.results.guardrail), and their release by an editor.

One row per list (``list_holds``). A hold is active until ``resumed_at`` is set; the row is
kept after the resume, so the edition that caused it cannot hold the list again (its rates
stay over the line for good), while a later edition over the line replaces the row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from digest.state import schema
from digest.state.queries import insert_ignoring


@dataclass(frozen=True, slots=True)
class ListHold:
    list_name: str
    edition_id: str
    reason: str
    held_at: dt.datetime
    resumed_at: dt.datetime | None = None
    resumed_by: str | None = None

    @property
    def active(self) -> bool:
        return self.resumed_at is None


def _hold(row: Any) -> ListHold:
    return ListHold(row.list_name, row.edition_id, row.reason, row.held_at, row.resumed_at, row.resumed_by)


_COLUMNS = (
    schema.list_holds.c.list_name,
    schema.list_holds.c.edition_id,
    schema.list_holds.c.reason,
    schema.list_holds.c.held_at,
    schema.list_holds.c.resumed_at,
    schema.list_holds.c.resumed_by,
)


class Holds:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, list_name: str) -> ListHold | None:
        """The list's hold row, active or resumed; None when the guardrail never held it."""
        table = schema.list_holds
        with self.engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(table.c.list_name == list_name)).first()
        return _hold(row) if row else None

    def active(self) -> list[ListHold]:
        """Every list held now, by name."""
        table = schema.list_holds
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*_COLUMNS).where(table.c.resumed_at.is_(None)).order_by(table.c.list_name)
            ).all()
        return [_hold(row) for row in rows]

    def hold(self, list_name: str, edition_id: str, reason: str, *, now: dt.datetime) -> ListHold:
        """Hold the list for ``edition_id``'s rates; returns the hold in force afterwards.

        An edition already held (or held and resumed) is left as it is: two senders evaluating
        the same edition at once, or a resumed hold, must not (re)write it.
        """
        table = schema.list_holds
        values = {"edition_id": edition_id, "reason": reason, "held_at": now, "resumed_at": None}
        with self.engine.begin() as conn:
            conn.execute(insert_ignoring(conn, table, ["list_name"]).values(list_name=list_name, **values))
            conn.execute(
                update(table)
                .where(table.c.list_name == list_name, table.c.edition_id != edition_id)
                .values(**values, resumed_by=None)
            )
            row = conn.execute(select(*_COLUMNS).where(table.c.list_name == list_name)).one()
        return _hold(row)

    def resume(self, list_name: str, *, by: str, now: dt.datetime) -> ListHold | None:
        """Release the list's active hold; returns it as released, None if it was not held."""
        table = schema.list_holds
        with self.engine.begin() as conn:
            released = conn.execute(
                update(table)
                .where(table.c.list_name == list_name, table.c.resumed_at.is_(None))
                .values(resumed_at=now, resumed_by=by[:200])
            ).rowcount
            row = conn.execute(select(*_COLUMNS).where(table.c.list_name == list_name)).first()
        return _hold(row) if released and row else None
