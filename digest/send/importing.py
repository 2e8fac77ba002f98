"""A send's import of its list's subscriber file, the file's problems logged as they are read.

Logged here, as they are read, and nowhere else: a scheduled run has no summary to print them,
and `digest send` must not print them twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from digest.config import Config, MailingList
from digest.state import Store
from digest.state.imports import Desks, import_subscribers
from digest.subscribers import Problem

log = logging.getLogger(__name__)

# What a send does while the store takes the file's rows in, told the desks they chose.
Meanwhile = Callable[[list[Desks]], None]

# Subscriber-file problems logged by one run; the rest are counted in one line.
SHOWN_PROBLEMS = 50


def import_logged(
    config: Config,
    store: Store,
    mailing_list: MailingList,
    problems: list[str],
    *,
    now: dt.datetime,
    meanwhile: Meanwhile | None = None,
) -> None:
    """Import the list's subscriber file into the store (skipped when it has not changed since
    the last import); each bad row is added to ``problems`` and the first ones logged.

    ``meanwhile`` is run in a thread once the file is read, on the desks its rows chose, while
    the store takes the rows in (on a database server, seconds of its work at a million rows,
    which this process would otherwise wait for); its error is raised once the import is done.
    """
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
    with ThreadPoolExecutor(1, thread_name_prefix="digest-meanwhile") as pool:
        started: list[Future[None]] = []

        def start(choices: list[Desks]) -> None:
            if meanwhile is not None:
                started.append(pool.submit(meanwhile, choices))

        report = import_subscribers(store, name, path, desks, now=now, on_problem=logged, on_read=start)
        for future in started:
            future.result()
    if len(problems) > SHOWN_PROBLEMS:
        log.warning(
            "… and %d more subscriber problems in %s (`digest subscribers check` lists them)",
            len(problems) - SHOWN_PROBLEMS,
            path,
            extra={"event": "subscriber_problems_omitted", "list": name, "path": str(path)},
        )
    if not report.skipped:
        log.info("%s", report.describe(), extra={"event": "subscribers_imported", "list": name})
