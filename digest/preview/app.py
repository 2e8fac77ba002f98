"""The preview server: the page, its JSON API, the email itself, live reload events, test sends.

Only three files on disk are ever served, by exact name from a fixed allowlist inside the
package (no path is built from the request). The email is served under a CSP that lets
nothing in it run. A test send needs a JSON body from this server's own page (a cross-site
form cannot send one) and goes to one address, never to the list, never into the ledger.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import threading
import webbrowser
from collections.abc import Callable, Collection, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from digest.config import Config
from digest.errors import DigestError
from digest.httpserve import listen, run_until_signalled, server_url
from digest.preview.model import Preview, Previewer, Selection, SelectionError, parse_date, split_desks
from digest.preview.payload import Failed, controls, error_info, shown, where
from digest.preview.testsend import Refused, send_test, valid_address
from digest.preview.watch import Watcher

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("digest.preview")

STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
METHODS = ("GET", "HEAD", "POST")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_BODY = 64 * 1024
KEEPALIVE = 15.0
_BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PAGE_HEADERS = {
    **_BASE_HEADERS,
    "Content-Security-Policy": "default-src 'self'; frame-src 'self'; img-src * data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'",
    "X-Frame-Options": "DENY",
}
EMAIL_HEADERS = {
    **_BASE_HEADERS,
    "Content-Security-Policy": "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; "
    "script-src 'none'; frame-ancestors 'self'",
}


class _Request(Request):
    # Reading more than this (a chunked body has no Content-Length) answers 413.
    max_content_length = MAX_BODY


def _json(data: Mapping[str, Any], status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, default=str)
    return Response(body, status, mimetype="application/json", headers=PAGE_HEADERS)


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


class PreviewApp:
    """The WSGI app; ``close()`` ends the event streams (call it before shutting the server)."""

    def __init__(
        self,
        config_path: Path,
        watcher: Watcher | None = None,
        *,
        now: Callable[[], dt.datetime] | None = None,
        env: Mapping[str, str] | None = None,
        hosts: Collection[str] | None = LOOPBACK,
        keepalive: float = KEEPALIVE,
    ) -> None:
        self.own_watcher = watcher is None
        self.watcher = watcher or Watcher(config_path)
        if self.own_watcher:
            self.watcher.start()
        self.previewer = Previewer(now=now, env=env)
        self.hosts = None if hosts is None else {host.casefold() for host in hosts}
        self.keepalive = keepalive
        self.closing = threading.Event()
        self.urls = Map(
            [
                Rule("/", endpoint="index", methods=["GET"]),
                Rule("/static/<name>", endpoint="static", methods=["GET"]),
                Rule("/api/preview", endpoint="api_preview", methods=["GET"]),
                Rule("/email", endpoint="email", methods=["GET"]),
                Rule("/source", endpoint="source", methods=["GET"]),
                Rule("/events", endpoint="events", methods=["GET"]),
                Rule("/api/send-test", endpoint="send_test", methods=["POST"]),
            ],
            strict_slashes=False,
            merge_slashes=False,
            redirect_defaults=False,
        )

    def close(self) -> None:
        self.closing.set()
        self.watcher.wake()
        if self.own_watcher:
            self.watcher.stop()
        self.previewer.close()

    # -- plumbing ----------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        request = _Request(environ)
        try:
            response = self.dispatch(request)
        except NotFound:
            response = Response("not found\n", 404, mimetype="text/plain", headers=PAGE_HEADERS)
        except MethodNotAllowed as exc:
            response = Response("method not allowed\n", 405, mimetype="text/plain", headers=PAGE_HEADERS)
            response.headers["Allow"] = ", ".join(exc.valid_methods or METHODS)
        except HTTPException as exc:
            code = exc.code or 400
            response = Response(f"{exc.name}\n", code, mimetype="text/plain", headers=PAGE_HEADERS)
        except Exception:
            log.exception("preview: %s %s failed", request.method, request.path)
            response = Response("internal error\n", 500, mimetype="text/plain", headers=PAGE_HEADERS)
        return iter(response(environ, start_response))

    def dispatch(self, request: Request) -> Response:
        if request.method not in METHODS:
            raise MethodNotAllowed(valid_methods=list(METHODS))
        if self.hosts is not None and (urlsplit(f"//{request.host}").hostname or "") not in self.hosts:
            # A page on another site that rebinds its DNS name to 127.0.0.1 arrives with its own Host.
            return Response("unknown Host\n", 400, mimetype="text/plain", headers=PAGE_HEADERS)
        endpoint, values = self.urls.bind_to_environ(request.environ).match()
        handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
        return handler(request, **values)

    def on_index(self, request: Request) -> Response:
        return self.on_static(request, "index.html")

    def on_static(self, request: Request, name: str) -> Response:
        if name not in STATIC:
            raise NotFound()
        try:
            body = resources.files("digest.preview").joinpath("static").joinpath(name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound() from None
        return Response(body, 200, content_type=STATIC[name], headers=PAGE_HEADERS)

    # -- the preview -------------------------------------------------------------------------

    def build(self, args: Mapping[str, Any]) -> tuple[int, Config | None, Preview | BaseException]:
        """The version the preview was made at, the config, and the preview (or why there is none)."""
        version, config, config_error = self.watcher.snapshot()
        if config_error is not None or config is None:
            return version, config, config_error or DigestError("no configuration")
        try:
            date = parse_date(_text(args.get("date")))
            desks = args.get("desks")
            if isinstance(desks, list):
                desks = ";".join(str(desk) for desk in desks)
            selection = Selection(split_desks(_text(desks)), _text(args.get("subscriber")))
            return version, config, self.previewer.preview(config, _text(args.get("list")), date, selection)
        except DigestError as exc:
            return version, config, exc
        except Exception as exc:  # the server must survive anything a template or feed does
            log.exception("preview: rendering failed")
            return version, config, exc

    def on_api_preview(self, request: Request) -> Response:
        version, config, result = self.build(request.args)
        base = controls(version, config, request.args.get("list"))
        if isinstance(result, BaseException):
            failed: Failed = {**base, "error": error_info(result)}
            return _json(failed, 400 if isinstance(result, SelectionError) else 200)
        return _json(shown(base, result, config))

    def on_email(self, request: Request) -> Response:
        _version, _config, result = self.build(request.args)
        if isinstance(result, BaseException):
            problems = "".join(
                f"<p>{html.escape(problem['message'])}</p>"
                + (f"<p><code>{html.escape(where(problem))}</code></p>" if where(problem) else "")
                for problem in error_info(result)["problems"]
            )
            page = (
                '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Preview error</title>'
                '</head><body style="font:16px/1.5 system-ui,sans-serif;padding:1rem;color:#7f1d1d">'
                f'<h1 style="font-size:1.2rem">The email could not be rendered</h1>{problems}</body></html>\n'
            )
            status = 400 if isinstance(result, SelectionError) else 200
            return Response(page, status, content_type="text/html; charset=utf-8", headers=EMAIL_HEADERS)
        return Response(result.html, 200, content_type="text/html; charset=utf-8", headers=EMAIL_HEADERS)

    def on_source(self, request: Request) -> Response:
        _version, _config, result = self.build(request.args)
        headers = {**EMAIL_HEADERS, "Content-Disposition": "inline"}
        if isinstance(result, BaseException):
            body = "".join(
                f"error: {problem['message']}" + (f"\n  at {where(problem)}" if where(problem) else "") + "\n"
                for problem in error_info(result)["problems"]
            )
            status = 400 if isinstance(result, SelectionError) else 200
            return Response(body, status, content_type="text/plain; charset=utf-8", headers=headers)
        return Response(result.html, 200, content_type="text/plain; charset=utf-8", headers=headers)

    # -- live reload ------------------------------------------------------------------------

    def on_events(self, request: Request) -> Response:
        def stream() -> Iterator[bytes]:
            version = self.watcher.version
            yield f"event: version\ndata: {version}\n\n".encode()
            while not (self.closing.is_set() or self.watcher.stopped):
                now = self.watcher.wait(version, self.keepalive)
                if self.closing.is_set() or self.watcher.stopped:
                    return
                if now != version:
                    version = now
                    yield f"event: version\ndata: {version}\n\n".encode()
                else:
                    yield b": keepalive\n\n"

        headers = {**PAGE_HEADERS, "X-Accel-Buffering": "no"}
        return Response(stream(), 200, mimetype="text/event-stream", headers=headers, direct_passthrough=True)

    # -- test sends --------------------------------------------------------------------------

    def on_send_test(self, request: Request) -> Response:
        if request.mimetype != "application/json":
            return _json({"ok": False, "message": "a test send needs Content-Type: application/json"}, 403)
        origin = request.headers.get("Origin")
        if origin is not None and origin.casefold() != f"{request.scheme}://{request.host}".casefold():
            return _json({"ok": False, "message": "a test send must come from the preview page"}, 403)
        if (request.content_length or 0) > MAX_BODY:
            return _json({"ok": False, "message": "request too large"}, 413)
        try:
            data = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return _json({"ok": False, "message": "the body must be a JSON object"}, 400)
        try:
            return _json({"ok": True, "message": self.send_test(data)})
        except Refused as exc:
            return _json({"ok": False, "message": exc.message}, exc.status)

    def send_test(self, data: Mapping[str, Any]) -> str:
        """Send the selected variant to the one address in ``data["to"]``; what happened."""
        to = valid_address(data.get("to"))
        _version, config, result = self.build(data)
        if config is None or isinstance(result, BaseException):
            error = error_info(
                result if isinstance(result, BaseException) else DigestError("no configuration")
            )
            at = f" ({where(error)})" if error["template"] and error["line"] else ""
            raise Refused(400, f"nothing sent: {error['message']}{at}")
        alias = _text(data.get("transport"))
        return send_test(config, result, to, alias, env=self.previewer.env, now=self.previewer.now())


def make_app(config_path: Path, watcher: Watcher | None = None, **options: Any) -> PreviewApp:
    """The preview WSGI app for the config at ``config_path``, reloaded through ``watcher``.

    Options: ``now`` (a clock), ``env`` (for secrets), ``hosts`` (Host names accepted; None:
    any), ``keepalive`` (seconds between event-stream comments).
    """
    return PreviewApp(Path(config_path), watcher, **options)


def allowed_hosts(host: str) -> frozenset[str] | None:
    """The Host names to accept when listening on ``host`` (None: any, for all interfaces)."""
    if host in ("0.0.0.0", "::", ""):
        return None
    return LOOPBACK | {host.strip("[]").casefold()}


def serve(
    config_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8025,
    open_browser: bool = False,
    announce: Callable[[str], None] = print,
    colour: bool = False,
) -> None:
    """Run the preview server until SIGINT or SIGTERM (``colour``: colour the access log)."""
    watcher = Watcher(config_path)
    app = make_app(config_path, watcher, hosts=allowed_hosts(host))
    try:
        server = listen(host, port, app, colour=colour)
    except OSError as exc:
        app.close()
        message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise DigestError(message, hint="try another --port") from None
    watcher.start()
    url = server_url(host, server.server_port)
    announce(f"Preview: {url}")
    if open_browser:
        webbrowser.open(url)

    def close() -> None:
        app.close()  # ends the event streams, so the server can stop at once
        watcher.stop()

    run_until_signalled(server, "digest-preview", before_shutdown=close)
