"""The public unsubscribe endpoint: a tiny WSGI app, the only part of digest on the internet.

``GET /unsubscribe/<token>`` shows a confirmation button and changes nothing, because link
scanners and mail clients prefetch links. ``POST`` to the same URL — our button, or a mail
provider's RFC 8058 one-click request — records the suppression and answers 200 (never a
redirect). Nothing on disk is served, so there is no path to traverse.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from digest.httpserve import listen, run_until_signalled, server_url
from digest.send.unsubscribe import DEMO_SECRET, MIN_SECRET_BYTES, SECRET_ENV, Purpose, read_token
from digest.state.suppressions import Reason

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from digest.config import Config

log = logging.getLogger("digest.serve")

MAX_BODY = 64 * 1024
METHODS = ("GET", "HEAD", "POST")
SECURITY_HEADERS = {
    # frame-ancestors: a framed page could trick a reader into clicking the button.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}
STYLE = (
    "body{font:17px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1a1a1a;"
    "background:#f6f6f4;margin:0;padding:2rem 1rem}"
    "main{max-width:32rem;margin:0 auto;background:#fff;padding:1.5rem 2rem;border-radius:8px}"
    "h1{font-size:1.4rem;margin-top:0}"
    "button{font:inherit;padding:.6rem 1.4rem;border:0;border-radius:6px;background:#1d4ed8;"
    "color:#fff;cursor:pointer}button:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}"
)


class _Suppressions(Protocol):
    def add(self, email: str, *, reason: Reason, source: str, list_name: str | None = None) -> bool: ...


class SuppressionStore(Protocol):
    """What the app needs of digest.state.Store."""

    @property
    def suppressions(self) -> _Suppressions: ...


class _Request(Request):
    # One byte over the cap, so that reading MAX_BODY + 1 bytes tells "too big" from "just fits"
    # for chunked bodies too (werkzeug would otherwise silently cut them at the limit).
    max_content_length = MAX_BODY + 1
    max_form_memory_size = MAX_BODY
    max_form_parts = 50


def mask_address(email: str) -> str:
    """``an***@example.org``: enough for a reader to recognise, too little to harvest."""
    local, _, domain = email.rpartition("@")
    if not local:
        return "***"
    return f"{local[: 2 if len(local) > 2 else 1]}***@{domain}"


def make_app(
    store_factory: Callable[[], SuppressionStore],
    secret: bytes,
    *,
    newsroom_name: str,
    list_titles: Mapping[str, str],
) -> WSGIApplication:
    """The WSGI app. ``store_factory`` is called once, on the first unsubscribe, and reused.

    ``list_titles`` maps each list name to the title shown to readers; a token for any other
    list is refused like a forged one.
    """
    _check_secret(secret)
    return _App(store_factory, secret, newsroom_name=newsroom_name, list_titles=list_titles)


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the unsubscribe secret must be at least {MIN_SECRET_BYTES} bytes")
    if secret == DEMO_SECRET:
        # Accepted only because someone exported it (nothing falls back to it here), but on a
        # public server it would let anyone unsubscribe any reader: say so where it is seen.
        log.warning(
            "%s is digest's public DEMO secret: anyone can forge an unsubscribe link signed with it. "
            "Use it only to try the links of `make demo`; never in production",
            SECRET_ENV,
        )


def _url_map() -> Map:
    return Map(
        [
            Rule("/unsubscribe/<token>", endpoint="unsubscribe", methods=["GET", "POST"]),
            # An empty token is just another bad token: the same 400, not a 404.
            Rule("/unsubscribe/", endpoint="unsubscribe", methods=["GET", "POST"], defaults={"token": ""}),
            Rule("/healthz", endpoint="healthz", methods=["GET"]),
        ],
        # No automatic redirects: one-click must be answered in place, never with a 3xx.
        strict_slashes=False,
        merge_slashes=False,
        redirect_defaults=False,
    )


class _App:
    """The app ``make_app`` returns: one method for each route, one for each kind of answer."""

    def __init__(
        self,
        store_factory: Callable[[], SuppressionStore],
        secret: bytes,
        *,
        newsroom_name: str,
        list_titles: Mapping[str, str],
    ) -> None:
        self._store_factory = store_factory
        self._secret = secret
        self._newsroom_name = newsroom_name
        self._titles = dict(list_titles)
        self._urls = _url_map()
        self._lock = threading.Lock()
        self._cached: list[SuppressionStore] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = _Request(environ)
        try:
            response = self._dispatch(request)
        except HTTPException as exc:
            response = _error_page(exc)
        return response(environ, start_response)

    def _dispatch(self, request: _Request) -> Response:
        if request.method not in METHODS:
            raise MethodNotAllowed(valid_methods=list(METHODS))
        endpoint, values = self._urls.bind_to_environ(request.environ).match()
        if endpoint == "healthz":
            return Response("ok\n", 200, mimetype="text/plain", headers=SECURITY_HEADERS)
        if request.method == "POST" and (request.content_length or 0) > MAX_BODY:
            raise RequestEntityTooLarge()
        return self._unsubscribe(request, values["token"])

    def _unsubscribe(self, request: _Request, token: str) -> Response:
        found = read_token(self._secret, token, purpose=Purpose.UNSUBSCRIBE)
        if found is None or found[0] not in self._titles:
            return _page(400, "This unsubscribe link is not valid", _INVALID)
        list_name, email = found
        if request.method != "POST":
            return self._confirm_page(list_name, email)
        if len(request.get_data(cache=True)) > MAX_BODY:
            raise RequestEntityTooLarge()
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        return self._record(list_name, email, "one-click" if one_click else "web")

    def _confirm_page(self, list_name: str, email: str) -> Response:
        title, newsroom, masked = self._shown(list_name, email)
        return _page(
            200,
            f"Unsubscribe from {title}?",
            f"<p>Stop sending <strong>{title}</strong> from {newsroom} to {masked}?</p>"
            '<form method="post"><input type="hidden" name="confirm" value="yes">'
            '<button type="submit">Unsubscribe</button></form>'
            "<p>Nothing changes until you press the button.</p>",
        )

    def _record(self, list_name: str, email: str, source: str) -> Response:
        try:
            added = self._store().suppressions.add(
                email, reason=Reason.UNSUBSCRIBED, source=source, list_name=list_name
            )
        except Exception:
            # A mail provider retries a failed one-click; a reader can press the button again.
            log.exception("could not record an unsubscribe from %s for %s", list_name, mask_address(email))
            return _page(
                503, "Please try again", "<p>We could not record that just now. Please try again.</p>"
            )
        log.info(
            "unsubscribed %s from %s via %s%s",
            mask_address(email),
            list_name,
            source,
            "" if added else " (again)",
        )
        title, newsroom, masked = self._shown(list_name, email)
        return _page(
            200,
            "You are unsubscribed",
            f"<p>{masked} will get no more editions of <strong>{title}</strong> from {newsroom}.</p>",
        )

    def _shown(self, list_name: str, email: str) -> tuple[str, str, str]:
        """The list's title, the newsroom's name and the masked address, escaped for a page."""
        return (
            html.escape(self._titles[list_name]),
            html.escape(self._newsroom_name),
            html.escape(mask_address(email)),
        )

    def _store(self) -> SuppressionStore:
        # Opened on first use, not in __init__: a WSGI server's workers each open their own.
        with self._lock:
            if not self._cached:
                self._cached.append(self._store_factory())
            return self._cached[0]


def _error_page(exc: HTTPException) -> Response:
    """Our page for werkzeug's HTTP errors: its own pages would skip our headers."""
    if isinstance(exc, NotFound):
        return _page(404, "Not found", "<p>There is nothing here.</p>")
    if isinstance(exc, MethodNotAllowed):
        response = _page(405, "Method not allowed", "<p>This address only answers GET and POST.</p>")
        response.headers["Allow"] = ", ".join(exc.valid_methods or METHODS)
        return response
    if isinstance(exc, RequestEntityTooLarge):
        return _page(413, "Request too large", "<p>That request was too large.</p>")
    # Malformed form bodies and the like.
    code = exc.code or 400
    return _page(code, "Bad request", "<p>That request could not be understood.</p>")


_INVALID = (
    "<p>We could not read this unsubscribe link. Mail programs sometimes break long links "
    "across lines: copy the whole link into your browser, or use the unsubscribe link in "
    "a more recent edition.</p>"
)


def _page(status: int, title: str, body: str) -> Response:
    """A complete, self-contained page; ``title`` and ``body`` are already escaped.

    Error pages depend only on the status, never on why: no oracle for probing tokens.
    """
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{title}</title><style>{STYLE}</style></head>'
        f"<body><main><h1>{title}</h1>{body}</main></body></html>\n"
    )
    return Response(document, status, mimetype="text/html", headers=SECURITY_HEADERS)


class _QuietTokens(WSGIRequestHandler):
    """Access log lines without the tokens: each is a working unsubscribe link for someone."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", "")
        if path.startswith("/unsubscribe/"):
            self.path = "/unsubscribe/…"
        super().log_request(code, size)


def serve(app: WSGIApplication, host: str = "127.0.0.1", port: int = 8080, *, colour: bool = False) -> None:
    """Serve ``app`` with werkzeug's threaded server until SIGINT or SIGTERM.

    Good enough for the traffic unsubscribes bring, but it speaks plain HTTP: in production
    put it behind a reverse proxy that terminates TLS (Gmail and Yahoo only do one-click to
    an https ``[server] base_url``), or run the app under any WSGI server through
    ``create_app``, e.g. ``gunicorn 'digest.serve:create_app()'``.
    """
    if not log.handlers and not logging.getLogger().handlers:
        # Like werkzeug's access log: the unsubscribe lines show even when nobody set up logging.
        log.addHandler(logging.StreamHandler())
        log.setLevel(logging.INFO)
    server = listen(host, port, app, colour=colour, handler=_QuietTokens)
    url = server_url(host, server.server_port)
    print(f"digest: unsubscribe pages on {url} (Ctrl-C to stop)", flush=True)
    run_until_signalled(server, "digest-serve")


def create_app(config: Config | None = None, env: Mapping[str, str] | None = None) -> WSGIApplication:
    """The app of `digest serve`, and the factory for WSGI servers: ``gunicorn 'digest.serve:create_app()'``.

    ``config`` defaults to the one $DIGEST_CONFIG names (else ./config.toml); the secret comes
    from $DIGEST_SECRET in ``env`` (default: the process's environment). The state store is
    opened (and migrated) on the first unsubscribe, so a WSGI server's workers each open their
    own after forking.
    """
    from digest.config import load_config
    from digest.send.unsubscribe import checking_secret
    from digest.statefile import open_store

    secret = checking_secret(env)
    loaded = config or load_config()
    return make_app(
        lambda: open_store(loaded).migrate(),
        secret,
        newsroom_name=loaded.settings.newsroom.name,
        list_titles={m.name: m.display_title for m in loaded.settings.lists},
    )
