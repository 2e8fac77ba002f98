"""Running the app of `digest serve` on gunicorn until SIGINT or SIGTERM.

gunicorn is embedded (``BaseApplication``), so `digest serve` needs no command line of its own
for it: a master process binds the port and forks ``workers`` processes, each with a few
threads (gthread, which also keeps idle connections alive for ``keepalive`` seconds). Each
worker opens its own state store on first use (``Site.store``), so they share the database,
never a connection. SIGTERM stops gracefully (requests in flight finish, up to
GRACEFUL_TIMEOUT), SIGINT at once; either way ``serve`` returns.

In production put it behind a reverse proxy that terminates TLS (Gmail and Yahoo only do
one-click to an https ``[server] base_url``) and set ``[server] trusted_proxies``: gunicorn's
gthread workers hold a thread per connection, so slow clients are the proxy's to absorb.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from digest.httpserve import server_url

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("digest.serve")

# Paths whose last part is a token: each is a working link for someone, so never logged.
TOKEN_PATHS = ("/unsubscribe/", "/confirm/", "/preferences/")
# Anything else that looks like it holds an address (a mistyped link, a probe).
_ADDRESS_LIKE = re.compile(r"[^/]*(?:@|%40)[^/]*", re.IGNORECASE)

THREADS = 4
TIMEOUT = 30  # a worker silent this long is killed and replaced
GRACEFUL_TIMEOUT = 10  # on SIGTERM, requests in flight get this long to finish
KEEPALIVE = 5  # seconds an idle connection from the proxy is kept open
LIMIT_REQUEST_LINE = 4094  # bytes: a token is at most 1000 characters
LIMIT_REQUEST_FIELDS = 50
LIMIT_REQUEST_FIELD_SIZE = 8190
ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def safe_path(raw: str) -> str:
    """A request target as the access log may show it: no query, no token, no address."""
    path = raw.split("?", 1)[0].split("#", 1)[0]
    for prefix in TOKEN_PATHS:
        if path.startswith(prefix):
            return prefix + "…"
    return _ADDRESS_LIKE.sub("…", path)


class AccessLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's logger, with an access log that keeps tokens and addresses out.

    Only the atoms of ACCESS_FORMAT are built, from safe values: no query string, no Referer
    (another site's page may hold a link of ours), no request or response headers.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        if logging.getLogger().handlers:
            # The CLI set up logging (text or --log-format json): gunicorn's lines go the same way.
            for logger in (self.access_log, self.error_log):
                for handler in list(logger.handlers):
                    if getattr(handler, "_gunicorn", False):
                        logger.removeHandler(handler)
                logger.propagate = True
        elif cfg.accesslog == "-":
            # Standard error, as every other line of digest's; standard output is for the URL.
            self._set_handler(self.access_log, "-", logging.Formatter(self.access_fmt), stream=sys.stderr)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        method = environ.get("REQUEST_METHOD", "-")
        path = safe_path(environ.get("RAW_URI") or environ.get("PATH_INFO") or "")
        sent = getattr(resp, "sent", None)
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "t": self.now(),
            "r": f"{method} {path} {environ.get('SERVER_PROTOCOL', '-')}",
            "s": status,
            "m": method,
            "U": path,
            "b": str(sent) if sent is not None else "-",
            "M": request_time.seconds * 1000 + request_time.microseconds // 1000,
        }


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, load: Callable[[], WSGIApplication], options: dict[str, Any]) -> None:
        self._load = load
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> WSGIApplication:
        return self._load()


def options(host: str, port: int, workers: int) -> dict[str, Any]:
    """gunicorn's settings for `digest serve`."""
    shown = f"[{host}]" if ":" in host else host
    return {
        "bind": [f"{shown}:{port}"],
        "workers": workers,
        "worker_class": "gthread",
        "threads": THREADS,
        "timeout": TIMEOUT,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "keepalive": KEEPALIVE,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_fields": LIMIT_REQUEST_FIELDS,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        "accesslog": "-",
        "access_log_format": ACCESS_FORMAT,
        "errorlog": "-",
        "loglevel": "warning",
        "logger_class": AccessLogger,
        "proc_name": "digest-serve",
        # Its socket would sit in the working folder, and two servers there would share it.
        "control_socket_disable": True,
        "when_ready": _announce,
    }


def _announce(arbiter: Any) -> None:
    """Print the URL once the port is bound (with --port 0, only now is it known)."""
    host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
    url = server_url(host, port)
    print(f"digest: public pages on {url} ({arbiter.num_workers} workers; Ctrl-C to stop)", flush=True)


def serve(
    make_app: Callable[[], WSGIApplication], host: str = "127.0.0.1", port: int = 8080, *, workers: int = 2
) -> None:
    """Serve the app ``make_app`` returns in each worker until SIGINT or SIGTERM.

    It may return one app made before (``make_app``'s stores open on first use), but never
    one whose store is open already: a connection made before the fork would be shared by
    every worker.
    """
    if not log.handlers and not logging.getLogger().handlers:
        # The unsubscribe and sign-up lines show even when nobody set up logging.
        log.addHandler(logging.StreamHandler())
        log.setLevel(logging.INFO)
    master = os.getpid()
    try:
        _Gunicorn(make_app, options(host, port, workers)).run()
    except SystemExit as stop:
        # gunicorn's master ends with sys.exit(0) after SIGTERM or SIGINT: that is our return.
        # Its workers (forked inside run) end the same way, and must end, not return.
        if os.getpid() != master or stop.code not in (0, None):
            raise
