"""Shards beyond one machine (docs/scale.md): two exporter replicas (`serve --shard 1/2` and
`2/2`, the same configuration) over one fleet simulator, one real Prometheus scraping both with
the project's rules, as the single-Prometheus deployment of docs/scale.md. Every tenant appears
exactly once (on one replica), and each replica allows itself half the app-wide budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config.sharding import shard_of
from exporter.simulator.exporter_config import write_config_file
from tests.e2e.processes import process_group
from tests.e2e.prometheus import CONFIG_FILE, PrometheusAPI, write_config_dir
from tests.e2e.stack import FOR_OVERRIDE, SCRAPE_INTERVAL, STARTUP_TIMEOUT
from tests.prometheus_tools import REPO, tool
from tests.support.waiting import wait_until_sync

pytestmark = pytest.mark.e2e

TOKEN = "e2e-token"
TENANTS = [f"shop-{n}" for n in range(1, 7)]
SMALL = {
    "tenant": {"users": 200, "devices": 40, "dynamic_groups": 8, "hygiene_examples": False},
    "load": {"user_updates_per_hour": 30, "device_updates_per_hour": 5},
}
APP_BUDGET = 100.0


def _exporter_config(path: Path, simulator_url: str) -> Path:
    return write_config_file(
        path,
        {
            "tenants": [
                {
                    "name": name,
                    "graph_base_url": f"{simulator_url}/tenants/{name}",
                    "clock": "simulator",
                    "auth": {"method": "static_token", "token": TOKEN},
                }
                for name in TENANTS
            ],
            "polling": {
                "audit_interval": "1m",
                "backfill_days": 0.5,
                "audit_requests_per_10s": 40,
                "app_audit_requests_per_10s": APP_BUDGET,
                "request_timeout": "10s",
            },
            "web": {"listen_address": "127.0.0.1:0"},
        },
    )


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusAPI, list[str]]]:
    directory = tmp_path_factory.mktemp("shards")
    fleet = directory / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump({name: {"scenario": "steady", "overrides": SMALL} for name in TENANTS}),
        encoding="utf-8",
    )
    with process_group(directory / "logs", REPO) as processes:
        simulator = processes.start_python(
            "simulator",
            [
                "simulate",
                "--listen=127.0.0.1:0",
                f"--fleet={fleet}",
                "--speed=0",
                "--history-days=1",
                "--no-throttle",
            ],
        )
        simulator_url = simulator.wait_for_line(
            r" at (http://127\.0\.0\.1:\d+)$", within=STARTUP_TIMEOUT
        )[1]
        config = _exporter_config(directory / "exporter.yml", simulator_url)
        urls = []
        for index in (1, 2):
            exporter = processes.start_python(
                f"exporter-{index}",
                [
                    "serve",
                    f"--config.file={config}",
                    f"--config.set=store.path={directory / f'state-{index}.sqlite3'}",
                    f"--shard={index}/2",
                ],
            )
            urls.append(
                exporter.wait_for_line(
                    r"Serving metrics at (http://127\.0\.0\.1:\d+)/metrics", within=STARTUP_TIMEOUT
                )[1]
            )
        prometheus_dir = directory / "prometheus"
        prometheus_dir.mkdir()
        path = write_config_dir(
            prometheus_dir,
            exporter_target=urls[0].removeprefix("http://"),
            interval=SCRAPE_INTERVAL,
            for_override=FOR_OVERRIDE,
            exporter_url=urls[0],
        )
        # Both replicas in the one exporter job: the rules meet every tenant's series here.
        derived: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        derived["scrape_configs"][0]["static_configs"] = [
            {"targets": [url.removeprefix("http://") for url in urls]}
        ]
        (prometheus_dir / CONFIG_FILE).write_text(yaml.safe_dump(derived), encoding="utf-8")
        prometheus_process = processes.start(
            "prometheus",
            [
                str(tool("prometheus")),
                f"--config.file={prometheus_dir / CONFIG_FILE}",
                f"--storage.tsdb.path={prometheus_dir / 'data'}",
                "--web.listen-address=127.0.0.1:0",
            ],
        )
        address = prometheus_process.wait_for_line(
            r'msg="Listening on" address=(127\.0\.0\.1:[1-9]\d*)', within=STARTUP_TIMEOUT
        )[1]
        prometheus = PrometheusAPI(f"http://{address}")
        try:
            wait_until_sync(
                prometheus.ready, within=STARTUP_TIMEOUT, what="Prometheus", explain=processes.logs
            )
            yield prometheus, urls
        finally:
            prometheus.close()


def test_the_tenants_are_split_between_the_replicas_by_a_stable_hash() -> None:
    shards = {name: shard_of(name, 2) for name in TENANTS}
    assert set(shards.values()) == {1, 2}, shards  # the test needs both replicas busy
    assert shard_of("shop-1", 2) == shards["shop-1"]  # stable: no salt, no state


def test_every_tenant_appears_exactly_once_under_prometheus(
    replicas: tuple[PrometheusAPI, list[str]],
) -> None:
    prometheus, urls = replicas
    query = "count by (tenant) (entra_dynamic_audit_backfill_progress_ratio == 1)"

    def every_tenant_backfilled() -> bool:
        return {s["metric"]["tenant"] for s in prometheus.query(query)} == set(TENANTS)

    wait_until_sync(every_tenant_backfilled, within=90, what="every tenant's backfill")
    counts = {s["metric"]["tenant"]: float(s["value"][1]) for s in prometheus.query(query)}
    assert counts == dict.fromkeys(TENANTS, 1.0)
    instances = prometheus.query(
        "count by (instance) (entra_dynamic_audit_backfill_progress_ratio)"
    )
    assert len(instances) == 2
    # Each replica watches exactly the tenants its shard holds.
    for index, url in enumerate(urls, start=1):
        by_replica = prometheus.query(
            "entra_dynamic_audit_backfill_progress_ratio"
            f'{{instance="{url.removeprefix("http://")}"}}'
        )
        assert {s["metric"]["tenant"] for s in by_replica} == {
            name for name in TENANTS if shard_of(name, 2) == index
        }
    # The app-wide budget is divided between the replicas.
    budgets = prometheus.query("entra_dynamic_graph_app_budget_requests_per_10s")
    assert sorted(float(s["value"][1]) for s in budgets) == [APP_BUDGET / 2] * 2
