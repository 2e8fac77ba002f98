"""config.toml → frozen, validated settings.

Paths are relative to the config file; secrets never live here (only the names of the
environment variables that hold them). Every error names the key, the file and the line.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from digest.cron import parse_cron
from digest.errors import ConfigError
from digest.tomlpos import TomlPositions

DEFAULT_CONFIG = "config.toml"


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


Timezone = Annotated[str, AfterValidator(_timezone)]
WebUrl = Annotated[str, AfterValidator(_web_url)]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Newsroom(_Section):
    name: str = Field(min_length=1)
    site_url: WebUrl
    timezone: Timezone = "UTC"
    sender: Annotated[str, AfterValidator(_sender)]
    postal_address: str = Field(min_length=1)
    lang: str = Field(default="en", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class Desks(_Section):
    order: tuple[str, ...] = Field(min_length=1)
    max_items: int = Field(default=8, ge=1, le=100)
    categories: dict[str, str] = Field(default_factory=dict)
    links: dict[str, WebUrl] = Field(default_factory=dict)

    @field_validator("order")
    @classmethod
    def _unique(cls, order: tuple[str, ...]) -> tuple[str, ...]:
        folded = [desk.casefold() for desk in order]
        for desk in order:
            if folded.count(desk.casefold()) > 1:
                raise ValueError(f"desk {desk!r} is listed twice")
        return order

    @model_validator(mode="after")
    def _known_desks(self) -> Desks:
        for category, desk in self.categories.items():
            if desk not in self.order:
                raise _KeyError(("categories", category), _unknown_desk(desk, self.order))
        for desk in self.links:
            if desk not in self.order:
                raise _KeyError(("links", desk), _unknown_desk(desk, self.order))
        return self


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
    subscribers: str
    schedule: str = "0 7 * * *"
    timezone: Timezone | None = None
    desks: tuple[str, ...] | None = None
    transport: str = "outbox"
    title: str | None = None
    # Feeds (by name or source) without which the list is held rather than sent.
    required_feeds: tuple[str, ...] = ()

    @field_validator("schedule")
    @classmethod
    def _cron(cls, schedule: str) -> str:
        parse_cron(schedule, "UTC")
        return schedule


class Transport(BaseModel):
    """``backend`` plus that backend's options, checked against its own model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    backend: Literal["outbox", "smtp", "sendgrid"]

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _backend_options(self) -> Transport:
        from digest.send.transports import options_model

        try:
            options_model(self.backend).model_validate(self.options)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc, message = _describe(error)
            raise _KeyError(loc, message) from None
        return self


def _duration(value: str | int) -> int:
    """Seconds, from a number of seconds or text like "90s", "45m", "3h"."""
    if isinstance(value, bool):
        raise ValueError(f'{value!r} is not a duration; write seconds, or like "45m" or "3h"')
    if isinstance(value, int):
        seconds = value
    else:
        found = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", value)
        if not found:
            raise ValueError(f'{value!r} is not a duration; write seconds, or like "45m" or "3h"')
        seconds = int(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]
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
    timeout: float = Field(default=15.0, gt=0, le=300)
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
    templates: str = "templates"


class Server(_Section):
    base_url: WebUrl = "http://127.0.0.1:8080"


class Settings(_Section):
    newsroom: Newsroom
    desks: Desks
    feeds: tuple[Feed, ...] = Field(min_length=1)
    fetch: Fetch = Fetch()
    lists: tuple[MailingList, ...] = Field(min_length=1)
    transports: dict[str, Transport] = Field(default_factory=dict)
    schedule: Schedule = Schedule()
    state: State = State()
    render: Render = Render()
    server: Server = Server()

    def feed(self, reference: str) -> Feed | None:
        """The feed a list names (``required_feeds``): by its name, else by its source."""
        for feed in self.feeds:
            if reference in (feed.name, feed.source):
                return feed
        return None

    @model_validator(mode="after")
    def _references(self) -> Settings:
        order = self.desks.order
        for index, feed in enumerate(self.feeds):
            if feed.desk not in order:
                raise _KeyError(("feeds", index, "desk"), _unknown_desk(feed.desk, order))
        seen: set[str] = set()
        for index, mailing_list in enumerate(self.lists):
            if mailing_list.name in seen:
                raise _KeyError(("lists", index, "name"), f"list {mailing_list.name!r} is defined twice")
            seen.add(mailing_list.name)
            for desk in mailing_list.desks or ():
                if desk not in order:
                    raise _KeyError(("lists", index, "desks"), _unknown_desk(desk, order))
            for reference in mailing_list.required_feeds:
                if self.feed(reference) is None:
                    labels = ", ".join(repr(feed.label) for feed in self.feeds)
                    raise _KeyError(
                        ("lists", index, "required_feeds"),
                        f"no feed named {reference!r} (feeds: {labels}); use a feed's name or source",
                    )
            if mailing_list.transport not in self.transports:
                raise _KeyError(
                    ("lists", index, "transport"),
                    f"transport {mailing_list.transport!r} is not defined; "
                    f"add a [transports.{mailing_list.transport}] table",
                )
        return self


class _KeyError(ValueError):
    """A cross-reference error that knows which key it is about (relative to its model)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _unknown_desk(desk: str, order: tuple[str, ...]) -> str:
    return f"desk {desk!r} is not in [desks] order ({', '.join(order)}); add it there or fix the name"


class Config:
    """Validated settings plus where they came from, for resolving relative paths."""

    def __init__(self, settings: Settings, path: Path, positions: TomlPositions) -> None:
        self.settings = settings
        self.path = path
        self.root = path.parent
        self._positions = positions

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        return (self.root / Path(relative).expanduser()).resolve()

    def error(self, loc: tuple[str | int, ...], message: str, hint: str | None = None) -> ConfigError:
        """A ConfigError pointing at the line of ``loc`` in the config file."""
        key = _dotted(loc)
        return ConfigError(
            f"{key}: {message}" if key else message,
            path=self.path,
            line=self._positions.line_of(loc),
            hint=hint,
        )

    def mailing_list(self, name: str) -> MailingList:
        for mailing_list in self.settings.lists:
            if mailing_list.name == name:
                return mailing_list
        names = ", ".join(m.name for m in self.settings.lists)
        raise ConfigError(f"no list named {name!r} in {self.path} (lists: {names})")

    def list_timezone(self, mailing_list: MailingList) -> str:
        return mailing_list.timezone or self.settings.newsroom.timezone

    def desk_url(self, desk: str) -> str:
        links = self.settings.desks.links
        if desk in links:
            return links[desk]
        return f"{self.settings.newsroom.site_url}/{slugify(desk)}"


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-") or "desk"


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _describe(error: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
    kind = error["type"]
    if kind == "extra_forbidden":
        return loc, "unknown key; check its spelling against the reference in README.md"
    if kind == "missing":
        return loc, "required key is missing"
    context = error.get("ctx") or {}
    cause = context.get("error")
    if isinstance(cause, _KeyError):
        return (*loc, *cause.loc), cause.message
    message = str(cause) if cause is not None else error["msg"]
    if "input" in error and kind not in ("value_error", "assertion_error"):
        message = f"{message} (got {error['input']!r})"
    return loc, message


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $DIGEST_CONFIG, else ./config.toml."""
    return Path(explicit or os.environ.get("DIGEST_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError naming the key and line."""
    file = config_path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "config file not found",
            path=file,
            hint="pass --config PATH, set DIGEST_CONFIG, or run from the folder holding config.toml",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file: {exc}", path=file) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.14 gives the position as attributes; earlier versions only in the text.
        found = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
        message = getattr(exc, "msg", None) or (str(exc)[: found.start()].strip() if found else str(exc))
        raise ConfigError(f"not valid TOML: {message}", path=file, line=line) from None
    positions = TomlPositions(text)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        loc, message = _describe(exc.errors()[0])
        more = len(exc.errors()) - 1
        hint = f"and {more} more problem{'s' * (more > 1)}" if more else None
        key = _dotted(loc)
        raise ConfigError(
            f"{key}: {message}" if key else message,
            path=file,
            line=positions.line_of(loc),
            hint=hint,
        ) from None
    config = Config(settings, file.resolve(), positions)
    _check_files(config)
    return config


def _check_files(config: Config) -> None:
    for index, feed in enumerate(config.settings.feeds):
        if not feed.is_remote and not config.resolve(feed.source).is_file():
            raise config.error(
                ("feeds", index, "source"),
                f"feed file {feed.source!r} not found (looked in {config.resolve(feed.source)})",
                hint="fix the path (relative to config.toml) or use an http(s) URL"
                + ("; run `make demo` to generate the example feeds" if "examples/" in feed.source else ""),
            )
    for index, mailing_list in enumerate(config.settings.lists):
        if not config.resolve(mailing_list.subscribers).is_file():
            raise config.error(
                ("lists", index, "subscribers"),
                f"subscriber file {mailing_list.subscribers!r} not found",
                hint="create it with a header row `email,name,desks,status`",
            )
    templates = config.settings.render.templates
    if not config.resolve(templates).is_dir():
        raise config.error(("render", "templates"), f"templates folder {templates!r} not found")
