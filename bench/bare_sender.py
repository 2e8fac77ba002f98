"""The bare sender: what sending a list through SendGrid costs with no state at all.

Issue 14's baseline for `digest send`. The same input and the same requests, and nothing
else: it reads the subscriber CSV, checks each address (email-validator once per domain, a
plain pattern for the local part), signs each reader's unsubscribe and preferences links with
an HMAC each, groups the readers by their desks, and posts 1,000 personalizations per request
over one keep-alive connection. Each request carries what digest's does, field for field (the
greeting and both links as text and as escaped HTML, the edition and list as custom args, the
one-click unsubscribe headers, the List-Id), so the two post the same bytes (the bench prints
both counts). Each group's content is rendered once with digest's own templates, as digest
does. No ledger, no subscriber store, no retry, no record of what was sent: a crash resends
everything, which is what the ledger exists to prevent.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import html
import http.client
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

BATCH = 1000
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@dataclass(frozen=True)
class Content:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class Identity:
    """Who sends, and the list's fixed parts of every request."""

    list_name: str
    edition_id: str
    sender: str
    sender_name: str
    list_id: str
    greet: Callable[[str], str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _token(secret: bytes, purpose: str, list_name: str, key: str) -> str:
    payload = b"\x02" + f"{purpose}\n{list_name}\n{key}".encode()
    return f"{_b64(payload)}.{_b64(hmac.new(secret, payload, hashlib.sha256).digest())}"


def bare_send(
    csv_path: Path,
    *,
    identity: Identity,
    api_url: str,
    api_key: str,
    secret: bytes,
    base_url: str,
    render: Callable[[tuple[str, ...]], Content],
) -> dict[str, int]:
    """Send the list; returns how many were posted, skipped (left) and refused (bad address)."""
    domains: dict[str, bool] = {}
    groups: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    counts = {"posted": 0, "unsubscribed": 0, "invalid": 0, "requests": 0}
    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle)
        header = [cell.strip().casefold() for cell in next(rows)]
        at = {name: header.index(name) for name in ("email", "name", "desks", "status")}
        for row in rows:
            if row[at["status"]].strip().casefold() == "unsubscribed":
                counts["unsubscribed"] += 1
                continue
            email = row[at["email"]].strip()
            local, _, domain = email.rpartition("@")
            if domain not in domains:
                try:
                    validate_email(f"postmaster@{domain}", check_deliverability=False)
                    domains[domain] = True
                except EmailNotValidError:
                    domains[domain] = False
            if not domains[domain] or not _LOCAL.fullmatch(local):
                counts["invalid"] += 1
                continue
            desks = tuple(sorted(d.strip() for d in row[at["desks"]].split(";") if d.strip()))
            groups.setdefault(desks, []).append((email, row[at["name"]].strip()))
    url = urlsplit(api_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    for desks, readers in groups.items():
        content = render(desks)
        common = {
            "from": {"email": identity.sender, "name": identity.sender_name},
            "subject": content.subject,
            "content": [
                {"type": "text/plain", "value": content.text},
                {"type": "text/html", "value": _html_markers(content.html)},
            ],
            "categories": [identity.list_name],
            "headers": {"List-Id": identity.list_id},
        }
        for start in range(0, len(readers), BATCH):
            personalizations = [
                _personalization(identity, secret, base_url, email, name)
                for email, name in readers[start : start + BATCH]
            ]
            body = json.dumps({"personalizations": personalizations, **common}).encode()
            connection.request("POST", "/v3/mail/send", body, headers)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 202:
                raise RuntimeError(f"the sink answered {answer.status}")
            counts["posted"] += len(personalizations)
            counts["requests"] += 1
    connection.close()
    return counts


def _html_markers(body: str) -> str:
    for key in ("greeting", "unsubscribe_url", "preferences_url"):
        body = body.replace(f"%%{key}%%", f"%%{key}_html%%")
    return body


def _personalization(
    identity: Identity, secret: bytes, base_url: str, email: str, name: str
) -> dict[str, object]:
    key = email.lower()
    unsubscribe = f"{base_url}/unsubscribe/{_token(secret, 'unsubscribe', identity.list_name, key)}"
    preferences = f"{base_url}/preferences/{_token(secret, 'preferences', identity.list_name, key)}"
    values = {
        "greeting": identity.greet(name),
        "unsubscribe_url": unsubscribe,
        "preferences_url": preferences,
    }
    substitutions = {f"%%{k}%%": v for k, v in values.items()}
    substitutions.update({f"%%{k}_html%%": html.escape(v) for k, v in values.items()})
    return {
        "to": [{"email": email, "name": name} if name else {"email": email}],
        "substitutions": substitutions,
        "custom_args": {"edition_id": identity.edition_id, "list": identity.list_name},
        "headers": {
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
