"""``/brand/<name>``: the logo files config.toml names, published for the emails and pages.

Only those files, found by their exact name in the config (``Config.logo_files``): a request
names no path, so none can reach another file. Mail clients and their image proxies fetch the
logo from other origins, and keep it a day.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from werkzeug.exceptions import NotFound
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from digest import logos
from digest.web import pages

if TYPE_CHECKING:
    from digest.web.app import Site, WebRequest

log = logging.getLogger("digest.serve")

CACHE_CONTROL = "public, max-age=86400"


def logo_file(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    name = values["name"]
    path = site.config.logo_files().get(name)
    if path is None:
        raise NotFound()
    try:
        stat = path.stat()
        with path.open("rb") as file:  # never more than a logo may be, whatever the file became
            body = file.read(logos.MAX_BYTES + 1)
    except OSError as exc:  # removed, or locked, since the config loaded
        log.warning("not publishing the logo %s: %s", name, exc.strerror or exc)
        raise NotFound() from None
    # Checked when the config loaded, and again now, on the bytes served: the file may have changed.
    if problem := logos.content_problem(name, max(stat.st_size, len(body)), body):
        log.warning("not publishing the logo: %s", problem)
        raise NotFound()
    response = Response(body, 200, mimetype=logos.media_type(name), headers=pages.SECURITY_HEADERS)
    response.headers["Cache-Control"] = CACHE_CONTROL
    # Webmail shows it from its own origin: a same-origin policy here would break the masthead.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.last_modified = dt.datetime.fromtimestamp(int(stat.st_mtime), dt.UTC)
    response.add_etag()
    return response.make_conditional(request)


ROUTES = [(Rule(f"{logos.LOGO_PATH}<name>", endpoint="logo", methods=["GET"]), logo_file)]
