"""`digest build`: feeds → edition → rendered files for each list, written atomically."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from digest.config import Config
from digest.edition import build_edition
from digest.edition.export import edition_json
from digest.ingest.collect import collect
from digest.model import Edition
from digest.output import write_atomically
from digest.render import Greeting, Rendered, environment, render_edition, render_greeting
from digest.render.message import compose, personalize
from digest.send.unsubscribe import Addresser
from digest.state import Store

SAMPLE_RECIPIENT = "subscriber@example.invalid"


@dataclass(frozen=True, slots=True)
class Built:
    edition: Edition
    rendered: Rendered
    files: tuple[Path, ...]


def build(
    config: Config,
    *,
    out: Path,
    now: dt.datetime,
    list_names: list[str] | None = None,
    date: dt.date | None = None,
    store: Store | None = None,
) -> list[Built]:
    """Build each named list (default: all); a --date build leaves the state untouched."""
    names = list_names or [mailing_list.name for mailing_list in config.settings.lists]
    lists = [config.mailing_list(name) for name in names]
    feeds = collect(config, now=now, cache=store.feeds if store else None)
    env = environment(config)
    greeting = render_greeting(env)
    results = []
    for mailing_list in lists:
        edition = build_edition(
            config, mailing_list.name, now=now, date=date, store=store if date is None else None, feeds=feeds
        )
        rendered = render_edition(config, edition, env)
        results.append(Built(edition, rendered, _write(config, out, edition, rendered, greeting, now)))
    return results


def _write(
    config: Config, out: Path, edition: Edition, rendered: Rendered, greeting: Greeting, now: dt.datetime
) -> tuple[Path, ...]:
    mailing_list = config.mailing_list(edition.list_name)
    # The placeholder subscriber a built edition is shown to, with links of the real form.
    addresser = Addresser(config, mailing_list, env=os.environ, backend=None)
    recipient, headers = addresser.message(SAMPLE_RECIPIENT, "", greeting.to(""))
    sender = config.settings.newsroom.sender
    message = compose(rendered, recipient, sender=sender, edition_id=edition.id, date=now, headers=headers)
    html, text = personalize(rendered, recipient)
    data = {
        out / f"{edition.list_name}.html": html.encode("utf-8"),
        out / f"{edition.list_name}.txt": text.encode("utf-8"),
        out / f"{edition.list_name}.eml": message.as_bytes(),
        out / f"{edition.list_name}.json": (
            json.dumps(
                edition_json(edition, subject=rendered.subject, preheader=rendered.preheader),
                ensure_ascii=False,
                indent=2,
            )
            + "\n"
        ).encode("utf-8"),
    }
    write_atomically(data)
    return tuple(data)
