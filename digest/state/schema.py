"""The state database's tables and its version; SQL that SQLite and PostgreSQL both run."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

SCHEMA_VERSION = 10
# The share of a ledger page its rows fill when added, on PostgreSQL: the rest is for their
# recorded versions (a row about 180 bytes when added, 250 with its outcome).
LEDGER_FILLFACTOR = 40

# The condition of ix_subscribers_pending: a query repeats it word for word, as SQLite uses a
# partial index only for a query whose condition holds the index's own.
PENDING_READERS = "status = 'pending'"

# Statements that bring an existing database from the previous version to this one, beyond
# creating the tables that are new (which create_all does). SQL both SQLite and PostgreSQL run.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE editions ADD COLUMN content TEXT",),
    3: (),  # only new tables: job_runs, scheduler_lock
    4: (
        "DROP INDEX IF EXISTS ix_send_ledger_status",
        "CREATE INDEX IF NOT EXISTS ix_send_ledger_claim ON send_ledger (edition_id, status, variant, id)",
    ),
    5: (),  # only new tables: feed_gaps, resends
    6: (),  # only new tables: subscribers, subscriber_events, subscriber_files, rate_limits
    7: (),  # only new tables: delivery_events, unattributed_mail, list_holds
    # Claims are rows of send_claims: a row an older digest left claimed is taken back.
    8: (
        "UPDATE send_ledger SET status = 'pending' WHERE status = 'sending'",
        "ALTER TABLE send_ledger DROP COLUMN claimed_at",
    ),
    # The status out of the claim index, so that recording an outcome writes no index entry.
    9: (
        "DROP INDEX IF EXISTS ix_send_ledger_claim",
        "CREATE INDEX IF NOT EXISTS ix_send_ledger_run ON send_ledger (edition_id, variant, id)",
    ),
    # Readers found by address across lists (a bounce), and the unconfirmed ones by age.
    10: (
        "DROP INDEX IF EXISTS ix_subscribers_status",
        "CREATE INDEX IF NOT EXISTS ix_subscribers_email ON subscribers (email)",
        "CREATE INDEX IF NOT EXISTS ix_subscribers_pending ON subscribers (signed_up_at)"
        f" WHERE {PENDING_READERS}",
    ),
}
# Statements of a step that only PostgreSQL runs, after the step's MIGRATIONS.
POSTGRESQL_MIGRATIONS: dict[int, tuple[str, ...]] = {
    9: (f"ALTER TABLE send_ledger SET (fillfactor = {LEDGER_FILLFACTOR})",),
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return value.replace(tzinfo=dt.UTC) if value is not None else None


metadata = MetaData()

meta = Table(
    "digest_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

feed_cache = Table(
    "feed_cache",
    metadata,
    Column("source", Text, primary_key=True),
    Column("body", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False),
    Column("fetched_at", UTCDateTime, nullable=False),
)

editions = Table(
    "editions",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("list_name", String(200), nullable=False, index=True),
    Column("edition_date", Date, nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # v2: the frozen edition itself (digest.edition.frozen), so a resumed send renders the same.
    Column("content", Text),
)

seen_items = Table(
    "seen_items",
    metadata,
    Column("list_name", String(200), nullable=False),
    Column("item_id", String(600), nullable=False),
    Column("edition_id", String(200), nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("list_name", "item_id"),
)


# -- version 2: sending ------------------------------------------------------------------

# One row per rendered variant of a frozen edition: a resumed send sends exactly this.
edition_variants = Table(
    "edition_variants",
    metadata,
    Column("edition_id", String(200), nullable=False),
    Column("variant", String(500), nullable=False),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("item_ids", Text, nullable=False),
    Column("item_count", Integer, nullable=False),
    PrimaryKeyConstraint("edition_id", "variant"),
)

# The send ledger: edition × recipient → pending / sent / failed / skipped / suppressed; a
# pending row under a claim (send_claims) is being sent. batch_id: who recorded the outcome.
ledger = Table(
    "send_ledger",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("edition_id", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("variant", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("batch_id", String(64)),
    Column("provider_id", Text),
    Column("error", Text),
    Column("sent_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("edition_id", "email", name="uq_ledger_edition_email"),
    # A claim reads the first pending rows of one variant in id order: without this it scans
    # every pending row of the edition for each batch (a variant's rows are spread out). No
    # index has a column that recording an outcome changes (the status above all), and the
    # pages keep room for each row's next version: so PostgreSQL writes a recorded row in its
    # own page and no index entry (a HOT update), a third of the cost (docs/performance.md).
    Index("ix_send_ledger_run", "edition_id", "variant", "id"),
    postgresql_with={"fillfactor": LEDGER_FILLFACTOR},
)

# A sender's claim on the pending ledger rows of one variant from first_id to last_id: a claim
# is one row here rather than a write to each of its thousand rows, which on PostgreSQL cost
# a new row version and three index entries each (docs/performance.md).
claims = Table(
    "send_claims",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("edition_id", String(200), nullable=False),
    Column("variant", String(500), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("first_id", BigInteger, nullable=False),
    Column("last_id", BigInteger, nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    Index("ix_send_claims_range", "edition_id", "variant", "first_id"),
)

# Suppressions: list_name is the list for an unsubscribe, "*" for bounces and complaints.
suppressions = Table(
    "suppressions",
    metadata,
    Column("email", String(320), nullable=False),
    Column("list_name", String(200), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("source", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("email", "list_name"),
)


# -- version 3: scheduling -----------------------------------------------------------------

# What each scheduled (or missed) run of a list did, for `digest jobs` and the operator.
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("list_name", String(200), nullable=False, index=True),
    Column("scheduled_for", UTCDateTime),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("result", String(16), nullable=False),
    Column("detail", Text, nullable=False, default=""),
)

# One row while a `digest schedule` runs against this database: APScheduler job stores
# must never be shared by two schedulers.
scheduler_lock = Table(
    "scheduler_lock",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)


# -- version 5: feed outages -----------------------------------------------------------------

# A feed a list's edition went out without, and since when its stories were not carried: the
# next edition that reads it catches them up (back to [fetch] catch_up), then the row goes.
feed_gaps = Table(
    "feed_gaps",
    metadata,
    Column("list_name", String(200), nullable=False),
    Column("feed", String(600), nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("edition_id", String(200), nullable=False),
    PrimaryKeyConstraint("list_name", "feed"),
)


# -- version 5: resends ----------------------------------------------------------------------

# Each `digest send --resend`: an edition once more to one reader. Kept apart from the ledger,
# whose row for the reader stays what the original send did.
resends = Table(
    "resends",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("edition_id", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("variant", String(500), nullable=False),
    Column("transport", String(200), nullable=False),
    Column("message_id", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_id", Text),
    Column("error", Text),
    Column("sent_at", UTCDateTime, nullable=False),
    Index("ix_resends_edition_email", "edition_id", "email"),
)


# -- version 6: readers ----------------------------------------------------------------------

# Each list's readers: imported from its subscriber file, signed up on the web, or added by an
# editor. ``email`` is the folded address (digest.address.address_key); ``desks`` the JSON array
# of the desks chosen (NULL: every desk). The consent columns are what a newsroom shows a
# regulator: when and where the address signed up, and when and from where it confirmed.
# ``file_row`` is a hash of the file's row as last imported, so an import can tell a row the
# editors changed from one they left alone (which must not undo the reader's own change).
subscribers = Table(
    "subscribers",
    metadata,
    Column("list_name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("desks", Text),
    Column("status", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("file_row", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("signed_up_at", UTCDateTime),
    Column("signup_url", Text),
    Column("signup_ip", String(64)),
    Column("confirmed_at", UTCDateTime),
    Column("confirm_url", Text),
    Column("confirm_ip", String(64)),
    Column("confirm_sent_at", UTCDateTime),
    PrimaryKeyConstraint("list_name", "email"),
    # A bounce or a complaint leaves every list: the address's readers, wherever they are.
    # (A list's readers are the primary key's; an index on their status, which most share,
    # cost an import a fifth of its inserts and served only a count.)
    Index("ix_subscribers_email", "email"),
    # Unconfirmed sign-ups, a few among many, for their expiry (``PENDING_READERS``).
    Index(
        "ix_subscribers_pending",
        "signed_up_at",
        sqlite_where=text(PENDING_READERS),
        postgresql_where=text(PENDING_READERS),
    ),
)

# What happened to a reader, for `digest subscribers show`: signed up, confirmed, desks
# changed, unsubscribed, bounced, changed by the file…
subscriber_events = Table(
    "subscriber_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("list_name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event", String(32), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_subscriber_events_email", "email"),
)

# The subscriber file each list last imported, so an unchanged file is not read again.
subscriber_files = Table(
    "subscriber_files",
    metadata,
    Column("list_name", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
)

# Counters for the public forms' limits, kept here so that every worker and machine serving
# the same database shares them: one row per key (a client, an address) and window.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(200), nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("hits", Integer, nullable=False),
    PrimaryKeyConstraint("key", "window_start"),
)


# -- version 7: what happens after sending ----------------------------------------------------

# One row per thing a provider or a mail server told us about a message already sent: a
# delivery, an open, a click, a bounce, a complaint, an unsubscribe. ``event_id`` makes each
# report count once however often it is delivered (SendGrid's sg_event_id; for a bounce
# message, a hash of its Message-ID and recipient). ``email`` is the address key.
delivery_events = Table(
    "delivery_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False),
    Column("source", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("list_name", String(200)),
    Column("edition_id", String(200)),
    Column("email", String(320)),
    Column("url", Text),
    Column("detail", Text, nullable=False, default=""),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("event_id", name="uq_delivery_events_event_id"),
    Index("ix_delivery_events_edition", "edition_id", "kind"),
    Index("ix_delivery_events_email", "email", "kind", "occurred_at"),
)

# A bounce or report digest could not tie to a recipient: kept whole, and reported, never
# dropped without a word.
unattributed_mail = Table(
    "unattributed_mail",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", Text),
    Column("origin", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)

# A list held by the guardrail (its last edition's complaint or bounce rate was too high):
# no edition goes out until an editor runs `digest lists resume`. The row stays after the
# resume (``resumed_at`` set) so the same edition's rates do not hold the list again; a later
# edition over the line replaces it.
list_holds = Table(
    "list_holds",
    metadata,
    Column("list_name", String(200), primary_key=True),
    Column("edition_id", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("held_at", UTCDateTime, nullable=False),
    Column("resumed_at", UTCDateTime),
    Column("resumed_by", String(200)),
)
