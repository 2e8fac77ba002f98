"""A real HTTP server for feed tests: 127.0.0.1, an ephemeral port, a background thread.

Each test sets its routes: a status, a body (bytes, or a function giving chunks, for bodies too
big to hold or that never end), headers, a delay before the answer and between chunks. A route
may also be a function of the request, to answer conditionally. Every request is recorded with
its headers (names lower-cased) and how many body bytes the server managed to send.

    with FeedServer() as server:
        server.route("/feed.xml", Route(body=b"<rss/>", headers={"ETag": '"v1"'}))
        download(server.url("/feed.xml"), ...)
        assert server.requests[0].headers["user-agent"] == ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.localhttp import LocalHTTPServer

Chunks = Callable[[], Iterable[bytes]]


@dataclass
class Route:
    status: int = 200
    body: bytes | Chunks = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before the status line (a server that hangs)."""
    chunk_delay: float = 0.0
    """Seconds to wait before each chunk of a streamed body (a slow drip)."""
    length: int | None = None
    """Content-Length to declare for a streamed body; without it the body is sent chunked."""
    chunked: bool = False
    """Send a bytes body chunked, without Content-Length."""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    sent: int = 0
    """Body bytes written to the socket (some may still sit in buffers when the client hung up)."""


Responder = Route | Callable[[Request], Route]


class FeedServer(LocalHTTPServer):
    def __init__(self) -> None:
        self.routes: dict[str, Responder] = {}
        self.requests: list[Request] = []
        super().__init__(_handler_for(self))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, responder: Responder) -> str:
        """Answer ``path`` with ``responder``; returns the full URL."""
        self.routes[path] = responder
        return self.url(path)

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


def _handler_for(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            request = Request(
                self.command, self.path, {name.lower(): value for name, value in self.headers.items()}
            )
            server._record(request)
            responder = server.routes.get(self.path.split("?")[0])
            route = (
                Route(status=404, body=b"no such route")
                if responder is None
                else responder(request)
                if callable(responder)
                else responder
            )
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(route, request)
            self.close_connection = True

        def _answer(self, route: Route, request: Request) -> None:
            if route.delay and server.stopping.wait(route.delay):
                return
            self.send_response(route.status)
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            streamed = callable(route.body) or route.chunked
            if streamed and route.length is None:
                self.send_header("Transfer-Encoding", "chunked")
            elif route.length is not None:
                self.send_header("Content-Length", str(route.length))
            else:
                assert isinstance(route.body, bytes)
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            if route.status == 304 or self.command == "HEAD":
                return
            chunks: Iterable[bytes]
            if callable(route.body):
                chunks = route.body()
            else:
                chunks = [route.body] if not route.chunked else _split(route.body, 1024)
            chunked = streamed and route.length is None
            for chunk in chunks:
                if route.chunk_delay and server.stopping.wait(route.chunk_delay):
                    return
                if server.stopping.is_set():
                    return
                if chunked and not chunk:
                    continue  # an empty chunk would end the body
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self.wfile.write(chunk)
                self.wfile.flush()
                request.sent += len(chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

    return Handler


def _split(body: bytes, size: int) -> list[bytes]:
    return [body[start : start + size] for start in range(0, len(body), size)]


def repeated(chunk: bytes, total: int) -> Chunks:
    """A body of ``total`` bytes made of ``chunk`` repeated, generated as it is sent."""

    def chunks() -> Iterable[bytes]:
        left = total
        while left > 0:
            piece = chunk[:left]
            left -= len(piece)
            yield piece

    return chunks


def forever(chunk: bytes) -> Chunks:
    """A body that never ends."""

    def chunks() -> Iterable[bytes]:
        while True:
            yield chunk

    return chunks
