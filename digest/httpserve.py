"""Running a local werkzeug server in the foreground until SIGINT or SIGTERM (serve, preview)."""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def server_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class _Uncoloured(WSGIRequestHandler):
    """werkzeug colours the request line of every answer but a 200 wherever its log goes; in a
    log file, the journal or a JSON log the codes are only noise (and defeat grep)."""

    def log(self, type: str, message: str, *args: Any) -> None:
        super().log(type, message, *(_ANSI.sub("", a) if isinstance(a, str) else a for a in args))


def listen(
    host: str,
    port: int,
    app: WSGIApplication,
    *,
    colour: bool,
    handler: type[WSGIRequestHandler] = WSGIRequestHandler,
) -> BaseWSGIServer:
    """werkzeug's threaded server on ``host:port``; its access log in colour only if ``colour``."""
    if not colour:
        handler = type(f"Uncoloured{handler.__name__}", (_Uncoloured, handler), {})
    return make_server(host, port, app, threaded=True, request_handler=handler)


def run_until_signalled(
    server: BaseWSGIServer, name: str, before_shutdown: Callable[[], None] | None = None
) -> None:
    """Serve on a worker thread; return after SIGINT/SIGTERM with the server shut down.

    ``before_shutdown`` runs first, e.g. to end long-lived responses so shutdown need not wait.
    """
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    worker = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    worker.start()
    try:
        # A timed wait keeps the main thread responsive to signals.
        while not stop.wait(0.5) and worker.is_alive():
            pass
    finally:
        if before_shutdown is not None:
            before_shutdown()
        server.shutdown()
        server.server_close()
        for number, handler in previous.items():
            signal.signal(number, handler)
