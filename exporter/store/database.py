"""SQLite state (the embedded default): audit watermark, seen ids, counts, group states.

Exactly once: `commit_audit_pages` runs one transaction per Graph page, or per group of
consecutive pages of one window (those that arrived while the previous commit ran). In it the
pages' new event ids are recorded (those already seen are dropped as duplicates), every count is
incremented and the watermark moves; then any registered `PageConsumer` (for instance a trigger
-> membership-change lag correlator, whose tables exporter/store/schema.py holds with every
other) sees the same new events in the same transaction. A kill -9 therefore loses at most the
pages in flight (fetched again after a restart: the watermark had not moved past them), and a
page is never counted twice: after a restart its events are either all seen or all new.

Threading: the connection lives on one dedicated thread. The sync methods below must run there:
`await store.call(store.some_method, *args)` (or `await store.run(fn)` for a sequence of calls).
Work submitted before `close()` still completes and commits, so shutdown never loses a page that
was being written. The audit commit process (exporter.ingest.commit.child) opens a second `Store` on
the same file with `connect()` and commits the audit pages from its one thread; WAL lets this
process read meanwhile, and the two connections' writes take turns (`busy_timeout`).

Counts are kept by **event time** (activityDateTime): minute buckets for `MINUTE_RETENTION`
(at least 48 h), hourly buckets for `HOUR_RETENTION` (35 days), and per group the hourly
dynamic-change counts and last dynamic change time. Cumulative totals (for Prometheus counters)
are kept apart, so pruning old buckets never makes a counter go down.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from exporter.domain.attribution import UNKNOWN_INITIATOR, TriggerCauses, top_causes
from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.events import DirectoryObjectKind, ProcessingState, Series
from exporter.domain.history import CountHistory
from exporter.domain.probe import ProbeRound
from exporter.domain.records import ClassifiedEvent, DirectoryObject, MalformedEvent
from exporter.store import hygiene, probe, schema
from exporter.store.audit_query import stored_audit_query_mode
from exporter.store.errors import describe as describe_store_error
from exporter.store.lateness import RECONCILED, count_lateness

_T = TypeVar("_T")

MINUTE_RETENTION = 49 * 3600.0
HOUR_RETENTION = 35 * 86400.0
_SQL_VARIABLES = 500
_SEEN_GAP = 60.0
DUPLICATE = "duplicate"
MALFORMED = "malformed"
MALFORMED_PREFIX = "malformed:"
_DYNAMIC = (Series.DYNAMIC_ADD, Series.DYNAMIC_REMOVE)
_TRIGGERS = (Series.TRIGGER_USER, Series.TRIGGER_DEVICE)
_STATE_SERIES = (Series.PROCESSING_STATE_CHANGE, Series.RULE_CHANGE)
_NEVER = float("-inf")
_SEEN_FROM = "seen_kept_from:"


class NewEvents(NamedTuple):
    """One page's events not seen before, for a `PageConsumer`."""

    events: Sequence[ClassifiedEvent]
    """Duplicates removed, in page order."""
    settled: float
    """Every event before this time has now been ingested (late ones included), so a consumer
    that needs event-time order may process up to it."""


class PageConsumer(Protocol):
    """Something more to do with each page's new events, inside the page's transaction."""

    def consume(self, db: sqlite3.Connection, tenant: str, pages: Sequence[NewEvents]) -> None:
        """The new events of the pages committed together, page by page in order."""
        ...

    def prune(self, db: sqlite3.Connection, tenant: str, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class AuditState:
    watermark: float
    next_start: float
    backfill_start: float
    updated_at: float
    coverage_start: float
    """Start of the current coverage interval (the backfill start, unless there was a gap)."""


@dataclass(frozen=True, slots=True)
class PageBatch:
    """One Graph page, classified, with where the watermark may move once it is committed."""

    events: Sequence[ClassifiedEvent]
    malformed: Sequence[MalformedEvent]
    watermark: float
    next_start: float
    backfill_start: float
    now: float
    malformed_time: float
    """Time recorded for the seen ids of malformed events whose own time is unreadable."""
    coverage_start: float
    """The coverage interval this page extends (to `watermark`)."""
    lateness_from: float | None = None
    """When the query that returned the page ran, to measure how late its new events appeared
    (live polls and reconciliation); None in a backfill."""
    reconciling: bool = False
    """A re-read of an older, already covered window (exporter.store.lateness): its new events
    are counted (and as `reconciled`); the watermark, coverage and page consumers are left
    alone."""
    past: bool = False
    """A backfill piece read after the present (present-first, exporter.domain.backfill_order):
    counted, covered, but not given to the page consumers, which follow event time forward
    from the first live window (the lag estimator pairs each change with the triggers before
    it: read newest first, a change would come before its trigger, and the trigger would wait
    as pending work, then pair with the object's next change hours later)."""


@dataclass(frozen=True, slots=True)
class PageOutcome:
    counted: Counter[str]
    """kind -> events newly counted (Series values, `malformed`, `duplicate`)."""


@dataclass(frozen=True, slots=True)
class PausedObject:
    kind: DirectoryObjectKind
    id: str
    name: str
    paused_since: float | None
    """Refined by audit events when they explain the pause; else the first poll that saw it
    Paused after one saw it On; None when it was paused from the first listing on and no audit
    event tells when (never the first poll's time: a parked group is not a recent pause)."""


@dataclass(frozen=True, slots=True)
class ObjectState:
    """A dynamic group or unit as last listed, with its pause time only where it is known."""

    kind: DirectoryObjectKind
    id: str
    name: str
    state: ProcessingState | None
    paused_since: float | None
    """While paused: the latest processing-state audit event between the last poll that saw it
    On and the first that saw it Paused, else that first poll when an earlier one saw it On;
    None when it was paused from the first listing on and no audit event tells when (a guess
    would make long-parked groups look like part of the current pause)."""
    resumed_at: float | None = None
    """While On: the first poll that saw it On after one saw it Paused (None if never seen
    paused)."""
    last_seen: float | None = None
    """The last poll that listed it."""


class Store:
    def __init__(
        self, path: Path | str, consumers: Sequence[PageConsumer] = (), *, wal: bool = True
    ) -> None:
        self.path = str(path)
        self.consumers = tuple(consumers)
        self._wal = wal
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._db: sqlite3.Connection | None = None
        self._closed = False

    # -- lifecycle and threading ---------------------------------------------------------------

    async def open(self) -> None:
        await self.run(self.connect)

    async def close(self) -> None:
        """Let work already submitted finish (and commit), then close the connection."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self.disconnect)
        self._executor.shutdown(wait=True)

    async def run(self, fn: Callable[[], _T]) -> _T:
        if self._closed:
            raise RuntimeError("the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def call(self, method: Callable[..., _T], *args: Any) -> _T:
        return await self.run(lambda: method(*args))

    @property
    def closed(self) -> bool:
        """close() has been called: no more work is accepted."""
        return self._closed

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open (use it through store.call)")
        return self._db

    def connect(self) -> None:
        """Open the connection in the calling thread: `open()` does it on the store's thread;
        a process that uses the store from one thread only (exporter.ingest.commit.child) calls
        it. Any problem is a `StoreError`: one line naming the file and the fix."""
        try:
            self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise describe_store_error(self.path, exc) from exc

    def _connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._prepare(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _prepare(self, db: sqlite3.Connection) -> None:
        if self._wal:
            db.execute("PRAGMA journal_mode=WAL")
        # NORMAL with WAL: a committed page survives a process kill; only a power cut can lose
        # the last transactions, and never leaves them half-applied.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        schema.apply(db, str(self.path))
        # A read-only file (or mount) opens and reads without complaint: find out now, in one
        # line, rather than at the first commit of a running exporter.
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
        finally:
            db.execute("ROLLBACK")

    def disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # -- audit ingestion -----------------------------------------------------------------------

    def audit_state(self, tenant: str) -> AuditState | None:
        row = self.db.execute(
            "SELECT watermark, next_start, backfill_start, updated_at, "
            "(SELECT max(start) FROM audit_coverage c WHERE c.tenant = s.tenant) "
            "FROM audit_state s WHERE tenant=?",
            (tenant,),
        ).fetchone()
        if row is None:
            return None
        watermark, next_start, backfill_start, updated_at, coverage_start = row
        return AuditState(
            watermark,
            next_start,
            backfill_start,
            updated_at,
            backfill_start if coverage_start is None else coverage_start,
        )

    def clamp_future_watermark(self, tenant: str, latest: float) -> float | None:
        """Repair a watermark (and coverage) past `latest`, which no believable event sets (an
        event dated in the future, ingested before such times were refused): clamp them to the
        last commit's time, since a window never reaches past the clock of its poll. Returns
        the watermark found when it was clamped, else None."""
        db = self.db
        row = db.execute(
            "SELECT watermark, updated_at FROM audit_state WHERE tenant=?", (tenant,)
        ).fetchone()
        if row is None or row[0] <= latest:
            return None
        found, clamp = float(row[0]), min(float(row[1]), latest)
        with self._transaction():
            db.execute(
                "UPDATE audit_state SET watermark=?, next_start=min(next_start, ?) WHERE tenant=?",
                (clamp, clamp, tenant),
            )
            db.execute(
                "UPDATE audit_coverage SET end=? WHERE tenant=? AND end > ?",
                (clamp, tenant, clamp),
            )
        return found

    def clip_coverage(self, tenant: str, at: float) -> None:
        """Coverage ends at `at` at the latest: what came after it is to be read again (the
        exporter was away longer than the live window reaches back; events after the stored
        next start may have arrived late)."""
        with self._transaction():
            self.db.execute(
                "UPDATE audit_coverage SET end=? WHERE tenant=? AND end > ? AND start < ?",
                (at, tenant, at, at),
            )
            self.db.execute(
                "DELETE FROM audit_coverage WHERE tenant=? AND start >= ?", (tenant, at)
            )

    def merge_coverage(self, tenant: str) -> None:
        """One row per uninterrupted interval (a backfill read present-first leaves a row per
        piece): what `history` and `audit_state` read as the interval that reaches the
        watermark."""
        rows = self.coverage(tenant)
        merged: list[tuple[float, float]] = []
        for start, end in rows:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        if len(merged) == len(rows):
            return
        with self._transaction():
            self.db.execute("DELETE FROM audit_coverage WHERE tenant=?", (tenant,))
            self.db.executemany(
                "INSERT INTO audit_coverage (tenant, start, end) VALUES (?, ?, ?)",
                [(tenant, start, end) for start, end in merged],
            )

    def commit_audit_page(self, tenant: str, batch: PageBatch) -> PageOutcome:
        return self.commit_audit_pages(tenant, (batch,))

    def commit_audit_pages(self, tenant: str, batches: Sequence[PageBatch]) -> PageOutcome:
        """Commit consecutive pages of one window, in order, as one transaction (the poller
        groups the pages that arrived while the store was busy with the previous commit)."""
        db = self.db
        counted: Counter[str] = Counter()
        minutes: Counter[tuple[str, int]] = Counter()
        hours: Counter[tuple[str, int]] = Counter()
        group_hours: Counter[tuple[str, int]] = Counter()
        group_last: dict[str, float] = {}
        causes: Counter[tuple[int, str, str]] = Counter()
        state_changes: list[tuple[str, str, str, float, str | None]] = []
        seen_rows: list[tuple[str, float, str]] = []
        consumed: list[NewEvents] = []
        undecided: list[tuple[str, str, float, str, str]] = []
        with self._transaction():
            committed: set[tuple[float, str]] = set()
            for batch in batches:
                new_events = self._new_events(tenant, batch, committed, counted, seen_rows)
                if batch.lateness_from is not None:
                    count_lateness(counted, batch.lateness_from, new_events)
                if batch.reconciling:
                    counted[RECONCILED] += len(new_events)
                new_events = self._decide_dynamic(tenant, new_events, undecided)
                if not batch.reconciling and not batch.past:
                    # Behind the consumers' settled point: a lag correlator reads in time order.
                    consumed.append(NewEvents(new_events, batch.next_start))
                for event in new_events:
                    series = event.series
                    time = event.time
                    minutes[(series, int(time // 60) * 60)] += 1
                    if series in _TRIGGERS:
                        _count_causes(causes, event)
                    group_id = event.group_id
                    if group_id is None:
                        continue
                    if series in _DYNAMIC:
                        group_hours[(group_id, int(time // 3600) * 3600)] += 1
                        if time > group_last.get(group_id, _NEVER):
                            group_last[group_id] = time
                    elif series in _STATE_SERIES and (
                        series is Series.PROCESSING_STATE_CHANGE
                        or event.processing_state is not None
                    ):
                        state = event.processing_state
                        state_changes.append((tenant, event.id, group_id, time, state))
            # Hours and totals from the few minute buckets rather than from every event.
            for (kind, minute), n in minutes.items():
                hours[(kind, minute // 3600 * 3600)] += n
                counted[kind] += n

            db.executemany("INSERT INTO seen_events (tenant, time, id) VALUES (?, ?, ?)", seen_rows)
            db.executemany(
                "INSERT OR IGNORE INTO undecided_changes (tenant, event_id, time, series, "
                "group_id) VALUES (?, ?, ?, ?, ?)",
                undecided,
            )
            _add_event_counts(db, tenant, minutes, hours, counted, group_hours, group_last)
            db.executemany(
                "INSERT OR IGNORE INTO state_change_events (tenant, event_id, group_id, time, "
                "state) VALUES (?, ?, ?, ?, ?)",
                state_changes,
            )
            db.executemany(
                "INSERT INTO trigger_causes (tenant, minute, kind, name, count) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, minute, kind, name) "
                "DO UPDATE SET count = count + excluded.count",
                [(tenant, m, k, name, n) for (m, k, name), n in causes.items()],
            )
            for consumer in self.consumers:
                consumer.consume(db, tenant, consumed)
            db.executemany(
                "INSERT INTO audit_coverage (tenant, start, end) VALUES (?, ?, ?) "
                "ON CONFLICT (tenant, start) DO UPDATE SET end = max(end, excluded.end)",
                [(tenant, b.coverage_start, b.watermark) for b in batches if not b.reconciling],
            )
            db.executemany(
                "INSERT INTO audit_state (tenant, watermark, next_start, backfill_start, "
                "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant) DO UPDATE SET "
                "watermark = max(watermark, excluded.watermark), "
                "next_start = max(next_start, excluded.next_start), "
                "updated_at = excluded.updated_at",
                [
                    (tenant, b.watermark, b.next_start, b.backfill_start, b.now)
                    for b in batches
                    if not b.reconciling
                ],
            )
        return PageOutcome(Counter({str(kind): n for kind, n in counted.items()}))

    def _new_events(
        self,
        tenant: str,
        batch: PageBatch,
        committed: set[tuple[float, str]],
        counted: Counter[str],
        seen_rows: list[tuple[str, float, str]],
    ) -> list[ClassifiedEvent]:
        """The batch's events not seen before (in the store, or earlier in this transaction:
        `committed`); records the new ids in `seen_rows` and `committed`, and counts the
        duplicates and the new malformed events."""
        keys = [(e.time, e.id) for e in batch.events]
        seen = self._seen(tenant, keys)
        duplicates = 0

        def first_sight(key: tuple[float, str]) -> bool:
            nonlocal duplicates
            if key in seen:
                duplicates += 1
                return False
            seen.add(key)
            committed.add(key)
            seen_rows.append((tenant, key[0], key[1]))
            return True

        fresh = set(keys)
        if not seen and len(fresh) == len(keys) and fresh.isdisjoint(committed):
            # The usual page: nothing on it was seen before.
            new_events = list(batch.events)
            committed |= fresh
            seen_rows += [(tenant, time, event_id) for time, event_id in keys]
            seen = committed
        else:
            seen |= committed
            new_events = [
                event for event, key in zip(batch.events, keys, strict=True) if first_sight(key)
            ]
        for bad in batch.malformed:
            # Keyed by content (a digest), not by time: an event whose time cannot be read
            # would otherwise take the time of each window that serves it.
            inserted = self.db.execute(
                "INSERT OR IGNORE INTO malformed_seen (tenant, digest, first_seen) "
                "VALUES (?, ?, ?)",
                (tenant, bad.id, batch.now),
            ).rowcount
            if inserted:
                counted[MALFORMED] += 1
                counted[MALFORMED_PREFIX + bad.reason] += 1
            else:
                counted[DUPLICATE] += 1
        if duplicates:
            counted[DUPLICATE] += duplicates
        return new_events

    def _decide_dynamic(
        self,
        tenant: str,
        events: list[ClassifiedEvent],
        undecided: list[tuple[str, str, float, str, str]],
    ) -> list[ClassifiedEvent]:
        """Keep a change by the dynamic-processing app dynamic only if its group was a dynamic
        group at the event's time (listed as dynamic, and not yet left out of a listing); one
        on a group a listing at or after its time did not list is `approval_management_other`;
        one no listing has told about yet waits in `undecided_changes` (appended here) for the
        next group listing (`record_directory_poll`), and is left out of the result."""
        groups = {e.group_id for e in events if e.series in _DYNAMIC and e.group_id is not None}
        if not groups:
            return events
        spans = self._dynamic_spans(tenant, groups)
        listed_at = self._listed_at(tenant, DirectoryObjectKind.GROUP)
        decided: list[ClassifiedEvent] = []
        for event in events:
            if event.series not in _DYNAMIC or event.group_id is None:
                decided.append(event)
                continue
            dynamic = _was_dynamic(spans.get(event.group_id), listed_at, event.time)
            if dynamic is None:
                undecided.append((tenant, event.id, event.time, event.series, event.group_id))
            elif dynamic:
                decided.append(event)
            else:
                decided.append(event._replace(series=Series.APPROVAL_MANAGEMENT_OTHER))
        return decided

    def _dynamic_spans(
        self, tenant: str, group_ids: Iterable[str]
    ) -> dict[str, tuple[float, float | None]]:
        """group id -> (first listed as dynamic, first left out of a listing since)."""
        wanted = list(group_ids)
        spans: dict[str, tuple[float, float | None]] = {}
        for i in range(0, len(wanted), _SQL_VARIABLES):
            chunk = wanted[i : i + _SQL_VARIABLES]
            for group_id, first, unlisted in self.db.execute(
                "SELECT group_id, first_listed, unlisted_at FROM dynamic_group_spans "
                f"WHERE tenant=? AND group_id IN ({','.join('?' * len(chunk))})",
                (tenant, *chunk),
            ):
                spans[group_id] = (first, unlisted)
        return spans

    def _listed_at(self, tenant: str, kind: DirectoryObjectKind) -> float | None:
        row = self.db.execute(
            "SELECT listed_at FROM listings WHERE tenant=? AND kind=?", (tenant, kind.value)
        ).fetchone()
        return None if row is None else float(row[0])

    def audit_query_mode(self, tenant: str) -> AuditQueryMode:
        """The mode the audit poller uses (narrow until Graph refused it)."""
        return stored_audit_query_mode(self.db, tenant)

    def set_audit_query_mode(self, tenant: str, mode: AuditQueryMode, since: float) -> None:
        with self._transaction():
            self.db.execute(
                "INSERT INTO audit_query (tenant, mode, since) VALUES (?, ?, ?) "
                "ON CONFLICT (tenant) DO UPDATE SET mode = excluded.mode, since = excluded.since",
                (tenant, mode.value, since),
            )

    def undecided_count(self, tenant: str) -> int:
        """Changes by the dynamic-processing app waiting for a group listing."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM undecided_changes WHERE tenant=?", (tenant,)
        ).fetchone()
        return int(row[0])

    def _record_dynamic_groups(self, tenant: str, group_ids: set[str], observed_at: float) -> None:
        """Inside the listing's transaction: the spans of the dynamic groups, then the changes
        that waited for a listing, counted now that it decides them."""
        db = self.db
        db.executemany(
            "INSERT INTO dynamic_group_spans (tenant, group_id, first_listed) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant, group_id) DO UPDATE SET unlisted_at = NULL",
            [(tenant, g, observed_at) for g in group_ids],
        )
        listed_before = {
            g
            for (g,) in db.execute(
                "SELECT group_id FROM dynamic_group_spans WHERE tenant=? AND unlisted_at IS NULL",
                (tenant,),
            )
        }
        db.executemany(
            "UPDATE dynamic_group_spans SET unlisted_at=? WHERE tenant=? AND group_id=?",
            [(observed_at, tenant, g) for g in listed_before - group_ids],
        )
        db.execute(
            "INSERT INTO listings (tenant, kind, listed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant, kind) DO UPDATE SET listed_at = excluded.listed_at",
            (tenant, DirectoryObjectKind.GROUP.value, observed_at),
        )
        # Read in time order and counted as they stream by, each hour's per-group counts
        # written when the hour ends: a backfill whose listing failed for a month holds
        # millions of changes, and reading them all at once took gigabytes (bench/RESULTS.md,
        # memory); this holds one hour of groups and the minute buckets.
        spans: dict[str, tuple[float, float | None]] = {
            group_id: (first, unlisted)
            for group_id, first, unlisted in db.execute(
                "SELECT group_id, first_listed, unlisted_at FROM dynamic_group_spans "
                "WHERE tenant=?",
                (tenant,),
            )
        }
        minutes: Counter[tuple[str, int]] = Counter()
        group_hours: Counter[tuple[str, int]] = Counter()
        group_last: dict[str, float] = {}
        current_hour: int | None = None
        other = Series.APPROVAL_MANAGEMENT_OTHER.value
        for time, series, group_id in db.execute(
            "SELECT time, series, group_id FROM undecided_changes "
            "WHERE tenant=? AND time <= ? ORDER BY time",
            (tenant, observed_at),
        ):
            hour = int(time // 3600) * 3600
            if hour != current_hour and group_hours:
                _add_event_counts(db, tenant, Counter(), Counter(), Counter(), group_hours, {})
                group_hours.clear()
            current_hour = hour
            if _was_dynamic(spans.get(group_id), observed_at, time):
                group_hours[(group_id, hour)] += 1
                group_last[group_id] = time  # in time order: the last is the latest
            else:
                series = other
            minutes[(series, int(time // 60) * 60)] += 1
        if not minutes:
            return
        hours: Counter[tuple[str, int]] = Counter()
        counted: Counter[str] = Counter()
        for (kind, minute), n in minutes.items():
            hours[(kind, minute // 3600 * 3600)] += n
            counted[kind] += n
        _add_event_counts(db, tenant, minutes, hours, counted, group_hours, group_last)
        db.execute(
            "DELETE FROM undecided_changes WHERE tenant=? AND time <= ?", (tenant, observed_at)
        )

    def _seen(self, tenant: str, keys: list[tuple[float, str]]) -> set[tuple[float, str]]:
        """Which of these (time, id) keys were committed before: one primary-key range scan per
        run of keys without a gap longer than `_SEEN_GAP` (a page is usually one run)."""
        if not keys:
            return set()
        wanted = set(keys)
        found: set[tuple[float, str]] = set()
        times = sorted({time for time, _ in keys})
        low = previous = times[0]
        for time in [*times[1:], None]:
            if time is not None and time - previous <= _SEEN_GAP:
                previous = time
                continue
            found.update(
                key
                for key in self.db.execute(
                    "SELECT time, id FROM seen_events WHERE tenant=? AND time >= ? AND time <= ?",
                    (tenant, low, previous),
                )
                if key in wanted
            )
            if time is not None:
                low = previous = time
        return found

    def prune(self, tenant: str, now: float, seen_before: float) -> None:
        """Forget seen ids no window will fetch again, and buckets past their retention."""
        db = self.db
        with self._transaction():
            db.execute("DELETE FROM seen_events WHERE tenant=? AND time < ?", (tenant, seen_before))
            self.note_seen_kept_from(tenant, seen_before)
            db.execute(
                "DELETE FROM malformed_seen WHERE tenant=? AND first_seen < ?",
                (tenant, now - HOUR_RETENTION),
            )
            db.execute(
                "DELETE FROM dynamic_group_spans WHERE tenant=? AND unlisted_at < ?",
                (tenant, now - HOUR_RETENTION),
            )
            db.execute(
                "DELETE FROM minute_counts WHERE tenant=? AND minute < ?",
                (tenant, now - MINUTE_RETENTION),
            )
            db.execute(
                "DELETE FROM trigger_causes WHERE tenant=? AND minute < ?",
                (tenant, now - MINUTE_RETENTION),
            )
            cutoff = now - HOUR_RETENTION
            db.execute("DELETE FROM hour_counts WHERE tenant=? AND hour < ?", (tenant, cutoff))
            db.execute(
                "DELETE FROM group_hour_counts WHERE tenant=? AND hour < ?", (tenant, cutoff)
            )
            # A group's last change is kept beyond the audit retention while the group exists:
            # the hygiene report's inactive verdict reaches back further than the audit log.
            db.execute(
                "DELETE FROM group_last_change WHERE tenant=? AND time < ? AND group_id NOT IN "
                "(SELECT lower(id) FROM directory_objects WHERE tenant=?)",
                (tenant, cutoff, tenant),
            )
            db.execute(
                "DELETE FROM group_member_counts WHERE tenant=? AND group_id NOT IN "
                "(SELECT lower(id) FROM directory_objects WHERE tenant=?)",
                (tenant, tenant),
            )
            db.execute(
                "DELETE FROM state_change_events WHERE tenant=? AND time < ?", (tenant, cutoff)
            )
            for consumer in self.consumers:
                consumer.prune(db, tenant, now)

    def note_seen_kept_from(self, tenant: str, time: float) -> None:
        """Seen ids before `time` may be gone: what a re-read may reach back to and still
        recognise every event it counted (only ever moves forward)."""
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET "
            "value = max(CAST(value AS REAL), CAST(?2 AS REAL))",
            (_SEEN_FROM + tenant, repr(float(time))),
        )

    def seen_kept_from(self, tenant: str) -> float | None:
        """Seen ids are kept for events at or after this time (None: not recorded, as in a store
        written before #14, which kept them only for the lateness allowance)."""
        row = self.db.execute(
            "SELECT value FROM meta WHERE key=?", (_SEEN_FROM + tenant,)
        ).fetchone()
        return None if row is None else float(row[0])

    # -- audit queries (for the snapshot and the signals) --------------------------------------

    def totals(self, tenant: str) -> dict[str, int]:
        """Cumulative counts since the state file was created: Series values, `duplicate`,
        `malformed` and `malformed:<reason>`."""
        return dict(self.db.execute("SELECT kind, count FROM totals WHERE tenant=?", (tenant,)))

    def coverage(self, tenant: str) -> list[tuple[float, float]]:
        """Event-time intervals [start, end) fully ingested, oldest first."""
        return list(
            self.db.execute(
                "SELECT start, end FROM audit_coverage WHERE tenant=? ORDER BY start", (tenant,)
            )
        )

    def count_history(self, tenant: str, since: float, now: float) -> CountHistory:
        """Minute and hourly buckets from `since` on, with the coverage, for the domain."""
        minutes_from = now - MINUTE_RETENTION
        return CountHistory.from_rows(
            self.db.execute(
                "SELECT series, minute, count FROM minute_counts WHERE tenant=? AND minute >= ?",
                (tenant, max(since, minutes_from)),
            ),
            self.db.execute(
                "SELECT series, hour, count FROM hour_counts WHERE tenant=? AND hour >= ?",
                (tenant, since),
            ),
            self.coverage(tenant),
            minutes_from,
        )

    def counts_between(self, tenant: str, since: float, until: float) -> dict[Series, int]:
        """Per series, events in the minute buckets starting in [since, until)."""
        rows = self.db.execute(
            "SELECT series, SUM(count) FROM minute_counts WHERE tenant=? AND minute >= ? "
            "AND minute < ? GROUP BY series",
            (tenant, since, until),
        )
        return {Series(series): int(n) for series, n in rows}

    def minute_counts(
        self, tenant: str, series: Series, since: float, until: float
    ) -> list[tuple[int, int]]:
        """(minute start, count) for minutes in [since, until), oldest first; empty minutes
        are absent."""
        return list(
            self.db.execute(
                "SELECT minute, count FROM minute_counts WHERE tenant=? AND series=? "
                "AND minute >= ? AND minute < ? ORDER BY minute",
                (tenant, series.value, since, until),
            )
        )

    def hourly_counts(
        self, tenant: str, series: Series, since: float, until: float
    ) -> list[tuple[int, int]]:
        """(hour start, count) for hours in [since, until), oldest first; empty hours absent."""
        return list(
            self.db.execute(
                "SELECT hour, count FROM hour_counts WHERE tenant=? AND series=? "
                "AND hour >= ? AND hour < ? ORDER BY hour",
                (tenant, series.value, since, until),
            )
        )

    def trigger_causes(self, tenant: str, since: float, until: float) -> TriggerCauses:
        """Triggers with since <= time < until by initiator and by changed property (top
        `attribution.TOP` of each, the rest as `other`)."""
        counts: dict[str, dict[str, int]] = {"initiator": {}, "property": {}}
        for kind, name, n in self.db.execute(
            "SELECT kind, name, sum(count) FROM trigger_causes "
            "WHERE tenant=? AND minute >= ? AND minute < ? GROUP BY kind, name",
            (tenant, int(since // 60) * 60, until),
        ):
            counts.setdefault(kind, {})[name] = n
        return TriggerCauses(top_causes(counts["initiator"]), top_causes(counts["property"]))

    def groups_changed_between(self, tenant: str, since: float, until: float) -> int:
        """Distinct groups whose last dynamic membership change lies in [since, until)."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM group_last_change WHERE tenant=? AND time >= ? AND time < ?",
            (tenant, since, until),
        ).fetchone()
        return int(row[0])

    def group_last_changes(self, tenant: str, since: float) -> dict[str, float]:
        """group id -> time of its last dynamic membership change, for changes since `since`."""
        return hygiene.last_changes(self.db, tenant, since)

    def latest_group_changes(
        self, tenant: str, limit: int, include: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """(group id, last dynamic change) for the `limit` most recently changed groups, plus
        the groups in `include` that changed at all; most recent first."""
        rows = list(
            self.db.execute(
                "SELECT group_id, time FROM group_last_change WHERE tenant=? "
                "ORDER BY time DESC, group_id LIMIT ?",
                (tenant, limit),
            )
        )
        wanted = [g for g in include if g not in {r[0] for r in rows}]
        for i in range(0, len(wanted), _SQL_VARIABLES):
            chunk = wanted[i : i + _SQL_VARIABLES]
            rows += self.db.execute(
                "SELECT group_id, time FROM group_last_change WHERE tenant=? AND group_id IN "
                f"({','.join('?' * len(chunk))})",
                (tenant, *chunk),
            )
        return sorted(rows, key=lambda r: (-r[1], r[0]))

    def object_names(self, tenant: str, ids: Iterable[str]) -> dict[str, str]:
        """Display names of the given groups or units (those known from the last listing)."""
        wanted = list(ids)
        names: dict[str, str] = {}
        for i in range(0, len(wanted), _SQL_VARIABLES):
            chunk = wanted[i : i + _SQL_VARIABLES]
            names.update(
                self.db.execute(
                    "SELECT id, name FROM directory_objects WHERE tenant=? AND id IN "
                    f"({','.join('?' * len(chunk))})",
                    (tenant, *chunk),
                )
            )
        return names

    # -- directory objects ---------------------------------------------------------------------

    def record_directory_poll(
        self,
        tenant: str,
        kind: DirectoryObjectKind,
        objects: Iterable[DirectoryObject],
        observed_at: float,
    ) -> None:
        """Store a complete listing of one kind; objects no longer listed are forgotten.

        A pause is first observed by the poll that sees Paused after On (or the first poll);
        `paused_objects` refines that time with audit events. A group listing also decides the
        changes by the dynamic-processing app that waited for one (`_decide_dynamic`)."""
        db = self.db
        objects = tuple(objects)
        with self._transaction():
            db.executemany(
                "INSERT INTO directory_objects (tenant, id, kind, name, rule, state, first_seen, "
                "last_seen, last_on_at, paused_observed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                "?7, CASE WHEN ?6 = 'On' THEN ?7 END, CASE WHEN ?6 = 'Paused' THEN ?7 END) "
                "ON CONFLICT (tenant, id) DO UPDATE SET kind = excluded.kind, "
                "name = excluded.name, rule = excluded.rule, state = excluded.state, "
                "last_seen = excluded.last_seen, "
                "last_on_at = CASE WHEN excluded.state = 'On' THEN excluded.last_seen "
                "ELSE last_on_at END, "
                "paused_observed_at = CASE WHEN excluded.state = 'Paused' "
                "THEN coalesce(paused_observed_at, excluded.last_seen) ELSE NULL END, "
                "resumed_observed_at = CASE WHEN excluded.state = 'On' THEN "
                "CASE WHEN state = 'Paused' THEN excluded.last_seen ELSE resumed_observed_at END "
                "ELSE NULL END",
                [
                    (
                        tenant,
                        o.id,
                        kind.value,
                        o.name,
                        o.rule,
                        o.state.value if o.state else None,
                        observed_at,
                    )
                    for o in objects
                ],
            )
            db.execute(
                "DELETE FROM directory_objects WHERE tenant=? AND kind=? AND last_seen < ?",
                (tenant, kind.value, observed_at),
            )
            if kind is DirectoryObjectKind.GROUP:
                self._record_dynamic_groups(tenant, {o.id.lower() for o in objects}, observed_at)

    def directory_objects(self, tenant: str) -> list[DirectoryObject]:
        rows = self.db.execute(
            "SELECT kind, id, name, rule, state FROM directory_objects WHERE tenant=? ORDER BY id",
            (tenant,),
        )
        return [
            DirectoryObject(
                DirectoryObjectKind(kind),
                object_id,
                name,
                rule,
                ProcessingState(state) if state else None,
            )
            for kind, object_id, name, rule, state in rows
        ]

    def directory_state_counts(self, tenant: str) -> dict[tuple[DirectoryObjectKind, str], int]:
        """(kind, state) -> objects; state is `On`, `Paused` or `unknown`."""
        rows = self.db.execute(
            "SELECT kind, coalesce(state, 'unknown'), COUNT(*) FROM directory_objects "
            "WHERE tenant=? GROUP BY 1, 2",
            (tenant,),
        )
        return {(DirectoryObjectKind(kind), state): int(n) for kind, state, n in rows}

    def paused_objects(self, tenant: str) -> list[PausedObject]:
        """Paused groups and units with the time each pause began, oldest pause first (those
        of unknown time first: they were paused before the exporter first listed them).

        The time is that of the latest audit event that changed the processing state (to
        Paused, or to a value the event did not say) after the object was last seen On and
        no later than the poll that first saw it paused; without such an event, that poll's
        time if an earlier poll saw it On; else unknown (None), as in `object_states`."""
        rows = self.db.execute(
            """
            SELECT o.kind, o.id, o.name, coalesce(
                (SELECT max(e.time) FROM state_change_events e
                 WHERE e.tenant = o.tenant AND e.group_id = o.id
                   AND e.time <= o.paused_observed_at
                   AND (o.last_on_at IS NULL OR e.time > o.last_on_at)
                   AND (e.state IS NULL OR e.state = 'Paused')),
                CASE WHEN o.last_on_at IS NOT NULL THEN o.paused_observed_at END) AS since
            FROM directory_objects o
            WHERE o.tenant = ? AND o.state = 'Paused'
            ORDER BY since IS NOT NULL, since, o.id
            """,
            (tenant,),
        )
        return [
            PausedObject(
                DirectoryObjectKind(kind), object_id, name, None if since is None else float(since)
            )
            for kind, object_id, name, since in rows
        ]

    def state_changes(self, tenant: str, since: float) -> list[tuple[str, float, str | None]]:
        """(group id, time, `On` | `Paused` | None) of the processing-state audit events from
        `since` on, oldest first (the console's paused-groups history)."""
        return [
            (group_id, float(t), state)
            for group_id, t, state in self.db.execute(
                "SELECT group_id, time, state FROM state_change_events "
                "WHERE tenant=? AND time >= ? ORDER BY time, group_id",
                (tenant, since),
            )
        ]

    def object_states(self, tenant: str) -> list[ObjectState]:
        """Every dynamic group and unit of the last listings, by id (for the signals)."""
        rows = self.db.execute(
            """
            SELECT o.kind, o.id, o.name, o.state, o.resumed_observed_at, o.last_seen,
                CASE WHEN o.state = 'Paused' THEN coalesce(
                    (SELECT max(e.time) FROM state_change_events e
                     WHERE e.tenant = o.tenant AND e.group_id = o.id
                       AND e.time <= o.paused_observed_at
                       AND (o.last_on_at IS NULL OR e.time > o.last_on_at)
                       AND (e.state IS NULL OR e.state = 'Paused')),
                    CASE WHEN o.last_on_at IS NOT NULL THEN o.paused_observed_at END)
                END
            FROM directory_objects o
            WHERE o.tenant = ?
            ORDER BY o.id
            """,
            (tenant,),
        )
        return [
            ObjectState(
                DirectoryObjectKind(kind),
                object_id,
                name,
                ProcessingState(state) if state else None,
                None if since is None else float(since),
                None if resumed is None else float(resumed),
                float(last_seen),
            )
            for kind, object_id, name, state, resumed, last_seen, since in rows
        ]

    # -- tenant hygiene --------------------------------------------------------------------------

    def record_member_count(self, tenant: str, group_id: str, count: int, read_at: float) -> None:
        with self._transaction():
            self.db.execute(
                "INSERT INTO group_member_counts (tenant, group_id, count, read_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (tenant, group_id) DO UPDATE SET "
                "count = excluded.count, read_at = excluded.read_at",
                (tenant, group_id.lower(), count, read_at),
            )

    def member_counts(self, tenant: str) -> dict[str, tuple[int, float]]:
        """group id (lower case) -> (members, when the count was read)."""
        return hygiene.member_counts(self.db, tenant)

    def first_seen(self, tenant: str) -> dict[str, float]:
        """id (lower case) -> the first listing that showed each listed group or unit."""
        return hygiene.first_seen(self.db, tenant)

    def history(self, tenant: str) -> tuple[float, float] | None:
        """The uninterrupted audit coverage that reaches the watermark, (start, end)."""
        return hygiene.history(self.db, tenant)

    # -- the canary probe ------------------------------------------------------------------------

    def keep_probe_round(self, tenant: str, canary: str, done: ProbeRound, kept: int) -> None:
        with self._transaction():
            probe.keep_round(self.db, tenant, canary, done, kept)

    def probe_rounds(self, tenant: str, canary: str) -> list[ProbeRound]:
        """The rounds kept of this canary (`probe.canary_key`), oldest first."""
        return probe.kept_rounds(self.db, tenant, canary)


def _was_dynamic(
    span: tuple[float, float | None] | None, listed_at: float | None, time: float
) -> bool | None:
    """Whether a group was dynamic at `time`: yes if a listing showed it dynamic and none had
    left it out by then; no if a listing at or after `time` never showed it (an assigned group,
    or one converted before any listing); None (undecided) if no listing has spoken yet. A
    group is taken as dynamic before its first listing: its conversion from assigned is not
    in the audit log's membership events."""
    if span is not None:
        unlisted_at = span[1]
        return unlisted_at is None or time < unlisted_at
    if listed_at is not None and time <= listed_at:
        return False
    return None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _count_causes(causes: Counter[tuple[int, str, str]], event: ClassifiedEvent) -> None:
    minute = int(event.time // 60) * 60
    causes[(minute, "initiator", event.initiator or UNKNOWN_INITIATOR)] += 1
    for name in event.properties:
        causes[(minute, "property", name)] += 1


def _add_event_counts(
    db: sqlite3.Connection,
    tenant: str,
    minutes: Counter[tuple[str, int]],
    hours: Counter[tuple[str, int]],
    counted: Counter[str],
    group_hours: Counter[tuple[str, int]],
    group_last: dict[str, float],
) -> None:
    """Add what a page (or a listing's decision on held changes) counted: minute and hour
    buckets, totals, per-group hours and each group's last dynamic change."""
    _add_counts(db, "minute_counts", "minute", tenant, minutes)
    _add_counts(db, "hour_counts", "hour", tenant, hours)
    db.executemany(
        "INSERT INTO totals (tenant, kind, count) VALUES (?, ?, ?) "
        "ON CONFLICT (tenant, kind) DO UPDATE SET count = count + excluded.count",
        [(tenant, kind, n) for kind, n in counted.items()],
    )
    db.executemany(
        "INSERT INTO group_hour_counts (tenant, group_id, hour, count) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (tenant, hour, group_id) "
        "DO UPDATE SET count = count + excluded.count",
        [(tenant, g, h, n) for (g, h), n in group_hours.items()],
    )
    db.executemany(
        "INSERT INTO group_last_change (tenant, group_id, time) VALUES (?, ?, ?) "
        "ON CONFLICT (tenant, group_id) DO UPDATE SET time = max(time, excluded.time)",
        [(tenant, g, t) for g, t in group_last.items()],
    )


def _add_counts(
    db: sqlite3.Connection,
    table: str,
    column: str,
    tenant: str,
    counts: Counter[tuple[str, int]],
) -> None:
    db.executemany(
        f"INSERT INTO {table} (tenant, series, {column}, count) VALUES (?, ?, ?, ?) "
        f"ON CONFLICT DO UPDATE SET count = count + excluded.count",
        [(tenant, series, bucket, n) for (series, bucket), n in counts.items()],
    )
