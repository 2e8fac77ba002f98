"""Running a local werkzeug server in the foreground until SIGINT or SIGTERM (serve, preview)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer


def server_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


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
        for signum, handler in previous.items():
            signal.signal(signum, handler)
