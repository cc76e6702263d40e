"""Which event times the ingestion believes (#14): an event cannot move time.

An `activityDateTime` the audit log cannot hold - before its retention (with a day of margin)
or after the present (with an allowance for clock skew between Graph and this host) - says
nothing true about the tenant. Such an event is counted as malformed (`time_out_of_range`) and
taken off the page before the poller reads the page's last time, so it never moves the
watermark, the coverage, the buckets or the lag. A store written before this check existed may
hold such a watermark: `repair_watermark` clamps it once at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from exporter.domain.records import AuditRecord, MalformedEvent
from exporter.graph.audit import AuditPage

MAX_CLOCK_SKEW = 600.0
"""How far ahead of this host's clock an event may be dated (Graph's clock and ours differ)."""
RETENTION_SLACK = 86400.0
"""How far before the audit retention an event may be dated (retention is not to the second)."""
OUT_OF_RANGE = "time_out_of_range"


@dataclass(frozen=True, slots=True)
class TimeBounds:
    earliest: float
    latest: float

    @classmethod
    def at(cls, now: float, retention: float) -> TimeBounds:
        return cls(now - retention - RETENTION_SLACK, now + MAX_CLOCK_SKEW)

    def holds(self, time: float) -> bool:
        return self.earliest <= time <= self.latest


def screen_times(page: AuditPage, bounds: TimeBounds) -> AuditPage:
    """`page` without the events dated outside `bounds`, which join its malformed events."""
    records = page.records
    if not records or (
        bounds.holds(min(r.time for r in records)) and bounds.holds(max(r.time for r in records))
    ):
        return page  # the usual page: nothing to take off, nothing rebuilt
    kept: list[AuditRecord] = []
    malformed = list(page.malformed)
    for record in records:
        if bounds.holds(record.time):
            kept.append(record)
        else:
            malformed.append(MalformedEvent(record.id, record.time, OUT_OF_RANGE))
    last_time: float | None = None
    ascending = True
    for record in kept:
        if last_time is not None and record.time < last_time:
            ascending = False
        last_time = record.time
    return replace(
        page, records=kept, malformed=malformed, last_time=last_time, ascending=ascending
    )
