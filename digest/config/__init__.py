"""config.toml → frozen, validated settings.

Paths are relative to the config file; secrets never live here (only the names of the
environment variables that hold them). A config with mistakes raises one ConfigError that
lists every problem, each naming the key, the file and the line.

``models`` holds the tables and their keys, ``checks`` what spans tables (and the files
named), ``transports`` the backends and their options, ``problems`` turns validation errors into
plain words, ``load`` reads the file.
"""

from digest.config.load import DEFAULT_CONFIG, Config, config_path, load_config
from digest.config.models import (
    Bounces,
    Desks,
    Duration,
    Feed,
    Fetch,
    Guardrail,
    MailingList,
    Newsroom,
    Render,
    Schedule,
    Server,
    Settings,
    State,
    slugify,
)
from digest.config.transports import BACKENDS, OutboxOptions, SendGridOptions, SmtpOptions, TransportConfig

__all__ = [
    "BACKENDS",
    "DEFAULT_CONFIG",
    "Bounces",
    "Config",
    "Desks",
    "Duration",
    "Feed",
    "Fetch",
    "Guardrail",
    "MailingList",
    "Newsroom",
    "OutboxOptions",
    "Render",
    "Schedule",
    "SendGridOptions",
    "Server",
    "Settings",
    "SmtpOptions",
    "State",
    "TransportConfig",
    "config_path",
    "load_config",
    "slugify",
]
