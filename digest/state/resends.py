"""Resends: an edition sent once more to one reader, by an editor (`digest send --resend`).

The ledger row of a reader stays what the original send did; each resend is a row here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select

from digest.state import schema
from digest.state.ledger import SENT, Status
from digest.state.queries import insert_ignoring


@dataclass(frozen=True, slots=True)
class Resend:
    """One resend as it happened: when, through which transport, and the provider's answer."""

    edition_id: str
    email: str
    name: str
    variant: str
    transport: str
    message_id: str
    sent_at: dt.datetime
    status: Status
    provider_id: str | None = None
    error: str | None = None


class Resends:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def count(self, edition_id: str, email: str) -> int:
        """How many times this edition was resent to this reader before (sent or failed)."""
        table = schema.resends
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).where(table.c.edition_id == edition_id, table.c.email == email)
            ).scalar_one()

    def record(self, resend: Resend) -> None:
        """Record a resend; a reader it reached who had no ledger row gets one, as sent.

        Without that row a later `digest send` of the edition (a subscriber added to the file
        after the send) would add them as pending and send it to them a second time.
        """
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.resends).values(
                    edition_id=resend.edition_id,
                    email=resend.email,
                    variant=resend.variant,
                    transport=resend.transport,
                    message_id=resend.message_id,
                    status=resend.status,
                    provider_id=resend.provider_id,
                    error=resend.error,
                    sent_at=resend.sent_at,
                )
            )
            if resend.status != SENT:
                return
            conn.execute(
                insert_ignoring(conn, schema.ledger, ["edition_id", "email"]).values(
                    edition_id=resend.edition_id,
                    email=resend.email,
                    name=resend.name,
                    variant=resend.variant,
                    status=SENT,
                    attempts=1,
                    provider_id=resend.provider_id,
                    sent_at=resend.sent_at,
                    updated_at=resend.sent_at,
                )
            )
