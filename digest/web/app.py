"""The WSGI app of `digest serve`: one table of routes, each answered by the module of its feature.

Every answer goes through ``digest.web.pages`` (one layout, one set of security headers).
The only files served are the logo files config.toml names, each found by its exact name
(``digest.web.logo``), so there is no path to traverse. The state store is opened on first
use, not when the app is made, so each worker of a WSGI server opens its own after forking.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from digest.config import Config, MailingList
from digest.send.unsubscribe import DEMO_SECRET, MIN_SECRET_BYTES, SECRET_ENV
from digest.web import guard, pages

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from digest.state import Store
    from digest.web.outbound import Outbound

log = logging.getLogger("digest.serve")

MAX_BODY = 64 * 1024
# OPTIONS only where a route takes it (the sign-up's CORS preflight); elsewhere routing says 405.
METHODS = ("GET", "HEAD", "POST", "OPTIONS")
# Housekeeping that needs no cron (expiring sign-ups, old rate-limit windows): at most this often.
CHORES_EVERY = dt.timedelta(minutes=1)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WebRequest(Request):
    # One byte over the cap, so that reading MAX_BODY + 1 bytes tells "too big" from "just fits"
    # for chunked bodies too (werkzeug would otherwise silently cut them at the limit).
    max_content_length = MAX_BODY + 1
    max_form_memory_size = MAX_BODY
    max_form_parts = 50


@dataclass
class Site:
    """What every page needs: the config, the signing secret, the store, the clock."""

    config: Config
    secret: bytes
    store_factory: Callable[[], Store]
    clock: Callable[[], dt.datetime] = _utc_now
    env: Mapping[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _store: list[Store] = field(default_factory=list, repr=False)
    _outbound: list[Outbound] = field(default_factory=list, repr=False)
    _chores_due: list[dt.datetime] = field(default_factory=list, repr=False)

    def store(self) -> Store:
        # Opened on first use, not in __init__: a WSGI server's workers each open their own.
        with self._lock:
            if not self._store:
                self._store.append(self.store_factory())
            return self._store[0]

    def outbound(self) -> Outbound:
        """This worker's queue of confirmation emails."""
        from digest.send.confirmation import ConfirmationMailer
        from digest.web.outbound import Outbound

        with self._lock:
            if not self._outbound:
                self._outbound.append(Outbound(ConfirmationMailer(self.config, self.env)))
            return self._outbound[0]

    def chores_due(self, now: dt.datetime) -> bool:
        """True at most once per CHORES_EVERY in this process (the caller then does them)."""
        with self._lock:
            if self._chores_due and now < self._chores_due[0]:
                return False
            self._chores_due[:] = [now + CHORES_EVERY]
            return True

    def mailing_list(self, name: str) -> MailingList | None:
        """The list called ``name``; None for any other name (a page for it is a 404 or a bad link)."""
        return next((m for m in self.config.settings.lists if m.name == name), None)


Handler = Callable[[Site, WebRequest, Mapping[str, str]], Response]


def _routes() -> list[tuple[Rule, Handler]]:
    from digest.web import archive, logo, preferences, signup, unsubscribe, webhooks

    return [
        *unsubscribe.ROUTES,
        *signup.ROUTES,
        *preferences.ROUTES,
        *archive.ROUTES,
        *webhooks.ROUTES,
        *logo.ROUTES,
        (Rule("/healthz", endpoint="healthz", methods=["GET"]), _healthz),
    ]


def _body_limits() -> dict[str, int]:
    """Endpoints that take bodies bigger than MAX_BODY (a provider's batch of events), and how big."""
    from digest.web import webhooks

    return dict(webhooks.BODY_LIMITS)


def _healthz(site: Site, request: WebRequest, values: Mapping[str, str]) -> Response:
    # Healthy means able to do the work: the database answers (a load balancer takes a worker
    # that cannot reach it out of rotation, rather than let it answer every reader with a 503).
    try:
        with site.store().engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
    except Exception as exc:
        log.warning("health check: the state database does not answer: %s", type(exc).__name__)
        return Response("unavailable\n", 503, mimetype="text/plain", headers=pages.SECURITY_HEADERS)
    return Response("ok\n", 200, mimetype="text/plain", headers=pages.SECURITY_HEADERS)


class App:
    """The WSGI callable: limits, routing, and our own page for every error."""

    def __init__(self, site: Site) -> None:
        self.site = site
        routes = _routes()
        self._handlers: dict[str, Handler] = {}
        self._body_limits = _body_limits()
        for rule, handler in routes:
            self._handlers[str(rule.endpoint)] = handler
        self._urls = Map(
            [rule.empty() for rule, _ in routes],  # a Rule binds to one Map; each app has its own
            # No automatic redirects: one-click must be answered in place, never with a 3xx.
            strict_slashes=False,
            merge_slashes=False,
            redirect_defaults=False,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = WebRequest(environ)
        try:
            response = self._dispatch(request)
        except HTTPException as exc:
            response = pages.error_page(self.site, exc)
        return response(environ, start_response)

    def _dispatch(self, request: WebRequest) -> Response:
        if request.method not in METHODS:
            raise MethodNotAllowed(valid_methods=list(METHODS))
        endpoint, values = self._urls.bind_to_environ(request.environ).match()
        # Each route's own cap, set before the body is read (once, here; handlers get the cache).
        limit = self._body_limits.get(str(endpoint), MAX_BODY)
        request.max_content_length = limit + 1
        too_big = (request.content_length or 0) > limit or len(request.get_data(cache=True)) > limit
        if request.method == "POST" and too_big:
            raise RequestEntityTooLarge()
        if request.method == "POST":
            guard.check_post(self.site, request, str(endpoint))
        return self._handlers[str(endpoint)](self.site, request, values)


def make_app(
    config: Config,
    store_factory: Callable[[], Store],
    secret: bytes,
    *,
    clock: Callable[[], dt.datetime] = _utc_now,
    env: Mapping[str, str] | None = None,
) -> WSGIApplication:
    """The WSGI app. ``store_factory`` is called once, on first use, and the store reused."""
    _check_secret(secret)
    return App(Site(config, secret, store_factory, clock, dict(env or {})))


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the signing secret must be at least {MIN_SECRET_BYTES} bytes")
    if secret == DEMO_SECRET:
        # Accepted only because someone exported it (nothing falls back to it here), but on a
        # public server it would let anyone unsubscribe any reader: say so where it is seen.
        log.warning(
            "%s is digest's public DEMO secret: anyone can forge a link signed with it. "
            "Use it only to try the links of `make demo`; never in production",
            SECRET_ENV,
        )


def create_app(config: Config | None = None, env: Mapping[str, str] | None = None) -> WSGIApplication:
    """The app of `digest serve`, and the factory for WSGI servers: ``gunicorn 'digest.web:create_app()'``.

    ``config`` defaults to the one $DIGEST_CONFIG names (else ./config.toml); the secret comes
    from $DIGEST_SECRET in ``env`` (default: the process's environment). The state store is
    opened (and migrated) on first use, so a WSGI server's workers each open their own.
    """
    import os

    from digest.config import load_config
    from digest.send.unsubscribe import checking_secret
    from digest.statefile import open_store

    environment = os.environ if env is None else env
    secret = checking_secret(environment)
    loaded = config or load_config()
    return make_app(loaded, lambda: open_store(loaded, environment).migrate(), secret, env=environment)
