"""The monitoring stack of the end-to-end test, as separate processes on loopback: the simulator
(a storm, on a clock the test starts and stops), the exporter (`serve`) watching it, a real
Prometheus scraping the exporter with the project's rules (tests/e2e/prometheus.py), and a real
Alertmanager running alerts/alertmanager.yml with a local webhook as its pager and chat
(tests/e2e/alertmanager.py).

Order of events (`running_stack`):
1. the simulator starts frozen (speed 0) at the current minute, with a day of history;
2. the exporter backfills that day and polls every collector once;
3. Alertmanager starts, then Prometheus starts scraping and sends it the alerts;
then the test sets the clock running (`set_speed`), stops it (`set_speed(0)`), moves it
(`advance`) and acts as the operator (`pause_all`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.clock import SystemClock
from exporter.simulator.app import resolve_scenario
from exporter.simulator.exporter_config import simulated_tenant_config, write_config_file
from tests.e2e import alertmanager
from tests.e2e.processes import ProcessGroup, process_group
from tests.e2e.prometheus import PrometheusAPI, write_config_dir
from tests.prometheus_tools import REPO, tool
from tests.storm import STORM_OVERRIDES
from tests.support.processes import ChildProcess
from tests.support.waiting import wait_until_sync

TENANT = "storm"
TOKEN = "e2e-token"

SCRAPE_INTERVAL = "1s"
FOR_OVERRIDE = "10s"
"""Every alert's `for:` in the e2e run; the shipped rules keep their designed durations."""

STORM_SPEED = 400.0
"""Simulated seconds per wall second while the storm runs: an hour in 9 s."""

POLLING: dict[str, Any] = {
    "audit_interval": "1m",
    "groups_interval": "5m",
    "critical_status_interval": "5m",
    "backfill_days": 1,
    "audit_requests_per_10s": 1000,
    "request_timeout": "10s",
    "retry_initial_delay": "0.2s",
    "retry_max_delay": "2s",
}

COLLECTORS = ("audit", "groups", "administrative_units", "critical_status")
STARTUP_TIMEOUT = 60.0


def write_scenario(path: Path) -> Path:
    """The bundled storm with STORM_OVERRIDES, as a scenario file for `simulate --scenario`."""
    scenario = resolve_scenario("storm", STORM_OVERRIDES)
    document = scenario.model_dump(mode="json", exclude_none=True)
    document["name"] = "storm-e2e"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def write_exporter_config(path: Path, graph_url: str, critical_groups: list[str]) -> Path:
    return write_config_file(
        path,
        simulated_tenant_config(
            graph_url,
            path.parent / "exporter.sqlite3",
            token=TOKEN,
            tenant=TENANT,
            critical_groups=critical_groups,
            polling=POLLING,
        ),
    )


def exposition_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


@dataclass
class Stack:
    processes: ProcessGroup
    simulator: ChildProcess
    exporter: ChildProcess
    prometheus_process: ChildProcess
    simulator_url: str
    exporter_url: str
    prometheus: PrometheusAPI
    http: httpx.Client
    alertmanager_process: ChildProcess
    webhook: alertmanager.Webhook
    """What Alertmanager sent to the pager and the chat."""

    def explain(self) -> str:
        """What a failure message carries: every process's recent log."""
        return self.processes.logs()

    def fail(self, message: str) -> str:
        return f"{message}\n{self.explain()}"

    def wait_until(self, check: Any, *, within: float, what: str, interval: float = 0.25) -> None:
        wait_until_sync(check, within=within, what=what, explain=self.explain, interval=interval)

    # -- the simulator ------------------------------------------------------------------------

    def sim(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, f"{self.simulator_url}{path}", json=body)
        assert response.status_code == 200, self.fail(
            f"{method} {path}: HTTP {response.status_code} {response.text[:300]}"
        )
        return response.json()

    def clock(self) -> dict[str, float]:
        reading: dict[str, float] = self.sim("GET", "/_sim/clock")
        return reading

    def set_speed(self, speed: float) -> dict[str, float]:
        reading: dict[str, float] = self.sim("POST", "/_sim/clock/speed", {"speed": speed})
        return reading

    def advance(self, seconds: float) -> dict[str, float]:
        reading: dict[str, float] = self.sim("POST", "/_sim/clock/advance", {"seconds": seconds})
        return reading

    def pause_all(self) -> int:
        """Pause every dynamic group and unit that is On, as an operator would; returns how
        many."""
        listed = self.sim("GET", "/_sim/groups?dynamic=true&state=On")
        for group in listed["groups"]:
            self.sim("POST", f"/_sim/groups/{group['id']}/state", {"state": "Paused"})
        return int(listed["count"])

    # -- the exporter -------------------------------------------------------------------------

    def metrics(self) -> str:
        response = self.http.get(f"{self.exporter_url}/metrics")
        assert response.status_code == 200, self.fail(f"GET /metrics: HTTP {response.status_code}")
        return response.text

    def every_collector_polled(self) -> bool:
        """Every collector has succeeded once and the backfill is complete."""
        samples = exposition_samples(self.metrics())
        polled = {
            labels["collector"]
            for name, labels, value in samples
            if name == "entra_dynamic_collector_last_success_timestamp_seconds"
            and math.isfinite(value)
        }
        backfilled = any(
            name == "entra_dynamic_audit_backfill_progress_ratio" and value == 1.0
            for name, _, value in samples
        )
        return polled >= set(COLLECTORS) and backfilled


ExporterConfigWriter = Callable[[Path, str, list[str]], Path]
"""(config path, simulator URL, critical group ids) -> the exporter's config file."""


@contextmanager
def running_stack(
    directory: Path,
    *,
    scenario: Path | None = None,
    simulator_flags: Sequence[str] | None = None,
    exporter_config: ExporterConfigWriter = write_exporter_config,
    for_override: str = FOR_OVERRIDE,
) -> Iterator[Stack]:
    """Simulator, exporter and Prometheus, ready (see the module docstring); all stopped after.
    By default the storm of tests/storm.py from the current minute; `scenario`,
    `simulator_flags` (besides listen, scenario, speed 0, no throttle), `exporter_config` and
    `for_override` run another story (tests/e2e/test_demo_monitoring.py: the demo's)."""
    with (
        process_group(directory / "logs", REPO) as processes,
        httpx.Client(timeout=10.0) as http,
        alertmanager.webhook() as hook,
    ):
        if simulator_flags is None:
            start = math.floor(SystemClock().now() / 60) * 60
            simulator_flags = [f"--start={_iso(start)}"]
        simulator = processes.start_python(
            "simulator",
            [
                "simulate",
                "--listen=127.0.0.1:0",
                f"--scenario={scenario or write_scenario(directory / 'storm-e2e.yaml')}",
                "--speed=0",
                "--no-throttle",
                *simulator_flags,
            ],
        )
        simulator_url = simulator.wait_for_line(
            r"\) at (http://127\.0\.0\.1:\d+)", within=STARTUP_TIMEOUT
        )[1]
        critical = http.get(f"{simulator_url}/_sim/scenario").json()["critical_groups"]
        config_file = exporter_config(directory / "exporter.yml", simulator_url, critical)
        exporter = processes.start_python(
            "exporter",
            ["serve", f"--config.file={config_file}", "--web.listen-address=127.0.0.1:0"],
        )
        exporter_url = exporter.wait_for_line(
            r"Serving metrics at (http://127\.0\.0\.1:\d+)/metrics", within=STARTUP_TIMEOUT
        )[1]
        am_config = directory / "alertmanager.yml"
        am_config.write_text(alertmanager.derive_config(hook.url), encoding="utf-8")
        am_process = processes.start(
            "alertmanager",
            alertmanager.argv(tool("prometheus-alertmanager"), am_config, directory, "127.0.0.1:0"),
        )
        am_address = am_process.wait_for_line(
            r'msg="Listening on" address=(127\.0\.0\.1:[1-9]\d*)', within=STARTUP_TIMEOUT
        )[1]
        prometheus_dir = directory / "prometheus"
        prometheus_dir.mkdir()
        config = write_config_dir(
            prometheus_dir,
            exporter_target=exporter_url.removeprefix("http://"),
            interval=SCRAPE_INTERVAL,
            for_override=for_override,
            alertmanager=am_address,
            exporter_url=exporter_url,
        )
        prometheus_process = processes.start(
            "prometheus",
            [
                str(tool("prometheus")),
                f"--config.file={config}",
                f"--storage.tsdb.path={prometheus_dir / 'data'}",
                # Port 0, as every test here binds: Prometheus (its exporter-toolkit listener)
                # logs the address it was given ("Start listening", :0) and then the bound one
                # ("Listening on"), which is read back below. No free-port guess, no race with
                # the other test runs on the machine.
                "--web.listen-address=127.0.0.1:0",
                "--log.level=info",
            ],
        )
        prometheus_address = prometheus_process.wait_for_line(
            r'msg="Listening on" address=(127\.0\.0\.1:[1-9]\d*)', within=STARTUP_TIMEOUT
        )[1]
        prometheus = PrometheusAPI(f"http://{prometheus_address}")
        stack = Stack(
            processes=processes,
            simulator=simulator,
            exporter=exporter,
            prometheus_process=prometheus_process,
            simulator_url=simulator_url,
            exporter_url=exporter_url,
            prometheus=prometheus,
            http=http,
            alertmanager_process=am_process,
            webhook=hook,
        )
        try:
            stack.wait_until(prometheus.ready, within=STARTUP_TIMEOUT, what="Prometheus ready")
            stack.wait_until(
                stack.every_collector_polled,
                within=STARTUP_TIMEOUT,
                what="the exporter's backfill and a first poll of every collector",
            )
            yield stack
        finally:
            prometheus.close()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
