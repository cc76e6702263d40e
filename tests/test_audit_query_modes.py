"""The audit filter degrades safely (#13): a Graph that refuses `or` in $filter, or `or` with
$orderby, makes the exporter step down to the time range only and filter here; the mode is
stored, logged once at warning level and exported, and the counts are the simulator's in every
mode. Real SDK over HTTP against the simulator, real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from exporter.domain.audit_query import AuditQueryMode
from exporter.runtime.service import Exporter
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.audit_api import parse_audit_request
from exporter.simulator.auditlog import AppRegistry
from exporter.simulator.errors import GraphError
from exporter.simulator.faults import FaultSettings
from exporter.store.database import Store
from tests.harness import counts_exactly
from tests.test_ingestion_exact import storm_config

TENANT = {"tenant": {"users": 800, "devices": 150, "dynamic_groups": 30, "administrative_units": 2}}


@pytest.fixture
async def storm() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(
        "storm", overrides=TENANT, speed=0, throttle=False, history_days=0
    ) as sim:
        await sim.advance(3 * 3600)
        yield sim


@pytest.mark.parametrize(
    ("switches", "stored", "expected"),
    [
        pytest.param(FaultSettings(), None, AuditQueryMode.NARROW, id="narrow"),
        pytest.param(
            FaultSettings(refuse_or_filters=True), None, AuditQueryMode.TIME_ORDERED, id="no-or"
        ),
        pytest.param(
            FaultSettings(refuse_orderby_with_or=True),
            None,
            AuditQueryMode.TIME_ORDERED,
            id="no-orderby-with-or",
        ),
        pytest.param(
            FaultSettings(), AuditQueryMode.TIME_ONLY, AuditQueryMode.TIME_ONLY, id="time-only"
        ),
    ],
)
async def test_ingestion_is_exact_in_every_query_mode(
    storm: RunningSimulator,
    tmp_path: Path,
    switches: FaultSettings,
    stored: AuditQueryMode | None,
    expected: AuditQueryMode,
) -> None:
    storm.tenant.faults.configure(switches)
    config = storm_config(storm, tmp_path, commit_process=False)
    if stored is not None:  # an exporter that stepped down before (the mode survives restarts)
        store = Store(config.store.path)
        await store.open()
        await store.call(store.set_audit_query_mode, "sim", stored, 0.0)
        await store.close()
    exporter = Exporter(config)
    with capture_logs() as logs:
        await exporter.start()
        try:
            await counts_exactly(exporter, storm)
            await storm.advance(1800)  # later windows in the same mode
            await counts_exactly(exporter, storm)
            assert await exporter.store.call(exporter.store.audit_query_mode, "sim") is expected
            await exporter.runners[0].refresh_snapshot()
            exposition = generate_latest(exporter.registry).decode()
        finally:
            await exporter.stop()
    for mode in AuditQueryMode:
        value = 1.0 if mode is expected else 0.0
        assert (
            f'entra_dynamic_audit_query_mode{{mode="{mode.value}",tenant="sim"}} {value}'
            in exposition
        )
    refused = [e for e in logs if e["event"].startswith("Graph refused the audit query")]
    if stored is None and expected is not AuditQueryMode.NARROW:
        assert len(refused) == 1  # once, however many windows
        assert refused[0]["log_level"] == "warning"
        assert refused[0]["mode"] == expected.value
    else:
        assert refused == []


def test_the_simulator_refuses_or_as_configured() -> None:
    narrow = {
        "$filter": "activityDateTime ge 2024-05-01T00:00:00Z and "
        "(activityDisplayName eq 'Add user' or activityDisplayName eq 'Update user')",
        "$orderby": "activityDateTime asc",
    }
    window = {
        "$filter": "activityDateTime ge 2024-05-01T00:00:00Z",
        "$orderby": "activityDateTime asc",
    }
    now, retention = 1_714_600_000.0, 30 * 86400.0
    apps = AppRegistry()

    def accepted(params: dict[str, str], **switches: bool) -> bool:
        try:
            parse_audit_request(params, now=now, retention_seconds=retention, apps=apps, **switches)
        except GraphError:
            return False
        return True

    assert accepted(narrow)
    assert not accepted(narrow, refuse_or=True)
    assert not accepted(narrow, refuse_orderby_with_or=True)
    assert accepted({"$filter": narrow["$filter"]}, refuse_orderby_with_or=True)
    assert accepted(window, refuse_or=True, refuse_orderby_with_or=True)
