"""How late audit events appear, and what the reconciliation pass found (#14), kept as
cumulative totals in the store (`totals` kinds), so that the histogram and the counter survive
restarts like every other counter.

An event's lateness is measured when it is first counted, by a live poll or the reconciliation
pass (never a backfill, which reads long-settled events): the time of the query that returned it
minus its activityDateTime. A live poll runs every `audit_interval`, so on-time events measure at
most that plus Graph's own delay; an event that measures more than the lateness allowance was
found only by the reconciliation pass, and would have been lost without it."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping

from exporter.domain.records import ClassifiedEvent

LATENESS_BUCKETS: tuple[float, ...] = (
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    10800.0,
)
"""Upper bounds in seconds: around the poll interval, the default allowance (30 min) and the
reconciliation reach (3 h)."""
BUCKET_PREFIX = "lateness_bucket:"
"""`lateness_bucket:<upper bound>` (or `+Inf`): events in that bucket only (not cumulative)."""
SUM_KIND = "lateness_sum_ms"
RECONCILED = "reconciled"
"""Events first counted by the reconciliation pass (they arrived after the lateness allowance)."""
_INF = "+Inf"


def count_lateness(
    counted: Counter[str], query_time: float, events: Iterable[ClassifiedEvent]
) -> None:
    """Add the lateness of newly counted `events`, returned by a query at `query_time`."""
    total_ms = 0
    for event in events:
        late = max(0.0, query_time - event.time)
        index = bisect.bisect_left(LATENESS_BUCKETS, late)
        bound = _INF if index == len(LATENESS_BUCKETS) else f"{LATENESS_BUCKETS[index]:g}"
        counted[BUCKET_PREFIX + bound] += 1
        total_ms += round(late * 1000)
    if total_ms:
        counted[SUM_KIND] += total_ms


def lateness_histogram(totals: Mapping[str, int]) -> tuple[list[tuple[str, int]], float]:
    """(cumulative (le, count) buckets ending with +Inf, sum of seconds) from a tenant's totals."""
    buckets: list[tuple[str, int]] = []
    running = 0
    for bound in [*(f"{b:g}" for b in LATENESS_BUCKETS), _INF]:
        running += totals.get(BUCKET_PREFIX + bound, 0)
        buckets.append((bound, running))
    return buckets, totals.get(SUM_KIND, 0) / 1000.0
