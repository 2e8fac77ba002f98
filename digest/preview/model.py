"""What `digest preview` shows: one variant of a list's edition, as one recipient gets it.

Everything goes through the same code as `digest send` and `digest build` (build_edition,
render_edition, personalize, compose, the unsubscribe tokens and headers), so what is
previewed is what is sent. Nothing here writes the state database (see digest.preview.cache).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from email_validator import EmailNotValidError

from digest.address import address_key, normalize_address
from digest.build import SAMPLE_RECIPIENT
from digest.config import Config, MailingList
from digest.dates import parse_day
from digest.edition import build_edition
from digest.edition.build import edition_window
from digest.errors import DigestError
from digest.model import Edition, Variant
from digest.preview.cache import REMOTE_TTL, FeedMemo, StateOpener
from digest.render import Rendered, environment, render_edition, render_greeting
from digest.render.message import Recipient, compose, personalize
from digest.send.unsubscribe import Addresser
from digest.state.feeds import ReadOnlyFeeds
from digest.state.readers import Readers
from digest.subscribers import Problem, Subscriber, read_subscribers


class SelectionError(DigestError):
    """A bad preview parameter (unknown list, desk or subscriber; bad date): the caller's fault."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which variant: ``desks`` (a subset of the list's, None = all) or a ``subscriber``'s address.

    When ``subscriber`` is set, their desks and name are used and ``desks`` is ignored.
    """

    desks: tuple[str, ...] | None = None
    subscriber: str | None = None


@dataclass(frozen=True, slots=True)
class PreviewItem:
    """One story of the variant, and whether no earlier edition of the list carried it."""

    id: str
    title: str
    desk: str
    url: str
    new: bool


@dataclass(frozen=True, slots=True)
class Preview:
    """One variant of an edition, rendered and personalized, with its message headers."""

    list_name: str
    list_desks: tuple[str, ...]
    edition: Edition
    variant: Edition
    variant_key: str
    variant_label: str
    rendered: Rendered
    recipient: Recipient
    subscriber: Subscriber | None
    html: str
    text: str
    headers: Mapping[str, str]
    message: bytes
    items: tuple[PreviewItem, ...]
    demo_secret: bool
    # The list's last sent edition's one-line result, and the guardrail's hold, if any.
    last_result: str | None = None
    held: str | None = None

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @property
    def new_count(self) -> int:
        return sum(item.new for item in self.items)

    @property
    def empty(self) -> bool:
        return self.variant.is_empty

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.edition.warnings

    @property
    def selected_desks(self) -> tuple[str, ...]:
        return Variant.from_key(self.variant_key).desks_of(self.list_desks)


# -- parameters --------------------------------------------------------------------------


def split_desks(text: str | None) -> tuple[str, ...] | None:
    """``"A;B"`` → ``("A", "B")``; empty → None (every desk)."""
    wanted = tuple(part.strip() for part in (text or "").split(";") if part.strip())
    return wanted or None


def choose_desks(wanted: Iterable[str] | None, desks: tuple[str, ...]) -> tuple[str, ...] | None:
    """Those of the list's ``desks`` named in ``wanted`` (case-insensitive), in the list's order.

    None or nothing wanted: None (every desk). A name that is not one of the list's desks
    raises SelectionError.
    """
    wanted = [desk.strip() for desk in wanted or () if desk.strip()]
    if not wanted:
        return None
    known = {desk.casefold() for desk in desks}
    for desk in wanted:
        if desk.casefold() not in known:
            raise SelectionError(f"unknown desk {desk!r}; this list's desks are {', '.join(desks)}")
    chosen = {desk.casefold() for desk in wanted}
    return tuple(desk for desk in desks if desk.casefold() in chosen)


def parse_date(text: str | None) -> dt.date | None:
    """``YYYY-MM-DD`` → a date; empty → None (the next edition)."""
    if not text:
        return None
    try:
        return parse_day(text)
    except ValueError as exc:
        raise SelectionError(str(exc)) from None


def find_subscriber(
    config: Config, mailing_list: MailingList, address: str, readers: Readers | None = None
) -> Subscriber:
    """The reader ``address`` as `digest send` would mail them: as the state store has them
    (``readers``), else as the list's subscriber file has them (the first row, as an import
    takes it), for a list not imported yet."""
    try:
        key = normalize_address(address)
    except EmailNotValidError:
        key = address_key(address)
    desks = config.list_desks(mailing_list)
    reader = readers.get(mailing_list.name, key) if readers is not None else None
    if reader is not None:
        known = {desk.casefold(): desk for desk in desks}
        chosen = tuple(known[d.casefold()] for d in reader.desks or () if d.casefold() in known)
        return Subscriber(reader.email, reader.email, reader.name, chosen or None, reader.status.value, 0)
    path = config.subscriber_file(mailing_list)
    if path is not None:
        rows = read_subscribers(path, desks)
        try:
            for row in rows:
                if not isinstance(row, Problem) and row.key == key:
                    return row
        finally:
            rows.close()  # type: ignore[attr-defined]
    where = f" (in {path})" if path else ""
    raise SelectionError(f"{address!r} is not a subscriber of list {mailing_list.name!r}{where}")


# -- the preview ---------------------------------------------------------------------------


class Previewer:
    """Builds Previews; holds the feed memo and the read-only store between requests."""

    def __init__(
        self,
        *,
        now: Callable[[], dt.datetime] | None = None,
        env: Mapping[str, str] | None = None,
        feed_ttl: float = REMOTE_TTL,
    ) -> None:
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self.env = os.environ if env is None else env
        self.feeds = FeedMemo(feed_ttl)
        self.state = StateOpener()

    def close(self) -> None:
        self.state.close()

    def edition(self, config: Config, list_name: str, date: dt.date | None) -> Edition:
        """The list's next edition (date None, reading state) or the edition of ``date``."""
        mailing_list = config.mailing_list(list_name)
        now = self.now()
        if date is not None:
            try:
                edition_window(config, mailing_list, now=now, date=date)
            except DigestError as exc:
                raise SelectionError(exc.message, hint=exc.hint) from None
        state = self.state.get(config)
        feeds = self.feeds.get(config, now=now, cache=ReadOnlyFeeds(state.feeds) if state else None)
        return build_edition(
            config, list_name, now=now, date=date, store=state if date is None else None, feeds=feeds
        )

    def preview(
        self, config: Config, list_name: str | None, date: dt.date | None, selection: Selection
    ) -> Preview:
        """Render the selected variant for its recipient, exactly as `digest send` would."""
        mailing_list = self.mailing_list(config, list_name)
        desks = config.list_desks(mailing_list)
        subscriber = None
        if selection.subscriber:
            state = self.state.get(config)
            readers = state.readers if state is not None else None
            subscriber = find_subscriber(config, mailing_list, selection.subscriber, readers)
            chosen = subscriber.desks
        else:
            chosen = choose_desks(selection.desks, desks)
        chosen_variant = Variant.of(chosen, desks)
        addresser = Addresser(config, mailing_list, env=self.env, backend=None)
        edition = self.edition(config, mailing_list.name, date)
        variant = chosen_variant.select(edition)
        templates = environment(config)
        rendered = render_edition(config, variant, templates)
        sender = config.settings.newsroom.sender
        email, name = (subscriber.key, subscriber.name) if subscriber else (SAMPLE_RECIPIENT, "")
        recipient, headers = addresser.message(email, name, render_greeting(templates).to(name))
        # The real message, composed as a transport would: its headers are what goes out.
        message = compose(
            rendered, recipient, sender=sender, edition_id=edition.id, date=self.now(), headers=headers
        )
        wire = message.as_bytes()  # serializing sets the MIME boundary the headers show
        html, text = personalize(rendered, recipient)
        return Preview(
            list_name=mailing_list.name,
            list_desks=desks,
            edition=edition,
            variant=variant,
            variant_key=chosen_variant.key,
            variant_label=chosen_variant.label(desks),
            rendered=rendered,
            recipient=recipient,
            subscriber=subscriber,
            html=html,
            text=text,
            headers={header: str(value) for header, value in message.items()},
            message=wire,
            items=self.items(config, mailing_list.name, variant),
            demo_secret=addresser.demo,
            **self.results(config, mailing_list.name),
        )

    def results(self, config: Config, list_name: str) -> dict[str, str | None]:
        """How the list's last edition did, and whether the guardrail holds the list."""
        from digest.report import last_result
        from digest.results.guardrail import GuardrailHold

        state = self.state.get(config)
        hold = state.holds.get(list_name) if state is not None else None
        return {
            "last_result": last_result(state, list_name),
            "held": GuardrailHold.of(hold).describe() if hold is not None and hold.active else None,
        }

    def mailing_list(self, config: Config, name: str | None) -> MailingList:
        if not name:
            return config.settings.lists[0]
        for mailing_list in config.settings.lists:
            if mailing_list.name == name:
                return mailing_list
        names = ", ".join(m.name for m in config.settings.lists)
        raise SelectionError(f"no list named {name!r} (lists: {names})")

    def items(self, config: Config, list_name: str, variant: Edition) -> tuple[PreviewItem, ...]:
        """The variant's stories; new = neither its id nor its link was in an earlier edition."""
        state = self.state.get(config)
        keys = {key for item in variant.items for key in (item.id, item.canonical_url)}
        seen = state.seen(list_name, keys) if state is not None and keys else set()
        return tuple(
            PreviewItem(
                item.id,
                item.title,
                item.desk,
                item.url,
                item.id not in seen and item.canonical_url not in seen,
            )
            for item in variant.items
        )
