"""Processing lag, estimated during ingestion: the domain's `LagEstimator` as a store
`PageConsumer`, so it sees every audit event exactly once, across restarts too.

Each page's new events (triggers and dynamic membership changes) go to the tenant's estimator
inside the transaction that commits the page (with the pages committed together, page by page,
each up to its own settled time); in that same transaction the estimator's changed state rows
(`take_changes()`, once for the group: a row put and dropped within it is never written), the
samples it produced and the cumulative histogram are written. A kill -9 therefore loses the
pages and the lag work together, and on start the estimator is restored from its rows
(`LagEstimator.from_rows`).

If a transaction is rolled back after `consume()` ran, the estimator in memory would be
ahead of its rows. A generation number, bumped in every consume and kept both in memory and in
the database, detects it: the next consume finds them different and restores from the rows.

Tables (per tenant): `lag_state` (the estimator's rows), `lag_histogram` (cumulative bucket
counts and sum, never pruned: the Prometheus histogram is a counter), `lag_samples` (samples
whose change is recent, for the median the `processing_lag` signal reads; pruned after
`lag_window` and an hour more).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from exporter.domain.events import RELEVANT_TRIGGER_SERIES, ObjectType, ProcessingState, Series
from exporter.domain.history import HOUR
from exporter.domain.lag import (
    CHANGE_ORDER,
    LAG_BUCKETS,
    OBJECT_TYPE_NAMES,
    REEVALUATION_ORDER,
    TRIGGER_ORDER,
    LagEstimator,
    LagHistogram,
    LagItem,
    LagRowRole,
    LagSample,
)
from exporter.domain.queue import (
    CAPACITY_KEPT,
    FRONT_WINDOW,
    RATE_WINDOW,
    WaitingTriggers,
    queue_front,
)
from exporter.domain.records import ClassifiedEvent
from exporter.store.database import NewEvents

# Triggers no rule reads cannot cause a change: left out rather than left to expire (#13).
_TRIGGERS = {s for relevant in RELEVANT_TRIGGER_SERIES.values() for s in relevant}
_CHANGES = {Series.DYNAMIC_ADD, Series.DYNAMIC_REMOVE}
_REEVALUATIONS = {Series.PROCESSING_STATE_CHANGE, Series.RULE_CHANGE}
_PENDING_ROLE = LagRowRole.PENDING.value
_BUFFERED_TRIGGER_ROLE = LagRowRole.BUFFERED_TRIGGER.value
_BUFFERED_CHANGE_ROLE = LagRowRole.BUFFERED_CHANGE.value
SAMPLE_MARGIN = HOUR
"""Recent samples are kept this long beyond the lag window."""


def lag_items(events: Sequence[ClassifiedEvent]) -> list[LagItem]:
    """Triggers (a user or device changed), dynamic membership changes of a user or device (with
    their group), and groups' full re-evaluations (resumed, or rule changed), as the estimator
    processes them (`LagItem`; built directly: this runs for every audit event)."""
    out: list[LagItem] = []
    append = out.append
    for e in events:
        series = e.series
        if series in _REEVALUATIONS:
            group_id = e.group_id
            if group_id is not None and (
                series is Series.RULE_CHANGE or e.processing_state is ProcessingState.ON
            ):
                append((e.time, REEVALUATION_ORDER, group_id, "", ""))
            continue
        object_id = e.object_id
        object_type = e.object_type
        if object_id is None or object_type is None:
            continue
        if series in _TRIGGERS:
            append((e.time, TRIGGER_ORDER, object_id, OBJECT_TYPE_NAMES[object_type], ""))
        elif series in _CHANGES:
            group_id = e.group_id
            append(
                (e.time, CHANGE_ORDER, object_id, OBJECT_TYPE_NAMES[object_type], group_id or "")
            )
    return out


@dataclass(slots=True)
class _TenantLag:
    estimator: LagEstimator
    generation: int


@dataclass(slots=True)
class ProcessingLagConsumer:
    """One per store, for every tenant. All methods run on the store's thread."""

    horizon: float
    """`thresholds.lag_trigger_horizon`: a trigger without a change for this long expires."""
    sample_window: float
    """`thresholds.lag_window`: recent samples are kept for it (and SAMPLE_MARGIN more)."""
    _tenants: dict[str, _TenantLag] = field(default_factory=dict)

    # -- PageConsumer ---------------------------------------------------------------------------

    def consume(self, db: sqlite3.Connection, tenant: str, pages: Sequence[NewEvents]) -> None:
        state = self._state(db, tenant)
        estimator = state.estimator
        samples: list[LagSample] = []
        for page in pages:
            samples += estimator.observe_items(lag_items(page.events), until=page.settled)
        # Once for all the pages: a trigger matched within the group is never written.
        changes = estimator.take_changes()
        db.executemany(
            "INSERT OR REPLACE INTO lag_state (tenant, role, object_id, object_type, at, lag, "
            "group_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(tenant, *row) for row in changes.upserts],
        )
        db.executemany(
            "DELETE FROM lag_state WHERE tenant=? AND role=? AND object_id=? AND at=? AND lag=? "
            "AND group_id=?",
            [(tenant, *key) for key in changes.deletes],
        )
        if samples:
            db.executemany(
                "INSERT INTO lag_samples (tenant, change_at, object_type, lag) VALUES (?, ?, ?, ?)",
                [(tenant, s.change_at, s.object_type, s.lag_seconds) for s in samples],
            )
            histogram = self.histogram(db, tenant).add(samples)
            db.execute(
                "INSERT OR REPLACE INTO lag_histogram (tenant, counts, sum_seconds) "
                "VALUES (?, ?, ?)",
                (tenant, orjson.dumps(histogram.bucket_counts).decode(), histogram.sum_seconds),
            )
        state.generation += 1
        db.execute(
            "INSERT OR REPLACE INTO lag_meta (tenant, generation) VALUES (?, ?)",
            (tenant, state.generation),
        )

    def prune(self, db: sqlite3.Connection, tenant: str, now: float) -> None:
        db.execute(
            "DELETE FROM lag_samples WHERE tenant=? AND change_at < ?",
            (tenant, now - self.sample_window - SAMPLE_MARGIN),
        )

    # -- queries --------------------------------------------------------------------------------

    def histogram(self, db: sqlite3.Connection, tenant: str) -> LagHistogram:
        row = db.execute(
            "SELECT counts, sum_seconds FROM lag_histogram WHERE tenant=?", (tenant,)
        ).fetchone()
        if row is None:
            return LagHistogram()
        counts = tuple(int(n) for n in orjson.loads(row[0]))
        if len(counts) != len(LAG_BUCKETS) + 1:
            # Buckets changed between releases: the old counts cannot be re-binned.
            return LagHistogram()
        return LagHistogram(counts, float(row[1]))

    def recent_samples(
        self, db: sqlite3.Connection, tenant: str, since: float
    ) -> tuple[LagSample, ...]:
        """Samples whose change happened after `since`, oldest first."""
        return tuple(
            LagSample(change_at, lag, ObjectType(object_type))
            for change_at, object_type, lag in db.execute(
                "SELECT change_at, object_type, lag FROM lag_samples WHERE tenant=? "
                "AND change_at > ? ORDER BY change_at",
                (tenant, since),
            )
        )

    def waiting_triggers(self, db: sqlite3.Connection, tenant: str, now: float) -> WaitingTriggers:
        """Rule-relevant triggers after the queue's front that no change answered yet, and the
        recent (change, trigger) pairs the front and its pace are read from (`domain/queue`):
        the kept samples, and the changes received but not settled yet (newer than the
        watermark), each paired with the earliest trigger still pending for its object."""
        reach = RATE_WINDOW + FRONT_WINDOW
        pairs = [
            (float(change), float(trigger))
            for change, trigger in db.execute(
                "SELECT change_at, change_at - lag FROM lag_samples WHERE tenant=?"
                " AND change_at > (SELECT MAX(change_at) FROM lag_samples WHERE tenant=?) - ?",
                (tenant, tenant, reach),
            )
        ]
        # A received change answers the earliest trigger of its object pending since the
        # settled front: older ones are triggers that moved nothing, long processed.
        settled = queue_front(pairs, now)
        floor = (
            settled - FRONT_WINDOW
            if settled is not None
            else now - self.sample_window - SAMPLE_MARGIN
        )
        pairs += [
            (float(change), float(trigger))
            for change, trigger in db.execute(
                "SELECT b.at, (SELECT MIN(p.at) FROM lag_state p WHERE p.tenant=b.tenant"
                " AND p.role IN (?, ?) AND p.object_id=b.object_id AND p.at > ?"
                " AND p.at <= b.at) FROM lag_state b WHERE b.tenant=? AND b.role=?",
                (_PENDING_ROLE, _BUFFERED_TRIGGER_ROLE, floor, tenant, _BUFFERED_CHANGE_ROLE),
            )
            if trigger is not None
        ]
        front = queue_front(pairs, now)
        # Without a kept sample the front is unknown: only what the samples would cover counts.
        since = front if front is not None else now - self.sample_window - SAMPLE_MARGIN
        capacity = self.capacity(db, tenant, now)
        if capacity is None:
            # Nothing can pass the front but a change: the count and the oldest are enough (a
            # storm holds tens of thousands of pending triggers; read at every assessment).
            count, oldest = db.execute(
                "SELECT COUNT(*), MIN(at) FROM lag_state WHERE tenant=? AND role IN (?, ?) "
                "AND at > ?",
                (tenant, _PENDING_ROLE, _BUFFERED_TRIGGER_ROLE, since),
            ).fetchone()
            return WaitingTriggers(
                front, int(count), None if oldest is None else float(oldest), tuple(sorted(pairs))
            )
        pending = tuple(
            float(at)
            for (at,) in db.execute(
                "SELECT at FROM lag_state WHERE tenant=? AND role IN (?, ?) AND at > ? ORDER BY at",
                (tenant, _PENDING_ROLE, _BUFFERED_TRIGGER_ROLE, since),
            )
        )
        return WaitingTriggers(
            front,
            len(pending),
            pending[0] if pending else None,
            tuple(sorted(pairs)),
            pending_at=pending,
            capacity_per_hour=capacity,
        )

    def capacity(self, db: sqlite3.Connection, tenant: str, now: float) -> float | None:
        """The highest processing rate measured in the last CAPACITY_KEPT (`domain/queue`)."""
        row = db.execute(
            "SELECT per_hour FROM queue_capacity WHERE tenant=? AND measured_at > ?",
            (tenant, now - CAPACITY_KEPT),
        ).fetchone()
        return None if row is None else float(row[0])

    def record_capacity(
        self, db: sqlite3.Connection, tenant: str, per_hour: float, now: float
    ) -> None:
        """Keeps `per_hour` when it is the highest rate of the last CAPACITY_KEPT."""
        kept = self.capacity(db, tenant, now)
        if kept is None or per_hour >= kept:
            db.execute(
                "INSERT OR REPLACE INTO queue_capacity (tenant, per_hour, measured_at) "
                "VALUES (?, ?, ?)",
                (tenant, per_hour, now),
            )

    # -- restoring ------------------------------------------------------------------------------

    def _state(self, db: sqlite3.Connection, tenant: str) -> _TenantLag:
        row = db.execute("SELECT generation FROM lag_meta WHERE tenant=?", (tenant,)).fetchone()
        stored = int(row[0]) if row else 0
        state = self._tenants.get(tenant)
        if state is None or state.generation != stored:
            # First use since start, or the last page's transaction was rolled back.
            rows = db.execute(
                "SELECT role, object_id, object_type, at, lag, group_id FROM lag_state "
                "WHERE tenant=?",
                (tenant,),
            )
            state = _TenantLag(LagEstimator.from_rows(rows, horizon=self.horizon), stored)
            self._tenants[tenant] = state
        return state
