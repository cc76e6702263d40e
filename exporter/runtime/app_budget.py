"""The app-wide audit budgets as metric families: what each tenant used of its app's budget, and
how long it waited for it (`exporter.graph.budget`). Read live at each scrape: a few counters
per tenant, no store access."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.graph.budget import AppBudget
from exporter.runtime.collector import PREFIX


class AppBudgetCollector(Collector):
    def __init__(self, budgets: Mapping[str, AppBudget]) -> None:
        """`budgets`: tenant name -> the budget it shares (tenants alone on their app are
        absent, and so are their series)."""
        self._budgets = dict(budgets)

    def collect(self) -> Iterable[Metric]:
        rate = GaugeMetricFamily(
            PREFIX + "graph_app_budget_requests_per_10s",
            "The audit-log requests per 10 s this exporter allows itself for one app "
            "registration across its tenants (polling.app_audit_requests_per_10s, divided "
            "between shards; Graph's limit is 122).",
            labels=["app"],
        )
        waiting = GaugeMetricFamily(
            PREFIX + "graph_app_budget_waiting_requests",
            "Audit-log requests waiting now for their app's budget.",
            labels=["app"],
        )
        used = CounterMetricFamily(
            PREFIX + "graph_app_budget_requests",
            "Audit-log requests granted by the app-wide budget, by tenant and priority (live: "
            "the poll that reaches the present, served first; backfill: older windows and "
            "reconciliation, sharing what is left).",
            labels=["tenant", "app", "priority"],
        )
        waited = CounterMetricFamily(
            PREFIX + "graph_app_budget_wait_seconds",
            "Time the tenant's audit-log requests waited for the app-wide budget (a live poll "
            "that waits here is late by as much).",
            labels=["tenant", "app"],
        )
        seen: set[int] = set()
        for tenant, budget in sorted(self._budgets.items()):
            if id(budget) not in seen:
                seen.add(id(budget))
                rate.add_metric([budget.app], budget.requests_per_10s)
                waiting.add_metric([budget.app], budget.waiting)
            usage = budget.usage.get(tenant)
            if usage is None:
                continue
            for priority, count in usage.requests.items():
                used.add_metric([tenant, budget.app, priority.name.lower()], count)
            waited.add_metric([tenant, budget.app], usage.wait_seconds)
        yield from (rate, waiting, used, waited)


__all__ = ["AppBudgetCollector"]
