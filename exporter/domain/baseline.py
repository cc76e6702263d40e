"""The expected hourly count of a measure: robust (a median), seasonal, with a floor.

For the clock hour H (UTC) the baseline is, first that applies:

1. `hour_of_week`: the median of H - 1 week, ..., H - 4 weeks, if at least 3 of those hours
   were ingested (a median of 3 ignores one spike; of 2 it would not).
2. `hour_of_day`: the median of H - 1 day, ..., H - 7 days, if at least 3 were ingested.
3. `recent_hours`: the median of the ingested hours among the previous 168, if at least 6.
4. `none`: no baseline yet (no backfill has finished). Ratios and signals that need a baseline
   say so instead of guessing.

Hours that were not ingested (gaps, before the backfill) are skipped, never read as zero; see
`CountHistory.coverage`. The result is raised to `baseline_floor_per_hour`, so that a small tenant
whose normal is 2 events an hour does not flap on 11.

The trailing hour at an instant t overlaps two clock hours; its expected count is their
baselines mixed by overlap: (1 - f) x B(H0) + f x B(H1) with f the fraction of H1 elapsed at t.
That is the exact expectation when each clock hour runs at its own constant rate.

Not persisted on purpose: a baseline is a pure function of the hourly buckets, which the store
persists (and backfill bootstraps). One hour's baseline reads at most 11 buckets; an evaluation
needs a few dozen hours per measure, well under a millisecond of work. Keeping a second, derived
copy would only add a way for the two to disagree after a restart.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from enum import StrEnum

from exporter.domain.events import RELEVANT_TRIGGER_SERIES, ObjectType, Series
from exporter.domain.history import DAY, HOUR, WEEK, CountHistory, floor_to

WEEKS_OF_HISTORY = 4
DAYS_OF_HISTORY = 7
MIN_SEASONAL_SAMPLES = 3
RECENT_HOURS = 168
MIN_RECENT_SAMPLES = 6


class Measure(StrEnum):
    """What a baseline is kept for."""

    MEMBERSHIP_CHANGES = "membership_changes"
    USER_CHANGES = "user_changes"
    DEVICE_CHANGES = "device_changes"


MEASURE_SERIES: dict[Measure, tuple[Series, ...]] = {
    Measure.MEMBERSHIP_CHANGES: (Series.DYNAMIC_ADD, Series.DYNAMIC_REMOVE),
    # Rule-relevant and unknown-relevance triggers only (#13): a storm of updates no rule reads
    # (authentication methods, licence housekeeping) cannot start re-evaluation.
    Measure.USER_CHANGES: RELEVANT_TRIGGER_SERIES[ObjectType.USER],
    Measure.DEVICE_CHANGES: RELEVANT_TRIGGER_SERIES[ObjectType.DEVICE],
}
TRIGGER_MEASURES = (Measure.USER_CHANGES, Measure.DEVICE_CHANGES)


class BaselineMethod(StrEnum):
    HOUR_OF_WEEK = "hour_of_week"
    HOUR_OF_DAY = "hour_of_day"
    RECENT_HOURS = "recent_hours"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class HourBaseline:
    hour_start: int
    expected: float | None
    """Events expected in this clock hour, floored; None when there is no history yet."""
    raw: float | None
    """The median before the floor."""
    method: BaselineMethod
    samples: int


@dataclass(frozen=True, slots=True)
class TrailingBaseline:
    """The expected count of the trailing hour at `at`."""

    at: float
    expected: float | None
    raw: float | None
    method: BaselineMethod
    """The method of the clock hour that contains `at`."""


@dataclass(slots=True)
class Baseline:
    """Baselines of one measure, computed on demand and cached per hour."""

    history: CountHistory
    measure: Measure
    floor: float
    _cache: dict[int, HourBaseline] = field(default_factory=dict, repr=False)
    _counts: dict[int, int | None] = field(default_factory=dict, repr=False)
    """hour -> the measure's count in it (None: not ingested), read once: the recent-hours
    medians of consecutive hours read nearly the same 168 hours (an assessment of a tenant
    with less than a week of history computes dozens of them)."""

    @property
    def series(self) -> tuple[Series, ...]:
        return MEASURE_SERIES[self.measure]

    def hour(self, hour_start: int) -> HourBaseline:
        if hour_start % HOUR:
            raise ValueError(f"{hour_start} is not the start of a clock hour")
        cached = self._cache.get(hour_start)
        if cached is None:
            cached = self._compute(hour_start)
            self._cache[hour_start] = cached
        return cached

    def _compute(self, hour_start: int) -> HourBaseline:
        attempts = (
            (BaselineMethod.HOUR_OF_WEEK, WEEK, WEEKS_OF_HISTORY, MIN_SEASONAL_SAMPLES),
            (BaselineMethod.HOUR_OF_DAY, DAY, DAYS_OF_HISTORY, MIN_SEASONAL_SAMPLES),
            (BaselineMethod.RECENT_HOURS, HOUR, RECENT_HOURS, MIN_RECENT_SAMPLES),
        )
        counts = self._counts
        for method, step, count, needed in attempts:
            samples = []
            for hour in range(hour_start - step, hour_start - (count + 1) * step, -step):
                if hour in counts:
                    c = counts[hour]
                else:
                    c = counts[hour] = self.history.hour_count(self.series, hour)
                if c is not None:
                    samples.append(c)
            if len(samples) >= needed:
                raw = float(statistics.median(samples))
                return HourBaseline(hour_start, max(raw, self.floor), raw, method, len(samples))
        return HourBaseline(hour_start, None, None, BaselineMethod.NONE, 0)

    def trailing_hour(self, at: float) -> TrailingBaseline:
        current = self.hour(floor_to(at, HOUR))
        previous = self.hour(current.hour_start - HOUR)
        if current.expected is None or previous.expected is None or current.raw is None:
            return TrailingBaseline(at, None, None, current.method)
        assert previous.raw is not None
        f = (at - current.hour_start) / HOUR
        return TrailingBaseline(
            at,
            (1 - f) * previous.expected + f * current.expected,
            (1 - f) * previous.raw + f * current.raw,
            current.method,
        )


def deviation_ratio(observed: float, expected: float | None) -> float | None:
    """observed / expected; None without a baseline (or with a zero floor and a zero median)."""
    if expected is None or expected <= 0:
        return None
    return observed / expected
