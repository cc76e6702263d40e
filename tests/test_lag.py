"""Lag estimator: matching, expiry, order independence, persistence, bounds; and its accuracy
on a synthetic storm (one FIFO queue per tenant, background churn)."""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.events import ObjectType
from exporter.domain.history import HOUR
from exporter.domain.lag import (
    _BAND_WIDTHS,
    _LOG_STEP,
    KIND_ORDER,
    LAG_BUCKETS,
    REFERENCE_MIN,
    REFERENCE_MIN_BAND,
    LagEstimator,
    LagEvent,
    LagEventKind,
    LagHistogram,
    LagSample,
    LagStateRow,
    _bucket_edge,
    _buffered_row,
    summarize_lag,
)

HORIZON = 48 * HOUR
USER, DEVICE = ObjectType.USER, ObjectType.DEVICE


def trig(obj: str, at: float, kind: ObjectType = USER) -> LagEvent:
    return LagEvent(LagEventKind.TRIGGER, obj, kind, at)


def change(obj: str, at: float, kind: ObjectType = USER, group: str | None = None) -> LagEvent:
    return LagEvent(LagEventKind.CHANGE, obj, kind, at, group)


def reevaluation(group: str, at: float) -> LagEvent:
    """The group was resumed, or its rule changed: Entra re-reads every object against it."""
    return LagEvent(LagEventKind.REEVALUATION, group, None, at)


def run(events: Iterable[LagEvent], **kw: float) -> list[LagSample]:
    estimator = LagEstimator(horizon=kw.pop("horizon", HORIZON), **kw)  # type: ignore[arg-type]
    events = list(events)
    until = max((e.at for e in events), default=0.0)
    return estimator.observe(events, until)


def lags(samples: Iterable[LagSample]) -> list[float]:
    return [s.lag_seconds for s in samples]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([trig("x", 0), change("x", 100)], [100], id="simple"),
        pytest.param([change("x", 100)], [], id="change-without-trigger"),
        pytest.param([trig("x", 0), change("y", 100)], [], id="other-object"),
        pytest.param([trig("x", 0), change("x", 0)], [0], id="same-instant"),
        pytest.param([trig("x", 0), change("x", HORIZON + 1)], [], id="expired"),
        pytest.param([trig("x", 0), change("x", HORIZON)], [HORIZON], id="at-horizon"),
        pytest.param(
            [trig("x", 0), change("x", 100), change("x", 101), change("x", 150)],
            [100],
            id="one-evaluation-several-groups",
        ),
        pytest.param(
            [trig("x", 0), trig("x", 50), change("x", 100), change("x", 110), change("x", 400)],
            [100, 350],
            id="coalesced-then-next-trigger",
        ),
        pytest.param(
            [trig("x", 0), trig("x", 0), change("x", 10), change("x", 500)],
            [10],
            id="duplicate-trigger-is-one",
        ),
        pytest.param(
            [trig("d", 0, DEVICE), change("d", 30, DEVICE), trig("u", 5), change("u", 65)],
            [30, 60],
            id="devices-and-users",
        ),
        pytest.param(
            [trig("x", 0), trig("x", 40), change("x", 100)],
            [100],
            id="no-reference-yet-takes-the-earliest",
        ),
    ],
)
def test_matching(events: list[LagEvent], expected: list[float]) -> None:
    assert lags(run(events)) == expected


def test_ambiguous_match_takes_the_candidate_nearest_the_recent_lag() -> None:
    # 20 unambiguous samples of about 600 s make the reference.
    events = [e for i in range(20) for e in (trig(f"u{i}", i), change(f"u{i}", i + 600))]
    # x changed (uselessly) a day ago, then again 590 s before its change: 590 is the lag.
    events += [trig("x", 1000 - 86400), trig("x", 410), change("x", 1000), change("x", 5000)]
    samples = run(events)
    assert lags(samples)[-1] == 590
    assert len(samples) == 21  # the day-old trigger was consumed without a sample


def test_a_trigger_far_older_than_the_recent_lag_is_not_the_cause_of_a_change() -> None:
    # 20 unambiguous samples of about 60 s: the queue is a minute behind.
    events = [e for i in range(20) for e in (trig(f"u{i}", i), change(f"u{i}", i + 60))]
    # x was updated a day ago (a nightly job) and moved nothing then; today x moves in a group
    # for a reason of its own (no trigger of x): that is no day-long lag.
    events += [trig("x", 1000 - 86400), change("x", 1000)]
    estimator = LagEstimator(horizon=HORIZON)
    samples = estimator.observe(events, 1000)
    assert lags(samples) == [60.0] * 20
    assert estimator.stats.pending_triggers == 0  # processed long ago: consumed
    # Within an hour of the recent lag a lone trigger is still the cause (a queue growing).
    late = estimator.observe([trig("y", 2000), change("y", 2000 + 3000)], 5000)
    assert lags(late) == [3000]


def test_samples_carry_the_trigger_type_and_change_time() -> None:
    assert run([trig("d", 0, DEVICE), change("d", 30, DEVICE)]) == [LagSample(30, 30, DEVICE)]


def test_events_are_matched_in_event_time_order_whatever_the_arrival_order() -> None:
    estimator = LagEstimator(horizon=HORIZON)
    # The change arrives before its trigger (the audit log delivered the trigger late).
    assert estimator.observe([change("x", 100)], until=30) == []
    assert lags(estimator.observe([trig("x", 40)], until=200)) == [60]
    assert estimator.stats.late_events == 0


def test_events_older_than_the_processed_frontier_are_processed_at_once_and_counted() -> None:
    estimator = LagEstimator(horizon=HORIZON)
    estimator.observe([trig("x", 10)], until=1000)
    assert lags(estimator.observe([change("x", 500)], until=1000)) == [490]
    assert estimator.stats.late_events == 1


def test_expiry_sweep_bounds_memory_and_counts() -> None:
    estimator = LagEstimator(horizon=HOUR)
    estimator.observe([trig(f"u{i}", i) for i in range(1000)], until=1000)
    assert estimator.stats.pending_triggers == 1000
    estimator.observe([], until=1000 + 2 * HOUR)
    assert estimator.stats.pending_triggers == 0
    assert estimator.stats.expired_triggers == 1000
    assert [r for r in estimator.export_rows() if r.role == "pending"] == []


def test_caps_per_object_and_in_all() -> None:
    estimator = LagEstimator(horizon=HORIZON, per_object_cap=3, max_pending=5)
    estimator.observe([trig("x", t) for t in range(10)], until=10)
    assert estimator.stats.pending_triggers == 3  # the 3 most recent
    estimator.observe([trig(f"y{i}", 20 + i) for i in range(5)], until=30)
    assert estimator.stats.pending_triggers == 5
    assert estimator.stats.dropped_triggers == 3
    with pytest.raises(ValueError, match="horizon"):
        LagEstimator(horizon=0)
    with pytest.raises(ValueError, match="finite"):
        estimator.observe([], until=math.inf)


def test_a_trigger_kept_after_the_cap_sweep_emptied_its_object_is_in_the_state_and_the_rows() -> (
    None
):
    estimator = LagEstimator(horizon=30, max_pending=2)
    estimator.observe([trig("x", 0), trig("y", 0), trig("x", 31)], until=31)
    rows = [r for r in estimator.take_changes().upserts if r.role == "pending"]
    assert rows == [LagStateRow("pending", "x", "user", 31.0)]
    assert [r for r in estimator.export_rows() if r.role == "pending"] == rows
    assert lags(estimator.observe([change("x", 40)], until=40)) == [9.0]


def test_a_late_copy_of_a_matched_change_keeps_one_reference_row_in_memory_as_stored() -> None:
    estimator = LagEstimator(horizon=HORIZON, coalesce=0)
    db: dict[Key, LagStateRow] = {}
    estimator.observe([change("x", 0), trig("x", 0)], until=1)
    apply(db, estimator)
    # Both again, after the frontier passed them and the coalescing window ended.
    assert lags(estimator.observe([trig("x", 0), change("x", 0)], until=1)) == [0.0]
    apply(db, estimator)
    assert sorted(db.values()) == estimator.export_rows()
    assert [r.role for r in estimator.export_rows()].count("reference") == 1


def test_a_resumed_group_measures_from_its_resume_not_from_triggers_queued_before_the_pause() -> (
    None
):
    day = 86400.0
    events = [
        trig("x", 0),  # queued, then every group was paused: it moved nothing
        trig("y", 10, DEVICE),
        reevaluation("g", day),  # g resumed a day later: a full re-evaluation
        change("x", day + 300, group="g"),
        change("y", day + 400, DEVICE, group="g"),
        change("z", day + 500, group="g"),  # nothing pending for z: the re-evaluation moved it
        change("x", day + 4000, group="h"),  # h was not re-evaluated: x's trigger still counts
    ]
    assert [(s.lag_seconds, s.object_type) for s in run(events)] == [
        (300, USER),
        (400, DEVICE),
        (500, USER),
        (day + 4000, USER),
    ]


def test_a_trigger_after_the_reevaluation_is_still_a_candidate() -> None:
    # 20 samples of about 60 s make the reference: the queue is fast.
    events = [e for i in range(20) for e in (trig(f"u{i}", i), change(f"u{i}", i + 60))]
    events += [reevaluation("g", 100), trig("x", 5000), change("x", 5060, group="g")]
    assert lags(run(events))[-1] == 60  # not 4,960 s from the re-evaluation
    with pytest.raises(ValueError, match="object type"):
        LagEvent(LagEventKind.CHANGE, "x", None, 0)


def storm_events(seed: int = 7) -> list[LagEvent]:
    rng = random.Random(seed)
    events = [trig(f"u{i % 50}", i * 37.0) for i in range(400)]
    for _i in range(300):
        t = rng.uniform(0, 20_000)
        events.append(change(f"u{rng.randrange(50)}", t, group=f"g{rng.randrange(4)}"))
    events += [reevaluation(f"g{i}", 3000.0 * (i + 1)) for i in range(4)]
    return events


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), batches=st.integers(1, 12), lateness=st.floats(0, 3000))
def test_arrival_order_within_the_lateness_allowance_does_not_change_the_samples(
    seed: int, batches: int, lateness: float
) -> None:
    events = sorted(storm_events(seed % 5), key=lambda e: e.at)
    reference = run(events)
    # Deliver in batches; each event may arrive up to `lateness` after events newer than it.
    rng = random.Random(seed)
    arrival = sorted(events, key=lambda e: e.at + rng.uniform(0, lateness))
    estimator = LagEstimator(horizon=HORIZON)
    samples: list[LagSample] = []
    size = math.ceil(len(arrival) / batches)
    for b in range(batches):
        chunk = arrival[b * size : (b + 1) * size]
        rest = arrival[(b + 1) * size :]
        # The watermark: everything at or before it has arrived.
        until = min((e.at for e in rest), default=math.inf) - 1e-6
        samples += estimator.observe(chunk, until=min(until, 1e12))
    assert sorted(samples, key=lambda s: (s.change_at, s.lag_seconds)) == sorted(
        reference, key=lambda s: (s.change_at, s.lag_seconds)
    )
    assert estimator.stats.late_events == 0


@settings(max_examples=40, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.booleans(), st.integers(0, 5), st.floats(0, 10 * HOUR)), max_size=60
    ),
    untils=st.lists(st.floats(0, 12 * HOUR), max_size=5),
)
def test_lag_samples_are_never_negative(
    events: list[tuple[bool, int, float]], untils: list[float]
) -> None:
    estimator = LagEstimator(horizon=HOUR, coalesce=60)
    items = [(trig if t else change)(f"o{o}", at) for t, o, at in events]
    chunks = [items[i::3] for i in range(3)]
    for chunk, until in zip(chunks, [*untils, 12 * HOUR, 12 * HOUR, 12 * HOUR], strict=False):
        for s in estimator.observe(chunk, until):
            assert s.lag_seconds >= 0


Key = tuple[str, str, float, float, str]


def apply(db: dict[Key, LagStateRow], estimator: LagEstimator) -> None:
    changes = estimator.take_changes()
    for key in changes.deletes:
        db.pop(key, None)
    for row in changes.upserts:
        db[row.key] = row


def test_persist_restore_round_trip_continues_exactly() -> None:
    events = sorted(storm_events(3), key=lambda e: e.at)
    uninterrupted = run(events)

    db: dict[Key, LagStateRow] = {}
    first = LagEstimator(horizon=HORIZON)
    half = len(events) // 2
    # Deliver the first half with a watermark inside it, so some events stay buffered.
    samples = first.observe(events[:half], until=events[half // 2].at)
    apply(db, first)
    assert sorted(db.values()) == first.export_rows()
    assert {r.role for r in db.values()} >= {
        "pending",
        "buffered_trigger",
        "buffered_change",
        "reevaluation",
        "frontier",
    }

    # Restart from the rows as a database would return them (plain tuples).
    second = LagEstimator.from_rows([tuple(r) for r in db.values()], horizon=HORIZON)
    assert second.export_rows() == first.export_rows()
    samples += second.observe(events[half:], until=events[-1].at)
    apply(db, second)
    assert sorted(db.values()) == second.export_rows()
    assert samples == uninterrupted


def test_take_changes_is_incremental() -> None:
    estimator = LagEstimator(horizon=HORIZON)
    estimator.observe([trig("x", 0)], until=10)
    first = estimator.take_changes()
    assert ("pending", "x", 0.0, 0.0, "") in {r.key for r in first.upserts}
    assert estimator.take_changes().upserts == ()
    estimator.observe([change("x", 20)], until=30)
    second = estimator.take_changes()
    assert ("pending", "x", 0.0, 0.0, "") in second.deletes
    assert ("matched", "x", 20.0, 0.0, "") in {r.key for r in second.upserts}


# --- the fast path against the buffered-only reference -----------------------------------------


class BufferedOnly(LagEstimator):
    """The estimator as it was before `observe` released new events without buffering them and
    before `reference_lag` was sped up: every event goes through the heap and the journal (a
    buffered row put, then dropped). The real estimator must give the same samples and the
    same rows."""

    def observe(self, events: Iterable[LagEvent], until: float) -> list[LagSample]:
        samples: list[LagSample] = []
        for event in events:
            object_type = event.object_type.value if event.object_type is not None else ""
            group_id = event.group_id or ""
            item = (event.at, KIND_ORDER[event.kind], event.object_id, object_type, group_id)
            if event.at <= self._frontier:
                self._late += 1
                self._process(item, samples)
                continue
            if item not in self._buffered:
                self._buffered.add(item)
                heapq.heappush(self._buffer, item)
                self._put(_buffered_row(item))
        while self._buffer and self._buffer[0][0] <= until:
            item = heapq.heappop(self._buffer)
            self._buffered.discard(item)
            self._drop(_buffered_row(item).key)
            self._process(item, samples)
        if until > self._frontier:
            if math.isfinite(self._frontier):
                self._drop(("frontier", "", self._frontier, 0.0, ""))
            self._frontier = until
            self._put(LagStateRow("frontier", "", "", until))
        self._expire_matched(self._frontier)
        if self._frontier - self._last_sweep >= self.horizon / 8:
            self._sweep(self._frontier)
        return samples

    def reference_lag(self) -> float | None:
        total = len(self._reference)
        if total < REFERENCE_MIN:
            return None
        counts = self._reference_buckets
        lo, hi = min(counts), max(counts)
        prefix = [0]
        for b in range(lo, hi + 1):
            prefix.append(prefix[-1] + counts.get(b, 0))
        best: tuple[float, int, int] | None = None
        for width in _BAND_WIDTHS:
            for first in range(lo, max(lo, hi - width + 1) + 1):
                last = min(first + width, hi + 1)
                n = prefix[last - lo] - prefix[first - lo]
                if n < REFERENCE_MIN_BAND:
                    continue
                expected = total * (_bucket_edge(last) - _bucket_edge(first)) / self.horizon
                score = n * math.log(n / expected) - (n - expected) if n > expected else 0.0
                if score > 0 and (best is None or score > best[0]):
                    best = (score, first, last)
        if best is None:
            return None
        _, first, last = best
        weights = [(b, counts.get(b, 0)) for b in range(first, last)]
        mean_bucket = sum(b * w for b, w in weights) / sum(w for _, w in weights)
        return float(math.exp((mean_bucket + 0.5) * _LOG_STEP))


def lag_event(kind: int, obj: int, group: int | None, at: float) -> LagEvent:
    if kind == 2:
        return reevaluation(f"g{group or 0}", at)
    object_type = DEVICE if obj >= 3 else USER
    if kind == 0:
        return trig(f"o{obj}", at, object_type)
    return change(f"o{obj}", at, object_type, None if group is None else f"g{group}")


EVENT_TIMES = st.one_of(st.integers(0, 400).map(float), st.floats(0, 400))
"""Whole seconds make ties and duplicates likely; any float covers the rest."""


@settings(max_examples=150, deadline=None)
@given(
    pool=st.lists(
        st.tuples(
            st.sampled_from([0, 0, 1, 1, 1, 2]),
            st.integers(0, 4),
            st.one_of(st.none(), st.integers(0, 2)),
            EVENT_TIMES,
        ),
        min_size=1,
        max_size=40,
    ),
    pages=st.lists(
        st.tuples(
            st.lists(st.integers(0, 39), max_size=25),
            st.one_of(st.integers(-10, 450).map(float), st.floats(-10, 450)),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
    horizon=st.sampled_from([30.0, 150.0, 2000.0]),
    coalesce=st.sampled_from([0.0, 5.0, 40.0]),
    per_object_cap=st.sampled_from([1, 2, 32]),
    max_pending=st.sampled_from([2, 6, 1_000_000]),
)
def test_released_events_give_the_same_samples_and_rows_as_buffering_them(
    pool: list[tuple[int, int, int | None, float]],
    pages: list[tuple[list[int], float, bool]],
    horizon: float,
    coalesce: float,
    per_object_cap: int,
    max_pending: int,
) -> None:
    """Random pages of a random stream (repeats, ties, late events, watermarks going back),
    with restarts from the stored rows between pages."""
    events = [lag_event(*spec) for spec in pool]
    fast = LagEstimator(horizon, coalesce, per_object_cap, max_pending)
    reference: LagEstimator = BufferedOnly(horizon, coalesce, per_object_cap, max_pending)
    fast_db: dict[Key, LagStateRow] = {}
    reference_db: dict[Key, LagStateRow] = {}
    for indices, until, restart in pages:
        if restart:
            fast = LagEstimator.from_rows(
                [tuple(r) for r in fast_db.values()],
                horizon=horizon,
                coalesce=coalesce,
                per_object_cap=per_object_cap,
                max_pending=max_pending,
            )
            reference = BufferedOnly.from_rows(
                [tuple(r) for r in reference_db.values()],
                horizon=horizon,
                coalesce=coalesce,
                per_object_cap=per_object_cap,
                max_pending=max_pending,
            )
            assert type(reference) is BufferedOnly
        page = [events[i % len(events)] for i in indices]
        assert fast.observe(page, until) == reference.observe(page, until)
        fast_changes, reference_changes = fast.take_changes(), reference.take_changes()
        assert set(fast_changes.upserts) == set(reference_changes.upserts)
        assert set(fast_changes.deletes) == set(reference_changes.deletes)
        for db, changes in ((fast_db, fast_changes), (reference_db, reference_changes)):
            for key in changes.deletes:
                db.pop(key, None)
            db.update((row.key, row) for row in changes.upserts)
        assert fast_db == reference_db
        assert sorted(fast_db.values()) == fast.export_rows() == reference.export_rows()
        assert fast.stats == reference.stats
        assert fast.reference_lag() == reference.reference_lag()


@pytest.mark.parametrize("churn_per_day", [0.5, 2.0])
def test_a_storm_gives_the_same_samples_and_rows_as_buffering_every_event(
    churn_per_day: float,
) -> None:
    """Many ambiguous matches (the reference at work), hourly pages released at once."""
    events, _ = fifo_storm(11, 400, churn_per_day, 300, 250, 2)
    fast, reference = LagEstimator(horizon=HORIZON), BufferedOnly(horizon=HORIZON)
    for start in range(0, len(events), 1000):
        page = events[start : start + 1000]
        until = page[-1].at - (900 if start % 3000 else 0)
        assert fast.observe(page, until) == reference.observe(page, until)
        assert set(fast.take_changes().upserts) == set(reference.take_changes().upserts)
    assert fast.export_rows() == reference.export_rows()


# --- accuracy on a synthetic storm ------------------------------------------------------------


def fifo_storm(
    seed: int, users: int, churn_per_day: float, storm_size: int, per_hour: float, days: int
) -> tuple[list[LagEvent], list[tuple[float, float]]]:
    """One queue per tenant, served in trigger order at `per_hour`. Background churn: every
    user is updated `churn_per_day` times a day, and 1 update in 10 moves a membership. At
    day 1 a bulk push updates `storm_size` users within 10 minutes, each moving 1-3
    memberships. Returns the audit events and (change time, true lag) per processed trigger
    that moved memberships."""
    rng = random.Random(seed)
    triggers: list[tuple[float, str, bool]] = []
    for u in range(users):
        t = rng.expovariate(churn_per_day / 86400)
        while t < days * 86400:
            triggers.append((t, f"u{u}", rng.random() < 0.1))
            t += rng.expovariate(churn_per_day / 86400)
    for u in rng.sample(range(users), storm_size):
        triggers.append((STORM_AT + rng.uniform(0, 600), f"u{u}", True))
    heapq.heapify(triggers)
    service = 3600 / per_hour
    free_at = 0.0
    events: list[LagEvent] = []
    truth: list[tuple[float, float]] = []
    while triggers:
        t1, obj, productive = heapq.heappop(triggers)
        events.append(trig(obj, t1))
        done = max(free_at, t1) + service
        free_at = done
        if productive:
            for k in range(rng.randint(1, 3)):
                events.append(change(obj, done + k * rng.uniform(0, 2)))
            truth.append((done, done - t1))
    return events, truth


STORM_AT = 86400.0


def estimate_as_the_exporter_would(events: list[LagEvent]) -> list[LagSample]:
    """Events show up in the audit log up to 15 minutes late; the exporter polls hourly and
    processes up to its watermark (poll time - 15 minutes)."""
    rng = random.Random(5)
    arriving = sorted((e.at + rng.uniform(0, 900), i, e) for i, e in enumerate(events))
    estimator = LagEstimator(horizon=HORIZON)
    samples: list[LagSample] = []
    cut, i = HOUR, 0
    while i < len(arriving):
        batch = []
        while i < len(arriving) and arriving[i][0] < cut:
            batch.append(arriving[i][2])
            i += 1
        samples += estimator.observe(batch, until=cut - 900)
        cut += HOUR
    samples += estimator.observe([], until=1e12)
    assert estimator.stats.late_events == 0
    return samples


@pytest.mark.parametrize(
    ("churn_per_day", "per_hour", "days"),
    [
        pytest.param(0.5, 250, 2, id="light-churn"),
        pytest.param(2.0, 250, 2, id="heavy-churn"),
        pytest.param(1.0, 500, 2, id="fast-queue"),
    ],
)
def test_storm_median_lag_within_25_percent_of_the_truth(
    churn_per_day: float, per_hour: float, days: int
) -> None:
    events, truth = fifo_storm(11, 2000, churn_per_day, 1500, per_hour, days)
    samples = estimate_as_the_exporter_would(events)
    windows = [(t, t + HOUR) for t in range(int(HOUR), int(days * 86400 - HOUR), int(HOUR))]
    checked = 0
    for start, end in windows:
        true = [lag for t, lag in truth if start < t <= end]
        est = [s.lag_seconds for s in samples if start < s.change_at <= end]
        if len(true) < 20:
            continue
        true_median, est_median = statistics.median(true), statistics.median(est)
        assert abs(est_median - true_median) <= 0.25 * true_median, (start, est_median, true_median)
        checked += 1
    assert checked >= 3
    during = [lag for t, lag in truth if STORM_AT < t < STORM_AT + 5 * HOUR]
    assert statistics.median(during) > HOUR  # the storm really built a queue


# --- presenting ---------------------------------------------------------------------------------


def test_histogram_buckets_and_cumulative_counts() -> None:
    samples = [LagSample(0, lag, USER) for lag in (0.5, 1.0, 1.5, 4 * HOUR, 100 * HOUR)]
    h = LagHistogram().add(samples)
    assert h.count == 5
    assert h.sum_seconds == pytest.approx(0.5 + 1 + 1.5 + 4 * HOUR + 100 * HOUR)
    cumulative = dict(h.cumulative())
    assert cumulative[1.0] == 2  # le="1" includes 1.0
    assert cumulative[5.0] == 3
    assert cumulative[4 * HOUR] == 4
    assert cumulative[72 * HOUR] == 4
    assert cumulative[math.inf] == 5
    assert list(LAG_BUCKETS) == sorted(LAG_BUCKETS)
    with pytest.raises(ValueError, match="bucket counts"):
        LagHistogram((1, 2), 0.0)


def test_summary_median_and_p90_over_the_window() -> None:
    now = 10 * HOUR
    samples = [LagSample(now - i * 60, float(i + 1), USER) for i in range(10)]
    samples.append(LagSample(now - 2 * HOUR, 9999.0, USER))  # outside the window
    s = summarize_lag(samples, now=now, window=HOUR)
    assert (s.samples, s.median_seconds, s.p90_seconds) == (10, 5.5, 9.0)
    empty = summarize_lag([], now=now, window=HOUR)
    assert (empty.samples, empty.median_seconds, empty.p90_seconds) == (0, None, None)
