"""Many tenants on one app registration: the simulator serves a fleet in one process and enforces
Graph's two audit limits (per tenant, and per app across tenants) with 429 + Retry-After; the
exporter's shared app budget keeps a fleet under the app-wide one, counts every tenant exactly,
and exports what each tenant used and waited."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import generate_latest

from exporter.config.loading import load_config
from exporter.runtime.service import Exporter
from exporter.runtime.tenant_runner import TenantRunner
from exporter.simulator.fleet import RunningFleet, running_fleet
from exporter.simulator.truth import audit_counts
from tests.harness import TOKEN, counted, write_config
from tests.support.waiting import wait_until

TENANTS = ("t1", "t2", "t3")
SMALL = {
    "tenant": {"users": 300, "devices": 50, "dynamic_groups": 10, "hygiene_examples": False},
    "load": {"user_updates_per_hour": 60, "device_updates_per_hour": 10},
}
# Each tenant may send 40 per 10 s, the app 24 per 10 s across them: three tenants at their own
# limit would be refused by the app's.
TENANT_LIMIT = 40
APP_LIMIT = 24


@pytest.fixture
async def fleet() -> AsyncIterator[RunningFleet]:
    async with running_fleet(
        dict.fromkeys(TENANTS, ("steady", SMALL)),
        seed=11,
        speed=0,
        tenant_requests_per_10s=TENANT_LIMIT,
        app_requests_per_10s=APP_LIMIT,
        history_days=1,
    ) as running:
        yield running


async def test_the_fleet_simulator_enforces_the_app_wide_limit(fleet: RunningFleet) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    statuses: list[int] = []
    retry_after: list[float] = []
    async with aiohttp.ClientSession(headers=headers) as http:
        for i in range(APP_LIMIT + 3):
            name = TENANTS[i % len(TENANTS)]  # each tenant stays well under its own limit
            url = f"{fleet.graph_base_url(name)}/v1.0/auditLogs/directoryAudits?$top=1"
            async with http.get(url) as response:
                statuses.append(response.status)
                if response.status == 429:
                    retry_after.append(float(response.headers["Retry-After"]))
    assert statuses[:APP_LIMIT] == [200] * APP_LIMIT
    assert statuses[APP_LIMIT:] == [429] * 3
    assert all(0 < wait <= 10 for wait in retry_after)
    refused = fleet.refused()
    assert refused["app"] == 3
    assert all(refused[name] == 0 for name in TENANTS)
    # Each tenant has its own clock and control paths under its prefix.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fleet.graph_base_url('t2')}/_sim/clock") as response,
    ):
        assert response.status == 200


async def test_tenants_sharing_an_app_stay_under_its_budget_and_count_exactly(
    fleet: RunningFleet, tmp_path: Path
) -> None:
    extra = [
        {
            "name": name,
            "graph_base_url": fleet.graph_base_url(name),
            "clock": "simulator",
            "auth": {"method": "static_token", "token": TOKEN},
        }
        for name in TENANTS[1:]
    ]
    config = load_config(
        write_config(
            tmp_path / "config.yml",
            fleet.graph_base_url(TENANTS[0]),
            tenant=TENANTS[0],
            extra_tenants=extra,
            polling={
                "backfill_days": 0.5,
                "audit_requests_per_10s": TENANT_LIMIT,
                # Below the simulator's 24: the margin the default keeps below Graph's 122.
                "app_audit_requests_per_10s": 21,
            },
        )
    )
    exporter = Exporter(config)
    assert set(exporter.app_budgets) == set(TENANTS)
    await exporter.start()
    try:

        def caught_up(runner: TenantRunner) -> bool:
            audit = runner.audit
            return (
                audit is not None and audit.caught_up and runner.statuses["audit"].success is True
            )

        await wait_until(
            lambda: all(caught_up(r) for r in exporter.runners),
            within=60,
            what="every tenant's backfill",
        )
        for runner in exporter.runners:
            state = await exporter.store.call(exporter.store.audit_state, runner.name)
            assert state is not None
            totals = await exporter.store.call(exporter.store.totals, runner.name)
            tenant = fleet.tenants[runner.name]
            truth = audit_counts(tenant, since=state.backfill_start, visible_by=tenant.clock.now())
            assert counted(totals) == {k: v for k, v in truth["series"].items() if v}
            coverage = await exporter.store.call(exporter.store.coverage, runner.name)
            assert len(coverage) == 1  # the pieces read present-first merged into one
        assert fleet.refused() == {**dict.fromkeys(TENANTS, 0), "app": 0}
        exposition = generate_latest(exporter.registry).decode()
        app = 'app="static_token token"'
        for name in TENANTS:
            used = f'entra_dynamic_graph_app_budget_requests_total{{{app},priority="live",'
            assert f'{used}tenant="{name}"}}' in exposition
            waited = f'entra_dynamic_graph_app_budget_wait_seconds_total{{{app},tenant="{name}"}}'
            assert waited in exposition
        assert f"entra_dynamic_graph_app_budget_requests_per_10s{{{app}}} 21.0" in exposition
    finally:
        started = time.monotonic()
        await exporter.stop()
        assert time.monotonic() - started < 30
