"""Every page of `digest serve`: rendered from the newsroom's templates, with one set of headers.

Pages live in ``templates/pages/`` (the newsroom's own folder first, then the packaged ones)
and extend ``layout.html.j2``. Error pages depend only on the status, never on why: no oracle
for probing tokens.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jinja2
from werkzeug.exceptions import (
    Forbidden,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
    TooManyRequests,
)
from werkzeug.wrappers import Response

from digest.brand import brand_context
from digest.render.templates import make_environment

if TYPE_CHECKING:
    from digest.config import Config, Settings
    from digest.web.app import Site

# No script at all; frame-ancestors: a framed page could trick a reader into a click. Styles
# are inline (the layout's <style>, the odd style attribute): CSS runs nothing, and hashes or
# a nonce would have to follow every change to a newsroom's own templates.
_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src {images}; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": _POLICY.format(images="'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# A DNS name (after IDNA) and a port: anything else could end the directive or name another.
_SOURCE = re.compile(r"^[a-z0-9.-]+(?::[0-9]{1,5})?$")


def with_images(sources: str) -> dict[str, str]:
    """SECURITY_HEADERS whose policy lets images in from ``sources`` (CSP source expressions)."""
    return {**SECURITY_HEADERS, "Content-Security-Policy": _POLICY.format(images=sources or "'none'")}


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, as a CSP source; None for a host a CSP cannot name."""
    parts = urlsplit(url)
    try:
        host = parts.netloc.rpartition("@")[2].encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return f"{parts.scheme}://{host}" if _SOURCE.match(host) else None


def page_headers(settings: Settings) -> dict[str, str]:
    """The headers of a page of ours: images from the logos' origins and nowhere else."""
    logo = brand_context(settings)["logo"] or {}
    hrefs = (logo.get("url"), logo.get("dark_url"))
    origins = sorted({source for url in hrefs if url and (source := origin(url))})
    return with_images(" ".join(origins))


@functools.lru_cache(maxsize=8)
def _environment(templates: str | None) -> jinja2.Environment:
    from pathlib import Path

    return make_environment(Path(templates) if templates else None)


def environment(config: Config) -> jinja2.Environment:
    """The jinja2 environment of the config's templates (one per folder, kept: pages are many)."""
    folder = config.templates
    return _environment(str(folder) if folder else None)


def render(
    site: Site, template: str, status: int = 200, *, headers: dict[str, str] | None = None, **context: Any
) -> Response:
    """``pages/<template>.html.j2`` as a complete page, in the newsroom's name."""
    settings = site.config.settings
    document = (
        environment(site.config)
        .get_template(f"pages/{template}.html.j2")
        .render(newsroom=settings.newsroom, brand=brand_context(settings), **context)
    )
    return Response(
        document, status, mimetype="text/html", headers={**page_headers(settings), **(headers or {})}
    )


def error_page(site: Site, exc: HTTPException) -> Response:
    """Our page for werkzeug's HTTP errors: its own pages would skip our headers."""
    if isinstance(exc, NotFound):
        return render(site, "message", 404, title="Not found", message="There is nothing here.")
    if isinstance(exc, MethodNotAllowed):
        response = render(
            site,
            "message",
            405,
            title="Method not allowed",
            message="This address only answers GET and POST.",
        )
        response.headers["Allow"] = ", ".join(exc.valid_methods or ("GET", "HEAD", "POST"))
        return response
    if isinstance(exc, RequestEntityTooLarge):
        return render(site, "message", 413, title="Request too large", message="That request was too large.")
    if isinstance(exc, Forbidden):
        # A form posted from another site (digest.web.guard): say how to do it right.
        return render(
            site,
            "message",
            403,
            title="Not allowed",
            message="This form can only be sent from our own pages. Please open the page again and retry.",
        )
    if isinstance(exc, TooManyRequests):
        response = render(
            site,
            "message",
            429,
            title="Too many requests",
            message="That was too many in a short time. Please wait a minute and try again.",
        )
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    # Malformed form bodies and the like.
    return render(
        site, "message", exc.code or 400, title="Bad request", message="That request could not be understood."
    )


def try_again(site: Site) -> Response:
    """A store that failed: a mail provider retries a 503, and a reader can press again."""
    return render(
        site,
        "message",
        503,
        title="Please try again",
        message="We could not record that just now. Please try again.",
    )
