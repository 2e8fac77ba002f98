"""Resends: an edition sent once more to one reader, by an editor (`digest send --resend`).

Each resend is a row here. A resend that reached the reader also makes their ledger row say
so (see ``Resends.record``); otherwise the ledger row stays what the original send did.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from digest.state import schema
from digest.state.ledger_types import FAILED, SENT, Status


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
        """Record a resend; a reader it reached gets a ledger row that says sent.

        A reader with no ledger row (added to the subscriber file after the send) gets one,
        or a later `digest send` of the edition would add them as pending and send it to them
        a second time. A reader whose original send failed has that row recorded as sent, as
        ``Ledger.finish`` records an accepted message, keeping the first failure in its error:
        otherwise every later `digest send` of the edition would count them as failed and exit
        1, and retry them. A row the original send did deliver (or skipped, or suppressed) is
        left as it is.
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
            ledger = schema.ledger
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            reached = dialect.insert(ledger).values(
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
            conn.execute(
                reached.on_conflict_do_update(
                    index_elements=["edition_id", "email"],
                    set_={
                        "status": SENT,
                        "provider_id": resend.provider_id,
                        "error": literal(f"resent as {resend.message_id} after: ")
                        + func.coalesce(ledger.c.error, ""),
                        "sent_at": resend.sent_at,
                        "updated_at": resend.sent_at,
                    },
                    where=ledger.c.status == FAILED,
                )
            )
