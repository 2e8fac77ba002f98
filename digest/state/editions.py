"""Frozen editions, their rendered variants, and the stories each list already carried.

An edition is kept as the JSON text its caller made of it (digest.edition.frozen), so a
resumed send renders exactly what was frozen; the store does not read that text.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from digest.model import Edition, Rendered
from digest.state import schema
from digest.state.gaps import record_gaps
from digest.state.queries import among, insert_ignoring


@dataclass(frozen=True, slots=True)
class Published:
    """A frozen edition as the web archive lists it: an edition is published when it is frozen."""

    id: str
    date: dt.date
    frozen_at: dt.datetime
    item_count: int


class Editions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def last_window_end(self, list_name: str) -> dt.datetime | None:
        """Where the list's previous edition stopped; the next one starts there."""
        table = schema.editions
        with self.engine.connect() as conn:
            return conn.execute(
                select(table.c.window_end)
                .where(table.c.list_name == list_name)
                .order_by(table.c.window_end.desc())
                .limit(1)
            ).scalar()

    def last(self, list_name: str) -> tuple[str, dt.datetime] | None:
        """The id of the list's latest frozen edition and when it was frozen, whoever sent it."""
        table = schema.editions
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.id, table.c.created_at)
                .where(table.c.list_name == list_name)
                .order_by(table.c.window_end.desc())
                .limit(1)
            ).first()
        return (row.id, row.created_at) if row else None

    def frozen(self, edition_id: str) -> str | None:
        """The text the edition was frozen as (digest.edition.frozen.load_edition reads it)."""
        table = schema.editions
        with self.engine.connect() as conn:
            return conn.execute(select(table.c.content).where(table.c.id == edition_id)).scalar() or None

    def ids(self, list_name: str, limit: int = 5) -> list[str]:
        """The ids of the list's latest frozen editions, newest first."""
        table = schema.editions
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(table.c.id)
                    .where(table.c.list_name == list_name)
                    .order_by(table.c.edition_date.desc())
                    .limit(limit)
                ).scalars()
            )

    def published(self, list_name: str, limit: int | None = None) -> list[Published]:
        """The list's frozen editions, newest first (the ``limit`` newest, if given), without content."""
        table = schema.editions
        query = (
            select(table.c.id, table.c.edition_date, table.c.created_at, table.c.item_count)
            .where(table.c.list_name == list_name, table.c.content.is_not(None))
            .order_by(table.c.edition_date.desc())
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query if limit is None else query.limit(limit)).all()
        return [Published(*row) for row in rows]

    def published_on(self, list_name: str, date: dt.date) -> tuple[Published, str] | None:
        """The list's edition of ``date`` and the text it was frozen as; None if none was frozen."""
        table = schema.editions
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    table.c.id, table.c.edition_date, table.c.created_at, table.c.item_count, table.c.content
                )
                .where(
                    table.c.list_name == list_name, table.c.edition_date == date, table.c.content.is_not(None)
                )
                .order_by(table.c.window_end.desc())
                .limit(1)
            ).first()
        return (Published(*row[:4]), row[4]) if row else None

    def contents(self, edition_ids: Iterable[str]) -> dict[str, str]:
        """The frozen text of each of ``edition_ids`` that has one."""
        table = schema.editions
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.id, table.c.content).where(
                    among(conn, table.c.id, edition_ids), table.c.content.is_not(None)
                )
            )
            return {row.id: row.content for row in rows}

    def seen(self, list_name: str, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` (story ids or canonical links) an earlier edition of the list carried."""
        table = schema.seen_items
        with self.engine.connect() as conn:
            query = select(table.c.item_id).where(
                table.c.list_name == list_name, among(conn, table.c.item_id, keys)
            )
            return set(conn.execute(query).scalars())

    def record(self, edition: Edition, content: str, *, now: dt.datetime | None = None) -> bool:
        """Freeze the edition as ``content`` and mark its stories seen; False if frozen before.

        Two senders may freeze the same edition at once: the first wins, the other gets False
        (and must then use the frozen one), with nothing half-written.
        """
        now = now or dt.datetime.now(dt.UTC)
        table = schema.editions
        with self.engine.begin() as conn:
            inserted = conn.execute(
                insert_ignoring(conn, table)
                .values(
                    id=edition.id,
                    list_name=edition.list_name,
                    edition_date=edition.date,
                    window_start=edition.window.start,
                    window_end=edition.window.end,
                    item_count=len(edition.items),
                    created_at=now,
                    content=content,
                )
                .returning(table.c.id)
            ).first()
            if inserted is None:
                return False
            # Both keys: the same story may come back under another id but the same link.
            ids = {key for item in edition.items for key in (item.id, item.canonical_url)}
            rows = [
                {"list_name": edition.list_name, "item_id": item_id, "edition_id": edition.id, "seen_at": now}
                for item_id in sorted(ids)
            ]
            if rows:
                # A story an earlier edition carried stays seen as of that edition.
                conn.execute(insert_ignoring(conn, schema.seen_items), rows)
            record_gaps(conn, edition)
        return True

    def save_variant(self, edition_id: str, variant: str, rendered: Rendered, item_ids: list[str]) -> None:
        """Freeze one rendered variant of an edition (the first one saved wins)."""
        table = schema.edition_variants
        with self.engine.begin() as conn:
            conn.execute(
                insert_ignoring(conn, table).values(
                    edition_id=edition_id,
                    variant=variant,
                    subject=rendered.subject,
                    preheader=rendered.preheader,
                    html=rendered.html,
                    text=rendered.text,
                    item_ids=json.dumps(item_ids),
                    item_count=len(item_ids),
                )
            )

    def variant(self, edition_id: str, variant: str) -> Rendered | None:
        table = schema.edition_variants
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.subject, table.c.preheader, table.c.html, table.c.text).where(
                    table.c.edition_id == edition_id, table.c.variant == variant
                )
            ).first()
        return Rendered(*row) if row else None
