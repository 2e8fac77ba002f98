"""What the state store knows of one edition after it was sent: the counts editors' results need.

Only counting here (digest.results turns the counts into rates, desks and stories). An event is
counted once per recipient as well as in total: SendGrid reports every open and click, and a
bounce may be reported both by the provider and by a bounce message.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, and_, distinct, exists, func, literal, select
from sqlalchemy.sql.elements import KeyedColumnElement

from digest.state import schema
from digest.state.events import Kind
from digest.state.ledger_types import SENT
from digest.state.suppressions import Reason

# The suppressions a reader makes on our own pages (digest.web): the sources they are recorded
# with. Unsubscribes reported by a provider or mailed in are delivery events instead.
WEB_UNSUBSCRIBES = ("web", "one-click", "preferences")


@dataclass(frozen=True, slots=True)
class Tally:
    """How many recipients an event happened to, and how many times it was reported."""

    recipients: int = 0
    events: int = 0


class Outcomes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def events(self, edition_id: str) -> dict[str, Tally]:
        """Per event kind: recipients (distinct addresses) and events, for the edition."""
        table = schema.delivery_events
        who = func.coalesce(table.c.email, table.c.event_id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.kind, func.count(distinct(who)), func.count())
                .where(table.c.edition_id == edition_id)
                .group_by(table.c.kind)
            ).all()
        return {kind: Tally(recipients, events) for kind, recipients, events in rows}

    def sources(self, edition_id: str) -> set[str]:
        """Who reported anything about the edition ("sendgrid", "dsn", …)."""
        table = schema.delivery_events
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(table.c.source).distinct().where(table.c.edition_id == edition_id)
                ).scalars()
            )

    def clicks(self, edition_id: str) -> list[tuple[str, str, int]]:
        """(URL, recipient, clicks) of the edition's clicks: per recipient, so that readers can be
        counted per story once its URLs are matched (a story's link may come tagged or not)."""
        table = schema.delivery_events
        who = func.coalesce(table.c.email, table.c.event_id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.url, who, func.count())
                .where(
                    table.c.edition_id == edition_id,
                    table.c.kind == Kind.CLICK.value,
                    table.c.url.is_not(None),
                )
                .group_by(table.c.url, who)
            ).all()
        return [(url, reader, clicks) for url, reader, clicks in rows]

    def unsubscribes(self, list_name: str, edition_id: str) -> Counter[str]:
        """The edition's unsubscribes by source: recorded for it, or attributed to it.

        Provider reports carry the edition (SendGrid's custom_args); an unsubscribe made on our
        pages, or reported without an edition, names only the list and the address, and is
        attributed to the list's latest edition sent to that address before it.
        """
        events, suppressions = schema.delivery_events, schema.suppressions
        unsubscribe = events.c.kind == Kind.UNSUBSCRIBE.value
        found: Counter[str] = Counter()
        with self.engine.connect() as conn:
            found.update(
                dict(
                    conn.execute(
                        select(events.c.source, func.count(distinct(events.c.email)))
                        .where(unsubscribe, events.c.edition_id == edition_id)
                        .group_by(events.c.source)
                    ).all()
                )
            )
            unattributed = and_(
                unsubscribe,
                events.c.edition_id.is_(None),
                events.c.list_name == list_name,
                _latest_sent(list_name, edition_id, events.c.email, events.c.occurred_at),
            )
            found.update(
                dict(
                    conn.execute(
                        select(events.c.source, func.count(distinct(events.c.email)))
                        .where(unattributed)
                        .group_by(events.c.source)
                    ).all()
                )
            )
            on_our_pages = and_(
                suppressions.c.list_name == list_name,
                suppressions.c.reason == Reason.UNSUBSCRIBED.value,
                suppressions.c.source.in_(WEB_UNSUBSCRIBES),
                _latest_sent(list_name, edition_id, suppressions.c.email, suppressions.c.created_at),
            )
            found.update(
                dict(
                    conn.execute(
                        select(suppressions.c.source, func.count())
                        .where(on_our_pages)
                        .group_by(suppressions.c.source)
                    ).all()
                )
            )
        return found


def _latest_sent(
    list_name: str, edition_id: str, email: KeyedColumnElement[str], when: KeyedColumnElement[object]
) -> ColumnElement[bool]:
    """``edition_id`` is the list's latest edition sent to ``email`` at or before ``when``."""
    mine = schema.ledger.alias("mine")
    later = schema.ledger.alias("later")
    editions = schema.editions
    newer = (
        select(literal(1))
        .select_from(later.join(editions, editions.c.id == later.c.edition_id))
        .where(
            editions.c.list_name == list_name,
            later.c.email == email,
            later.c.status == SENT,
            later.c.sent_at > mine.c.sent_at,
            later.c.sent_at <= when,
        )
        # Two levels down, SQLAlchemy would not correlate the outer table on its own.
        .correlate_except(later, editions)
    )
    return exists(
        select(literal(1))
        .where(
            mine.c.edition_id == edition_id,
            mine.c.email == email,
            mine.c.status == SENT,
            mine.c.sent_at <= when,
            ~exists(newer),
        )
        .correlate_except(mine)
    )
