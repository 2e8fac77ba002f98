"""A stand-in for api.sendgrid.com that answers from a script and records every request.

127.0.0.1, an ephemeral port, a background thread. Each request takes the next reply of the
script; when the script runs out, ``default`` answers (202 with an X-Message-Id, or a function of
the request). A reply may hang (``delay``) to play a server that never answers in time.

    with SendGridSink([Reply(429, headers={"X-RateLimit-Reset": "..."}), Reply(202)]) as sink:
        transport = SendGridTransport(SendGridOptions(api_url=sink.url), "SG.key")
        ...
        assert sink.requests[0].json["personalizations"][0]["to"] == [...]
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.localhttp import LocalHTTPServer


@dataclass
class Reply:
    status: int = 202
    body: Any = b""
    """bytes as they are, anything else as JSON."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (the client's timeout should fire first)."""
    hang_up: bool = False
    """Close the connection after answering without saying so (a server ending an idle one)."""

    def payload(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


def errors(*messages: str, field: str | None = None) -> dict[str, Any]:
    """SendGrid's error body."""
    return {"errors": [{"message": message, "field": field, "help": None} for message in messages]}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Names lower-cased."""
    body: bytes
    port: int = 0
    """The client's port: requests with the same one came over the same connection."""

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Responder = Reply | Callable[[Request], Reply]


class SendGridSink(LocalHTTPServer):
    def __init__(
        self,
        script: Iterable[Reply] = (),
        default: Responder | None = None,
        *,
        keep_alive: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.script = list(script)
        self.default = default
        self.keep_alive = keep_alive
        """Answer over HTTP/1.1 connections kept open, as SendGrid does, rather than closing each."""
        self.requests: list[Request] = []
        self.hung_up = threading.Event()
        """Set once a ``hang_up`` reply's connection is closed."""
        super().__init__(_handler_for(self), tls)

    @property
    def connections(self) -> int:
        """How many connections the requests came over."""
        return len({request.port for request in self.requests})

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _reply_to(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
            if self.script:
                return self.script.pop(0)
        if callable(self.default):
            return self.default(request)
        return self.default or Reply(202, headers={"X-Message-Id": f"sink-message-{number}"})


def _handler_for(sink: SendGridSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            request = Request(
                self.command,
                parts.path,
                parse_qs(parts.query),
                {name.lower(): value for name, value in self.headers.items()},
                self.rfile.read(length) if length else b"",
                self.client_address[1],
            )
            reply = sink._reply_to(request)
            self.close_connection = not sink.keep_alive or reply.hang_up
            if reply.delay and sink.stopping.wait(reply.delay):
                return
            body = reply.payload()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if not sink.keep_alive:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                if reply.hang_up:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    sink.hung_up.set()

        do_GET = do_POST = _handle

    return Handler
