"""A tenant's count history for its assessments, without reading the settled past again.

Each assessment reads the tenant's minute buckets of the last 49 h and its hourly buckets of
the last 35 days (`Store.count_history`). With 100 tenants, each assessed after every poll,
building those rows into Python objects was the largest part of the exporter's CPU in steady
state (bench/PROFILES.md, "Fleet"). Between two reads only recent buckets change, and the store
changes buckets in two ways only: a count grows (an upsert adds a positive number of events),
or the rows before a cutoff are deleted (pruning). So within a range of buckets a change shows
in the number of rows, the sum of their counts or the first bucket: only a prune into the range
and, in the same interval between two reads, writes of old events that gave back exactly as
many rows, events and the same first bucket could hide one (a backfill of the past, during
which nearly every read is a full one anyway).

`CountHistoryReader.read` keeps the rows before `FRESH` seconds ago (on an hour boundary) from
its last full read. At the next read it asks SQLite for the row count, the sum of the counts
and the first bucket in that range (computed by SQLite: no row becomes a Python object),
reuses the kept rows when they agree, and reads only the rows from the boundary on. A backfill
or a reconciliation pass writing into the past, pruning into the kept range, or a new hour
boundary make it read everything again. The result is the one `Store.count_history` returns
(tests/test_count_cache.py compares them).
"""

from __future__ import annotations

import bisect
import threading
from array import array
from dataclasses import dataclass

from exporter.domain.events import Series
from exporter.domain.history import HOUR, CountHistory, floor_to
from exporter.store.database import MINUTE_RETENTION, Store

FRESH = 3 * HOUR
"""Buckets from this long before `now` (floored to the hour) are read at every read: the live
polls (their lateness allowance included) write there."""

_SERIES = {series.value: series for series in Series}


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    column: str


_MINUTES = _Table("minute_counts", "minute")
_HOURS = _Table("hour_counts", "hour")


@dataclass(frozen=True, slots=True)
class _Kept:
    """One table's rows of one tenant in [start, end), from a full read."""

    start: float
    end: int
    series: dict[Series, tuple[array[int], array[int]]]
    """series -> (its buckets, ascending; their counts). Arrays, not Python objects: a
    tenant of 15,000 groups keeps ~53,000 rows (~1.7 MiB so, 7 MiB as dicts and lists)."""
    buckets: array[int]
    """Every kept row's bucket, ascending (rows of several series share a bucket)."""
    running: array[int]
    """running[i]: the sum of the counts of the rows before buckets[i] (one more entry)."""

    def agrees(self, start: float, rows: int, total: int, first_bucket: int | None) -> bool:
        """Whether [start, end) holds `rows` rows whose counts sum to `total`, the first in
        `first_bucket`, as kept."""
        first = bisect.bisect_left(self.buckets, start)
        return (
            len(self.buckets) - first == rows
            and self.running[-1] - self.running[first] == total
            and (self.buckets[first] if first < len(self.buckets) else None) == first_bucket
        )

    def from_start(self, start: float) -> dict[Series, dict[int, int]]:
        """Copies of the kept buckets from `start` on."""
        found: dict[Series, dict[int, int]] = {}
        for series, (keys, counts) in self.series.items():
            first = bisect.bisect_left(keys, start)
            if first < len(keys):
                found[series] = dict(zip(keys[first:], counts[first:], strict=True))
        return found


def _series(name: str) -> Series:
    return _SERIES.get(name) or Series(name)


class CountHistoryReader:
    """`Store.count_history`, keeping the settled past between reads (see the module
    docstring). Runs on the store's thread, like every read of the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._kept: dict[tuple[str, str], _Kept] = {}
        self._lock = threading.Lock()
        self.full_reads = 0
        """Reads that found the kept rows out of date (for the tests and the profile)."""

    def read(self, tenant: str, since: float, now: float) -> CountHistory:
        """Minute and hourly buckets from `since` on, with the coverage, for the domain."""
        minutes_from = now - MINUTE_RETENTION
        boundary = floor_to(now - FRESH, HOUR)
        with self._lock:
            minute = self._read(tenant, _MINUTES, max(since, minutes_from), boundary)
            hourly = self._read(tenant, _HOURS, since, boundary)
        return CountHistory(minute, hourly, tuple(self._store.coverage(tenant)), minutes_from)

    def _read(
        self, tenant: str, table: _Table, start: float, boundary: int
    ) -> dict[Series, dict[int, int]]:
        db = self._store.db
        kept = self._kept.get((tenant, table.name))
        if kept is None or kept.end != boundary or start < kept.start or boundary <= start:
            kept = None
        else:
            rows, total, first = db.execute(
                f"SELECT COUNT(*), TOTAL(count), MIN({table.column}) FROM {table.name} "
                f"WHERE tenant=? AND {table.column} >= ? AND {table.column} < ?",
                (tenant, start, boundary),
            ).fetchone()
            if not kept.agrees(start, int(rows), int(total), None if first is None else int(first)):
                kept = None
        if kept is None:
            self.full_reads += 1
            kept = self._keep(tenant, table, start, boundary)
        found = kept.from_start(start)
        for name, bucket, count in db.execute(
            f"SELECT series, {table.column}, count FROM {table.name} "
            f"WHERE tenant=? AND {table.column} >= ?",
            (tenant, max(start, boundary)),
        ):
            counts = found.setdefault(_series(name), {})
            counts[int(bucket)] = counts.get(int(bucket), 0) + int(count)
        return found

    def _keep(self, tenant: str, table: _Table, start: float, boundary: int) -> _Kept:
        rows = (
            []
            if boundary <= start
            else self._store.db.execute(
                f"SELECT series, {table.column}, count FROM {table.name} "
                f"WHERE tenant=? AND {table.column} >= ? AND {table.column} < ?",
                (tenant, start, boundary),
            ).fetchall()
        )
        rows.sort(key=lambda row: int(row[1]))
        series: dict[Series, tuple[array[int], array[int]]] = {}
        buckets = array("q")
        running = array("q", [0])
        total = 0
        for name, bucket, count in rows:
            keys, counts = series.setdefault(_series(name), (array("q"), array("q")))
            keys.append(int(bucket))
            counts.append(int(count))
            buckets.append(int(bucket))
            total += int(count)
            running.append(total)
        kept = _Kept(start, boundary, series, buckets, running)
        self._kept[(tenant, table.name)] = kept
        return kept


__all__ = ["FRESH", "CountHistoryReader"]
