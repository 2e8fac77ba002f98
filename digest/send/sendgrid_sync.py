"""Pull SendGrid's suppression lists (unsubscribes, bounces, spam reports) into our own.

SendGrid drops mail to addresses on its lists anyway; copying them here keeps the ledger honest
(those recipients are skipped, not "sent") and keeps them suppressed if the newsroom ever moves
to another transport.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from http.client import HTTPException
from typing import Any, Protocol

from python_http_client.exceptions import HTTPError

from digest.config import Config, SendGridOptions
from digest.errors import DigestError, TransportError
from digest.send.transports.sendgrid_api import (
    API_KEY_VARIABLE,
    close_client,
    describe_failure,
    error_message,
    make_client,
)

# SendGrid's endpoint under /v3/suppression/ → our reason.
ENDPOINTS = {"unsubscribes": "unsubscribed", "bounces": "bounced", "spam_reports": "complained"}
MAX_PAGE = 500


def sync(config: Config, alias: str | None = None, env: Mapping[str, str] = os.environ) -> dict[str, int]:
    """`digest suppressions sync`: SendGrid's lists into the state store; new rows per reason.

    Reads from the SendGrid transport ``alias`` names, or the config's only one.
    """
    from digest.statefile import open_store

    options = sendgrid_transport(config, alias)
    api_key = (env.get(API_KEY_VARIABLE) or "").strip()
    if not api_key:
        raise DigestError(f"{API_KEY_VARIABLE} is not set")
    with open_store(config) as store:
        store.migrate()
        rows = fetch_suppressions(options.api_url, api_key, timeout=options.timeout)
        return sync_suppressions(store.suppressions, rows)


def sendgrid_transport(config: Config, alias: str | None = None) -> SendGridOptions:
    """The options of the SendGrid transport ``alias``, or of the config's only one."""
    candidates = {
        name: options
        for name, options in config.settings.transports.items()
        if isinstance(options, SendGridOptions) and alias in (None, name)
    }
    if len(candidates) != 1:
        raise DigestError(
            "name one SendGrid transport with --transport"
            if candidates
            else "no SendGrid transport in the config"
        )
    return next(iter(candidates.values()))


def fetch_suppressions(
    api_url: str, api_key: str, *, page_size: int = MAX_PAGE, timeout: float = 30
) -> Iterator[tuple[str, str]]:
    """Yield (email, reason) for every row of the three lists, page by page.

    A page shorter than ``page_size`` is the last one. Any error raises TransportError with
    SendGrid's own message; rows already yielded stay valid, so a rerun simply goes on.
    """
    if not 1 <= page_size <= MAX_PAGE:
        raise ValueError(f"page_size must be 1 to {MAX_PAGE}")
    client = make_client(api_url, api_key, timeout)
    try:
        for endpoint, reason in ENDPOINTS.items():
            offset = 0
            while True:
                rows = _page(client, endpoint, page_size, offset, api_key)
                for row in rows:
                    email = row.get("email") if isinstance(row, dict) else None
                    if isinstance(email, str) and email.strip():
                        yield email.strip(), reason
                if len(rows) < page_size:
                    break
                offset += page_size
    finally:
        close_client(client)


def _page(client: Any, endpoint: str, limit: int, offset: int, api_key: str) -> list[Any]:
    where = f"/v3/suppression/{endpoint}"
    try:
        response = client.client.suppression._(endpoint).get(query_params={"limit": limit, "offset": offset})
    except HTTPError as exc:
        problem = f"SendGrid answered {exc.status_code} for {where}: {error_message(exc)}"
        raise TransportError(problem.replace(api_key, "[redacted]")) from None
    except (OSError, HTTPException) as exc:
        problem = f"no answer from SendGrid for {where}: {describe_failure(exc)}"
        raise TransportError(problem.replace(api_key, "[redacted]")) from None
    try:
        rows = response.to_dict
    except ValueError:
        rows = None
    if not isinstance(rows, list):
        raise TransportError(f"SendGrid's answer for {where} is not a list of suppressions")
    return rows


class SuppressionStore(Protocol):
    def add_many(
        self, rows: Iterable[tuple[str, str]], *, source: str, list_name: str | None = None
    ) -> Mapping[str, int]: ...


def sync_suppressions(
    store_suppressions: SuppressionStore, rows: Iterable[tuple[str, str]], source: str = "sendgrid"
) -> dict[str, int]:
    """Store the rows for every list (SendGrid's lists are account-wide); count new ones per reason."""
    added = store_suppressions.add_many(rows, source=source, list_name=None)
    return {reason: added.get(reason, 0) for reason in ENDPOINTS.values()}
