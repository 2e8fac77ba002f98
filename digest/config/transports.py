"""The transport backends a ``[transports.<alias>]`` table can name: the one registry of them.

Each backend has its options (a pydantic model of its keys, unknown keys refused, validated once
when config.toml is loaded) and the module that makes the transport from them. The modules are
named, not imported: reading the config never loads smtplib or the SendGrid client, and the
transports import their options from here, so the two packages import in one direction only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from digest.config.problems import Expects

if TYPE_CHECKING:
    from digest.send.transports.base import Transport

# SendGrid's own limits: personalizations per request, and categories per message.
MAX_PERSONALIZATIONS = 1000
MAX_CATEGORIES = 10


class _Options(BaseModel):
    # Strict like the rest of config.toml: TOML has real numbers and booleans, and `port = "25"`
    # is a mistake to report, not a value to convert.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class OutboxOptions(_Options):
    """``backend = "outbox"``: each message becomes an .eml file (the demo, tests)."""

    path: str = "outbox"
    backend: Literal["outbox"] = "outbox"


# A DNS label (RFC 1035 letters, digits, hyphens), for domains and DKIM selectors.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"


class DkimOptions(_Options):
    """One ``[transports.<alias>.dkim]`` signer: the key at ``<selector>._domainkey.<domain>``."""

    domain: Annotated[
        str,
        Field(pattern=rf"^{_LABEL}(?:\.{_LABEL})+$", max_length=253),
        Expects('a domain name like "news.example.org" (the d= of the signature)'),
    ]
    selector: Annotated[
        str,
        Field(pattern=rf"^{_LABEL}(?:\.{_LABEL})*$", max_length=63),
        Expects('a selector like "2026-ed" (letters, digits, hyphens)'),
    ]
    key_file: str | None = Field(None, min_length=1)
    """A PEM file (or dknewkey's Ed25519 key), relative to config.toml."""
    key_env: str | None = Field(None, min_length=1)
    """The name of an environment variable holding the key, as the file would."""

    @model_validator(mode="after")
    def _one_key(self) -> DkimOptions:
        if (self.key_file is None) == (self.key_env is None):
            raise ValueError("give the private key as key_file or as key_env (one of them)")
        return self


def _tables(value: object) -> object:
    # One signer may be written as a table ([transports.x.dkim]), several as an array of
    # tables ([[transports.x.dkim]], e.g. RSA and Ed25519 together, RFC 8463).
    if isinstance(value, Mapping):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


class SmtpOptions(_Options):
    """``backend = "smtp"``; secrets are named (environment variables), never given."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username_env: str | None = None
    password_env: str | None = None
    connections: int = Field(default=4, ge=1, le=32)
    rate: float = Field(default=0, ge=0)
    """Messages per second across all connections; 0 means as fast as the server takes them."""
    timeout: float = Field(default=30, gt=0)
    retries: int = Field(default=3, ge=0, le=20)
    backoff: float = Field(default=1.0, ge=0)
    helo: str | None = None
    # VERP: each message's envelope sender (MAIL FROM), so that its bounce names its recipient.
    return_path: str | None = None
    dkim: Annotated[tuple[DkimOptions, ...], BeforeValidator(_tables)] = ()
    """DKIM signers; every message carries one DKIM-Signature per signer."""
    # Last, so that an unknown key's message lists the backend's own options first.
    backend: Literal["smtp"] = "smtp"

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> SmtpOptions:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("set both username_env and password_env, or neither")
        return self

    @field_validator("return_path")
    @classmethod
    def _verp_template(cls, value: str | None) -> str | None:
        # Imported here: the transports import their options from this module.
        from digest.bounces.verp import check_template

        return None if value is None else check_template(value)

    @model_validator(mode="after")
    def _one_key_per_selector(self) -> SmtpOptions:
        # A selector's TXT record publishes one public key: two keys under it cannot both verify.
        seen = [(signer.selector.lower(), signer.domain.lower()) for signer in self.dkim]
        if len(set(seen)) < len(seen):
            raise ValueError("dkim: each signer needs its own selector (one DNS record holds one key)")
        return self


class SendGridOptions(_Options):
    """``backend = "sendgrid"``; the API key comes from SENDGRID_API_KEY."""

    api_url: str = "https://api.sendgrid.com"
    batch_size: int = Field(1000, ge=1, le=MAX_PERSONALIZATIONS)
    """Personalizations (recipients) per request."""
    timeout: float = Field(30, gt=0)
    retries: int = Field(5, ge=0)
    backoff: float = Field(1.0, ge=0)
    """First retry delay in seconds; doubles per attempt, with jitter, up to 60 s."""
    categories: list[str] = Field(default_factory=list, max_length=MAX_CATEGORIES - 1)
    """At most nine: the transport adds the list name and SendGrid takes ten."""
    asm_group_id: int | None = None
    sandbox_mode: bool = False
    ip_pool: str | None = Field(None, min_length=2, max_length=64)
    backend: Literal["sendgrid"] = "sendgrid"

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL such as https://api.sendgrid.com")
        return value.rstrip("/")

    @field_validator("categories")
    @classmethod
    def _one_line_names(cls, value: list[str]) -> list[str]:
        # Imported here: digest.ingest imports digest.config, which is still loading at import time.
        from digest.ingest.sanitize import one_line

        names = [one_line(name) for name in value]
        if any(not name or len(name) > 255 for name in names):
            raise ValueError("a category must have 1 to 255 characters")
        return names


# A [transports.<alias>] table: its `backend` says which options it has.
TransportConfig = Annotated[OutboxOptions | SmtpOptions | SendGridOptions, Field(discriminator="backend")]


@dataclass(frozen=True)
class Backend:
    """A backend: its options, and the module whose ``create(options, env, root)`` makes it."""

    options: type[OutboxOptions | SmtpOptions | SendGridOptions]
    module: str

    @property
    def name(self) -> str:
        return str(self.options.model_fields["backend"].default)

    def create(self, options: TransportConfig, env: Mapping[str, str], root: Path) -> Transport:
        """The transport; secrets come only from ``env``, paths are relative to ``root``."""
        transport: Transport = import_module(self.module).create(options, env, root)
        return transport


BACKENDS: Mapping[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend(OutboxOptions, "digest.send.transports.outbox"),
        Backend(SmtpOptions, "digest.send.transports.smtp"),
        Backend(SendGridOptions, "digest.send.transports.sendgrid"),
    )
}
