"""Transports deliver batches of one variant to many recipients (outbox, smtp, sendgrid).

Each backend module has ``create(options, env, root) -> Transport``, taking its options as
``digest.config.transports`` validated them when the config was loaded: secrets come only from
``env``, relative paths are relative to ``root`` (the config file's folder).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from digest.config.transports import BACKENDS, TransportConfig
from digest.send.transports.base import Batch, Outcome, Transport


def create_transport(options: TransportConfig, root: Path, env: Mapping[str, str] | None = None) -> Transport:
    """The transport of a ``[transports.<alias>]`` table (``config.settings.transports[alias]``)."""
    return BACKENDS[options.backend].create(options, os.environ if env is None else env, root)


def send_one(options: TransportConfig, root: Path, env: Mapping[str, str], batch: Batch) -> Outcome:
    """A batch of one message (a resend, a confirmation, a test send) on a connection of its own.

    Raises TransportError when the transport cannot be created or reached at all; each caller
    says what that means for its message.
    """
    transport = create_transport(options, root, env)
    transport.open()
    try:
        (outcome,) = transport.send(batch)
    finally:
        transport.close()
    return outcome
