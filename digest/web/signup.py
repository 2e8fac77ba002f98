"""``/subscribe/<list>``: the sign-up form, and the first half of double opt-in.

``GET`` is the hosted form. ``POST`` takes ``email``, ``name`` and ``desks`` (repeated; none
means every desk) from that form, from the form embedded on the newsroom's own site (its origin
in ``[server] signup_origins``), or as a JSON object with the same keys (then the answer is
JSON, with CORS headers for those origins; ``OPTIONS`` answers their preflight). The address
becomes pending and is sent a confirmation link (``digest.web.confirm`` takes it from there).

Abuse, in the order it is checked: cross-site posts are refused before this module sees them
(``digest.web.guard``); each client gets ``[server] signups_per_minute`` sign-ups, counted in
the state store so every worker shares them (429 past it); the ``website`` field is a honeypot
that people never see, so a form that fills it gets the usual answer and nothing happens. The
answer is the same, word for word, whether the address was new, pending, active or gone, and
the email is sent off the request (``digest.web.outbound``) so its timing says nothing either.
A pending address is mailed at most once an hour (``Readers.sign_up`` decides).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from email_validator import EmailNotValidError
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import NotFound
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from digest.address import mask_address, normalize_address
from digest.config import MailingList
from digest.ingest.sanitize import one_line
from digest.send.confirmation import Confirmation, chosen_desks, duration_words
from digest.send.unsubscribe import Purpose, make_token
from digest.state.limits import Limits
from digest.web import confirm, guard, pages
from digest.web.app import Site, WebRequest

log = logging.getLogger("digest.serve")

HONEYPOT = "website"
MAX_NAME = 200
MAX_URL = 500
SENT = (
    "Almost done: if this address can receive our email, a link to confirm your subscription is "
    "on its way to it. Open it within {expires} to start getting {title}."
)


@dataclass(frozen=True, slots=True)
class Form:
    """What a sign-up sent, from a form or as JSON."""

    email: str
    name: str
    desks: tuple[str, ...]
    trapped: bool  # the honeypot was filled in


def read_form(request: WebRequest) -> Form | None:
    """The fields of a form post or a JSON body; None when the JSON is not of our shape."""
    if not request.is_json:
        form = request.form
        return Form(
            form.get("email", ""),
            form.get("name", ""),
            tuple(form.getlist("desks")),
            bool(form.get(HONEYPOT)),
        )
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return None
    email, name, desks = data.get("email", ""), data.get("name", ""), data.get("desks", [])
    if not isinstance(email, str) or not isinstance(name, str) or not isinstance(desks, list):
        return None
    if not all(isinstance(desk, str) for desk in desks):
        return None
    return Form(email, name, tuple(desks), bool(data.get(HONEYPOT)))


def subscribe(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    mailing_list = site.mailing_list(values["list"])
    if mailing_list is None:
        raise NotFound()
    if request.method == "OPTIONS":
        return _preflight(site, request)
    if request.method != "POST":
        return _page(site, mailing_list, 200)
    return _sign_up(site, request, mailing_list)


def _sign_up(site: Site, request: WebRequest, mailing_list: MailingList) -> Response:
    server, now = site.config.settings.server, site.clock()
    client = guard.client_address(request, server.trusted_proxies)
    try:
        hit = Limits(site.store().engine).hit(_client_key(site, client), now)
    except Exception:
        log.exception("could not count a sign-up for %s", mailing_list.name)
        return _answer(site, request, mailing_list, 503, error="We could not record that. Please try again.")
    if hit.count > server.signups_per_minute:
        wait = hit.retry_after(now)
        message = "That was too many sign-ups in a short time. Please wait a minute and try again."
        return _answer(site, request, mailing_list, 429, error=message, headers={"Retry-After": str(wait)})
    _chores(site, now)
    form = read_form(request)
    if form is None:
        return _answer(site, request, mailing_list, 400, error="That request could not be understood.")
    if form.trapped:
        return _answer(site, request, mailing_list, 200)  # a bot: it gets what a person gets
    try:
        email = normalize_address(form.email[:400])
    except EmailNotValidError:
        return _answer(
            site, request, mailing_list, 400, error="Please enter a valid email address.", form=form
        )
    list_desks = site.config.list_desks(mailing_list)
    unknown = [desk for desk in form.desks if desk not in list_desks]
    if unknown:
        return _answer(
            site, request, mailing_list, 400, error="Please choose desks from the list.", form=form
        )
    # Every desk ticked is every desk, including those the list adds later.
    desks = (
        None if not form.desks or set(list_desks) <= set(form.desks) else chosen_desks(list_desks, form.desks)
    )
    name = one_line(form.name)[:MAX_NAME]
    ip = guard.consent_address(client, server.consent_ip)
    try:
        signed = _record(site, mailing_list, email, name, desks, _form_url(site, request, mailing_list), ip)
    except Exception:
        log.exception("could not record a sign-up for %s from %s", mailing_list.name, mask_address(email))
        return _answer(site, request, mailing_list, 503, error="We could not record that. Please try again.")
    if signed:
        _mail_confirmation(site, mailing_list, email, name, desks, now)
    return _answer(site, request, mailing_list, 200)


def _mail_confirmation(
    site: Site,
    mailing_list: MailingList,
    email: str,
    name: str,
    desks: tuple[str, ...] | None,
    now: dt.datetime,
) -> None:
    """Queue the email with the signed link that confirms this sign-up until it expires."""
    expiry = site.config.settings.server.confirm_expiry
    expires = now + dt.timedelta(seconds=expiry)
    token = make_token(site.secret, mailing_list.name, email, purpose=Purpose.CONFIRM, expires=expires)
    url = confirm.confirm_url(site, token)
    confirmation = Confirmation(mailing_list.name, email, name, desks or (), url, duration_words(expiry))
    site.outbound().submit(mailing_list, confirmation, now)


def _record(
    site: Site,
    mailing_list: MailingList,
    email: str,
    name: str,
    desks: tuple[str, ...] | None,
    url: str,
    ip: str | None,
) -> bool:
    """Record the sign-up; whether to send a confirmation email now."""
    readers = site.store().readers
    for attempt in (1, 2):
        try:
            result = readers.sign_up(
                mailing_list.name, email, name=name, desks=desks, url=url, ip=ip, now=site.clock()
            )
        except IntegrityError:
            # Two sign-ups of one new address at once: the other inserted it first. Once more
            # finds its row, and sends no second email within the hour.
            if attempt == 2:
                raise
            continue
        log.info("sign-up for %s from %s (%s)", mailing_list.name, mask_address(email), result.status)
        return result.send_confirmation
    return False


def _chores(site: Site, now: dt.datetime) -> None:
    """Expire old sign-ups and rate-limit windows, at most once a minute per process, no cron."""
    if not site.chores_due(now):
        return
    try:
        store = site.store()
        expired = store.readers.expire_pending(now)
        Limits(store.engine).prune(now)
    except Exception:
        log.exception("could not expire old sign-ups")
        return
    if expired:
        log.info("expired %d sign-up(s) never confirmed", expired)


def _client_key(site: Site, client: str) -> str:
    # Keyed hash: the limits table keeps no IP address, and nobody can precompute keys.
    digest = hmac.new(site.secret, b"digest-signup-limit\x00" + client.encode(), hashlib.sha256)
    return f"signup:{digest.hexdigest()[:40]}"


def _form_url(site: Site, request: WebRequest, mailing_list: MailingList) -> str:
    """Where the sign-up came from, for the consent record: the page that posted, else our form."""
    referer = request.headers.get("Referer", "")
    if guard.origin_of(referer):
        return referer.split("#", 1)[0].split("?", 1)[0][:MAX_URL]  # a query may hold anything
    origin = guard.origin_of(request.headers.get("Origin", ""))
    return origin or subscribe_url(site, mailing_list.name)


def subscribe_url(site: Site, list_name: str) -> str:
    return f"{site.config.settings.server.base_url.rstrip('/')}/subscribe/{list_name}"


def _cors(site: Site, request: WebRequest) -> dict[str, str]:
    """Lets the newsroom's own pages read the JSON answer (browsers hide it from anyone else)."""
    headers = {"Vary": "Origin"}
    origin = guard.origin_of(request.headers.get("Origin", ""))
    if origin and origin in guard.allowed_origins(site, request, "subscribe"):
        headers["Access-Control-Allow-Origin"] = origin
    return headers


def _preflight(site: Site, request: WebRequest) -> Response:
    cors = _cors(site, request)
    if (
        "Access-Control-Allow-Origin" not in cors
        or request.headers.get("Access-Control-Request-Method") != "POST"
    ):
        return Response(status=403, headers={**pages.SECURITY_HEADERS, "Vary": "Origin"})
    cors.update(
        {
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        }
    )
    return Response(status=204, headers={**pages.SECURITY_HEADERS, **cors})


def _answer(
    site: Site,
    request: WebRequest,
    mailing_list: MailingList,
    status: int,
    *,
    error: str | None = None,
    form: Form | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The one answer to a sign-up, as JSON or as a page; success reads the same for everyone."""
    expires = duration_words(site.config.settings.server.confirm_expiry)
    message = error or SENT.format(expires=expires, title=mailing_list.display_title)
    extra = {**_cors(site, request), **(headers or {})}
    if request.is_json:
        body = json.dumps({"ok": error is None, "message": message}, ensure_ascii=False)
        return Response(
            body, status, mimetype="application/json", headers={**pages.SECURITY_HEADERS, **extra}
        )
    if error is None:
        return pages.render(site, "message", 200, headers=extra, title="Check your inbox", message=message)
    if form is not None:  # the reader can correct what they typed
        return _page(site, mailing_list, status, error=error, form=form, headers=extra)
    return pages.render(site, "message", status, headers=extra, title="Please try again", message=message)


def _page(
    site: Site,
    mailing_list: MailingList,
    status: int,
    *,
    error: str | None = None,
    form: Form | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    desks = site.config.list_desks(mailing_list)
    ticked = set(form.desks) if form is not None and form.desks else set(desks)
    return pages.render(
        site,
        "subscribe",
        status,
        headers=headers,
        title=f"Subscribe to {mailing_list.display_title}",
        list_title=mailing_list.display_title,
        desks=[(desk, desk in ticked) for desk in desks],
        email=form.email if form else "",
        name=form.name if form else "",
        error=error,
        honeypot=HONEYPOT,
        expires=duration_words(site.config.settings.server.confirm_expiry),
    )


ROUTES = [
    (Rule("/subscribe/<list>", endpoint="subscribe", methods=["GET", "POST", "OPTIONS"]), subscribe),
    *confirm.ROUTES,
]
