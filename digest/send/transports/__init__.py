"""Transports deliver batches of one variant to many recipients (outbox, smtp, sendgrid).

Each backend module exposes ``Options`` (a pydantic model of its config keys, unknown keys
rejected) and ``create(options, env, root) -> Transport``: secrets come only from ``env``,
relative paths are relative to ``root`` (the config file's folder).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from digest.send.transports.base import Transport

BACKENDS = {
    "outbox": "digest.send.transports.outbox",
    "smtp": "digest.send.transports.smtp",
    "sendgrid": "digest.send.transports.sendgrid",
}


def options_model(backend: str) -> type[BaseModel]:
    return import_module(BACKENDS[backend]).Options


def create_transport(
    backend: str, options: Mapping[str, Any], root: Path, env: Mapping[str, str] | None = None
) -> Transport:
    module = import_module(BACKENDS[backend])
    settings = module.Options.model_validate(dict(options))
    return module.create(settings, os.environ if env is None else env, root)
