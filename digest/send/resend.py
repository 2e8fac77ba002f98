"""`digest send --resend`: one frozen edition once more to one reader, as the original was.

For an editor answering "I never got today's email". Decide, then act: ``decide`` takes what
the ledger, the list's readers in the state store and the suppressions say about the reader and returns the
plan (or refuses, saying why and what to do); ``resend`` gathers those facts, sends the one
message through the transport and records it. The resend is a row of its own
(``digest.state.resends``); once it reached the reader, a ledger row that failed (or is
missing) says sent, so later sends of the edition count them as sent and do not retry them.

The message is the original: the frozen variant of their desks, their name and their own
signed unsubscribe link, built by the same ``Sender`` as the send. Only the Date and the
Message-ID are new. A new Message-ID because mail systems (Gmail among them) silently drop a
message whose Message-ID the mailbox already holds: a reader whose copy went to spam, or was
filtered away, would not get the resend either.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from email_validator import EmailNotValidError

from digest.address import normalize_address
from digest.config import Config
from digest.edition.frozen import frozen_edition as load_frozen
from digest.errors import DigestError, TransportError
from digest.model import Edition, Variant
from digest.render import Rendered
from digest.render.message import make_message_id
from digest.send.run import Sender, edition_id_for
from digest.send.transports import send_one
from digest.send.transports.base import Outcome
from digest.state import Store
from digest.state.imports import import_subscribers
from digest.state.ledger_types import FAILED, PENDING, SENDING, SENT, Claimed, Row
from digest.state.readers import Reader, ReaderStatus
from digest.state.resends import Resend
from digest.state.suppressions import ALL_LISTS, Suppression


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known about one reader of one frozen edition, before deciding anything."""

    list_name: str
    edition_id: str
    email: str
    original: Row | None  # their ledger row: what the original send did
    subscriber: Reader | None  # the reader as the state store has them now
    suppression: Suppression | None
    earlier: int  # resends of this edition to this reader before


@dataclass(frozen=True, slots=True)
class Plan:
    """The one message to resend."""

    edition_id: str
    email: str
    name: str
    variant: str  # its key in the ledger
    label: str  # its desks, for the editor
    content: Rendered
    original: Row | None
    earlier: int  # resends of this edition to this reader before this one


@dataclass(frozen=True, slots=True)
class ResendResult:
    plan: Plan
    transport: str
    message_id: str
    outcome: Outcome | None  # None for a dry run


def reader_address(email: str) -> str:
    """The address as the ledger and the subscriber file's keys have it (normalized, folded)."""
    try:
        return normalize_address(email)
    except EmailNotValidError as exc:
        raise DigestError(f"{email!r} is not an email address: {exc}") from None


def describe_original(original: Row | None) -> str:
    """What the original send did for a reader, in a few words."""
    if original is None:
        return "not in the send (added to the list since)"
    if original.status == SENT and original.sent_at:
        return f"sent {original.sent_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    return f"{original.status}: {original.error}" if original.error else original.status


def decide(
    facts: Facts,
    list_desks: tuple[str, ...],
    rendered: Callable[[str], Rendered | None],
    variant_of: Callable[[tuple[str, ...] | None], str],
) -> Plan:
    """The plan for resending to this reader, or a DigestError saying why not and what to do.

    ``rendered`` gives a variant's content (None when its desks had no stories); ``variant_of``
    the variant key of a reader's desks (``Sender.variant_of``).
    """
    who, original, subscriber = facts.email, facts.original, facts.subscriber
    if original is None and subscriber is None:
        raise DigestError(
            f"{who} is not a subscriber of {facts.list_name}: not in the ledger of {facts.edition_id} "
            "nor among the list's readers",
            hint="check the spelling of the address, or add them to the list",
        )
    if facts.suppression is not None:
        raise DigestError(_suppressed(facts.suppression, facts.list_name), hint=_LIFT)
    if subscriber is not None and subscriber.status is not ReaderStatus.ACTIVE:
        since = f"{subscriber.updated_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
        raise DigestError(
            f"{who} is {subscriber.status} on {facts.list_name} (since {since})",
            hint="digest sends nothing to them; only they can come back, by signing up again"
            if subscriber.status is not ReaderStatus.PENDING
            else "they have not confirmed their sign-up yet",
        )
    if original is not None and original.status in (PENDING, SENDING):
        raise DigestError(
            f"the send of {facts.edition_id} has not reached {who} yet ({original.status})",
            hint=f"run `digest send --list {facts.list_name}` to finish it; it sends to them once",
        )
    # The variant they were sent; a reader the send gave nothing gets their desks of today.
    if original is not None and (original.status in (SENT, FAILED) or subscriber is None):
        key = original.variant
    else:
        key = variant_of(subscriber.desks if subscriber else None)
    variant = Variant.from_key(key)
    content = rendered(key)
    if content is None:
        desks = ", ".join(variant.desks_of(list_desks))
        raise DigestError(
            f"{who}'s desks ({desks}) had no stories in {facts.edition_id}: there is nothing to resend",
            hint=f"originally {describe_original(original)}",
        )
    name = original.name if original is not None else subscriber.name if subscriber else ""
    label = variant.label(list_desks)
    return Plan(facts.edition_id, who, name, key, label, content, original, facts.earlier)


_LIFT = "digest sends nothing to a suppressed address; only if they ask to come back, lift it first"


def _suppressed(suppression: Suppression, list_name: str) -> str:
    when = f"{suppression.created_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    if suppression.list_name == ALL_LISTS:
        return (
            f"{suppression.email} is suppressed for every list: {suppression.reason} "
            f"(from {suppression.source}, {when})"
        )
    return f"{suppression.email} unsubscribed from {list_name} on {when} (via {suppression.source})"


def frozen_edition(sender: Sender, edition_id: str, today: str) -> Edition:
    """The frozen edition to resend; refuses one never sent."""
    edition = load_frozen(sender.store.editions, edition_id)
    name = sender.list.name
    if edition is None:
        sent = sender.store.editions.ids(name)
        hint = f"sent editions of {name}: {', '.join(sent)}" if sent else f"{name} has sent no edition yet"
        if edition_id == today:
            hint = f"send it first with `digest send --list {name}`"
        raise DigestError(f"{edition_id} was never sent: it is not frozen in the state database", hint=hint)
    return edition


def resend(
    config: Config,
    list_name: str,
    email: str,
    store: Store,
    *,
    now: dt.datetime,
    edition_id: str | None = None,
    transport_alias: str | None = None,
    env: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> ResendResult:
    """Send a frozen edition of a list (default: today's) once more to one of its readers.

    Raises DigestError, sending nothing, when the reader must not or cannot get it. A dry run
    decides and says what it would send, and changes nothing.
    """
    address = reader_address(email)
    mailing_list = config.mailing_list(list_name)
    today, _day = edition_id_for(config, mailing_list, now)
    wanted = edition_id or today
    if not re.fullmatch(rf"{re.escape(mailing_list.name)}-\d{{4}}-\d{{2}}-\d{{2}}", wanted):
        raise DigestError(
            f"{wanted!r} is not an edition of {mailing_list.name}",
            hint=f"its editions are named {mailing_list.name}-YYYY-MM-DD, e.g. {today}",
        )
    sender = Sender(
        config, list_name, store, transport_alias=transport_alias, now=now, env=env, edition_id=wanted
    )
    edition = frozen_edition(sender, wanted, today)
    path = config.subscriber_file(mailing_list)
    if path is not None and not dry_run:  # a reader added to the file since the send is one to resend to
        import_subscribers(store, mailing_list.name, path, sender.list_desks, now=sender.clock())
    facts = Facts(
        list_name=sender.list.name,
        edition_id=wanted,
        email=address,
        original=store.ledger.row(wanted, address),
        subscriber=store.readers.get(sender.list.name, address),
        suppression=store.suppressions.is_suppressed(address, sender.list.name),
        earlier=store.resends.count(wanted, address),
    )
    plan = decide(
        facts,
        sender.list_desks,
        lambda key: sender.rendered(edition, key, freeze=not dry_run),
        sender.variant_of,
    )
    message_id = make_message_id(f"{wanted}.resend{plan.earlier + 1}", address, sender.sender)
    if dry_run:
        return ResendResult(plan, sender.alias, message_id, None)
    return _deliver(sender, plan, message_id)


def _deliver(sender: Sender, plan: Plan, message_id: str) -> ResendResult:
    """Send the plan's one message and record it, whatever the transport answered."""
    row_id = plan.original.id if plan.original else 0
    envelope = sender.envelope(Claimed(row_id, plan.email, plan.name, plan.variant, 0))
    envelope = dataclasses.replace(envelope, message_id=message_id)
    batch = sender.batch(plan.variant, plan.content, [envelope])
    try:
        outcome = send_one(sender.transport_config, sender.config.root, sender.env, batch)
    except TransportError as exc:  # the provider cannot be reached at all: a failed resend
        outcome = Outcome.failed(plan.email, str(exc))
    sender.store.resends.record(
        Resend(
            edition_id=plan.edition_id,
            email=plan.email,
            name=plan.name,
            variant=plan.variant,
            transport=sender.alias,
            message_id=message_id,
            sent_at=sender.clock(),
            status=SENT if outcome.accepted else FAILED,
            provider_id=outcome.provider_id,
            error=outcome.error,
        )
    )
    return ResendResult(plan, sender.alias, message_id, outcome)
