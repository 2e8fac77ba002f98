"""The tables of config.toml as frozen pydantic models, each key with its type and checks.

Types are strict: TOML has real numbers, booleans and arrays, so ``timeout = true`` or
``max_items = "8"`` is a mistake to report, not a value to convert. Checks that span tables
(a desk named in a feed, a list's transport) live in ``digest.config.checks``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from digest import logos
from digest.brand import DEFAULT_ACCENT, hex_color
from digest.brand import font_stack as css_font_stack
from digest.config.problems import Expects, shown
from digest.config.transports import TransportConfig
from digest.cron import parse_cron

# Languages written right to left (their primary subtags), for `dir = "auto"`.
RTL_LANGUAGES = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ku", "ps", "sd", "ug", "ur", "yi"})
# Separates the desks a subscriber chose in the `desks` column of a subscriber file.
SUBSCRIBER_DESK_SEPARATOR = ";"


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'unknown timezone {name!r}; use an IANA name like "Europe/Kyiv"') from None
    return name


def _web_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url.rstrip("/")


def _sender(value: str) -> str:
    name, address = parseaddr(value)
    if "@" not in address or any(c in value for c in "\r\n"):
        raise ValueError(f'{value!r} is not an address like "Morning Digest <digest@example.org>"')
    Address(display_name=name, addr_spec=address)  # raises on a malformed address
    return value


def _array(value: object) -> object:
    # TOML arrays arrive as lists, which strict validation refuses for a tuple.
    return tuple(value) if isinstance(value, list) else value


Item = TypeVar("Item")
Array = Annotated[tuple[Item, ...], BeforeValidator(_array)]
Timezone = Annotated[str, AfterValidator(_timezone), Expects('a timezone name like "Europe/Kyiv"')]
WebUrl = Annotated[str, AfterValidator(_web_url), Expects('an http(s) URL like "https://news.example.org"')]


def _logo_source(value: str) -> str:
    return logos.check_file_name(value) if logos.is_file(value) else _web_url(value)


LogoSource = Annotated[
    str,
    AfterValidator(_logo_source),
    Expects('an http(s) URL, or a PNG, JPEG or GIF file beside config.toml like "brand/logo.png"'),
]
Name = Annotated[
    str,
    Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    Expects('a name of letters, digits, ".", "_" and "-" (like "daily")'),
]


def _desk_name(name: str) -> str:
    """A desk name is one line of any printable text, and never the subscriber file's ``;``."""
    if not name:
        raise ValueError("a desk name cannot be empty")
    if SUBSCRIBER_DESK_SEPARATOR in name:
        raise ValueError(
            f"desk {name!r} contains {SUBSCRIBER_DESK_SEPARATOR!r}, which separates desks in a subscriber "
            "file's desks column; use another character"
        )
    control = next((c for c in name if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if control is not None:
        raise ValueError(f"desk {name!r} contains the control character U+{ord(control):04X}; remove it")
    return name


def _some_desks(desks: tuple[str, ...]) -> tuple[str, ...]:
    # `desks = []` read as "every desk" by some code and "no desk" by other code: neither guess is safe.
    if not desks:
        raise ValueError("must name at least one desk; leave `desks` out for all desks")
    return desks


DeskName = Annotated[str, AfterValidator(_desk_name)]
DeskNames = Annotated[Array[DeskName], Expects("a list of desk names")]
FeedNames = Annotated[Array[str], Expects("a list of feed names")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, strict=True)


class Newsroom(_Section):
    name: str = Field(min_length=1)
    site_url: WebUrl
    timezone: Timezone = "UTC"
    sender: Annotated[
        str, AfterValidator(_sender), Expects('an address like "Morning Digest <digest@example.org>"')
    ]
    postal_address: str = Field(min_length=1)
    lang: Annotated[str, Expects('a language tag like "en" or "pt-BR"')] = Field(
        default="en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
    )
    dir: Literal["ltr", "rtl", "auto"] = "auto"
    """The text's direction; ``auto`` takes it from ``lang`` (Arabic, Hebrew… are rtl)."""
    logo_url: LogoSource | None = None
    logo_width: int | None = Field(default=None, ge=16, le=600)
    logo_height: int | None = Field(default=None, ge=8, le=600)
    logo_alt: str | None = Field(default=None, min_length=1)
    logo_dark_url: LogoSource | None = None
    accent_color: Annotated[str, AfterValidator(hex_color), Expects('a hex colour like "#0b57a4"')] = (
        DEFAULT_ACCENT
    )
    # The function under another name: pydantic resolves this annotation in the class's
    # namespace, where ``font_stack`` is the field's default, a string.
    font_stack: Annotated[
        str, AfterValidator(css_font_stack), Expects('a CSS font list like "Georgia, Times New Roman, serif"')
    ] = css_font_stack(None)

    @model_validator(mode="after")
    def _logo_has_a_size(self) -> Newsroom:
        if self.logo_url and self.logo_width is None:
            raise ValueError("logo_url needs logo_width (in pixels, as the logo shows in the email)")
        if not self.logo_url and (self.logo_dark_url or self.logo_width or self.logo_height or self.logo_alt):
            raise ValueError("logo_dark_url, logo_width, logo_height and logo_alt need logo_url")
        files = [source for source in (self.logo_url, self.logo_dark_url) if source and logos.is_file(source)]
        if len(files) == 2 and files[0] != files[1] and len({logos.published_name(f) for f in files}) == 1:
            raise ValueError(
                f"logo_url and logo_dark_url are two files of one name ({logos.published_name(files[0])!r}), "
                "published at one address; rename one"
            )
        return self

    @property
    def direction(self) -> str:
        if self.dir != "auto":
            return self.dir
        return "rtl" if self.lang.split("-")[0].lower() in RTL_LANGUAGES else "ltr"


class Desks(_Section):
    order: DeskNames = Field(min_length=1)
    max_items: int = Field(default=8, ge=1, le=100)
    categories: Annotated[dict[str, str], Expects('a table of category = desk, like "War" = "Ukraine"')] = (
        Field(default_factory=dict)
    )
    links: Annotated[dict[str, WebUrl], Expects("a table of desk = URL")] = Field(default_factory=dict)
    lead_category: str | None = Field(default=None, min_length=1)
    """A feed category that marks the edition's lead story (else: the first desk's newest)."""

    @field_validator("order")
    @classmethod
    def _unique(cls, order: tuple[str, ...]) -> tuple[str, ...]:
        folded = [desk.casefold() for desk in order]
        for desk in order:
            if folded.count(desk.casefold()) > 1:
                raise ValueError(f"desk {desk!r} is listed twice")
        return order


class Feed(_Section):
    source: str = Field(min_length=1)
    desk: str
    name: str | None = None

    @property
    def is_remote(self) -> bool:
        return urlsplit(self.source).scheme in ("http", "https")

    @property
    def label(self) -> str:
        return self.name or self.source


class MailingList(_Section):
    name: Name
    # The editors' CSV of readers, imported into the state store (none: web sign-ups only).
    subscribers: str | None = None
    schedule: Annotated[str, Expects('a crontab expression like "0 7 * * *"')] = "0 7 * * *"
    timezone: Timezone | None = None
    desks: Annotated[DeskNames, AfterValidator(_some_desks)] | None = None
    transport: str = "outbox"
    title: str | None = None
    # Feeds (by name or source) without which the list is held rather than sent.
    required_feeds: FeedNames = ()
    # Publish each edition at /archive/<list>/<date> (and link it from the emails).
    archive: bool = True

    @field_validator("schedule")
    @classmethod
    def _cron(cls, schedule: str) -> str:
        parse_cron(schedule, "UTC")
        return schedule

    @property
    def display_title(self) -> str:
        """How readers see the list named (footer, List-Id, the unsubscribe page)."""
        return self.title or self.name


def _duration(value: object) -> int:
    """Seconds, from a number of seconds or text like "90s", "45m", "3h"."""
    found = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif found:
        seconds = int(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]
    else:
        raise ValueError(f'{shown(value)} is not a duration; write seconds, or like "45m" or "3h"')
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _at_least_a_second(seconds: int) -> int:
    if seconds < 1:
        raise ValueError("must be at least one second")
    return seconds


# Seconds, written as seconds or like "45m" or "3h" (zero allowed: "do not wait").
Duration = Annotated[int, BeforeValidator(_duration)]


class Fetch(_Section):
    timeout: Annotated[float, Expects("a number of seconds")] = Field(default=15.0, gt=0, le=300)
    max_bytes: int = Field(default=10_000_000, ge=1_000)
    user_agent: str = "digest/0.1 (+https://github.com/newsroom/digest)"
    concurrency: int = Field(default=4, ge=1, le=32)
    # `digest send` tries an unreadable feed again for this long before freezing without it.
    retry_for: Duration = 5 * 60
    # A feed an edition went out without has its stories caught up next time, back this far.
    catch_up: Duration = 48 * 3600


class Schedule(_Section):
    # A run missed while `digest schedule` was down still goes out if it is this late at most.
    misfire_grace: Annotated[Duration, AfterValidator(_at_least_a_second)] = 3 * 3600


class State(_Section):
    url: str = "sqlite:///state/digest.sqlite3"

    @field_validator("url")
    @classmethod
    def _no_password(cls, url: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError(f"{url!r} is not a database URL like sqlite:///state/digest.sqlite3") from None
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("the state database must be SQLite (sqlite:///…) or PostgreSQL (postgresql://…)")
        if parsed.password:
            raise ValueError("a password does not belong in config.toml: set PGPASSWORD (or use ~/.pgpass)")
        return url


class Render(_Section):
    # Unset: a templates/ folder beside config.toml if there is one, else the packaged ones only.
    templates: str | None = None


def _origin(value: str) -> str:
    """An origin as browsers send it in the Origin header: scheme://host[:port], nothing after."""
    url = _web_url(value)
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f'{shown(value)} is not an origin; give only the scheme and host, like "https://news.example.org"'
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


Origin = Annotated[str, AfterValidator(_origin), Expects('an origin like "https://news.example.org"')]


class Server(_Section):
    base_url: WebUrl = "http://127.0.0.1:8080"
    # Sites whose pages may post the sign-up form (an embedded form), besides base_url's own.
    signup_origins: Array[Origin] = ()
    # Sign-ups one client may make per minute, across every worker and machine.
    signups_per_minute: int = Field(default=5, ge=1, le=10_000)
    # Reverse proxies in front of `digest serve` whose X-Forwarded-For is believed (0: none).
    trusted_proxies: int = Field(default=0, ge=0, le=10)
    # What a consent record keeps of the client's IP address: all of it, its network only, or none.
    consent_ip: Literal["full", "network", "none"] = "full"
    # How long a confirmation link works.
    confirm_expiry: Annotated[Duration, AfterValidator(_at_least_a_second)] = 48 * 3600


class Guardrail(_Section):
    # A list whose edition reaches either rate is held before its next edition: Gmail throttles
    # and rejects senders whose spam reports pass 0.3%, and many hard bounces mark a stale list.
    complaint_rate: Annotated[float, Expects("a share like 0.003 (0.3%)")] = Field(default=0.003, gt=0, le=1)
    bounce_rate: Annotated[float, Expects("a share like 0.05 (5%)")] = Field(default=0.05, gt=0, le=1)
    # Fewer messages than this make a rate noise (one complaint in 50 is 2%): not judged.
    min_sent: int = Field(default=100, ge=1)


class Bounces(_Section):
    """``[bounces]``: where bounce reports and mailed unsubscribes are read, and what they do."""

    # The mailbox a List-Unsubscribe mailto: points at (read by `digest bounces`); unset, a
    # transport's return_path with the token "unsubscribe" stands in, else no mailto: at all.
    unsubscribe_address: Annotated[str, AfterValidator(_sender)] | None = None
    imap_host: str | None = None
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_user: str | None = None
    # A PEM file of CA certificates the server's is checked against instead of the system's
    # (a private CA, or a self-signed server), relative to config.toml; never unchecked.
    imap_ca_file: str | None = Field(default=None, min_length=1)
    password_env: str = "DIGEST_IMAP_PASSWORD"
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    # How often `digest schedule` fetches (0: never; `digest bounces fetch` still does).
    interval: Duration = 5 * 60
    # A soft bounce (4.x.x) suppresses the address once it is the soft_limit-th in soft_days.
    soft_limit: int = Field(default=3, ge=1, le=100)
    soft_days: int = Field(default=14, ge=1, le=365)

    @model_validator(mode="after")
    def _imap_needs_a_user(self) -> Bounces:
        if self.imap_host and not self.imap_user:
            raise ValueError("imap_host needs imap_user (the password comes from password_env)")
        return self


class Settings(_Section):
    newsroom: Newsroom
    desks: Desks
    feeds: Annotated[Array[Feed], Expects("[[feeds]] tables, one per feed")] = Field(min_length=1)
    fetch: Fetch = Fetch()
    lists: Annotated[Array[MailingList], Expects("[[lists]] tables, one per list")] = Field(min_length=1)
    transports: dict[str, TransportConfig] = Field(default_factory=dict)
    schedule: Schedule = Schedule()
    state: State = State()
    render: Render = Render()
    server: Server = Server()
    guardrail: Guardrail = Guardrail()
    bounces: Bounces = Bounces()

    def feed(self, reference: str) -> Feed | None:
        """The feed a list names (``required_feeds``): by its name, else by its source."""
        return find_feed(self.feeds, reference)


def find_feed(feeds: Iterable[Feed], reference: str) -> Feed | None:
    """The feed of ``feeds`` that ``reference`` names: by its name, else by its source."""
    return next((feed for feed in feeds if reference in (feed.name, feed.source)), None)


def slugify(text: str) -> str:
    """A desk's name as its URLs and anchors spell it: letters and digits, lower case, joined
    by hyphens. Latin where the name has Latin letters, accents dropped (``Économie & Finance`` →
    ``economie-finance``); else in the name's own script (``Культура`` → ``культура``, Arabic,
    Hebrew, Japanese), so that no two such desks share a link; ``desk`` if nothing is left."""
    folded = text.casefold()
    bare = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    if re.search("[a-z]", bare):
        return "-".join(re.findall("[a-z0-9]+", bare))
    # A script's vowel signs and marks (Devanagari, Arabic's) belong to their word.
    words = "".join(c if c.isalnum() or unicodedata.category(c)[0] == "M" else " " for c in folded)
    return "-".join(unicodedata.normalize("NFC", words).split()) or "desk"
