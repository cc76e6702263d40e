"""The compose demo profile runs: its simulator command and the exporter's example config, as
shipped, give an exporter whose /readyz answers 200 (the tenant profile's config needs Azure; its
loading is tested in test_compose.py).

No Docker engine: the two commands run as processes here. Only what the containers provide is
replaced: the loopback port (the services share one network namespace on 8080) and the store
path (a volume in compose), through the exporter's documented environment overrides."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.support.processes import CLI, ChildProcess
from tests.support.waiting import wait_until_sync
from tests.test_compose import SERVICES, _exporter_config_source, _service_command

READY_WITHIN = 150.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_demo_profile_exporter_gets_ready_against_its_simulator(tmp_path: Path) -> None:
    simulator_argv = list(SERVICES["simulator"]["command"])
    _, params = _service_command("simulator")
    shipped_listen = params["listen"]
    graph_port, web_port = _free_port(), _free_port()
    simulator_argv = [a.replace(shipped_listen, f"127.0.0.1:{graph_port}") for a in simulator_argv]
    config = _exporter_config_source("exporter-demo")
    exporter_argv = [
        a.replace("/etc/entra-dg/config.yml", str(config))
        for a in SERVICES["exporter-demo"]["command"]
        if not a.startswith("--web.listen-address")
    ] + [f"--web.listen-address=127.0.0.1:{web_port}"]
    env = {
        "ENTRA_DG_CONFIG__TENANTS__DEMO__GRAPH_BASE_URL": f"http://127.0.0.1:{graph_port}",
        "ENTRA_DG_CONFIG__STORE__PATH": str(tmp_path / "demo.sqlite3"),
    }
    simulator = ChildProcess("simulator", [*CLI, *simulator_argv], tmp_path / "simulator.log")
    exporter = None
    try:
        wait_until_sync(
            lambda: _answers(f"http://127.0.0.1:{graph_port}/_sim/clock"),
            within=60,
            what="the simulator",
            explain=simulator.log_tail,
        )
        exporter = ChildProcess(
            "exporter", [*CLI, *exporter_argv], tmp_path / "exporter.log", env=env
        )
        readyz = f"http://127.0.0.1:{web_port}/readyz"
        running = exporter
        wait_until_sync(
            lambda: _answers(readyz),
            within=READY_WITHIN,
            what="/readyz 200",
            explain=lambda: f"{running.log_tail()}\n{simulator.log_tail()}",
        )
        assert "401" not in exporter.log(), exporter.log_tail()
        # The landing page is the console: the tenant's verdict and charts, reloading itself.
        page = httpx.get(f"http://127.0.0.1:{web_port}/", timeout=30).text
        assert 'data-tenant="demo"' in page
        assert 'data-verdict="' in page, page
        assert page.count('<svg class="chart"') == 4
        assert '<meta http-equiv="refresh" content="30">' in page
    finally:
        if exporter is not None:
            exporter.stop()
        simulator.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
