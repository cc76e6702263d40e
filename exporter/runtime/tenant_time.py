"""The tenant's clock, exported at every scrape: what ages are measured against.

Every `*_timestamp_seconds` the exporter exports is a time on the tenant's clock: the system's
in production, the simulator's in the demo, where an hour of the tenant's time passes in
seconds. Prometheus knows only its own clock, so `time() - <timestamp>` is an age only when the
two clocks are one: under the demo's it went negative by tens of hours, and every "time since"
panel and alert with it. `entra_dynamic_tenant_time_seconds` is the tenant's clock read when
Prometheus scrapes; dashboards and alerts subtract timestamps from it (alerts/rules.py
`age_expr`), never from `time()`. Both samples come from the same scrape.

In production the value is the scrape's time, so an age is what `time() - <timestamp>` gives at
the scrape (a query may run up to one scrape interval later: 30 s against thresholds of hours),
and it no longer depends on Prometheus's host clock agreeing with the exporter's.

One series per tenant, rendered on every scrape after the snapshot's cached families
(exporter.http.app `every_scrape`, never cached: it changes without the snapshot changing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

TENANT_TIME = "entra_dynamic_tenant_time_seconds"


def tenant_time_family(now: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        TENANT_TIME,
        "The tenant's clock when scraped (the system clock in production, the simulator's in "
        "the demo): subtract a *_timestamp_seconds from it for an age in the tenant's time.",
        labels=["tenant"],
    )
    for tenant, at in now.items():
        family.add_metric([tenant], at)
    return family


class TenantTimeCollector(Collector):
    """`tenant_time_family` of each tenant's clock, read at collection."""

    def __init__(self, clocks: Callable[[], Mapping[str, float]]) -> None:
        self._clocks = clocks

    def collect(self) -> Iterable[Metric]:
        yield tenant_time_family(self._clocks())
