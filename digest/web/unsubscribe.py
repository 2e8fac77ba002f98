"""``/unsubscribe/<token>``: the link in every email and its RFC 8058 one-click.

``GET`` shows a confirmation button and changes nothing, because link scanners and mail
clients prefetch links. ``POST`` to the same URL (our button, or a mail provider's one-click
request) records the unsubscribe and answers 200, never a redirect.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from digest.address import mask_address
from digest.config import MailingList
from digest.send.unsubscribe import Purpose, read_token
from digest.state.suppressions import Reason
from digest.web import pages
from digest.web.app import Site, WebRequest

log = logging.getLogger("digest.serve")

INVALID = (
    "We could not read this unsubscribe link. Mail programs sometimes break long links across "
    "lines: copy the whole link into your browser, or use the unsubscribe link in a more recent edition."
)


def unsubscribe(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    found = read_token(site.secret, values["token"], purpose=Purpose.UNSUBSCRIBE)
    mailing_list = site.mailing_list(found[0]) if found else None
    if found is None or mailing_list is None:
        return pages.render(site, "message", 400, title="This unsubscribe link is not valid", message=INVALID)
    email = found[1]
    title, masked = mailing_list.display_title, mask_address(email)
    if request.method != "POST":
        return pages.render(
            site, "unsubscribe", title=f"Unsubscribe from {title}?", list_title=title, masked=masked
        )
    source = "one-click" if request.form.get("List-Unsubscribe") == "One-Click" else "web"
    failed = leave_list(site, mailing_list, email, source)
    if failed is not None:
        return failed
    return pages.render(site, "unsubscribed", title="You are unsubscribed", list_title=title, masked=masked)


def leave_list(site: Site, mailing_list: MailingList, email: str, source: str) -> Response | None:
    """Unsubscribe ``email`` from the list (from this page, one-click or the preferences page)
    and log it masked; None when recorded, else the page asking to try again."""
    try:
        added = site.store().readers.leave(
            mailing_list.name, email, reason=Reason.UNSUBSCRIBED, source=source, now=site.clock()
        )
    except Exception:
        log.exception(
            "could not record an unsubscribe from %s for %s", mailing_list.name, mask_address(email)
        )
        return pages.try_again(site)
    log.info(
        "unsubscribed %s from %s via %s%s",
        mask_address(email),
        mailing_list.name,
        source,
        "" if added else " (again)",
    )
    return None


ROUTES = [
    (Rule("/unsubscribe/<token>", endpoint="unsubscribe", methods=["GET", "POST"]), unsubscribe),
    # An empty token is just another bad token: the same 400, not a 404.
    (
        Rule("/unsubscribe/", endpoint="unsubscribe-empty", methods=["GET", "POST"], defaults={"token": ""}),
        unsubscribe,
    ),
]
