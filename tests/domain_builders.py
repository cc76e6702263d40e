"""Hand-built tenant histories and groups for the domain tests (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Callable

from exporter.domain.events import DirectoryObjectKind, ProcessingState, Series
from exporter.domain.groups import CriticalStatus, GroupState, MembershipProcessingStatus
from exporter.domain.history import HOUR, MINUTE, CountHistory, Interval

# Monday 2026-11-30 00:00:00 UTC: four whole weeks of history fit before it inside November.
MONDAY = 1793577600 + 4 * 7 * 86400
WEEK = 7 * 86400


class HistoryBuilder:
    """Counts per series in hourly and minute buckets over a covered span [start, end)."""

    def __init__(self, start: float, end: float, minutes_from: float | None = None) -> None:
        self.start, self.end = start, end
        self.minutes_from = end - 48 * HOUR if minutes_from is None else minutes_from
        self.hourly: dict[Series, dict[int, int]] = {}
        self.minute: dict[Series, dict[int, int]] = {}
        self.coverage: list[Interval] = [(start, end)]

    def add(self, series: Series, t: float, count: int = 1) -> HistoryBuilder:
        """`count` events at instant t (hourly and minute buckets, as the store would)."""
        hour = int(t // HOUR * HOUR)
        minute = int(t // MINUTE * MINUTE)
        self.hourly.setdefault(series, {})[hour] = self.hourly.get(series, {}).get(hour, 0) + count
        if minute >= self.minutes_from:
            bucket = self.minute.setdefault(series, {})
            bucket[minute] = bucket.get(minute, 0) + count
        return self

    def hour(
        self, series: Series, hour_start: int, count: int, minutes: int = 60
    ) -> HistoryBuilder:
        """`count` events spread evenly over the minutes of one clock hour (only the first
        `minutes` of them exist yet, for the hour in progress)."""
        base, extra = divmod(count, 60)
        for m in range(minutes):
            n = base + (1 if m < extra else 0)
            if n:
                self.add(series, hour_start + m * MINUTE, n)
        return self

    def rate(
        self,
        series: Series,
        per_hour: int | Callable[[int], int],
        start: float | None = None,
        end: float | None = None,
    ) -> HistoryBuilder:
        """Every clock hour in [start, end) gets per_hour (or per_hour(hour_start)) events."""
        first = int(math.ceil((self.start if start is None else start) / HOUR) * HOUR)
        last = self.end if end is None else end
        for h in range(first, int(last), HOUR):
            n = per_hour(h) if callable(per_hour) else per_hour
            self.hour(series, h, n, min(60, int((last - h) // MINUTE)))
        return self

    def gap(self, start: float, end: float) -> HistoryBuilder:
        """The store was not looking in [start, end): no data, not zero."""
        out: list[Interval] = []
        for s, e in self.coverage:
            if e <= start or s >= end:
                out.append((s, e))
                continue
            if s < start:
                out.append((s, start))
            if e > end:
                out.append((end, e))
        self.coverage = out
        for buckets in (*self.hourly.values(), *self.minute.values()):
            for k in [k for k in buckets if start <= k < end]:
                del buckets[k]
        return self

    def build(self) -> CountHistory:
        return CountHistory(
            {s: dict(b) for s, b in self.minute.items()},
            {s: dict(b) for s, b in self.hourly.items()},
            tuple(self.coverage),
            self.minutes_from,
        )


def group(
    n: int,
    *,
    paused_since: float | None = None,
    paused: bool | None = None,
    critical: bool = False,
    status: MembershipProcessingStatus | None = None,
    name: str | None = None,
    kind: DirectoryObjectKind = DirectoryObjectKind.GROUP,
) -> GroupState:
    is_paused = paused if paused is not None else paused_since is not None
    return GroupState(
        id=f"00000000-0000-0000-0000-{n:012d}",
        name=name or f"group {n:05d}",
        kind=kind,
        state=ProcessingState.PAUSED if is_paused else ProcessingState.ON,
        paused_since=paused_since,
        critical=critical,
        status=CriticalStatus(status, error_message="boom") if status else None,
    )


def gid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"
