"""The state store: one small API over SQLAlchemy Core for everything digest remembers."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, insert, inspect, select, text, update
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, OperationalError

from digest.config import Config
from digest.edition.frozen import dump_edition, load_edition
from digest.errors import NoStateError, StateError
from digest.ingest.fetch import CachedFeed
from digest.model import Edition
from digest.render import Rendered
from digest.state import schema
from digest.state.gaps import open_gaps, record_gaps
from digest.state.ledger import Ledger
from digest.state.resends import Resends
from digest.state.runs import Runs
from digest.state.suppressions import Suppressions


def _sqlite_pragmas(connection: object, _record: object) -> None:
    # Transactions are begun explicitly (below), so the driver must not begin its own.
    connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = connection.cursor()  # type: ignore[attr-defined]
    # WAL lets a reader (preview, jobs) look while a sender writes; busy_timeout waits out a writer.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# Every hint about replacing a damaged database says what a new one would not have, and how to
# carry over the one part that must never be lost.
AFRESH = (
    "a new database would lose the ledger of who was sent what, the frozen editions and the "
    "stories already sent, and the unsubscribes, bounces and complaints, so everyone who left "
    "would be mailed again; to keep the suppressions, run `digest suppressions export --out "
    "suppressions.csv` before moving this one aside, then `digest suppressions import "
    "suppressions.csv` into the new one"
)

# An arbitrary number naming the PostgreSQL advisory lock taken while the schema is migrated.
MIGRATION_LOCK = 0x6469676573  # "diges"

# APScheduler's job table (digest.schedule.service keeps its jobs there).
JOB_TABLE = "apscheduler_jobs"


def _sqlite_begin(conn: Connection) -> None:
    # Take the write lock up front: two senders that both read, then both try to write,
    # would otherwise fail with "database is locked" instead of waiting their turn.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_reading(conn: Connection) -> None:
    # A reader (the preview) never writes: it need not wait for, nor hold up, a sender.
    conn.exec_driver_sql("BEGIN")


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


def open_store(config: Config) -> Store:
    return Store(state_url(config))


def open_reader(config: Config) -> Store | None:
    """The store for a command that only reads it (jobs, checks); None when there is no state yet.

    Creates nothing (SQLite would make a new file just by connecting to a missing one) and
    upgrades nothing: an older schema is an error, left for the sender to migrate.
    """
    url = state_url(config)
    database = make_url(url).database
    if make_url(url).get_backend_name() == "sqlite" and database and not Path(database).exists():
        return None
    try:
        return Store(url, migrate=False)
    except NoStateError:
        return None


class Store:
    """Feed cache, editions and seen stories; created and migrated on first use."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        """Open the store at ``url``; ``migrate=False`` (a reader: the preview) never creates
        or upgrades the schema, and refuses a database whose schema is not this digest's."""
        self.url = make_url(url)
        if self.url.drivername == "postgresql":
            # psycopg 3 (a dependency), not SQLAlchemy's default driver psycopg2.
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.label = (
            self.url.database if self.url.get_backend_name() == "sqlite" else self.url.render_as_string()
        )
        if self.url.get_backend_name() == "sqlite" and self.url.database not in (None, "", ":memory:"):
            _refuse_an_emptied_file(Path(self.url.database))
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(self.url)
        if self.url.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin if migrate else _sqlite_begin_reading)
            event.listen(self.engine, "handle_error", self._damaged)
        self._migrate(create=migrate)
        self.suppressions = Suppressions(self.engine)
        self.ledger = Ledger(self.engine)
        self.runs = Runs(self.engine)
        self.resends = Resends(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _damaged(self, context: ExceptionContext) -> None:
        """Damage found by any query, not only while opening, is a StateError naming the file.

        Without this, a damaged page that only a later query reads (the editions, the ledger)
        would surface as an unexpected error with the SQL and no file name.
        """
        original = context.original_exception
        if getattr(original, "sqlite_errorname", None) == "SQLITE_CORRUPT":
            raise StateError(
                f"the state database is damaged: {original}",
                path=self.label,
                hint=f"restore it from a backup; {AFRESH}",
            ) from None

    def _migrate(self, *, create: bool) -> None:
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Senders starting together on a new database must not create it twice.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                if create:
                    schema.meta.create(conn, checkfirst=True)
                elif not inspect(conn).has_table(schema.meta.name):
                    raise NoStateError(
                        "the state database has no digest state in it yet, and a preview does not create it",
                        path=self.label,
                        hint="run `digest build` or `digest send` once, or check [state] url",
                    )
                row = conn.execute(
                    select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
                ).first()
                version = _version(row[0], self.label) if row else 0
                if version > schema.SCHEMA_VERSION:
                    raise StateError(
                        f"the state database has schema version {version}, newer than this digest "
                        f"understands ({schema.SCHEMA_VERSION})",
                        path=self.label,
                        hint="upgrade digest, or point [state] url at another database",
                    )
                if version < schema.SCHEMA_VERSION and not create:
                    # Upgrading it would lock out the older digest that may be sending from it.
                    raise StateError(
                        f"the state database has schema version {version}, older than this digest's "
                        f"({schema.SCHEMA_VERSION}), and a preview does not upgrade it",
                        path=self.label,
                        hint="upgrade the digest that sends from it (its next run upgrades the "
                        "database), or preview with that digest's version",
                    )
                if version < schema.SCHEMA_VERSION:
                    # New tables are created; columns added to old tables need their own step.
                    schema.metadata.create_all(conn)
                    if version:
                        for step in range(version + 1, schema.SCHEMA_VERSION + 1):
                            for statement in schema.MIGRATIONS.get(step, ()):
                                conn.execute(text(statement))
                    if row:
                        conn.execute(
                            update(schema.meta)
                            .where(schema.meta.c.key == "schema_version")
                            .values(value=str(schema.SCHEMA_VERSION))
                        )
                    else:
                        conn.execute(
                            insert(schema.meta).values(key="schema_version", value=str(schema.SCHEMA_VERSION))
                        )
        except (DatabaseError, OperationalError) as exc:
            raise StateError(
                f"cannot open the state database: {exc.orig or exc}",
                path=self.label,
                hint=f"it may be damaged or not a database: restore it from a backup; {AFRESH}",
            ) from None

    def scheduled_runs(self) -> dict[str, dt.datetime | None]:
        """Job id → next run, as `digest schedule` stored them (APScheduler's own table)."""
        if not inspect(self.engine).has_table(JOB_TABLE):
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT id, next_run_time FROM {JOB_TABLE}")).all()
        return {ident: dt.datetime.fromtimestamp(when, dt.UTC) if when else None for ident, when in rows}

    # -- feed cache (digest.ingest.fetch.FeedCache) --------------------------------------

    def cached_feed(self, source: str) -> CachedFeed | None:
        table = schema.feed_cache
        with self.engine.connect() as conn:
            row = conn.execute(select(table.c.body, table.c.headers).where(table.c.source == source)).first()
        return CachedFeed(bytes(row.body), json.loads(row.headers)) if row else None

    def remember_feed(self, source: str, body: bytes, headers: dict[str, str]) -> None:
        table = schema.feed_cache
        values = {"body": body, "headers": json.dumps(headers), "fetched_at": dt.datetime.now(dt.UTC)}
        with self.engine.begin() as conn:
            changed = conn.execute(update(table).where(table.c.source == source).values(**values)).rowcount
            if not changed:
                conn.execute(insert(table).values(source=source, **values))

    # -- editions and seen stories ---------------------------------------------------------

    def last_window_end(self, list_name: str) -> dt.datetime | None:
        """Where the list's previous edition stopped; the next one starts there."""
        table = schema.editions
        with self.engine.connect() as conn:
            return conn.execute(
                select(table.c.window_end)
                .where(table.c.list_name == list_name)
                .order_by(table.c.window_end.desc())
                .limit(1)
            ).scalar()

    def feed_gaps(self, list_name: str) -> dict[str, dt.datetime]:
        """Feeds the list's editions went out without → since when (digest.state.gaps)."""
        return open_gaps(self.engine, list_name)

    def last_edition(self, list_name: str) -> tuple[str, dt.datetime] | None:
        """The id of the list's latest frozen edition and when it was frozen, whoever sent it."""
        table = schema.editions
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.id, table.c.created_at)
                .where(table.c.list_name == list_name)
                .order_by(table.c.window_end.desc())
                .limit(1)
            ).first()
        return (row.id, row.created_at) if row else None

    def settle_gaps(self, edition: Edition) -> None:
        """Open and close the list's feed gaps for an edition that is not frozen (it is empty)."""
        with self.engine.begin() as conn:
            record_gaps(conn, edition)

    def frozen_edition(self, edition_id: str) -> Edition | None:
        """The edition frozen under ``edition_id``, as it was frozen."""
        table = schema.editions
        with self.engine.connect() as conn:
            content = conn.execute(select(table.c.content).where(table.c.id == edition_id)).scalar()
        return load_edition(content) if content else None

    def edition_ids(self, list_name: str, limit: int = 5) -> list[str]:
        """The ids of the list's latest frozen editions, newest first."""
        table = schema.editions
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(table.c.id)
                    .where(table.c.list_name == list_name)
                    .order_by(table.c.edition_date.desc())
                    .limit(limit)
                ).scalars()
            )

    def save_variant(self, edition_id: str, variant: str, rendered: Rendered, item_ids: list[str]) -> None:
        """Freeze one rendered variant of an edition (the first one saved wins)."""
        table = schema.edition_variants
        with contextlib.suppress(IntegrityError), self.engine.begin() as conn:
            exists = conn.execute(
                select(table.c.variant).where(table.c.edition_id == edition_id, table.c.variant == variant)
            ).first()
            if not exists:
                conn.execute(
                    insert(table).values(
                        edition_id=edition_id,
                        variant=variant,
                        subject=rendered.subject,
                        preheader=rendered.preheader,
                        html=rendered.html,
                        text=rendered.text,
                        item_ids=json.dumps(item_ids),
                        item_count=len(item_ids),
                    )
                )

    def variant(self, edition_id: str, variant: str) -> Rendered | None:
        table = schema.edition_variants
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.subject, table.c.preheader, table.c.html, table.c.text).where(
                    table.c.edition_id == edition_id, table.c.variant == variant
                )
            ).first()
        return Rendered(*row) if row else None

    def seen(self, list_name: str, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` (story ids or canonical links) an earlier edition of the list carried."""
        with self.engine.connect() as conn:
            return _seen(conn, list_name, keys)

    def record_edition(self, edition: Edition, *, now: dt.datetime | None = None) -> bool:
        """Remember the edition and mark its stories seen; False if it was recorded before.

        Two senders may freeze the same edition at once: the first wins, the other gets False
        (and must then use the frozen one), with nothing half-written.
        """
        now = now or dt.datetime.now(dt.UTC)
        try:
            return self._record_edition(edition, now)
        except IntegrityError:
            return False

    def _record_edition(self, edition: Edition, now: dt.datetime) -> bool:
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(schema.editions.c.id).where(schema.editions.c.id == edition.id)
            ).first()
            if exists:
                return False
            conn.execute(
                insert(schema.editions).values(
                    id=edition.id,
                    list_name=edition.list_name,
                    edition_date=edition.date,
                    window_start=edition.window.start,
                    window_end=edition.window.end,
                    item_count=len(edition.items),
                    created_at=now,
                    content=dump_edition(edition),
                )
            )
            # Both keys: the same story may come back under another id but the same link.
            ids = {key for item in edition.items for key in (item.id, item.canonical_url)}
            already = _seen(conn, edition.list_name, ids)
            rows = [
                {"list_name": edition.list_name, "item_id": item_id, "edition_id": edition.id, "seen_at": now}
                for item_id in sorted(ids - already)
            ]
            if rows:
                conn.execute(insert(schema.seen_items), rows)
            record_gaps(conn, edition)
        return True


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


def _version(value: str, label: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise StateError(
            f"the state database's schema version {value!r} is not a number",
            path=label,
            hint="it may be corrupted or not digest's; point [state] url at digest's database",
        ) from None


def _seen(conn: Connection, list_name: str, keys: Iterable[str]) -> set[str]:
    table = schema.seen_items
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = select(table.c.item_id).where(table.c.list_name == list_name, table.c.item_id.in_(chunk))
        found.update(conn.execute(query).scalars())
    return found
