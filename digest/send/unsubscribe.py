"""How digest addresses a recipient: the signing secret, signed links, and the list headers.

Every message digest makes is addressed here, whoever makes it: `digest send` and its
resends, `digest build`'s sample, the preview and its test send. An ``Addresser`` gives one
list's recipient their own signed unsubscribe link and the ``List-*`` headers (RFC 2369,
RFC 2919, RFC 8058) that carry it.

A one-click POST arrives with no cookies and no login, so the link itself must prove who
it is for: a token is its purpose, the list and the address, signed with HMAC-SHA256 under a
secret only the newsroom holds. A token made for one purpose (unsubscribing) is refused for
any other (preferences, confirmation; VERP bounce addresses have tokens of their own, made in
digest.bounces.verp with the same secret), so no link can be
turned into another. The address is encoded, not encrypted — anyone holding the link can
read it, which is fine because the link only ever appears in that recipient's own mail.

Unsubscribe and preferences tokens never expire (CAN-SPAM wants an opt-out to keep working for
30 days and readers find year-old editions in their archives); changing the secret invalidates
every link already sent. A confirmation token must expire: it carries its expiry (format 3),
signed with the rest, so a link forwarded or found in an old mailbox stops working.
Links made before tokens carried a purpose (format 1) keep working as unsubscribe links.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Mapping
from email.utils import parseaddr
from enum import StrEnum
from urllib.parse import quote

from digest.address import address_key
from digest.bounces import verp
from digest.config import Config, MailingList
from digest.errors import DigestError
from digest.render.message import Recipient, list_id
from digest.send.transports.base import Envelope

SECRET_ENV = "DIGEST_SECRET"
MIN_SECRET_BYTES = 16
MAX_TOKEN_CHARS = 1000
ONE_CLICK = "List-Unsubscribe=One-Click"

# Format 1 (no purpose: always unsubscribe) is only read, for the links already sent.
_FORMAT_1 = b"\x01"
_FORMAT_2 = b"\x02"
# Format 3: format 2's fields and an expiry, in whole seconds since the epoch (UTC).
_FORMAT_3 = b"\x03"
_SECONDS = re.compile(r"[1-9][0-9]{0,11}")
# Keeps these MACs apart from anything else the same secret might one day sign.
_CONTEXT = b"digest-unsubscribe\x00"
_MAC_BYTES = 32
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_URL_SAFE = bytes.maketrans(b"+/", b"-_")  # standard base64 → base64url (RFC 4648, section 5)
_NO_FIELDS = "a token needs a list name and an address, neither containing a newline"
_GENERATE = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'

log = logging.getLogger(__name__)

# Signs links only where no real secret is needed: the outbox transport and build previews
# when DIGEST_SECRET is unset, and `make demo` (which exports it so that `digest serve` can
# check the demo's links). It is public, so links signed with it are forgeable: the other
# transports refuse it, and `digest serve` warns when it is given it.
DEMO_SECRET = b"digest-demo-secret-not-for-real-mail"
# Stands in for a token in the header template; no URL or address contains it.
_TOKEN_MARK = "\x00token\x00"


class Purpose(StrEnum):
    """What a token lets its holder do; it is signed with the token and checked when read."""

    UNSUBSCRIBE = "unsubscribe"
    # Reserved for the links and addresses that come next, so their tokens are told apart now.
    PREFERENCES = "preferences"
    CONFIRM = "confirm"
    BOUNCE = "bounce"


# Purposes whose tokens must carry an expiry: made without one, or found without one, refused.
EXPIRING = frozenset({Purpose.CONFIRM})


def secret_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    """The signing secret from $DIGEST_SECRET, or None when it is unset or empty.

    Raises DigestError when it is too short to resist guessing.
    """
    raw = (os.environ if env is None else env).get(SECRET_ENV, "").strip()
    if not raw:
        return None
    secret = raw.encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise DigestError(
            f"${SECRET_ENV} is only {len(secret)} bytes long; unsubscribe links signed with it "
            "could be forged",
            hint=f"use a longer random secret (at least {MIN_SECRET_BYTES} bytes), e.g. {_GENERATE}",
        )
    return secret


def signing_secret(env: Mapping[str, str], backend: str | None) -> bytes:
    """The secret that signs the links of mail going out through ``backend``.

    Real mail needs the newsroom's own secret: without one, or with the public demo secret,
    it would carry links anyone could forge to unsubscribe its readers. The outbox (the demo,
    tests) only warns, and signs with the demo secret when none is set. ``backend`` None is a
    message that goes to no one (`digest build`'s sample, the preview): the demo secret when
    none is set, without a word.
    """
    secret = secret_from_env(env)
    if backend is None:
        return secret or DEMO_SECRET
    if backend != "outbox" and secret is None:
        raise DigestError(
            f"{SECRET_ENV} is not set: unsubscribe links must be signed before mail goes out",
            hint=f"set it to a long random value, e.g. {_GENERATE}",
        )
    if backend != "outbox" and secret == DEMO_SECRET:
        raise DigestError(
            f"{SECRET_ENV} is digest's public demo secret: anyone could forge the unsubscribe links "
            "of mail signed with it",
            hint=f"use it only with the outbox; set a long random value of your own, e.g. {_GENERATE}",
        )
    if secret is None:
        log.warning(
            "%s is not set: the unsubscribe links in these outbox messages are signed with the public "
            "demo secret, so anyone could forge them",
            SECRET_ENV,
        )
    elif secret == DEMO_SECRET:
        log.warning(
            "%s is the public demo secret: anyone could forge the unsubscribe links in these outbox "
            "messages (fine for a demo, never for real mail)",
            SECRET_ENV,
        )
    return secret or DEMO_SECRET


def checking_secret(env: Mapping[str, str] | None = None) -> bytes:
    """The secret `digest serve` checks links with: the one the mail was signed with, so required."""
    secret = secret_from_env(env)
    if secret is None:
        raise DigestError(
            f"{SECRET_ENV} is not set: the endpoint cannot check unsubscribe links without it",
            hint="set it to the secret the mail was sent with; for `make demo`'s links, see the README's "
            "Quick start",
        )
    return secret


def make_token(
    secret: bytes, list_name: str, email: str, *, purpose: Purpose, expires: dt.datetime | None = None
) -> str:
    """An opaque, URL-safe token that lets its holder do ``purpose`` for ``email`` on ``list_name``.

    With ``expires`` (required for a purpose in EXPIRING) the token stops working at that
    moment, to the second; without it, it works as long as the secret is the same.
    """
    return Signer(secret, list_name, purpose, expires).token(email)


class Signer:
    """``make_token`` for one list, purpose and expiry, and any number of addresses: what all
    their payloads start with is checked and fed to the HMAC once, and each token copies the
    HMAC's state (a third of the cost of keying it again)."""

    def __init__(
        self, secret: bytes, list_name: str, purpose: Purpose, expires: dt.datetime | None = None
    ) -> None:
        if not isinstance(secret, bytes):
            raise TypeError("the unsubscribe secret must be bytes")
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the unsubscribe secret must be at least {MIN_SECRET_BYTES} bytes")
        purpose = Purpose(purpose)
        if not list_name or "\n" in list_name:
            raise ValueError(_NO_FIELDS)
        self._end = b""
        if expires is not None:
            if expires.tzinfo is None:
                raise ValueError("a token's expiry must be an aware datetime")
            self._end = f"\n{max(1, int(expires.timestamp()))}".encode()
        elif purpose in EXPIRING:
            raise ValueError(f"a {purpose} token must expire: give it expires=")
        self._start = (_FORMAT_3 if expires is not None else _FORMAT_2) + f"{purpose}\n{list_name}\n".encode()
        self._mac = hmac.new(secret, _CONTEXT + self._start, hashlib.sha256)

    def token(self, email: str) -> str:
        """The token of ``email`` (compared by its ``address_key``)."""
        address = address_key(email)
        if not address or "\n" in address:
            raise ValueError(_NO_FIELDS)
        rest = address.encode("utf-8") + self._end
        mac = self._mac.copy()
        mac.update(rest)
        token = f"{_b64encode(self._start + rest)}.{_b64encode(mac.digest())}"
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError(f"list name and address are too long for a token ({len(token)} characters)")
        return token


def read_token(
    secret: bytes, token: str, *, purpose: Purpose, now: dt.datetime | None = None
) -> tuple[str, str] | None:
    """(list name, address) when ``token`` was made with ``secret`` for ``purpose`` and has not
    expired at ``now`` (default: the current time); else None.

    Never raises on a bad token and never says what was wrong with it: a caller that could
    tell "bad signature" from "bad format" or "expired" would hand a forger an oracle.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        return None
    encoded_payload, encoded_mac = token.split(".")
    payload = _b64decode(encoded_payload)
    mac = _b64decode(encoded_mac)
    if payload is None or mac is None or len(mac) != _MAC_BYTES:
        return None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    # Only our own payloads get this far; the checks below guard against our own past bugs.
    try:
        fields = payload[1:].decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return None
    if payload[:1] == _FORMAT_1:
        fields = [Purpose.UNSUBSCRIBE, *fields]  # links sent before tokens named their purpose
    elif payload[:1] == _FORMAT_3:
        if len(fields) != 4 or not _SECONDS.fullmatch(fields[3]) or _expired(int(fields.pop()), now):
            return None
    elif payload[:1] != _FORMAT_2 or purpose in EXPIRING:
        return None
    if len(fields) != 3 or fields[0] != purpose or not fields[1] or not fields[2]:
        return None
    return fields[1], fields[2]


def _expired(expires: int, now: dt.datetime | None) -> bool:
    moment = dt.datetime.now(dt.UTC) if now is None else now
    return moment.timestamp() >= expires


def unsubscribe_url(base_url: str, token: str) -> str:
    """The web address that shows the unsubscribe page and takes the one-click POST."""
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


def preferences_url(base_url: str, token: str) -> str:
    """The web address of a reader's own preferences page (a PREFERENCES token)."""
    return f"{base_url.rstrip('/')}/preferences/{token}"


def mailto_unsubscribe(sender_address: str, token: str) -> str:
    """A mailto: fallback for mail programs that do not do one-click (RFC 6068)."""
    _name, address = parseaddr(sender_address)
    if "@" not in address or any(c in sender_address for c in "\r\n"):
        raise ValueError(f"{sender_address!r} is not an email address")
    return f"mailto:{quote(address, safe='@+!$*')}?subject=unsubscribe%20{token}"


def list_unsubscribe_headers(base_url: str, mailbox: str | None, token: str) -> dict[str, str]:
    """List-Unsubscribe (https first, then a mailto: to ``mailbox`` if there is one) and, for
    an https URL, List-Unsubscribe-Post.

    ``mailbox`` may be a bare address or "Name <address>": one that `digest bounces` reads, or
    None. A mailto: nobody reads would quietly lose a reader's request, so it is left out
    until there is a mailbox. RFC 8058 only allows one-click on an https URI, so with an http
    ``base_url`` (a local preview) the Post header is left out rather than advertising
    something Gmail and Yahoo would reject. The DKIM signature must cover both headers.
    """
    url = unsubscribe_url(base_url, token)
    links = [f"<{url}>"]
    if mailbox is not None:
        links.append(f"<{mailto_unsubscribe(mailbox, token)}>")
    headers = {"List-Unsubscribe": ", ".join(links)}
    if url.startswith("https://"):
        headers["List-Unsubscribe-Post"] = ONE_CLICK
    return headers


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict base64url without padding; None for anything that is not our own encoding."""
    if not _B64URL.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # The last character carries spare bits; insisting on the canonical form means a token
    # has exactly one spelling, so an "altered" token can never still verify.
    return data if _b64encode(data) == text else None


class Addresser:
    """Addresses the messages of one list: each recipient's own link, and the list's headers."""

    def __init__(
        self,
        config: Config,
        mailing_list: MailingList,
        *,
        env: Mapping[str, str],
        backend: str | None,
        transport: str | None = None,
    ) -> None:
        """Signs with the secret ``signing_secret`` allows for ``backend`` (None: a preview).

        ``transport`` (default: the list's) is the alias the mail goes out through: its
        ``return_path`` gives each message its VERP envelope sender.
        """
        self.secret = signing_secret(env, backend)
        self.list_name = mailing_list.name
        self.base_url = config.settings.server.base_url
        self.sender = config.settings.newsroom.sender
        options = config.settings.transports.get(transport or mailing_list.transport)
        self.return_path: str | None = getattr(options, "return_path", None)
        self.mailbox = mailto_mailbox(config.settings.bounces.unsubscribe_address, self.return_path)
        # The same for every message of the list: a transport writes them once per batch.
        self.list_headers = {"List-Id": list_id(self.sender, mailing_list.name, mailing_list.display_title)}
        self._template = self._header_template()
        # Made once per list: the address is the only thing that differs between recipients.
        self._unsubscribe = Signer(self.secret, self.list_name, Purpose.UNSUBSCRIBE)
        self._preferences = Signer(self.secret, self.list_name, Purpose.PREFERENCES)
        self._unsubscribe_url = unsubscribe_url(self.base_url, "")
        self._preferences_url = preferences_url(self.base_url, "")

    @property
    def demo(self) -> bool:
        """Whether the links are signed with the public demo secret (forgeable by anyone)."""
        return self.secret == DEMO_SECRET

    def recipient(self, email: str, name: str, greeting: str = "") -> tuple[Recipient, dict[str, str]]:
        """The recipient with their greeting (worded by the templates: ``Greeting.to(name)``),
        their own unsubscribe and preferences links, and the headers that carry the first."""
        token = self._unsubscribe.token(email)
        if self._template:
            headers = {header: value.replace(_TOKEN_MARK, token) for header, value in self._template.items()}
        else:
            headers = list_unsubscribe_headers(self.base_url, self.mailbox, token)
        # A token of its own purpose: the preferences page must not be able to act as one-click.
        preferences = self._preferences.token(email)
        return Recipient(
            email, name, self._unsubscribe_url + token, greeting, self._preferences_url + preferences
        ), headers

    def message(self, email: str, name: str, greeting: str = "") -> tuple[Recipient, dict[str, str]]:
        """``recipient``, with every list header of a message composed on its own."""
        recipient, headers = self.recipient(email, name, greeting)
        return recipient, {**self.list_headers, **headers}

    def envelope(
        self,
        email: str,
        name: str,
        message_id: str,
        greeting: str = "",
        *,
        bounce: tuple[str, int] | None = None,
    ) -> Envelope:
        """One recipient of a batch, for a transport; ``bounce`` (edition id, ledger row id)
        gives it a VERP return path when the transport has one."""
        recipient, headers = self.recipient(email, name, greeting)
        return_path = None
        if self.return_path is not None and bounce is not None and bounce[1] > 0:
            token = verp.make_token(self.secret, self.list_name, bounce[0], email, bounce[1])
            return_path = verp.address(self.return_path, token)
        return Envelope(recipient=recipient, message_id=message_id, headers=headers, return_path=return_path)

    def _header_template(self) -> dict[str, str]:
        """``list_unsubscribe_headers`` made once with a stand-in for the token ({} if it cannot be).

        Parsing the sender's address costs more than the rest of an envelope, and the token
        is the only thing that differs between recipients.
        """
        template = list_unsubscribe_headers(self.base_url, self.mailbox, _TOKEN_MARK)
        # The stand-in must come out exactly where a token would, else build them one by one.
        sample = "sample.token"
        filled = {header: value.replace(_TOKEN_MARK, sample) for header, value in template.items()}
        return template if filled == list_unsubscribe_headers(self.base_url, self.mailbox, sample) else {}


def mailto_mailbox(unsubscribe_address: str | None, return_path: str | None) -> str | None:
    """Where a List-Unsubscribe mailto: goes: ``[bounces] unsubscribe_address``, else the
    return path's mailbox (token "unsubscribe"), which `digest bounces` reads anyway; None
    when neither is set."""
    if unsubscribe_address is not None:
        return unsubscribe_address
    return verp.address(return_path, "unsubscribe") if return_path is not None else None
