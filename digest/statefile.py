"""The configured state store: [state] url resolved against config.toml, then opened.

Kept out of digest.state, which knows URLs but not configs. A command that writes opens
the store and migrates it once (``open_store(config)``, then ``store.migrate()``); one that
only reads uses ``open_reader``, which creates and upgrades nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from digest.config import Config
from digest.state import Store


def state_url(config: Config) -> str:
    """The configured URL, with a relative SQLite path made relative to config.toml."""
    raw = config.settings.state.url
    try:
        url = make_url(raw)
    except ArgumentError:
        raise config.error(("state", "url"), f"{raw!r} is not a database URL") from None
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        if not path.is_absolute():
            path = config.root / path
        url = url.set(database=str(path))
    return url.render_as_string(hide_password=False)


def forget_key_from(env: Mapping[str, str]) -> bytes:
    """The key of forgotten addresses' hashes: derived from $DIGEST_SECRET (the demo secret
    when it is unset, as for a message that goes to no one: ``signing_secret(env, None)``)."""
    from digest.send.unsubscribe import signing_secret
    from digest.state.forgotten import forget_key

    return forget_key(signing_secret(env, None))


def open_store(config: Config, env: Mapping[str, str] | None = None) -> Store:
    """The configured store, opened but not migrated: a writer calls ``migrate()`` on it.

    ``env`` (default: the process's) holds the secret the forgotten addresses are hashed with.
    """
    environment = os.environ if env is None else env
    return Store(state_url(config), forget_key=lambda: forget_key_from(environment))


def open_reader(config: Config) -> Store | None:
    """The store for a command that only reads it (jobs, checks); None when there is no state yet.

    Creates nothing and upgrades nothing: an older schema is an error, left for the sender
    to migrate.
    """
    return Store.for_reading(state_url(config))
