"""The state store: one engine, and a repository for each part of what digest remembers.

Opening a store touches nothing. A command that writes migrates it first, once
(``Store.migrate``: creates or upgrades the schema); a command that only reads verifies it
(``Store.verify``: refuses a database that is missing or not of this schema, and creates
nothing). A store that was not migrated refuses to write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DatabaseError, OperationalError

from digest.errors import NoStateError, StateError
from digest.state.editions import Editions
from digest.state.events import Events
from digest.state.feeds import Feeds
from digest.state.gaps import Gaps
from digest.state.holds import Holds
from digest.state.ledger import Ledger
from digest.state.migrate import migrate_schema, verify_schema
from digest.state.outcomes import Outcomes
from digest.state.readers import Readers
from digest.state.resends import Resends
from digest.state.runs import Runs
from digest.state.suppressions import Suppressions
from digest.state.unattributed import Unattributed

# Every hint about replacing a damaged database says what a new one would not have, and how to
# carry over the one part that must never be lost.
AFRESH = (
    "a new database would lose the ledger of who was sent what, the frozen editions and the "
    "stories already sent, and the unsubscribes, bounces and complaints, so everyone who left "
    "would be mailed again; to keep the suppressions, run `digest suppressions export --out "
    "suppressions.csv` before moving this one aside, then `digest suppressions import "
    "suppressions.csv` into the new one"
)

# What every hint about a database that failed in the middle of something ends with: what was
# committed before stays, and a command run again carries on from there (a send from its ledger).
_AGAIN = "what was recorded before the failure is kept: run the command again once it is fixed"
# How long a SQLite writer waits for another one before it gives up.
BUSY_SECONDS = 10


def _sqlite_pragmas(connection: object, _record: object) -> None:
    # Transactions are begun explicitly (below), so the driver must not begin its own.
    connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = connection.cursor()  # type: ignore[attr-defined]
    # WAL lets a reader (preview, jobs) look while a sender writes; busy_timeout waits out a writer.
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives the
    # process being killed (what exactly-once is about: each outcome is committed before its
    # connection sends again), and the file stays consistent on power loss, which may undo the
    # last commits since a checkpoint, so those messages would be sent again, never lost.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """Feed cache, editions, ledger, readers, suppressions, runs, gaps and resends of one database."""

    def __init__(self, url: str, *, forget_key: Callable[[], bytes] | None = None) -> None:
        """Open the store at ``url`` without creating, upgrading or even connecting to it.

        ``forget_key``: the key of forgotten addresses' hashes (``digest.state.forgotten``),
        asked for only when it is needed.
        """
        given = make_url(url)
        # psycopg 3 (a dependency), not SQLAlchemy's default driver psycopg2.
        self.url = given.set(drivername="postgresql+psycopg") if given.drivername == "postgresql" else given
        # What errors name: the database as config.toml says it (without its password).
        sqlite = given.get_backend_name() == "sqlite"
        self.label = (given.database or "") if sqlite else given.render_as_string()
        self.path = self._sqlite_path()
        if self.path is not None:
            _refuse_an_emptied_file(self.path)
        self.writable = False
        self.engine: Engine = create_engine(self.url)
        event.listen(self.engine, "before_execute", self._refuse_writing)
        event.listen(self.engine, "handle_error", self._failed)
        if self.url.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", self._sqlite_begin)
        self.feeds = Feeds(self.engine)
        self.editions = Editions(self.engine)
        self.gaps = Gaps(self.engine)
        self.suppressions = Suppressions(self.engine)
        self.ledger = Ledger(self.engine)
        self.runs = Runs(self.engine)
        self.resends = Resends(self.engine)
        self.forget_key = forget_key
        self.readers = Readers(self.engine, forget_key)
        self.events = Events(self.engine)
        self.outcomes = Outcomes(self.engine)
        self.holds = Holds(self.engine)
        self.unattributed = Unattributed(self.engine)

    @classmethod
    def for_reading(cls, url: str) -> Store | None:
        """The store at ``url`` verified for a reader; None when there is no state there yet."""
        store = cls(url)
        try:
            return store.verify()
        except NoStateError:
            store.close()
            return None
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def migrate(self) -> Store:
        """Create the schema, or upgrade an older one, and let this store write; returns it.

        The one step that changes the schema: a command that writes runs it once, first.
        """
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writable = True
        try:
            self._schema_step(migrate_schema)
        except BaseException:
            self.writable = False
            raise
        return self

    def verify(self) -> Store:
        """Check, for a reader, that this is digest's state of this schema version; returns it.

        Creates nothing (SQLite would make a new file just by connecting to a missing one)
        and upgrades nothing: an older schema is an error, left for the sender to migrate.
        Raises NoStateError when there is no state yet.
        """
        if self.path is not None and not self.path.exists():
            raise NoStateError("there is no state database here yet", path=self.label)
        self._schema_step(verify_schema)
        return self

    def _schema_step(self, step: Callable[[Connection, str], None]) -> None:
        try:
            with self.engine.begin() as conn:
                step(conn, self.label)
        except (DatabaseError, OperationalError) as exc:
            raise StateError(
                f"cannot open the state database: {exc.orig or exc}",
                path=self.label,
                hint=f"it may be damaged or not a database: restore it from a backup; {AFRESH}",
            ) from None

    def _sqlite_path(self) -> Path | None:
        database = self.url.database
        if self.url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
            return None
        return Path(str(database))

    def _sqlite_begin(self, conn: Connection) -> None:
        # A writer takes the write lock up front: two senders that both read, then both try to
        # write, would otherwise fail with "database is locked" instead of waiting their turn.
        # A reader (the preview) never writes: it need not wait for, nor hold up, a sender.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if self.writable else "BEGIN")

    def _refuse_writing(self, _conn: Connection, clause: object, *_args: object) -> None:
        """A store that was not migrated (a reader's) must not write: its schema may be older."""
        if not self.writable and getattr(clause, "is_dml", False):
            raise StateError(
                "the state database was opened for reading only, and this would write to it",
                path=self.label,
                hint="a command that writes runs Store.migrate() once before it writes",
            )

    def _failed(self, context: ExceptionContext) -> None:
        """A database damaged, out of reach, locked or full is a StateError naming it, from any
        query, not only while opening: otherwise it surfaced as an unexpected error with the SQL
        (a PostgreSQL server stopped in the middle of a send: "unexpected OperationalError")."""
        failure = self._failure(context)
        if failure is not None:
            message, hint = failure
            raise StateError(message, path=self.label, hint=hint) from None

    def _failure(self, context: ExceptionContext) -> tuple[str, str] | None:
        """What went wrong, and its hint, when the database itself failed (not a query)."""
        original = context.original_exception
        code = getattr(original, "sqlite_errorname", "")
        said = (str(original).strip() or type(original).__name__).splitlines()[0]
        if code == "SQLITE_CORRUPT":
            return f"the state database is damaged: {said}", f"restore it from a backup; {AFRESH}"
        if self.url.get_backend_name() != "sqlite" and (context.is_disconnect or context.connection is None):
            lost = "lost the connection to" if context.is_disconnect else "cannot reach"
            return (
                f"{lost} the state database: {said}",
                f"check that the server is running and that `[state] url` is right; {_AGAIN}",
            )
        if code.startswith("SQLITE_BUSY"):
            return (
                f"the state database stayed locked by another process for {BUSY_SECONDS} s",
                f"another digest command (a send, an import) was writing to it; {_AGAIN}",
            )
        if code == "SQLITE_FULL" or code.startswith("SQLITE_IOERR"):
            return (
                f"cannot write the state database: {said}",
                f"free space on its disk, or check the disk; {_AGAIN}",
            )
        return None

    # -- what an edition build reads (digest.edition.build.StateReader) ----------------------

    def last_window_end(self, list_name: str) -> dt.datetime | None:
        return self.editions.last_window_end(list_name)

    def seen(self, list_name: str, keys: Iterable[str]) -> set[str]:
        return self.editions.seen(list_name, keys)

    def feed_gaps(self, list_name: str) -> dict[str, dt.datetime]:
        return self.gaps.open(list_name)


def _refuse_an_emptied_file(path: Path) -> None:
    """SQLite takes an empty file for a new database and would start afresh without a word.

    digest never leaves one (the first thing it does to a new file is switch it to WAL, which
    writes its first page), so an empty state file is one that was truncated or replaced.
    """
    wal = path.with_name(path.name + "-wal")
    if path.is_file() and path.stat().st_size == 0 and not (wal.is_file() and wal.stat().st_size):
        raise StateError(
            "the state database file is empty: the ledger, the stories already sent and the "
            "unsubscribes, bounces and complaints are not in it",
            path=str(path),
            hint="restore it from a backup; or delete the empty file to start a new database, knowing "
            "that it would mail everyone who unsubscribed, bounced or complained, and repeat stories "
            "already sent",
        )
