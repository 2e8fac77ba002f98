"""A send's import of its list's subscriber file, the file's problems logged as they are read.

Logged here, as they are read, and nowhere else: a scheduled run has no summary to print them,
and `digest send` must not print them twice.
"""

from __future__ import annotations

import datetime as dt
import logging

from digest.config import Config, MailingList
from digest.state import Store
from digest.state.imports import OnStaged, import_subscribers
from digest.subscribers import Problem

log = logging.getLogger(__name__)

# Subscriber-file problems logged by one run; the rest are counted in one line.
SHOWN_PROBLEMS = 50


def import_logged(
    config: Config,
    store: Store,
    mailing_list: MailingList,
    problems: list[str],
    *,
    now: dt.datetime,
    on_staged: OnStaged | None = None,
) -> None:
    """Import the list's subscriber file into the store (skipped when it has not changed since
    the last import); each bad row is added to ``problems`` and the first ones logged.
    ``on_staged``: as ``import_subscribers``'."""
    path = config.subscriber_file(mailing_list)
    if path is None:
        return
    name = mailing_list.name

    def logged(problem: Problem) -> None:
        problems.append(str(problem))
        if len(problems) <= SHOWN_PROBLEMS:
            event = {"event": "subscriber_problem", "list": name, "line": problem.line}
            log.warning("%s", problem, extra={**event, "path": str(problem.path)})

    desks = config.list_desks(mailing_list)
    report = import_subscribers(store, name, path, desks, now=now, on_problem=logged, on_staged=on_staged)
    if len(problems) > SHOWN_PROBLEMS:
        log.warning(
            "… and %d more subscriber problems in %s (`digest subscribers check` lists them)",
            len(problems) - SHOWN_PROBLEMS,
            path,
            extra={"event": "subscriber_problems_omitted", "list": name, "path": str(path)},
        )
    if not report.skipped:
        log.info("%s", report.describe(), extra={"event": "subscribers_imported", "list": name})
