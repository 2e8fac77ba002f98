"""The SendGrid transport's connections: kept open between requests, as SendGrid's are, so a
million-reader send does not pay a TCP and a TLS handshake for each of its thousand requests;
one the server closed while idle is not reused; none left open once the transport closes."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from digest.errors import TransportError
from digest.send.sendgrid_sync import fetch_suppressions
from tests.dovecot import self_signed
from tests.sendgrid_sink import Reply, SendGridSink
from tests.test_sendgrid_transport import KEY, Sleeps, make_batch, transport


def test_requests_share_one_connection_until_the_transport_closes() -> None:
    with SendGridSink(keep_alive=True) as sink:
        sender = transport(sink.url, batch_size=2)
        first = sender.send(make_batch(5))
        assert len(sink.requests) == 3 and sink.connections == 1
        sender.send(make_batch(2))
        assert len(sink.requests) == 4 and sink.connections == 1
        sender.close()
        sender.send(make_batch(2))
    assert all(outcome.accepted for outcome in first)
    assert len(sink.requests) == 5 and sink.connections == 2


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    sleeps = Sleeps()
    with SendGridSink([Reply(202, hang_up=True)], keep_alive=True) as sink:
        sender = transport(sink.url, sleeps, batch_size=2)
        sender.send(make_batch(2))
        assert sink.hung_up.wait(5)
        outcomes = sender.send(make_batch(2))
    # A second connection, and no retry: the request did not go out on the closed one.
    assert [outcome.accepted for outcome in outcomes] == [True, True]
    assert len(sink.requests) == 2 and sink.connections == 2 and sleeps == []


def test_an_error_answer_keeps_the_connection_for_the_retry() -> None:
    sleeps = Sleeps()
    with SendGridSink([Reply(503), Reply(202)], keep_alive=True) as sink:
        outcomes = transport(sink.url, sleeps, retries=1).send(make_batch(1))
    assert outcomes[0].accepted and len(sleeps) == 1
    assert len(sink.requests) == 2 and sink.connections == 1


@pytest.mark.parametrize("status", [301, 307])
def test_a_redirect_is_a_wrong_api_url_not_a_message_sent(status: int) -> None:
    # urllib used to follow a 301 with a GET; taking one for a 2xx would record readers as
    # sent who were not.
    reply = Reply(status, headers={"Location": "https://api.sendgrid.com/v3/mail/send"})
    with SendGridSink([reply], keep_alive=True) as sink, pytest.raises(TransportError) as caught:
        transport(sink.url).send(make_batch(2))
    assert f"SendGrid answered {status}" in str(caught.value) and "api_url" in str(caught.value)
    assert len(sink.requests) == 1


def test_the_suppression_pages_share_one_connection() -> None:
    pages = iter([[{"email": f"gone{n}@example.org"} for n in range(2)], [], [], []])
    with SendGridSink(default=lambda request: Reply(200, next(pages)), keep_alive=True) as sink:
        rows = list(fetch_suppressions(sink.url, KEY, page_size=2))
    assert [email for email, _ in rows] == ["gone0@example.org", "gone1@example.org"]
    assert len(sink.requests) == 4 and sink.connections == 1


def test_requests_go_through_the_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with SendGridSink(keep_alive=True) as proxy:
        # The API's own address is never reached directly: nothing listens there.
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        outcomes = transport("http://api.sendgrid.invalid").send(make_batch(2))
    assert [outcome.accepted for outcome in outcomes] == [True, True]
    assert [request.path for request in proxy.requests] == ["/v3/mail/send"]
    assert proxy.requests[0].headers["host"] == "api.sendgrid.invalid"


@contextmanager
def tls_sink(folder: Path) -> Iterator[tuple[SendGridSink, Path]]:
    """The sink over TLS, with a certificate of its own no system trusts; and that certificate."""
    cert, key = folder / "sink.pem", folder / "sink.key"
    self_signed(cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with SendGridSink(keep_alive=True, tls=context) as sink:
        yield sink, cert


def test_an_https_api_must_show_a_certificate_the_system_trusts(tmp_path: Path) -> None:
    sleeps = Sleeps()
    with tls_sink(tmp_path) as (sink, _cert):
        outcomes = transport(sink.url, sleeps, retries=1).send(make_batch(1))
    assert "certificate verify failed" in (outcomes[0].error or ""), outcomes[0].error
    assert sink.requests == [] and len(sleeps) == 1


def test_the_system_trust_store_is_the_one_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_sink(tmp_path) as (sink, cert):
        # OpenSSL's default store, which the system's certificates are loaded from, named here.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        outcomes = transport(sink.url, batch_size=1).send(make_batch(3))
    assert all(outcome.accepted for outcome in outcomes)
    assert len(sink.requests) == 3 and sink.connections == 1  # one handshake for the three
