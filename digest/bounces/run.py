"""`digest bounces import` and `fetch` as library calls: read, handle, tell what happened."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from digest.bounces.mailboxes import MailboxClient, fetch, open_imap, read_paths
from digest.bounces.process import Processor, Tally
from digest.config import Config
from digest.send.unsubscribe import checking_secret
from digest.state import Store

ORDER = (
    "hard bounces",
    "soft bounces",
    "complaints",
    "unsubscribes",
    "already read",
    "ignored (auto-reply)",
    "ignored (not a failure)",
    "unattributed",
)


def import_paths(
    config: Config, store: Store, paths: list[Path], *, env: Mapping[str, str], now: dt.datetime
) -> Tally:
    """Handle every message in these Maildir folders, mbox files and .eml files."""
    processor = Processor(config, store, checking_secret(env), now=now)
    tally = Tally()
    for origin, raw in read_paths(paths):
        processor.handle(raw, origin, tally)
    return tally


def fetch_mailbox(
    config: Config,
    store: Store,
    *,
    env: Mapping[str, str],
    now: dt.datetime,
    client: MailboxClient | None = None,
) -> Tally:
    """Handle every message of the ``[bounces]`` IMAP mailbox, moving each out once handled."""
    processor = Processor(config, store, checking_secret(env), now=now)
    tally = Tally()
    mailbox = client or open_imap(config.settings.bounces, env, config.root)
    fetch(mailbox, lambda raw, origin: processor.handle(raw, origin, tally))
    return tally


def describe(tally: Tally, store: Store) -> list[str]:
    """The lines `digest bounces` prints: what was read, who left, what is kept and where."""
    total = sum(tally.counts.values())
    counted = ", ".join(f"{name} {tally.counts[name]:,}" for name in ORDER if tally.counts[name])
    lines = [f"read {total:,} message{'s' * (total != 1)}" + (f": {counted}" if counted else "")]
    if tally.suppressed:
        lines.append(f"suppressed {len(tally.suppressed):,}: {', '.join(sorted(tally.suppressed))}")
    kept = store.unattributed.count()
    if tally.unattributed or kept:
        lines.append(
            f"{tally.unattributed:,} could not be tied to a recipient; {kept:,} kept in all, in the state "
            f"database's unattributed_mail table: `digest bounces unattributed` lists them"
        )
    return lines
