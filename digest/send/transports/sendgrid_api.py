"""SendGrid's official client as digest uses it: with a timeout, connections kept alive, a quiet
``mail/send``, the errors in SendGrid's own words, and the API key kept out of every log line."""

from __future__ import annotations

import io
import json
import logging
import re
import ssl
import urllib.error
import urllib.request
from email.message import Message
from typing import Any
from urllib.error import URLError
from urllib.parse import urlsplit

import httpx
import python_http_client
from python_http_client.exceptions import HTTPError, handle_error
from sendgrid import SendGridAPIClient

from digest.ingest.sanitize import one_line

log = logging.getLogger(__name__)

API_KEY_VARIABLE = "SENDGRID_API_KEY"


def make_client(api_url: str, api_key: str, timeout: float) -> SendGridAPIClient:
    """The official client, with a timeout (it has none by default: a silent server hangs it).
    Its connections stay open until ``close_client``."""
    if api_key:
        _REDACTOR.keys.add(api_key)  # kept out of the library's debug log, wherever it shows up
    client = SendGridAPIClient(api_key, host=api_url.rstrip("/"))
    # Proxies from the environment, as urllib (the library's own way) takes them too.
    connections = httpx.Client(verify=_trust(api_url), timeout=timeout)
    client.client = _Client(
        host=client.host,
        request_headers=client._default_headers,
        version=3,
        timeout=timeout,
        connections=connections,
    )
    return client


def _trust(api_url: str) -> ssl.SSLContext | bool:
    """The system's certificates, as urllib trusts, for an https API. A plain-http one (a local
    stand-in: no redirect is followed) is never TLS, so none are loaded: 1.2-1.7 MiB."""
    return ssl.create_default_context() if urlsplit(api_url).scheme == "https" else False


def close_client(client: SendGridAPIClient) -> None:
    """Close the connections ``make_client``'s client kept open."""
    if isinstance(client.client, _Client):
        client.client.connections.close()


class _Client(python_http_client.Client):
    """The library's client over connections kept alive, whose ``post`` leaves the body out of
    the DEBUG log.

    The library opens a connection for every request (urllib): to api.sendgrid.com that is a
    TCP and a TLS handshake, two round trips and a key exchange, before each of a million-reader
    send's thousand requests. Here each request goes over ``connections`` (httpx), which keeps
    them open; the requests are still the library's, and so are its errors (its HTTPError
    classes) and its Response. A connection the server closed while idle is not reused.

    python-http-client formats each request body into a DEBUG message before the logger looks
    at its level. A 1,000-recipient ``mail/send`` body is about 1 MB, so that cost 2 to 3 ms a
    request: 2.5 µs a recipient, a twentieth of a whole send.
    """

    def __init__(self, *, connections: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connections = connections

    def _build_client(self, name: str | None = None) -> _Client:
        # The library makes each step of ``client.mail.send`` a plain Client: keep this class,
        # so that the step that posts is this one.
        return _Client(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=[*self._url_path, name] if name else self._url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
            connections=self.connections,
        )

    def _make_request(
        self, opener: object, request: urllib.request.Request, timeout: float | None = None
    ) -> _Received:
        """The library's request over ``connections``: failures as urllib's (URLError, the
        library's HTTPError for an answer that is not a success) for the callers."""
        try:
            answer = self.connections.request(
                request.get_method(),
                request.full_url,
                content=request.data,  # type: ignore[arg-type]  # bytes, or None for a GET
                headers=dict(request.header_items()),
                timeout=timeout or self.timeout,
            )
        except httpx.TimeoutException:
            raise URLError(TimeoutError("timed out")) from None
        except httpx.TransportError as exc:
            cause = exc.__cause__
            raise URLError(cause if isinstance(cause, OSError) else OSError(str(exc))) from None
        received = _Received(answer)
        if not answer.is_success:
            # A redirect too: SendGrid answers where it is asked, so that is a wrong api_url.
            error = urllib.error.HTTPError(
                request.full_url,
                answer.status_code,
                answer.reason_phrase,
                received.info(),
                io.BytesIO(answer.content),
            )
            refused = handle_error(error)
            # As the library logs it, where its key redactor (below) looks.
            _library_log.debug("%s Response: %s %s", request.get_method(), refused.status_code, refused.body)
            raise refused from None
        return received

    def post(self, request_body: Any) -> python_http_client.client.Response:
        # Only a body: query parameters or extra headers would need the library's own post.
        data = json.dumps(request_body).encode()
        request = urllib.request.Request(
            self._build_url(None),
            data=data,
            headers={**self.request_headers, "Content-Type": "application/json"},
            method="POST",
        )
        log.debug("POST %s: %d bytes", request.full_url, len(data))
        return python_http_client.client.Response(self._make_request(None, request, timeout=self.timeout))


class _Received:
    """An httpx answer as python-http-client's Response reads a urllib one."""

    def __init__(self, answer: httpx.Response) -> None:
        self._answer = answer

    def getcode(self) -> int:
        return self._answer.status_code

    def read(self) -> bytes:
        return self._answer.content

    def info(self) -> Message:
        headers = Message()
        for name, value in self._answer.headers.multi_items():
            headers[name] = value
        return headers


def error_message(exc: HTTPError) -> str:
    """SendGrid's own words from ``{"errors": [{"message", "field", "help"}]}``, else the body."""
    raw = exc.body or b""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    messages = []
    if isinstance(data, dict) and isinstance(data.get("errors"), list):
        for error in data["errors"]:
            if isinstance(error, dict) and error.get("message"):
                field = f" (field {error['field']})" if error.get("field") else ""
                messages.append(f"{one_line(str(error['message']))}{field}")
    if messages:
        return "; ".join(messages)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return one_line(text)[:300] or str(exc.reason or "no details")


def describe_failure(exc: BaseException) -> str:
    """A connection-level failure in a few words (never the request, which holds the key)."""
    reason: Any = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, TimeoutError):
        return "timed out"
    return one_line(str(reason)) or type(reason).__name__


class _RedactAuthorization(logging.Filter):
    """python-http-client logs at DEBUG the request headers, the API key included, and every
    response body, which may echo the key (a proxy's error page, a misconfigured gateway)."""

    pattern = re.compile(r"Bearer\s+[^\s'\",}]+")

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()
        """Every API key a client was made with in this process."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.pattern.sub("Bearer [redacted]", message) if "Bearer" in message else message
        for key in self.keys:
            redacted = redacted.replace(key, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_library_log = logging.getLogger("python_http_client.client")
if not any(isinstance(existing, _RedactAuthorization) for existing in _library_log.filters):
    _library_log.addFilter(_RedactAuthorization())
_REDACTOR = next(f for f in _library_log.filters if isinstance(f, _RedactAuthorization))
