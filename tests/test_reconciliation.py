"""Late events beyond the allowance are found and measured (#14 item 8): a simulated tenant
writes a fifth of its events 45 to 75 minutes late (the simulator's 15 min visibility delay plus
30 to 60 min), past the 30 min lateness allowance; the live polls miss them, the hourly
reconciliation pass re-reads [now - 3 h, now - 30 min] and counts each exactly once, and the
lateness histogram and the reconciled counter show it. Real exporter, real msgraph-sdk over
HTTP, real SQLite store and commit process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config.loading import load_config
from exporter.runtime.service import Exporter
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.faults import FaultSettings
from exporter.store.lateness import BUCKET_PREFIX, RECONCILED
from tests.harness import caught_up, counted, truth, write_config
from tests.test_ingestion_exact import SMALL_STORM

LATE = FaultSettings(late_rate=0.2, late_min_seconds=1800, late_max_seconds=3600)
HOUR = 3600.0


@pytest.fixture
async def storm() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(
        "storm", overrides=SMALL_STORM, speed=0, throttle=False, history_days=0.5, faults=LATE
    ) as sim:
        await sim.advance(3 * HOUR)  # into the bulk update that starts the storm
        yield sim


async def step(exporter: Exporter, sim: RunningSimulator, hours: int) -> None:
    for _ in range(hours):
        await sim.advance(HOUR)
        await caught_up(exporter.runners[0], sim.clock.now())


async def test_events_later_than_the_allowance_are_found_once_and_measured(
    storm: RunningSimulator, tmp_path: Path
) -> None:
    config = load_config(
        write_config(
            tmp_path / "config.yml",
            storm.base_url,
            polling={"audit_interval": "1m", "backfill_days": 0.25},
        )
    )
    assert config.polling.lateness_allowance == 1800
    exporter = Exporter(config)
    await exporter.start()
    try:
        await step(exporter, storm, 4)  # late events are written throughout
        storm.set_faults(FaultSettings(enabled=False))
        # No more late events: within 3 h every late one has appeared and been re-read.
        await step(exporter, storm, 4)
        state = await exporter.store.call(exporter.store.audit_state, "sim")
        assert state is not None
        totals = await exporter.store.call(exporter.store.totals, "sim")
        late = storm.tenant.faults.injected.get("late", 0)  # type: ignore[call-overload]
        metrics = generate_latest(exporter.registry).decode()
    finally:
        await exporter.stop()

    assert late > 100, late
    # Exactly once: every event the tenant wrote, late ones included, counted once.
    assert counted(totals) == truth(storm, state.backfill_start)
    assert totals[RECONCILED] > 0
    beyond = sum(
        n for kind, n in totals.items() if kind.startswith(BUCKET_PREFIX) and _bound(kind) > 1800
    )
    assert beyond >= totals[RECONCILED]
    print(f"late events injected: {late}, found by reconciliation: {totals[RECONCILED]}")

    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    lateness = families["entra_dynamic_audit_event_lateness_seconds"]
    inf = [s.value for s in lateness.samples if s.labels.get("le") == "+Inf"]
    assert inf
    assert inf[0] > totals[RECONCILED]
    reconciled = families["entra_dynamic_audit_events_reconciled"]
    assert reconciled.samples[0].value == totals[RECONCILED]


def _bound(kind: str) -> float:
    return float(kind.removeprefix(BUCKET_PREFIX))
