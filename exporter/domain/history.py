"""Event-time counts of one tenant, in the shape the store keeps them, and sums over them.

The store fills a `CountHistory` from its bucket tables (docs/architecture.md, "Store -> domain"):

* `minute` and `hourly`: per `Series`, bucket start (epoch seconds, a multiple of 60 or 3600)
  -> number of events whose `activityDateTime` falls in the bucket. Only non-zero buckets need to
  be given.
* `coverage`: the event-time intervals the store has fully ingested (typically one interval, from
  the backfill start to the audit watermark). Inside coverage an absent bucket is a zero; outside
  coverage it is unknown: the exporter was not looking (before the backfill start, or a window it
  could not fetch). That is how a gap differs from a quiet hour.
* `minutes_from`: minute buckets before this time were pruned (the store keeps them for at least
  48 h); sums that need older minutes are clamped to it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exporter.domain.events import Series

MINUTE = 60
HOUR = 3600
DAY = 86400
WEEK = 7 * DAY

Interval = tuple[float, float]
"""[start, end) in epoch seconds."""


def floor_to(t: float, step: int) -> int:
    return math.floor(t / step) * step


def last_minute_bucket(t: float) -> int:
    """The minute bucket holding the last instant before t: the one containing t, or the
    previous one when t falls exactly on a minute (no time of the current bucket has passed)."""
    return math.ceil(t / MINUTE) * MINUTE - MINUTE


def trailing_hour(at: float) -> Interval:
    """The one trailing hour of every gauge, ratio and signal at `at`: the 60 minute buckets
    ending with the one that holds the last instant before `at`, as [start, end) of event
    time (so `*_last_hour` gauges and the numerators of ratios and signals count the same
    events at any instant)."""
    last = last_minute_bucket(at)
    return (last - HOUR + MINUTE, last + MINUTE)


@dataclass(frozen=True, slots=True)
class CountHistory:
    minute: Mapping[Series, Mapping[int, int]]
    hourly: Mapping[Series, Mapping[int, int]]
    coverage: tuple[Interval, ...]
    minutes_from: float = -math.inf
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        merged: list[Interval] = []
        for start, end in sorted(self.coverage):
            if not end >= start:
                raise ValueError(
                    f"coverage interval ({start}, {end}) ends before it starts; give [start, end)"
                )
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            elif end > start:
                merged.append((start, end))
        for name, buckets, step in (("minute", self.minute, MINUTE), ("hourly", self.hourly, HOUR)):
            for series, counts in buckets.items():
                bad = next((k for k, v in counts.items() if k % step or v < 0), None)
                if bad is not None:
                    raise ValueError(
                        f"{name} bucket {bad} of {series} is not a multiple of {step} s or has a "
                        "negative count; key buckets by their start time"
                    )
        object.__setattr__(self, "coverage", tuple(merged))
        object.__setattr__(self, "_starts", tuple(s for s, _ in merged))

    @classmethod
    def from_rows(
        cls,
        minute_rows: Iterable[tuple[str, int, int]],
        hourly_rows: Iterable[tuple[str, int, int]],
        coverage: Iterable[Interval],
        minutes_from: float = -math.inf,
    ) -> CountHistory:
        """From `(series, bucket_start, count)` rows, as `SELECT series, start, count` returns."""
        minute: dict[Series, dict[int, int]] = {}
        hourly: dict[Series, dict[int, int]] = {}
        for target, rows in ((minute, minute_rows), (hourly, hourly_rows)):
            for series, start, count in rows:
                bucket = target.setdefault(Series(series), {})
                bucket[int(start)] = bucket.get(int(start), 0) + int(count)
        return cls(minute, hourly, tuple(coverage), minutes_from)

    @property
    def coverage_end(self) -> float | None:
        return self.coverage[-1][1] if self.coverage else None

    @property
    def coverage_start(self) -> float | None:
        return self.coverage[0][0] if self.coverage else None

    def covers(self, start: float, end: float) -> bool:
        """Whether [start, end) was fully ingested (an empty interval is not covered)."""
        if end <= start:
            return False
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self.coverage[i][1] >= end

    def hour_count(self, series: tuple[Series, ...], hour_start: int) -> int | None:
        """Events of `series` in the clock hour starting at `hour_start`; None if not covered."""
        if not self.covers(hour_start, hour_start + HOUR):
            return None
        return sum(self.hourly.get(s, {}).get(hour_start, 0) for s in series)

    def minute_counts(self, series: tuple[Series, ...], first: int, last: int) -> list[int]:
        """Counts of the minute buckets first, first+60, ..., last (inclusive), summed over
        `series`. Pruned or never-ingested minutes count as zero: callers check coverage."""
        n = (last - first) // MINUTE + 1
        out = [0] * max(n, 0)
        for s in series:
            for start, count in self.minute.get(s, {}).items():
                if first <= start <= last:
                    out[(start - first) // MINUTE] += count
        return out

    def trailing_hour_count(self, series: tuple[Series, ...], at: float) -> int:
        """Events in the `trailing_hour` at `at`."""
        start, end = trailing_hour(at)
        return sum(self.minute_counts(series, int(start), int(end) - MINUTE))

    def trailing_hour_known(self, at: float) -> bool:
        """Whether the trailing hour at `at` can be judged: its start lies in ingested minutes
        and everything from there to `at` (or to the coverage end, for the still-arriving tail)
        was ingested. The tail after the coverage end counts what has arrived so far: a lower
        bound, which is the safe side for pause signals."""
        start, _ = trailing_hour(at)
        end = self.coverage_end
        if end is None or start < self.minutes_from:
            return False
        return self.covers(start, min(at, end))
