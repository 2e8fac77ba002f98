"""``/confirm/<token>``: the link of the confirmation email, the second half of double opt-in.

``GET`` shows a button and changes nothing: mail scanners open every link of a message
before its reader does. ``POST`` (the button) makes the address active, records where and when
in its consent record, and shows the reader their desks and the link to their preferences.
Pressing it twice is harmless (an active reader stays as they are). Every bad token (forged,
altered, cut short, expired, made for another purpose) gets the same 400 page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from digest.address import mask_address
from digest.send.unsubscribe import Purpose, make_token, read_token
from digest.send.unsubscribe import preferences_url as _preferences_link
from digest.web import guard, pages
from digest.web.app import Site, WebRequest

log = logging.getLogger("digest.serve")

INVALID = (
    "We could not read this confirmation link, or it has expired. Mail programs sometimes break "
    "long links across lines: copy the whole link into your browser. If it is older than a few "
    "days, please sign up again: we will send you a new one."
)


def confirm_url(site: Site, token: str) -> str:
    return f"{_base(site)}/confirm/{token}"


def preferences_url(site: Site, list_name: str, email: str) -> str:
    """The reader's own preferences page (served by digest.web.preferences)."""
    token = make_token(site.secret, list_name, email, purpose=Purpose.PREFERENCES)
    return _preferences_link(_base(site), token)


def _base(site: Site) -> str:
    return site.config.settings.server.base_url.rstrip("/")


def confirm(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    found = read_token(site.secret, values["token"], purpose=Purpose.CONFIRM, now=site.clock())
    mailing_list = site.mailing_list(found[0]) if found else None
    if found is None or mailing_list is None:
        return _invalid(site)
    email = found[1]
    title, masked = mailing_list.display_title, mask_address(email)
    if request.method != "POST":
        return pages.render(
            site, "confirm", title=f"Confirm your subscription to {title}", list_title=title, masked=masked
        )
    server = site.config.settings.server
    ip = guard.consent_address(guard.client_address(request, server.trusted_proxies), server.consent_ip)
    try:
        reader = site.store().readers.confirm(
            mailing_list.name, email, url=f"{_base(site)}/confirm/", ip=ip, now=site.clock()
        )
    except Exception:
        log.exception("could not record a confirmation for %s from %s", mailing_list.name, masked)
        return pages.try_again(site)
    if reader is None:  # the sign-up expired (7 days) or the address was forgotten since
        return _invalid(site)
    log.info("confirmed %s for %s", masked, mailing_list.name)
    list_desks = site.config.list_desks(mailing_list)
    desks = [desk for desk in list_desks if reader.desks is None or desk in reader.desks]
    return pages.render(
        site,
        "confirmed",
        title="You are subscribed",
        list_title=title,
        masked=masked,
        desks=desks,
        preferences_url=preferences_url(site, mailing_list.name, email),
    )


def _invalid(site: Site) -> Response:
    return pages.render(site, "message", 400, title="This confirmation link is not valid", message=INVALID)


ROUTES = [
    (Rule("/confirm/<token>", endpoint="confirm", methods=["GET", "POST"]), confirm),
    # An empty token is just another bad token: the same 400, not a 404.
    (Rule("/confirm/", endpoint="confirm-empty", methods=["GET", "POST"], defaults={"token": ""}), confirm),
]
