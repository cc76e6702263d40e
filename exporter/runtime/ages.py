"""Ages the exporter computes itself, in each tenant's own clock, at scrape time.

Every `*_timestamp_seconds` the exporter exports is a time on the tenant's clock: the system's
in production, the simulator's in the demo, where an hour of the tenant's time passes in seconds.
Prometheus knows only its own clock, so `time() - <timestamp>` is an age only when the two
clocks are one: under the demo's it went negative (tens of hours) and every "time since" panel
and alert with it. Each age below is `now - timestamp` with `now` read from the tenant's clock
when Prometheus scrapes, so dashboards and alerts read ages and never subtract clocks.

In production the value is the one `time() - timestamp` gives at the scrape (the query can run
up to a scrape interval later: 30 s against thresholds of hours), and it no longer depends on
Prometheus's host clock agreeing with the exporter's.

The ages are rendered on every scrape (they change without the snapshot changing), after the
snapshot's cached families (exporter.http.app `per_scrape`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.runtime.snapshot import Snapshot

PREFIX = "entra_dynamic_"


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def age_families(snapshot: Snapshot, now: Mapping[str, float]) -> Iterator[Metric]:
    """The age families of `snapshot`, each tenant's ages measured at `now[tenant]` (a tenant
    without a clock reading exports none)."""
    pause = _gauge(
        "pause_age_seconds",
        "Age of the current pause episode in the tenant's clock (absent when there is none); "
        "the age of pause_started_timestamp_seconds.",
        ["tenant"],
    )
    group_paused = _gauge(
        "group_paused_age_seconds",
        "How long this paused group (or dynamic administrative unit) has been paused, in the "
        "tenant's clock; the age of group_paused_since_timestamp_seconds, for the same series.",
        ["tenant", "group_id", "group_name", "critical"],
    )
    last_change = _gauge(
        "group_last_membership_change_age_seconds",
        "Time since the group's last dynamic membership change seen in the audit log, in the "
        "tenant's clock; the age of group_last_membership_change_timestamp_seconds.",
        ["tenant", "group_id", "group_name", "critical"],
    )
    collector = _gauge(
        "collector_last_success_age_seconds",
        "Time since this collector last succeeded, in the tenant's clock; the age of "
        "collector_last_success_timestamp_seconds.",
        ["tenant", "collector"],
    )
    watermark = _gauge(
        "audit_watermark_age_seconds",
        "Age of the newest audit-log activity time fully ingested, in the tenant's clock; the "
        "age of audit_watermark_timestamp_seconds.",
        ["tenant"],
    )
    for t in snapshot.tenants:
        at = now.get(t.tenant)
        if at is None:
            continue
        episode = t.assessment.episode if t.assessment is not None else None
        if episode is not None:
            pause.add_metric([t.tenant], at - episode.started_at)
        for p in t.paused:
            if p.since is not None:
                group_paused.add_metric([t.tenant, p.id, p.name, _bool(p.critical)], at - p.since)
        for change in t.last_changes:
            last_change.add_metric(
                [t.tenant, change.group_id, change.name, _bool(change.critical)], at - change.time
            )
        for c in t.collectors:
            if c.last_success is not None:
                collector.add_metric([t.tenant, c.name], at - c.last_success)
        if t.watermark is not None:
            watermark.add_metric([t.tenant], at - t.watermark)
    yield from (pause, group_paused, last_change, collector, watermark)


class AgeCollector(Collector):
    """`age_families` of the current snapshot at each tenant's clock, read at collection."""

    def __init__(
        self, source: Callable[[], Snapshot], clocks: Callable[[], Mapping[str, float]]
    ) -> None:
        self._source = source
        self._clocks = clocks

    def collect(self) -> Iterable[Metric]:
        return age_families(self._source(), self._clocks())
