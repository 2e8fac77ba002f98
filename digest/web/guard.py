"""Who is asking, and from which site: the checks every POST of `digest serve` goes through.

**Cross-site posts.** A page on another site must not make a reader's browser post our forms
(sign up a victim, confirm, unsubscribe). Browsers say where a POST comes from: the
``Origin`` header; ``Sec-Fetch-Site`` when Origin is ``null`` (our pages send
``Referrer-Policy: no-referrer``, which makes a browser send ``Origin: null`` even for our own
forms); else ``Referer``. Each is checked in that order against the origins allowed: our
``[server] base_url``, the origin the request was addressed to (its Host), and for the
sign-up form the newsroom's ``[server] signup_origins``. A POST with none of the three comes
from no browser: a mail provider's RFC 8058 one-click (which sends no Origin), or a script
that could post anything anyway. Those pass; CSRF is an attack through browsers.

**The client.** The socket's address, unless ``[server] trusted_proxies`` is N > 0: then
the Nth entry from the right of ``X-Forwarded-For``, the address the outermost of our own
proxies saw (entries further left were written by the client and prove nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from werkzeug.exceptions import Forbidden

if TYPE_CHECKING:
    from digest.web.app import Site, WebRequest

# Endpoints whose form the newsroom may embed on its own site (the origins of signup_origins).
EMBEDDABLE = frozenset({"subscribe"})
# What Sec-Fetch-Site says of a request we made ourselves ("none": typed in, or a bookmark).
_OURS = frozenset({"same-origin", "none"})


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lowercased as browsers send it; None otherwise."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origins(site: Site, request: WebRequest) -> set[str]:
    """Our origins: the configured base_url's, and the one this request was sent to."""
    found = {origin_of(site.config.settings.server.base_url), origin_of(request.host_url)}
    return {origin for origin in found if origin}


def allowed_origins(site: Site, request: WebRequest, endpoint: str) -> set[str]:
    """Who may post to ``endpoint``: us, and for an embeddable form the newsroom's sites too."""
    allowed = own_origins(site, request)
    if endpoint in EMBEDDABLE:
        allowed.update(site.config.settings.server.signup_origins)
    return allowed


def cross_site(request: WebRequest, allowed: Collection[str]) -> bool:
    """Whether a browser sent this request from a page of an origin not in ``allowed``."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.strip().lower() != "null":
        return origin_of(origin) not in allowed
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() not in _OURS
    referer = request.headers.get("Referer")
    if referer:
        return origin_of(referer) not in allowed
    # Origin "null" with nothing else: a sandboxed frame or a data: page, never one of ours.
    return origin is not None


def check_post(site: Site, request: WebRequest, endpoint: str) -> None:
    """Refuse (403) a POST a browser sent from another site; App calls it for every POST."""
    if cross_site(request, allowed_origins(site, request, endpoint)):
        raise Forbidden()


def client_address(request: WebRequest, trusted_proxies: int) -> str:
    """The client's IP address, believing ``trusted_proxies`` entries of X-Forwarded-For."""
    peer = request.remote_addr or ""
    if trusted_proxies <= 0:
        return peer
    forwarded = [
        entry.strip()
        for header in request.headers.getlist("X-Forwarded-For")
        for entry in header.split(",")
        if entry.strip()
    ]
    if len(forwarded) < trusted_proxies:
        return peer  # it did not come through all our proxies: only the socket is known
    claimed = forwarded[-trusted_proxies]
    try:
        return str(ipaddress.ip_address(claimed))
    except ValueError:
        return peer


def consent_address(address: str, keep: Literal["full", "network", "none"]) -> str | None:
    """What a consent record keeps of an IP address: all of it, its network, or nothing.

    The network is the /24 of an IPv4 address and the /48 of an IPv6 one (a site's prefix),
    enough to show where a sign-up came from without naming one machine.
    """
    if keep == "none" or not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if keep == "full":
        return str(ip)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)
