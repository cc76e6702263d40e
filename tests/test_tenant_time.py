"""entra_dynamic_tenant_time_seconds: each tenant's clock, read at every scrape, even while the
snapshot's families are served from the exposition cache and with the exporter's own metrics
disabled; ages measured against it are the tenant's, whatever Prometheus's clock says."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as text_parse

from alerts.rules import TENANT_TIME, age_expr
from exporter.http.app import Readiness, TenantReadiness, create_app, running
from exporter.runtime.tenant_time import TenantTimeCollector, tenant_time_family
from tests.prometheus_tools import run

OPENMETRICS = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4"


def test_one_series_per_tenant_with_its_clock() -> None:
    family = tenant_time_family({"contoso": 1_800_000_000.0, "demo": 1_900_000_000.0})
    assert family.name == TENANT_TIME
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"tenant": "contoso"}, 1_800_000_000.0),
        ({"tenant": "demo"}, 1_900_000_000.0),
    ]


@pytest.mark.parametrize("exporter_metrics", [True, False])
async def test_read_at_every_scrape_though_the_snapshot_is_cached(exporter_metrics: bool) -> None:
    snapshot = CollectorRegistry()
    snapshot.register(_Fixed())
    clock = [1_800_000_000.0]
    tenant_time = CollectorRegistry()
    tenant_time.register(TenantTimeCollector(lambda: {"demo": clock[0]}))
    own = CollectorRegistry() if exporter_metrics else None
    key = object()
    app = create_app(
        registry=snapshot,
        readiness=lambda: Readiness.of({"demo": TenantReadiness(True, "ok")}),
        exposition_key=lambda: key,
        exporter_metrics=own,
        every_scrape=tenant_time,
    )
    async with running(app, "127.0.0.1:0") as server, aiohttp.ClientSession() as http:
        bodies = []
        for accept in ("text/plain", OPENMETRICS):
            for now in (1_800_000_000.0, 1_800_003_600.0):
                clock[0] = now
                async with http.get(server.url + "metrics", headers={"Accept": accept}) as r:
                    bodies.append((now, await r.text()))
    for i, (now, body) in enumerate(bodies):
        families = list(text_parse(body) if i < 2 else om_parse(body))  # type: ignore[no-untyped-call]
        samples = {s.name: s.value for f in families for s in f.samples}
        assert samples == {"fixed_value": 1.0, TENANT_TIME: now}, body


def test_ages_are_measured_against_the_tenant_clock_not_prometheus(tmp_path: Path) -> None:
    """promtool: Prometheus's clock at 0 to 10 minutes, the tenant's 50 hours ahead (the demo);
    a timestamp 30 tenant-minutes old reads 1,800 s, never minus 50 hours."""
    directory = tmp_path
    rules = directory / "ages.yml"
    rules.write_text(
        "groups:\n- name: ages\n  rules:\n  - record: watermark_age\n    expr: |\n"
        + "".join(
            f"      {line}\n"
            for line in age_expr(
                TENANT_TIME, "max by (tenant) (entra_dynamic_audit_watermark_timestamp_seconds)"
            ).splitlines()
        ),
        encoding="utf-8",
    )
    ahead = 50 * 3600
    test = directory / "ages_test.yml"
    test.write_text(
        f"""rule_files: [ages.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: '{TENANT_TIME}{{job="x",tenant="demo"}}'
        values: '{ahead}+36000x10'
      - series: 'entra_dynamic_audit_watermark_timestamp_seconds{{job="x",tenant="demo"}}'
        values: '{ahead - 1800}+36000x10'
    promql_expr_test:
      - expr: watermark_age
        eval_time: 10m
        exp_samples:
          - labels: 'watermark_age{{tenant="demo"}}'
            value: 1800
""",
        encoding="utf-8",
    )
    result = run("promtool", ["test", "rules", str(test)])
    assert result.returncode == 0, result.stdout + result.stderr


class _Fixed:
    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("fixed_value", "a value", labels=["kind"])
        family.add_metric(["a"], 1.0)
        return [family]
