"""Processing lag: from a trigger (a user or device changed) to the dynamic membership change it
caused, estimated from the audit log alone.

Matching. A trigger of object X at t1 waits (pending) until a dynamic membership change of X at
t2 >= t1; that gives a sample t2 - t1 and consumes the trigger.

* One candidate pending (the usual case) is the cause: the sample is unambiguous.
* Several pending (X changed more than once, e.g. an unrelated attribute yesterday that moved no
  membership, then the bulk push): Entra works through one queue per tenant in order, so the
  cause is the candidate whose lag is closest to the lag every other change shows right now.
  That lag (`reference_lag()`) is where the candidate lags of the most recent changes pile up,
  above the even spread of old triggers that moved nothing. The chosen candidate gives the
  sample; the candidates before it were processed earlier without moving a membership and are
  consumed without a sample; later ones stay pending. Until the reference exists (a cold start)
  the earliest candidate is taken.
  Why not a fixed rule: "earliest unmatched trigger" overestimates whenever the object had an
  earlier trigger that changed nothing (measured on a synthetic FIFO storm with one background
  update per user every two days: 4x to 25x the true median); "latest trigger" underestimates
  whenever the object changed again while its first change was queued (-50% to -90% under
  heavy churn). The reference rule stays within a few percent on the same runs
  (tests/test_lag.py).
* One evaluation of X moves it in several groups at once: further changes of X within
  `coalesce` seconds of a matched change are the same evaluation and consume nothing.
* A trigger followed by no change for `horizon` seconds expires (it changed no membership).
* A group's full re-evaluation (it was resumed, or its rule changed: `REEVALUATION` events)
  re-reads every object against that group at its time R. A change of X in that group at t2 >= R
  may be its doing: R joins X's candidates and stands for every trigger of X before it (the
  group re-read X at R whatever they were), so such a sample is at most t2 - R. Without it, the
  first changes after resuming a group paused for a day would all show a day of lag (the
  triggers that queued before the pause), and the lag signal would call for a new pause the
  moment the last one ends. When R is chosen, X's own triggers stay pending: they may still
  move X in groups that were not re-evaluated. A change of X in a re-evaluated group with no
  trigger pending gives the sample t2 - R (the queue's delay for that re-evaluation).
* A change with no pending trigger and no re-evaluation of its group (the trigger predates the
  history) gives no sample.

Order. Audit events arrive up to the lateness allowance out of event-time order. Events are
buffered and processed in event-time order up to `until` (the audit watermark: everything at or
before it has been ingested), so the outcome does not depend on arrival order. Only events newer
than `until` are kept in the buffer (and its rows); those at or before it are merged with the
buffered ones that fall due. An event older than what was already processed (later than the
allowance) is processed at once, best effort, and counted in `late_events`.

Persistence. The whole state is plain rows (`LagStateRow`); `take_changes()` returns what changed
since the previous call, for the store to write in the same transaction as the event counts (so
every event is matched exactly once across restarts), and `from_rows()` restores it.

Memory. Bounded by expiry (swept every horizon/8 of event time), `per_object_cap` pending
triggers per object and `max_pending` in all (beyond it new triggers are dropped and counted).
"""

from __future__ import annotations

import bisect
import heapq
import math
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from exporter.domain.events import ObjectType

LAG_BUCKETS: tuple[float, ...] = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    2 * 3600.0,
    4 * 3600.0,
    8 * 3600.0,
    12 * 3600.0,
    24 * 3600.0,
    48 * 3600.0,
    72 * 3600.0,
)
"""Histogram upper bounds (seconds), +Inf implied: seconds to minutes for a healthy tenant
(Microsoft: "typically processed within a few hours"), then 4 h (the default lag threshold),
12 h and 24 h (Microsoft's two recommended waits) and 48-72 h for the worst storms."""

REFERENCE_SIZE = 512
"""At most this many candidate lags of the most recent changes make the reference..."""
REFERENCE_WINDOW = 1800.0
"""... and only those of changes in the last 30 minutes (of change time), so that the reference
follows a lag that falls fast as a queue drains..."""
REFERENCE_KEEP = 64
"""... unless that leaves fewer than this many: a quiet tenant keeps its last 64."""
REFERENCE_MIN = 16
"""Below this many reference candidates, an ambiguous match takes the earliest trigger."""
REFERENCE_MIN_BAND = 4
"""A band of lags needs this many candidates to be the reference."""
PLAUSIBLE_SLACK = 3600.0
PLAUSIBLE_FACTOR = 2.0
"""A pending trigger older than max(2 x the reference lag, the reference + 1 h) cannot be the
cause of a change now: the queue's lag grows at most as fast as time passes, and the reference
reads the last 30 minutes of changes, so an hour's slack covers a queue growing fast. Without
this bound a quiet tenant paired a nightly job's trigger with a membership change of the same
object up to two days later, made for another reason, and its lag p90 read 1d9h
while the oldest waiting change was 2 minutes old (bench/RESULTS.md, "Detection")."""
_BAND_WIDTHS = (3, 5, 9, 15)
"""Reference bands, in 10% buckets: from 30% to about 4x wide."""
_LOG_STEP = math.log(1.1)
"""Reference buckets are 10% wide."""


class LagEventKind(StrEnum):
    TRIGGER = "trigger"
    CHANGE = "change"
    REEVALUATION = "reevaluation"
    """A group's full re-evaluation was queued: it was resumed, or its rule changed."""


TRIGGER_ORDER, REEVALUATION_ORDER, CHANGE_ORDER = 0, 1, 2
"""`LagItem` kinds: at the same instant a trigger goes first, a change last."""
KIND_ORDER = {
    LagEventKind.TRIGGER: TRIGGER_ORDER,
    LagEventKind.REEVALUATION: REEVALUATION_ORDER,
    LagEventKind.CHANGE: CHANGE_ORDER,
}
_ORDER_KIND = {order: kind for kind, order in KIND_ORDER.items()}


@dataclass(frozen=True, slots=True)
class LagEvent:
    """A classified audit event, reduced to what lag estimation needs: a trigger (`Add|Update|
    Delete user|device`, object = the target), a dynamic membership change (object = the
    member, `targetResources[0]`; `group_id` the group) or a group's re-evaluation (object =
    the group resumed or whose rule changed; no object type)."""

    kind: LagEventKind
    object_id: str
    object_type: ObjectType | None
    at: float
    group_id: str | None = None
    """For a change: the group (or unit) it was made in, where known."""

    def __post_init__(self) -> None:
        if self.kind is not LagEventKind.REEVALUATION and self.object_type is None:
            raise ValueError(f"a {self.kind.value} event needs the object type (user or device)")

    @property
    def item(self) -> LagItem:
        object_type = self.object_type
        return (
            self.at,
            KIND_ORDER[self.kind],
            self.object_id,
            object_type.value if object_type is not None else "",
            self.group_id or "",
        )


class LagSample(NamedTuple):
    """One matched change (a NamedTuple: one is built per matched change while ingesting)."""

    change_at: float
    lag_seconds: float
    object_type: ObjectType


class LagRowRole(StrEnum):
    PENDING = "pending"
    """A processed trigger waiting for its change; `at` = trigger time."""
    MATCHED = "matched"
    """The last matched change of an object (coalescing); `at` = change time."""
    BUFFERED_TRIGGER = "buffered_trigger"
    """Received, newer than the watermark, not processed yet; `at` = event time."""
    BUFFERED_CHANGE = "buffered_change"
    BUFFERED_REEVALUATION = "buffered_reevaluation"
    REFERENCE = "reference"
    """A candidate of a recent change; `at` = change time, `lag` = the candidate's lag."""
    REEVALUATION = "reevaluation"
    """The latest full re-evaluation of a group; object_id = the group, `at` = when."""
    FRONTIER = "frontier"
    """Events up to `at` have been processed; object_id and object_type are ''."""


_Key = tuple[str, str, float, float, str]
_PENDING = LagRowRole.PENDING.value
_MATCHED = LagRowRole.MATCHED.value
_REFERENCE = LagRowRole.REFERENCE.value
_REEVALUATION = LagRowRole.REEVALUATION.value
_FRONTIER = LagRowRole.FRONTIER.value
_OBJECT_TYPES = {t.value: t for t in ObjectType}
OBJECT_TYPE_NAMES = {t: t.value for t in ObjectType}
"""`.value` without the enum property (a tenth of the time, on the hot path)."""


class LagStateRow(NamedTuple):
    """One row of estimator state. Primary key: (role, object_id, at, lag, group_id)."""

    role: str
    object_id: str
    object_type: str
    """`user`, `device`, or '' (frontier, re-evaluations)."""
    at: float
    lag: float = 0.0
    group_id: str = ""
    """The group of a buffered change ('' when unknown or not a change)."""

    @property
    def key(self) -> _Key:
        return (self.role, self.object_id, self.at, self.lag, self.group_id)


@dataclass(frozen=True, slots=True)
class LagStateChanges:
    """Rows to write (insert or replace) and keys to delete, since the previous call."""

    upserts: tuple[LagStateRow, ...]
    deletes: tuple[_Key, ...]


@dataclass(frozen=True, slots=True)
class LagStats:
    late_events: int
    expired_triggers: int
    dropped_triggers: int
    pending_triggers: int
    buffered_events: int


LagItem = tuple[float, int, str, str, str]
"""A `LagEvent` as the estimator processes and buffers it: (at, kind order, object id, object
type or '', group id or ''). Tuples sort in processing order; the ingestion hot path builds them
directly (`observe_items`), without a LagEvent per audit event."""


@dataclass(slots=True)
class LagEstimator:
    horizon: float
    coalesce: float = 120.0
    per_object_cap: int = 32
    max_pending: int = 1_000_000
    _pending: dict[str, tuple[ObjectType, list[float]]] = field(default_factory=dict, repr=False)
    _pending_count: int = 0
    _matched: dict[str, tuple[ObjectType, float]] = field(default_factory=dict, repr=False)
    _matched_order: deque[tuple[float, str]] = field(default_factory=deque, repr=False)
    _buffer: list[LagItem] = field(default_factory=list, repr=False)
    _buffered: set[LagItem] = field(default_factory=set, repr=False)
    _reference: list[tuple[float, str, ObjectType, float]] = field(default_factory=list, repr=False)
    _reference_buckets: dict[int, int] = field(default_factory=dict, repr=False)
    _reevaluations: dict[str, float] = field(default_factory=dict, repr=False)
    """group id -> start of its latest full re-evaluation processed."""
    _frontier: float = -math.inf
    _last_sweep: float = -math.inf
    _fresh: set[_Key] = field(default_factory=set, repr=False)
    _dirty: dict[_Key, LagStateRow | None] = field(default_factory=dict, repr=False)
    _late: int = 0
    _expired: int = 0
    _dropped: int = 0

    def __post_init__(self) -> None:
        if self.horizon <= 0 or self.coalesce < 0:
            raise ValueError("the lag horizon must be > 0 s and the coalesce window >= 0 s")
        if self.per_object_cap < 1 or self.max_pending < 1:
            raise ValueError("per_object_cap and max_pending must be at least 1")

    # --- feeding -----------------------------------------------------------------------------

    def observe(self, events: Iterable[LagEvent], until: float) -> list[LagSample]:
        """Take a batch of events (any order) and process, in event-time order, everything at
        or before `until` (the audit watermark). Returns the samples produced."""
        return self.observe_items([event.item for event in events], until)

    def observe_items(self, items: Iterable[LagItem], until: float) -> list[LagSample]:
        """`observe`, for events already in their processed form."""
        if not math.isfinite(until):
            raise ValueError("until must be a finite epoch time: the audit watermark")
        samples: list[LagSample] = []
        frontier = self._frontier
        buffered = self._buffered
        # New events at or before `until` (nearly all of them in a backfill) are processed in
        # this call: they skip the heap and the journal, where each would leave a row put and
        # dropped again (a no-op for the store), and are merged in event-time order with the
        # buffered events that are due. Same order, same rows, same samples: see
        # tests/test_lag.py, the buffered-only reference.
        released: list[LagItem] = []
        for item in items:
            at = item[0]
            if at <= frontier:
                self._late += 1
                self._process(item, samples)
            elif item in buffered:
                continue
            elif at <= until:
                released.append(item)
            else:
                buffered.add(item)
                heapq.heappush(self._buffer, item)
                self._put(_buffered_row(item))
        due: list[LagItem] = []
        while self._buffer and self._buffer[0][0] <= until:
            item = heapq.heappop(self._buffer)
            buffered.discard(item)
            self._drop(_buffered_row(item).key)
            due.append(item)
        released.sort()
        previous: LagItem | None = None
        matched = self._matched
        coalesce = self.coalesce
        for item in heapq.merge(due, released) if due else released:
            if item == previous:  # the same event twice in the batch is processed once
                continue
            previous = item
            if item[1] == CHANGE_ORDER:
                # Most changes are the same evaluation as the object's last matched change (it
                # moved in several groups at once): `_match`'s first test, without the call.
                last = matched.get(item[2])
                if last is not None and 0 <= item[0] - last[1] <= coalesce:
                    continue
            self._process(item, samples)
        if until > self._frontier:
            if math.isfinite(self._frontier):
                self._drop((_FRONTIER, "", self._frontier, 0.0, ""))
            self._frontier = until
            self._put(LagStateRow(_FRONTIER, "", "", until))
        self._expire_matched(self._frontier)
        if self._frontier - self._last_sweep >= self.horizon / 8:
            self._sweep(self._frontier)
        return samples

    def _expire_matched(self, at: float) -> None:
        order = self._matched_order
        while order and at - order[0][0] > self.coalesce:
            t, object_id = order.popleft()
            current = self._matched.get(object_id)
            if current is not None and current[1] == t:
                del self._matched[object_id]
                self._drop((_MATCHED, object_id, t, 0.0, ""))

    def _process(self, item: LagItem, samples: list[LagSample]) -> None:
        at, order, object_id, object_type, group_id = item
        if order == REEVALUATION_ORDER:
            self._reevaluate(object_id, at)
        elif order == TRIGGER_ORDER:
            self._add_trigger(object_id, _OBJECT_TYPES[object_type], at)
        elif (
            sample := self._match(object_id, _OBJECT_TYPES[object_type], at, group_id)
        ) is not None:
            samples.append(sample)

    def _reevaluate(self, group_id: str, at: float) -> None:
        previous = self._reevaluations.get(group_id)
        if previous is not None:
            if previous >= at:
                return
            self._drop((_REEVALUATION, group_id, previous, 0.0, ""))
        self._reevaluations[group_id] = at
        self._put(LagStateRow(_REEVALUATION, group_id, "", at))

    def _add_trigger(self, object_id: str, object_type: ObjectType, at: float) -> None:
        entry = self._pending.get(object_id)
        times = entry[1] if entry is not None else []
        i = bisect.bisect_left(times, at)
        if i < len(times) and times[i] == at:
            return  # the same object changed twice in one instant: one re-evaluation
        if self._pending_count >= self.max_pending:
            self._sweep(max(self._frontier, at))
            if self._pending_count >= self.max_pending:
                self._dropped += 1
                return
            # The sweep may have emptied and removed this object's entry.
            entry = self._pending.get(object_id)
            times = entry[1] if entry is not None else []
            i = bisect.bisect_left(times, at)
        if entry is None:
            self._pending[object_id] = (object_type, times)
        times.insert(i, at)
        self._pending_count += 1
        self._put(LagStateRow(_PENDING, object_id, OBJECT_TYPE_NAMES[object_type], at))
        if len(times) > self.per_object_cap:
            self._remove_pending(object_id, times, 1)
            self._expired += 1

    def _match(
        self, object_id: str, object_type: ObjectType, at: float, group_id: str
    ) -> LagSample | None:
        matched = self._matched.get(object_id)
        if matched is not None and 0 <= at - matched[1] <= self.coalesce:
            return None
        restart = self._reevaluations.get(group_id) if group_id else None
        if restart is not None and not 0 <= at - restart <= self.horizon:
            restart = None
        entry = self._pending.get(object_id)
        if entry is None and restart is None:
            return None
        trigger_type, times = entry if entry is not None else (object_type, [])
        stale = bisect.bisect_left(times, at - self.horizon)
        if stale:
            self._remove_pending(object_id, times, stale)
            self._expired += stale
        if times and at - times[0] > PLAUSIBLE_SLACK:
            implausible = self._implausible(times, at)
            if implausible:
                self._remove_pending(object_id, times, implausible)
                self._expired += implausible
        n = bisect.bisect_right(times, at)
        # The group's re-evaluation stands for every trigger of X at or before it.
        skip = bisect.bisect_right(times, restart) if restart is not None else 0
        candidates = ([restart] if restart is not None else []) + times[skip:n]
        if not candidates:
            if entry is not None and not times:
                del self._pending[object_id]
            return None
        chosen = 0 if len(candidates) == 1 else self._resolve(candidates, at)
        for t in candidates:
            self._add_reference(at, object_id, trigger_type, at - t)
        lag = at - candidates[chosen]
        if restart is None:
            self._remove_pending(object_id, times, chosen + 1)
        elif chosen > 0:
            self._remove_pending(object_id, times, skip + chosen)
        if entry is not None and not times:
            del self._pending[object_id]
        if matched is not None:
            self._drop((_MATCHED, object_id, matched[1], 0.0, ""))
        self._matched[object_id] = (trigger_type, at)
        self._matched_order.append((at, object_id))
        self._put(LagStateRow(_MATCHED, object_id, OBJECT_TYPE_NAMES[trigger_type], at))
        return LagSample(at, lag, trigger_type)

    def _implausible(self, times: list[float], at: float) -> int:
        """How many of X's oldest pending triggers are too old to cause a change at `at`: the
        queue is one FIFO, so a trigger far older than the lag every other change shows was
        processed long ago and moved nothing then. (A change of X without a trigger of its
        own: a memberOf group following its source, a re-evaluation of another group.)"""
        expected = self.reference_lag()
        if expected is None:
            return 0
        bound = max(PLAUSIBLE_FACTOR * expected, expected + PLAUSIBLE_SLACK)
        return bisect.bisect_left(times, at - bound)

    def _resolve(self, candidates: list[float], at: float) -> int:
        """The candidate whose lag is nearest (in ratio) to the reference mode; the earliest
        while the reference is too small to have one."""
        expected = self.reference_lag()
        if expected is None:
            return 0
        target = _log_lag(expected)
        return min(
            range(len(candidates)), key=lambda i: (abs(_log_lag(at - candidates[i]) - target), i)
        )

    def reference_lag(self) -> float | None:
        """The lag most recent changes share, from the candidate lags of the last
        REFERENCE_SIZE candidates. Every change offers its true trigger at about the queue's
        current lag; triggers that moved nothing stay pending at any age up to the horizon,
        spread about evenly in time. So the reference is the band of lags (3 to 15 adjacent
        10% buckets) that is the most significant excess over an even spread, scored by the
        Poisson likelihood ratio n ln(n / e) - (n - e) of its count n against the e an even
        spread would put there; returned as the count-weighted mean of its bucket centres.
        None when fewer than REFERENCE_MIN candidates or no band holds REFERENCE_MIN_BAND.
        It uses all candidates, never the estimator's own choices, so a wrong choice cannot
        feed back into the next one."""
        total = len(self._reference)
        if total < REFERENCE_MIN:
            return None
        counts = self._reference_buckets
        lo, hi = min(counts), max(counts)
        prefix = [0]
        for b in range(lo, hi + 1):
            prefix.append(prefix[-1] + counts.get(b, 0))
        edges = [_bucket_edge(b) for b in range(lo, hi + 2)]
        span = hi - lo + 1
        best: tuple[float, int, int] | None = None  # (score, first bucket, end bucket)
        for width in _BAND_WIDTHS:
            # Offsets from `lo`: this loop runs for every ambiguous match.
            for i in range(max(0, span - width) + 1):
                j = i + width if i + width < span else span
                n = prefix[j] - prefix[i]
                if n < REFERENCE_MIN_BAND:
                    continue
                expected = total * (edges[j] - edges[i]) / self.horizon
                score = n * math.log(n / expected) - (n - expected) if n > expected else 0.0
                if score > 0 and (best is None or score > best[0]):
                    best = (score, lo + i, lo + j)
        if best is None:
            return None
        _, first, last = best
        weights = [(b, counts.get(b, 0)) for b in range(first, last)]
        mean_bucket = sum(b * w for b, w in weights) / sum(w for _, w in weights)
        return float(math.exp((mean_bucket + 0.5) * _LOG_STEP))

    def _add_reference(
        self, at: float, object_id: str, object_type: ObjectType, lag: float
    ) -> None:
        item = (at, object_id, object_type, lag)
        i = bisect.bisect_left(self._reference, item)
        if i < len(self._reference) and self._reference[i] == item:
            # A late copy of a change already matched: one row per key, in memory as stored.
            return
        self._reference.insert(i, item)
        self._put(_reference_row(item))
        self._count_bucket(lag, 1)
        ring = self._reference
        while len(ring) > REFERENCE_SIZE or (
            len(ring) > REFERENCE_KEEP and ring[0][0] < ring[-1][0] - REFERENCE_WINDOW
        ):
            old_at, old_id, _, old_lag = ring.pop(0)
            self._drop((_REFERENCE, old_id, old_at, old_lag, ""))
            self._count_bucket(old_lag, -1)

    def _count_bucket(self, lag: float, delta: int) -> None:
        b = _lag_bucket(lag)
        n = self._reference_buckets.get(b, 0) + delta
        if n:
            self._reference_buckets[b] = n
        else:
            del self._reference_buckets[b]

    def _remove_pending(self, object_id: str, times: list[float], count: int) -> None:
        for t in times[:count]:
            self._drop((_PENDING, object_id, t, 0.0, ""))
        del times[:count]
        self._pending_count -= count

    def _sweep(self, at: float) -> None:
        cutoff = at - self.horizon
        for object_id in list(self._pending):
            times = self._pending[object_id][1]
            stale = bisect.bisect_left(times, cutoff)
            if stale:
                self._remove_pending(object_id, times, stale)
                self._expired += stale
            if not times:
                del self._pending[object_id]
        for group_id, started in list(self._reevaluations.items()):
            if started < cutoff:
                del self._reevaluations[group_id]
                self._drop((_REEVALUATION, group_id, started, 0.0, ""))
        self._last_sweep = at

    # --- persistence -------------------------------------------------------------------------

    # The journal for take_changes(). Every row put is new to the state (so absent from the
    # store, which mirrors the state as of the last take_changes()) unless it was dropped
    # earlier in the same batch; a row put and dropped within one batch never reaches the
    # store, so it leaves no delete behind.

    def _put(self, row: LagStateRow) -> None:
        key = (row[0], row[1], row[3], row[4], row[5])  # row.key, without the property call
        if key not in self._dirty:
            self._fresh.add(key)
        self._dirty[key] = row

    def _drop(self, key: _Key) -> None:
        if key in self._fresh:
            self._fresh.discard(key)
            del self._dirty[key]
        else:
            self._dirty[key] = None

    def take_changes(self) -> LagStateChanges:
        upserts = tuple(r for r in self._dirty.values() if r is not None)
        deletes = tuple(k for k, r in self._dirty.items() if r is None)
        self._dirty.clear()
        self._fresh.clear()
        return LagStateChanges(upserts, deletes)

    def export_rows(self) -> list[LagStateRow]:
        rows = [
            LagStateRow(_PENDING, object_id, object_type.value, t)
            for object_id, (object_type, times) in self._pending.items()
            for t in times
        ]
        rows += [
            LagStateRow(_MATCHED, object_id, object_type.value, t)
            for object_id, (object_type, t) in self._matched.items()
        ]
        rows += [_buffered_row(item) for item in self._buffer]
        rows += [_reference_row(item) for item in self._reference]
        rows += [
            LagStateRow(_REEVALUATION, group_id, "", t)
            for group_id, t in self._reevaluations.items()
        ]
        if math.isfinite(self._frontier):
            rows.append(LagStateRow(_FRONTIER, "", "", self._frontier))
        return sorted(rows)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Sequence[str | float]],
        *,
        horizon: float,
        coalesce: float = 120.0,
        per_object_cap: int = 32,
        max_pending: int = 1_000_000,
    ) -> LagEstimator:
        """Restore from rows as `export_rows()` / `take_changes()` produced them (plain tuples
        read back from a database are fine)."""
        estimator = cls(horizon, coalesce, per_object_cap, max_pending)
        buffered_kinds = {
            LagRowRole.BUFFERED_TRIGGER: LagEventKind.TRIGGER,
            LagRowRole.BUFFERED_CHANGE: LagEventKind.CHANGE,
            LagRowRole.BUFFERED_REEVALUATION: LagEventKind.REEVALUATION,
        }
        for raw in sorted(_state_row(row) for row in rows):
            role = LagRowRole(raw.role)
            at = float(raw.at)
            if role is LagRowRole.FRONTIER:
                estimator._frontier = max(estimator._frontier, at)
                continue
            if role is LagRowRole.REEVALUATION:
                estimator._reevaluations[raw.object_id] = at
                continue
            if role in buffered_kinds:
                order = KIND_ORDER[buffered_kinds[role]]
                buffered = (at, order, raw.object_id, raw.object_type, raw.group_id)
                estimator._buffered.add(buffered)
                estimator._buffer.append(buffered)
                continue
            object_type = ObjectType(raw.object_type)
            if role is LagRowRole.PENDING:
                entry = estimator._pending.setdefault(raw.object_id, (object_type, []))
                bisect.insort(entry[1], at)
                estimator._pending_count += 1
            elif role is LagRowRole.MATCHED:
                estimator._matched[raw.object_id] = (object_type, at)
                estimator._matched_order.append((at, raw.object_id))
            elif role is LagRowRole.REFERENCE:
                reference = (at, raw.object_id, object_type, float(raw.lag))
                bisect.insort(estimator._reference, reference)
                estimator._count_bucket(reference[3], 1)
        heapq.heapify(estimator._buffer)
        estimator._matched_order = deque(sorted(estimator._matched_order))
        estimator._last_sweep = estimator._frontier
        return estimator

    @property
    def stats(self) -> LagStats:
        return LagStats(
            late_events=self._late,
            expired_triggers=self._expired,
            dropped_triggers=self._dropped,
            pending_triggers=self._pending_count,
            buffered_events=len(self._buffer),
        )


def _log_lag(lag: float) -> float:
    return math.log(max(lag, 1.0))


def _lag_bucket(lag: float) -> int:
    return math.floor(math.log(lag) / _LOG_STEP) if lag > 1.0 else 0


def _bucket_edge(bucket: int) -> float:
    """The lower edge of a bucket in seconds (bucket 0 holds everything under 1.1 s)."""
    if bucket < len(_BUCKET_EDGES):
        return _BUCKET_EDGES[bucket]
    return math.exp(bucket * _LOG_STEP)


_BUCKET_EDGES = (0.0, *(math.exp(b * _LOG_STEP) for b in range(1, 256)))
"""Up to 256 buckets: lags to about 11 years, computed once (`reference_lag` reads them for
every ambiguous match)."""


_BUFFERED_ROLES = {
    LagEventKind.TRIGGER: LagRowRole.BUFFERED_TRIGGER,
    LagEventKind.CHANGE: LagRowRole.BUFFERED_CHANGE,
    LagEventKind.REEVALUATION: LagRowRole.BUFFERED_REEVALUATION,
}


def _state_row(row: Sequence[str | float]) -> LagStateRow:
    """A stored row back as a LagStateRow (rows written before `group_id` existed have five
    fields)."""
    role, object_id, object_type, at = str(row[0]), str(row[1]), str(row[2]), float(row[3])
    lag = float(row[4]) if len(row) > 4 else 0.0
    group_id = str(row[5]) if len(row) > 5 else ""
    return LagStateRow(role, object_id, object_type, at, lag, group_id)


_BUFFERED_ROLE_BY_ORDER = {
    order: _BUFFERED_ROLES[kind].value for order, kind in _ORDER_KIND.items()
}
"""The stored role of a buffered item by its order: an enum's `.value` costs a descriptor call,
and every buffered event makes a row."""


def _buffered_row(item: LagItem) -> LagStateRow:
    at, order, object_id, object_type, group_id = item
    return LagStateRow(_BUFFERED_ROLE_BY_ORDER[order], object_id, object_type, at, 0.0, group_id)


def _reference_row(item: tuple[float, str, ObjectType, float]) -> LagStateRow:
    at, object_id, object_type, lag = item
    return LagStateRow(_REFERENCE, object_id, OBJECT_TYPE_NAMES[object_type], at, lag)


# --- what the exporter presents --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LagHistogram:
    """Cumulative-over-time lag histogram with LAG_BUCKETS, persistable as its counts."""

    bucket_counts: tuple[int, ...] = (0,) * (len(LAG_BUCKETS) + 1)
    """Per bucket, not cumulative; the last one is (72 h, +Inf)."""
    sum_seconds: float = 0.0

    def __post_init__(self) -> None:
        if len(self.bucket_counts) != len(LAG_BUCKETS) + 1:
            raise ValueError(f"a lag histogram has {len(LAG_BUCKETS) + 1} bucket counts")

    def add(self, samples: Iterable[LagSample]) -> LagHistogram:
        counts = list(self.bucket_counts)
        total = self.sum_seconds
        for s in samples:
            counts[bisect.bisect_left(LAG_BUCKETS, s.lag_seconds)] += 1
            total += s.lag_seconds
        return LagHistogram(tuple(counts), total)

    @property
    def count(self) -> int:
        return sum(self.bucket_counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) pairs ending with (inf, count): the shape of
        prometheus_client's HistogramMetricFamily buckets once the bounds are formatted."""
        out, running = [], 0
        for bound, n in zip((*LAG_BUCKETS, math.inf), self.bucket_counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass(frozen=True, slots=True)
class LagSummary:
    window_seconds: float
    samples: int
    median_seconds: float | None
    p90_seconds: float | None


def summarize_lag(samples: Iterable[LagSample], *, now: float, window: float) -> LagSummary:
    """Median and 90th percentile (nearest rank) of the samples whose change falls in
    (now - window, now]."""
    lags = sorted(s.lag_seconds for s in samples if now - window < s.change_at <= now)
    if not lags:
        return LagSummary(window, 0, None, None)
    p90 = lags[math.ceil(0.9 * len(lags)) - 1]
    return LagSummary(window, len(lags), float(statistics.median(lags)), p90)
