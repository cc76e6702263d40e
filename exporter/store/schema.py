"""The store's one schema: every table of the SQLite file, whoever writes it, with one version
and the in-place migrations from older files.

* ingestion and directory state (`database.Store`): audit state and coverage, seen events,
  minute/hour/per-group buckets, totals, processing-state events, directory objects;
* the processing-lag estimator (`lag.ProcessingLagConsumer`): its state, histogram, samples;
* the pause ledger (`ledger.Ledger`): episodes, their objects, runs, batches, operations;
* the canary probe's recent rounds (`probe`).

Every table is created when a connection opens the file, so a process that only reads the ledger
(the exporter) and one that writes it (an ops command) agree on what is there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from exporter.store.errors import StoreError

SCHEMA_VERSION = 5

INGESTION = """
CREATE TABLE IF NOT EXISTS audit_state (
    tenant TEXT PRIMARY KEY,
    watermark REAL NOT NULL,       -- newest activityDateTime fully ingested
    next_start REAL NOT NULL,      -- the next window starts here (watermark - what may be late)
    backfill_start REAL NOT NULL,  -- where the first backfill began (progress display)
    updated_at REAL NOT NULL
);
-- Keyed by time first: events arrive in time order, so inserts append to the B-tree instead of
-- dirtying a random page per event (3x faster commits), and pruning is a range delete. A
-- duplicate has the same activityDateTime as the original, so (time, id) finds it.
-- Event-time intervals fully ingested: one from the backfill start to the watermark, unless
-- the exporter was away longer than the audit retention (a gap, then a new interval).
CREATE TABLE IF NOT EXISTS audit_coverage (
    tenant TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
    PRIMARY KEY (tenant, start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_events (
    tenant TEXT NOT NULL, time REAL NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (tenant, time, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS minute_counts (
    tenant TEXT NOT NULL, series TEXT NOT NULL, minute INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (tenant, minute, series)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hour_counts (
    tenant TEXT NOT NULL, series TEXT NOT NULL, hour INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (tenant, series, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    tenant TEXT NOT NULL, kind TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_hour_counts (
    tenant TEXT NOT NULL, group_id TEXT NOT NULL, hour INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (tenant, hour, group_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_last_change (
    tenant TEXT NOT NULL, group_id TEXT NOT NULL, time REAL NOT NULL,
    PRIMARY KEY (tenant, group_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS group_last_change_time ON group_last_change (tenant, time);
-- Member counts read with $count (tenant hygiene: empty groups), refreshed slowly (#21).
CREATE TABLE IF NOT EXISTS group_member_counts (
    tenant TEXT NOT NULL, group_id TEXT NOT NULL, count INTEGER NOT NULL, read_at REAL NOT NULL,
    PRIMARY KEY (tenant, group_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_change_events (
    tenant TEXT NOT NULL, event_id TEXT NOT NULL, group_id TEXT NOT NULL, time REAL NOT NULL,
    state TEXT,  -- On, Paused, or NULL when the event did not say
    PRIMARY KEY (tenant, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS state_change_events_group
    ON state_change_events (tenant, group_id, time);
-- Malformed events by a digest of their content (#13): counted once whatever window serves
-- them; kept for longer than the audit retention.
CREATE TABLE IF NOT EXISTS malformed_seen (
    tenant TEXT NOT NULL, digest TEXT NOT NULL, first_seen REAL NOT NULL,
    PRIMARY KEY (tenant, digest)
) WITHOUT ROWID;
-- Every group ever listed as dynamic, and when a listing first left it out (converted to
-- assigned, or deleted): a change by the dynamic-processing app is dynamic only if its group
-- was dynamic at the event's time (#13).
CREATE TABLE IF NOT EXISTS dynamic_group_spans (
    tenant TEXT NOT NULL, group_id TEXT NOT NULL, first_listed REAL NOT NULL,
    unlisted_at REAL,
    PRIMARY KEY (tenant, group_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS listings (
    tenant TEXT NOT NULL, kind TEXT NOT NULL, listed_at REAL NOT NULL,
    PRIMARY KEY (tenant, kind)
) WITHOUT ROWID;
-- Changes by the dynamic-processing app on a group no listing has told about yet (a backfill
-- before the first listing, a group created since the last): counted when a listing decides.
CREATE TABLE IF NOT EXISTS undecided_changes (
    tenant TEXT NOT NULL, event_id TEXT NOT NULL, time REAL NOT NULL, series TEXT NOT NULL,
    group_id TEXT NOT NULL,
    PRIMARY KEY (tenant, time, event_id)
) WITHOUT ROWID;
-- The audit query mode in use (#13): narrow, time_ordered, time_only.
CREATE TABLE IF NOT EXISTS audit_query (
    tenant TEXT PRIMARY KEY, mode TEXT NOT NULL, since REAL NOT NULL
);
-- The impact preflight's users and devices (exporter/store/objects.py).
CREATE TABLE IF NOT EXISTS impact_objects (
    tenant TEXT NOT NULL, object_type TEXT NOT NULL, id TEXT NOT NULL,
    properties BLOB NOT NULL,  -- JSON: rule property name -> value
    PRIMARY KEY (tenant, object_type, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS impact_sync (
    tenant TEXT NOT NULL, object_type TEXT NOT NULL,
    properties TEXT NOT NULL,  -- JSON list: the rule properties the objects were read with
    delta_link TEXT NOT NULL, synced_at REAL NOT NULL, full_read_at REAL NOT NULL,
    PRIMARY KEY (tenant, object_type)
) WITHOUT ROWID;
-- Storm attribution: triggers per minute by initiator and by changed property.
CREATE TABLE IF NOT EXISTS trigger_causes (
    tenant TEXT NOT NULL, minute INTEGER NOT NULL,
    kind TEXT NOT NULL,  -- initiator | property
    name TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (tenant, minute, kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS directory_objects (
    tenant TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    rule TEXT NOT NULL, state TEXT,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    last_on_at REAL,          -- the last poll that saw it On
    paused_observed_at REAL,  -- the first poll of the current paused spell
    resumed_observed_at REAL, -- the first poll that saw it On after a poll that saw it Paused
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
"""

LAG = """
CREATE TABLE IF NOT EXISTS lag_state (
    tenant TEXT NOT NULL, role TEXT NOT NULL, object_id TEXT NOT NULL,
    object_type TEXT NOT NULL, at REAL NOT NULL, lag REAL NOT NULL, group_id TEXT NOT NULL,
    PRIMARY KEY (tenant, role, object_id, at, lag, group_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lag_meta (
    tenant TEXT PRIMARY KEY, generation INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lag_histogram (
    tenant TEXT PRIMARY KEY, counts TEXT NOT NULL, sum_seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lag_samples (
    tenant TEXT NOT NULL, change_at REAL NOT NULL, object_type TEXT NOT NULL, lag REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS lag_samples_time ON lag_samples (tenant, change_at);
CREATE TABLE IF NOT EXISTS queue_capacity (
    tenant TEXT PRIMARY KEY, per_hour REAL NOT NULL, measured_at REAL NOT NULL
);
"""

# A table added without a version step: every open creates what is missing, and an exporter of
# the same version without it ignores it (a rollback keeps working).
PROBE = """
CREATE TABLE IF NOT EXISTS probe_rounds (
    tenant TEXT NOT NULL,
    canary TEXT NOT NULL,       -- group id / object id / property: rounds of another canary differ
    number INTEGER NOT NULL,
    started_at REAL NOT NULL,   -- the flip
    entering INTEGER NOT NULL,
    outcome TEXT,               -- NULL while in flight
    finished_at REAL,
    latency REAL,
    detail TEXT NOT NULL,
    PRIMARY KEY (tenant, canary, number)
) WITHOUT ROWID;
"""

LEDGER = """
CREATE TABLE IF NOT EXISTS ops_episodes (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    started_at REAL NOT NULL,
    started_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    origin TEXT NOT NULL,          -- pause: this tool paused; adopt: a pause made elsewhere
    ended_at REAL,
    end_note TEXT
);
CREATE INDEX IF NOT EXISTS ops_episodes_tenant ON ops_episodes (tenant, ended_at);
CREATE TABLE IF NOT EXISTS ops_episode_objects (
    episode_id TEXT NOT NULL,
    object_id TEXT NOT NULL,
    kind TEXT NOT NULL,            -- group | administrative_unit
    name TEXT NOT NULL,
    role TEXT NOT NULL,            -- paused | already_paused
    pending INTEGER NOT NULL DEFAULT 0,  -- 1: our PATCH was sent, its outcome is not known yet
    paused_at REAL,                -- when this tool's PATCH was confirmed (adopted: if known)
    paused_by_run TEXT,
    resumed_at REAL,               -- when it was found or made On again
    resumed_by_run TEXT,           -- NULL when it was found On (someone else resumed it)
    PRIMARY KEY (episode_id, object_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ops_runs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    episode_id TEXT,
    command TEXT NOT NULL,         -- pause | adopt | resume
    selection TEXT NOT NULL,       -- JSON: what was asked for
    operator TEXT NOT NULL,
    reason TEXT,
    forced INTEGER NOT NULL DEFAULT 0,
    readiness TEXT,                -- readiness state seen before the run (resume)
    continues TEXT,                -- the interrupted run whose work this one finished
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,          -- running | completed | failed | stopped | interrupted
    note TEXT
);
CREATE INDEX IF NOT EXISTS ops_runs_tenant ON ops_runs (tenant, started_at);
CREATE TABLE IF NOT EXISTS ops_batches (
    run_id TEXT NOT NULL,
    number INTEGER NOT NULL,       -- 1-based within the run
    critical INTEGER NOT NULL,
    objects INTEGER NOT NULL,
    readiness TEXT,                -- readiness state seen just before the batch
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,          -- running | completed | failed | interrupted
    PRIMARY KEY (run_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ops_operations (
    run_id TEXT NOT NULL,
    object_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    batch INTEGER,                 -- resume batch number; NULL for pause
    target TEXT NOT NULL,          -- Paused | On
    status TEXT NOT NULL,          -- planned | sending | done | unchanged | failed | skipped
                                   -- | superseded
    attempts INTEGER NOT NULL DEFAULT 0,  -- times this tool sent it (a second pass retries)
    requests INTEGER NOT NULL DEFAULT 0,  -- HTTP requests those took, client retries included
    throttled INTEGER NOT NULL DEFAULT 0, -- of which Graph answered 429
    detail TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, object_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ops_operations_status ON ops_operations (status, run_id);
"""


def _add_column(db: sqlite3.Connection, table: str, column: str, declaration: str) -> None:
    """Idempotent: a file whose table was created at the current version has it already."""
    columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if column not in columns:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _to_4(db: sqlite3.Connection) -> None:
    # When a paused object was seen On again (the stall signal waits after a resume).
    _add_column(db, "directory_objects", "resumed_observed_at", "REAL")


def _to_5(db: sqlite3.Connection) -> None:
    # What throttling cost each pause/resume operation (the report and the ledger say so).
    _add_column(db, "ops_operations", "requests", "INTEGER NOT NULL DEFAULT 0")
    _add_column(db, "ops_operations", "throttled", "INTEGER NOT NULL DEFAULT 0")
    # Triggers are counted by relevance (#13). What was counted before had no property list
    # read, so it is of unknown relevance.
    for table, column in (
        ("minute_counts", "series"),
        ("hour_counts", "series"),
        ("totals", "kind"),
    ):
        db.execute(
            f"UPDATE {table} SET {column} = {column} || '_unknown' "
            f"WHERE {column} IN ('trigger_user', 'trigger_device')"
        )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {3: _to_4, 4: _to_5}
"""version -> the step that brings a file of that version to the next."""


class SchemaError(StoreError):
    """The file's schema is one this version cannot use."""


def apply(db: sqlite3.Connection, path: str) -> None:
    """Create what is missing, then bring an older file up to date in place. SchemaError for a
    file this version does not know."""
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    version = SCHEMA_VERSION if row is None else int(row[0])
    if version > SCHEMA_VERSION or (version < SCHEMA_VERSION and version not in MIGRATIONS):
        raise SchemaError(
            f"{path}: state schema version {version}, this exporter expects {SCHEMA_VERSION} "
            f"(written by {'a newer' if version > SCHEMA_VERSION else 'an unsupported older'} "
            "version); run the version that wrote it, or move the file aside to start afresh"
        )
    db.executescript(INGESTION + LAG + LEDGER + PROBE)
    if row is None:
        db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return
    while version < SCHEMA_VERSION:
        # One transaction a step: a file is at one version or the next, never between.
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](db)
            version += 1
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
