"""The bare sender: what sending a list through SendGrid costs with no state at all.

Issue 14's baseline for `digest send`. The same input and the same requests, and nothing
else: it reads the subscriber CSV, checks each address (email-validator once per domain, a
plain pattern for the local part), signs each reader's unsubscribe link with an HMAC, groups
the readers by their desks, and posts 1,000 personalizations per request over one keep-alive
connection. Each group's content is rendered once with digest's own templates, as digest
does. No ledger, no subscriber store, no retry, no record of what was sent: a crash resends
everything, which is what the ledger exists to prevent.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def bare_send(
    csv_path: Path,
    *,
    list_name: str,
    sender: str,
    api_url: str,
    api_key: str,
    secret: bytes,
    base_url: str,
    render: Callable[[tuple[str, ...]], Content],
) -> dict[str, int]:
    """Send the list; returns how many were posted, skipped (left) and refused (bad address)."""
    domains: dict[str, bool] = {}
    groups: dict[tuple[str, ...], list[tuple[str, str, str]]] = {}
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
            key = email.lower()
            payload = f"unsubscribe\n{list_name}\n{key}".encode()
            token = f"{_b64(payload)}.{_b64(hmac.new(secret, payload, hashlib.sha256).digest())}"
            desks = tuple(sorted(d.strip() for d in row[at["desks"]].split(";") if d.strip()))
            groups.setdefault(desks, []).append((email, row[at["name"]].strip(), token))
    url = urlsplit(api_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    for desks, readers in groups.items():
        content = render(desks)
        common = {
            "from": {"email": sender},
            "subject": content.subject,
            "content": [
                {"type": "text/plain", "value": content.text},
                {"type": "text/html", "value": content.html},
            ],
        }
        for start in range(0, len(readers), BATCH):
            personalizations = []
            for email, name, token in readers[start : start + BATCH]:
                link = f"{base_url}/unsubscribe/{token}"
                personalizations.append(
                    {
                        "to": [{"email": email, "name": name} if name else {"email": email}],
                        "substitutions": {"%%unsubscribe_url%%": link, "%%name%%": name},
                        "headers": {
                            "List-Unsubscribe": f"<{link}>",
                            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                        },
                        "custom_args": {"list": list_name},
                    }
                )
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
