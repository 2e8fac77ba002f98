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
    # Checked when the config loaded, and again now: the file may have changed since.
    if problem := logos.problem(name, path):
        log.warning("not publishing the logo: %s", problem)
        raise NotFound()
    try:
        modified, body = path.stat().st_mtime, path.read_bytes()
    except OSError as exc:  # removed or replaced since the check a moment ago
        log.warning("not publishing the logo %s: %s", name, exc.strerror or exc)
        raise NotFound() from None
    response = Response(body, 200, mimetype=logos.media_type(name), headers=pages.SECURITY_HEADERS)
    response.headers["Cache-Control"] = CACHE_CONTROL
    # Webmail shows it from its own origin: a same-origin policy here would break the masthead.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.last_modified = dt.datetime.fromtimestamp(int(modified), dt.UTC)
    response.add_etag()
    return response.make_conditional(request)


ROUTES = [(Rule(f"{logos.LOGO_PATH}<name>", endpoint="logo", methods=["GET"]), logo_file)]
