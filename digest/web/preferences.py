"""``/preferences/<token>``: a reader's own desks and name, from "Manage your desks" in every digest.

``GET`` shows the list's desks (the reader's choice ticked), their name, and an unsubscribe
button; it changes nothing. ``POST`` to the same URL (from our own page only: the app checks
every POST with ``digest.web.guard``) does what its ``action`` field says:

- ``save`` (the default): keep the ticked ``desks`` and the ``name``. Every desk ticked is
  stored as "all desks", so a desk the list adds later reaches the reader too. No desk ticked
  changes nothing and asks the reader to confirm, because no desks means no digest.
- ``unsubscribe``: the page's own unsubscribe button, and the button of that confirmation.
  It posts here rather than to /unsubscribe/<token>: this page's token already proves who the
  reader is, and one POST handler keeps one cross-site check.

The token is a PREFERENCES token: an unsubscribe or confirmation token is refused here (and
this one there), so no link can be turned into another.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from digest.address import mask_address
from digest.config import MailingList
from digest.ingest.sanitize import one_line
from digest.send.unsubscribe import Purpose, read_token
from digest.state.readers import Reader, ReaderStatus
from digest.web import pages
from digest.web.app import Site, WebRequest
from digest.web.unsubscribe import leave_list

log = logging.getLogger("digest.serve")

INVALID = (
    "We could not read this link. Mail programs sometimes break long links across lines: copy "
    "the whole link into your browser, or use the “Manage your desks” link in a more recent edition."
)
# Names longer than this are cut: the name is only used in the greeting.
MAX_NAME = 200


def preferences(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    found = read_token(site.secret, values["token"], purpose=Purpose.PREFERENCES)
    mailing_list = site.mailing_list(found[0]) if found else None
    if found is None or mailing_list is None:
        return pages.render(site, "message", 400, title="This link is not valid", message=INVALID)
    email = found[1]
    try:
        reader = site.store().readers.get(mailing_list.name, email)
    except Exception:
        log.exception("could not read the preferences of %s on %s", mask_address(email), mailing_list.name)
        return pages.try_again(site)
    if reader is None or reader.status is not ReaderStatus.ACTIVE:
        return _not_a_reader(site, request, mailing_list, email)
    if request.method != "POST":
        return _form(site, request, mailing_list, reader)
    if request.form.get("action") == "unsubscribe":
        return _leave(site, mailing_list, email)
    return _save(site, request, mailing_list, reader)


def _save(site: Site, request: WebRequest, mailing_list: MailingList, reader: Reader) -> Response:
    list_desks = site.config.list_desks(mailing_list)
    ticked = set(request.form.getlist("desks"))
    # In the list's order, and only the list's desks: a forged field cannot invent one.
    desks = [desk for desk in list_desks if desk in ticked]
    name = one_line(request.form.get("name", reader.name))[:MAX_NAME]
    if not desks:
        return pages.render(
            site,
            "preferences_confirm",
            title="No desks means unsubscribing",
            list_title=mailing_list.display_title,
            back=request.script_root + request.path,
        )
    try:
        saved = site.store().readers.set_preferences(
            mailing_list.name,
            reader.email,
            name=name,
            desks=None if len(desks) == len(list_desks) else desks,
            now=site.clock(),
        )
    except Exception:
        log.exception(
            "could not save the preferences of %s on %s", mask_address(reader.email), mailing_list.name
        )
        return pages.try_again(site)
    if saved is None:  # left (or was removed) since the page was read
        return _not_a_reader(site, request, mailing_list, reader.email)
    log.info("preferences of %s on %s saved", mask_address(reader.email), mailing_list.name)
    return _form(site, request, mailing_list, saved, saved_now=True)


def _leave(site: Site, mailing_list: MailingList, email: str) -> Response:
    failed = leave_list(site, mailing_list, email, "preferences")
    if failed is not None:
        return failed
    title = mailing_list.display_title
    return pages.render(
        site, "unsubscribed", title="You are unsubscribed", list_title=title, masked=mask_address(email)
    )


def _form(
    site: Site, request: WebRequest, mailing_list: MailingList, reader: Reader, *, saved_now: bool = False
) -> Response:
    desks = _choices(site.config.list_desks(mailing_list), reader.desks)
    return pages.render(
        site,
        "preferences",
        title=f"Your desks in {mailing_list.display_title}",
        list_title=mailing_list.display_title,
        masked=mask_address(reader.email),
        name=reader.name,
        desks=desks,
        saved=saved_now,
    )


def _choices(list_desks: Sequence[str], chosen: Sequence[str] | None) -> list[tuple[str, bool]]:
    """(desk, ticked) for each desk of the list; None (every desk) ticks them all."""
    return [(desk, chosen is None or desk in chosen) for desk in list_desks]


def _not_a_reader(site: Site, request: WebRequest, mailing_list: MailingList, email: str) -> Response:
    # Only what the link's holder knows already: the address it names is not on the list.
    return pages.render(
        site,
        "preferences_inactive",
        title="Not subscribed",
        list_title=mailing_list.display_title,
        masked=mask_address(email),
        signup=f"{request.script_root}/subscribe/{mailing_list.name}",
    )


ROUTES = [
    (Rule("/preferences/<token>", endpoint="preferences", methods=["GET", "POST"]), preferences),
    # An empty token is just another bad token: the same 400, not a 404.
    (
        Rule("/preferences/", endpoint="preferences-empty", methods=["GET", "POST"], defaults={"token": ""}),
        preferences,
    ),
]
