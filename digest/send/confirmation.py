"""The confirmation email of a web sign-up (double opt-in): rendered, then sent to one address.

Its templates are the newsroom's, like the edition's: ``confirm_subject.txt.j2``,
``confirm.mjml.j2`` (MJML → HTML → inlined CSS, as the edition) and ``confirm.txt.j2``. It goes
through the list's own transport, addressed like no edition: it is no edition (nothing in the
ledger, no List-Unsubscribe, since the address is on no list yet), and says so to mail systems
with ``Auto-Submitted: auto-generated`` (RFC 3834), so no auto-reply answers it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jinja2

from digest.brand import brand_context
from digest.config import Config, MailingList
from digest.errors import TransportError
from digest.ingest.sanitize import one_line, shorten
from digest.model import Rendered
from digest.render import environment
from digest.render.html import to_email_html
from digest.render.message import Recipient, sender_domain
from digest.render.templates import render_template
from digest.send.transports import send_one
from digest.send.transports.base import Batch, Envelope, Outcome

SUBJECT_TEMPLATE = "confirm_subject.txt.j2"
HTML_TEMPLATE = "confirm.mjml.j2"
TEXT_TEMPLATE = "confirm.txt.j2"
SUBJECT_LIMIT = 200
HEADERS = {"Auto-Submitted": "auto-generated"}


@dataclass(frozen=True, slots=True)
class Confirmation:
    """One confirmation email to send: to whom, for which list, and the link it carries."""

    list_name: str
    email: str
    name: str
    desks: tuple[str, ...]  # what they chose, to remind them; () when they took every desk
    url: str
    expires_in: str  # "48 hours", as the email words it

    @property
    def batch_id(self) -> str:
        # Where an outbox puts it, and what a provider's events name: never an edition's id.
        return f"{self.list_name}-confirm"


def duration_words(seconds: int) -> str:
    """``48 hours``, ``2 days``, ``90 minutes``: how long a link works, as a reader reads it."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0 and (unit != "day" or seconds > 2 * 86400):
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    count = max(1, seconds // 60)
    return f"{count} minute{'' if count == 1 else 's'}"


class ConfirmationMailer:
    """Renders and sends confirmation emails for one config; its templates compiled once."""

    def __init__(self, config: Config, env: Mapping[str, str]) -> None:
        self.config = config
        self.env = env
        self._templates: jinja2.Environment | None = None

    def render(self, mailing_list: MailingList, confirmation: Confirmation) -> Rendered:
        if self._templates is None:
            self._templates = environment(self.config)
        templates = self._templates
        context = {
            "newsroom": self.config.settings.newsroom,
            "brand": brand_context(self.config.settings),
            "list": mailing_list,
            "list_title": mailing_list.display_title,
            "name": one_line(confirmation.name),
            "desks": list(confirmation.desks),
            "confirm_url": confirmation.url,
            "expires_in": confirmation.expires_in,
        }
        subject = shorten(one_line(render_template(templates, SUBJECT_TEMPLATE, context)), SUBJECT_LIMIT)
        context["subject"] = subject
        html = to_email_html(render_template(templates, HTML_TEMPLATE, context), HTML_TEMPLATE)
        text = render_template(templates, TEXT_TEMPLATE, context).strip() + "\n"
        return Rendered(subject=subject, preheader="", html=html, text=text)

    def send(self, mailing_list: MailingList, confirmation: Confirmation, now: dt.datetime) -> Outcome:
        """Send one confirmation email through the list's transport; never raises TransportError."""
        rendered = self.render(mailing_list, confirmation)
        sender = self.config.settings.newsroom.sender
        envelope = Envelope(
            recipient=Recipient(confirmation.email, one_line(confirmation.name)),
            message_id=_message_id(confirmation, sender, now),
        )
        batch = Batch(
            edition_id=confirmation.batch_id,
            list_name=mailing_list.name,
            variant="confirm",
            content=rendered,
            sender=sender,
            date=now,
            envelopes=(envelope,),
            headers=HEADERS,
        )
        options = self.config.settings.transports[mailing_list.transport]
        try:
            return send_one(options, self.config.root, self.env, batch)
        except TransportError as exc:
            return Outcome.failed(confirmation.email, str(exc))


def _message_id(confirmation: Confirmation, sender: str, now: dt.datetime) -> str:
    # A new one each time: mail systems drop a message whose Message-ID the mailbox already has.
    seed = f"{confirmation.list_name}\x1f{confirmation.email}\x1f{now.timestamp()}"
    token = hashlib.sha256(seed.encode()).hexdigest()[:24]
    return f"<{confirmation.batch_id}.{token}@{sender_domain(sender)}>"


def chosen_desks(list_desks: Sequence[str], desks: Sequence[str] | None) -> tuple[str, ...]:
    """The desks a reader chose, in the list's order; () for every desk."""
    return () if desks is None else tuple(desk for desk in list_desks if desk in desks)
