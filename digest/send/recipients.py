"""A send's recipients: its list's subscriber file imported, then its edition's ledger filled.

On SQLite, one after the other, before the send (SQLite has one writer). On a database server
both are the server's work, and run in a thread of their own (``digest.send.filling``) beside
the send, which waits only for the variants (to render them before any batch) and for the
fill's first part. The longest of that work is a list's first import, inserting its readers
(4.5 s of the server's time at a million, with nothing to send until they were in). So then
the fill reads the rows the import staged, before they go in as readers
(``import_subscribers(..., on_staged=...)``), and the sender sends while the server inserts
them; a reader who came in another way meanwhile (a sign-up, an editor) is added once the
import is done.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from functools import partial
from typing import Protocol

from sqlalchemy import Connection

from digest.config import MailingList
from digest.model import Edition
from digest.send.filling import Filling
from digest.state import Store
from digest.state.imports import OnStaged
from digest.state.ledger_types import Status
from digest.state.recipients import Group, ReaderRows, fill_from, fill_ledger, read_groups, readers_of

Groups = dict[Group, Status]
Problems = list[str]  # named: in ``Sending``, ``list`` is the send's mailing list


class Sending(Protocol):
    """What a send's recipients need of it (``digest.send.run.Sender``)."""

    store: Store
    list: MailingList
    edition_id: str
    now: dt.datetime

    def import_subscribers(self, problems: Problems, on_staged: OnStaged | None = None) -> None: ...

    def groups(self, edition: Edition) -> Groups: ...

    def statuses(self, edition: Edition, groups: Iterable[Group]) -> Groups: ...

    def variant_of(self, desks: tuple[str, ...] | None) -> str: ...


def recipients(sending: Sending, edition: Edition, problems: list[str]) -> tuple[Filling, Groups]:
    """The fill of the send's ledger and the list's variants (``Sender.groups``): on a database
    server, the import and the fill started and the variants known; on SQLite, the import done
    and the fill still to run (``Filling.run``). The import's bad rows go to ``problems``."""
    if not sending.store.ledger.on_server:
        sending.import_subscribers(problems)
        groups = sending.groups(edition)
        fill = partial(
            fill_ledger, sending.store.engine, sending.edition_id, sending.list.name, groups, now=sending.now
        )
        return Filling(fill), groups
    intake = _Intake(sending, edition, problems)
    filling = Filling(intake)
    filling.start()
    try:
        return filling, intake.groups.result()
    except BaseException:
        filling.close()
        raise


class _Intake:
    """The import and the fill, in the fill's thread; ``groups`` once they are known."""

    def __init__(self, sending: Sending, edition: Edition, problems: list[str]) -> None:
        self.sending, self.edition, self.problems = sending, edition, problems
        self.groups: Future[Groups] = Future()

    def __call__(self, *, on_part: Callable[[], None] | None) -> None:
        try:
            self._run(on_part)
        except BaseException as error:
            if not self.groups.done():
                self.groups.set_exception(error)
            raise

    def _run(self, on_part: Callable[[], None] | None) -> None:
        sending = self.sending
        fill = partial(fill_from, edition_id=sending.edition_id, now=sending.now, on_part=on_part)

        def staged(conn: Connection, readers: ReaderRows) -> None:
            with conn.begin():
                found = read_groups(conn, readers, sending.variant_of)
            fill(partial(_transaction, conn), readers=readers, groups=self._known(found))

        sending.import_subscribers(self.problems, staged)
        engine = sending.store.engine
        if not self.groups.done():  # no first import (a later one, or none): the readers are in
            fill(engine.begin, readers=readers_of(sending.list.name), groups=self._known(None))
            return
        # The list had no readers when its first import began: any not from the file came since.
        others = readers_of(sending.list.name, from_file=False)
        with engine.connect() as conn:
            found = read_groups(conn, others, sending.variant_of)
        if found:
            fill(engine.begin, readers=others, groups=sending.statuses(self.edition, found))

    def _known(self, groups: list[Group] | None) -> Groups:
        """The variants, with their statuses, told to the send (None: the readers')."""
        sending = self.sending
        known = sending.groups(self.edition) if groups is None else sending.statuses(self.edition, groups)
        self.groups.set_result(known)
        return known


@contextmanager
def _transaction(conn: Connection) -> Iterator[Connection]:
    with conn.begin():
        yield conn
