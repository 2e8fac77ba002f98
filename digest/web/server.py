"""Running the app of `digest serve` on a local port until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from werkzeug.serving import WSGIRequestHandler

from digest.httpserve import listen, run_until_signalled, server_url

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("digest.serve")

# Paths whose last part is a token: each is a working link for someone, so never logged.
TOKEN_PATHS = ("/unsubscribe/", "/preferences/")


class _QuietTokens(WSGIRequestHandler):
    """Access log lines without the tokens."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", "")
        for prefix in TOKEN_PATHS:
            if path.startswith(prefix):
                self.path = prefix + "…"
        super().log_request(code, size)


def serve(app: WSGIApplication, host: str = "127.0.0.1", port: int = 8080, *, colour: bool = False) -> None:
    """Serve ``app`` until SIGINT or SIGTERM. In production put it behind a reverse proxy that
    terminates TLS (Gmail and Yahoo only do one-click to an https ``[server] base_url``)."""
    if not log.handlers and not logging.getLogger().handlers:
        # Like werkzeug's access log: the unsubscribe lines show even when nobody set up logging.
        log.addHandler(logging.StreamHandler())
        log.setLevel(logging.INFO)
    server = listen(host, port, app, colour=colour, handler=_QuietTokens)
    url = server_url(host, server.server_port)
    print(f"digest: unsubscribe pages on {url} (Ctrl-C to stop)", flush=True)
    run_until_signalled(server, "digest-serve")
