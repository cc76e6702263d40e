"""The storm the monitoring is proven against: the bundled `storm` scenario with its push early and
long (STORM_OVERRIDES), shared by the end-to-end test (tests/e2e/) and the check that every metric
the rules and dashboards name is really exported (`capture_storm_exposition`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from exporter.config.loading import load_config
from exporter.domain.events import ProcessingState
from exporter.http.app import running
from exporter.runtime.service import Exporter
from exporter.simulator.app import running_simulator
from exporter.simulator.tenant import OPERATOR_ACTOR
from tests.harness import add_probe, write_config
from tests.support.waiting import wait_until

STORM_PUSH_AT = 600.0
"""The bulk push starts 10 minutes into the run (the bundled storm waits 2 hours)."""

STORM_OVERRIDES: dict[str, Any] = {
    # A day of history is enough for a baseline (the median of the recent hours) and backfills
    # in about a second.
    "history": {"days": 1},
    # The test is the operator: it pauses when it has seen what it waits for.
    "operator_actions": False,
    "timeline": [
        # A critical group that fails, so the critical-groups view has something to show.
        {
            "at": "5m",
            "action": "processing_error",
            "group": "All employees",
            "message": "Failed to add a guest user to a Microsoft 365 group",
        },
        # The bundled storm's push, early and spread over 4 hours: the trigger rate stays far
        # above its baseline for much longer than the exporter's 30-minute sustain.
        {
            "at": f"{STORM_PUSH_AT:g}s",
            "action": "bulk_update",
            "object_type": "user",
            "fraction": 0.8,
            "set": {"extensionAttribute3": "wave-5"},
            "over": "4h",
        },
    ],
}

EXPOSITION_AT = 2 * 3600.0
"""Simulated seconds into the storm when the exposition is captured: the push has run for
1 h 50 min, long enough to warrant a pause and to produce lag samples."""

EXPOSITION_START = 1_767_600_000.0  # 2026-01-05T08:00:00Z, a Monday morning


async def capture_storm_exposition(directory: Path, *, tenant: str = "contoso") -> str:
    """GET /metrics of the real exporter watching the storm, once every collector has polled
    (the audit backfill complete) and the snapshot reflects it."""
    async with running_simulator(
        "storm", overrides=STORM_OVERRIDES, speed=0, throttle=False, start=EXPOSITION_START
    ) as sim:
        await sim.advance(EXPOSITION_AT - 1800)
        # Someone paused one group half an hour ago, so its pause time is known from the audit
        # log (the scenario's parked groups were paused before any audit event: their time is
        # unknown and they export no paused-since series, #13).
        parked = {c.id for c in sim.tenant.directory.containers if c.paused}
        target = next(c for c in sim.tenant.directory.containers if c.rule and c.id not in parked)
        sim.tenant.set_processing_state(target, ProcessingState.PAUSED, OPERATOR_ACTOR)
        await sim.advance(1800)
        critical = [c.id for c in sim.tenant.critical_groups() if c.rule]
        path = write_config(
            directory / "exporter.yml",
            sim.base_url,
            tenant=tenant,
            critical_groups=critical,
            polling={"backfill_days": 1},
        )
        # A canary probe (#20), so that its families are there too: its property is one no rule
        # of the storm reads, and the frozen clock keeps its first round in flight.
        canary_group = next(
            c
            for c in sim.tenant.directory.containers
            if c.rule and c.member_type == "user" and not c.paused
        )
        add_probe(
            path,
            {
                "object_id": sim.tenant.directory.users.ids[0],
                "property": "extensionAttribute15",
                "match_value": "canary-in",
                "group_id": canary_group.id,
            },
        )
        config = load_config(path)
        exporter = Exporter(config)
        await exporter.start()
        try:
            (runner,) = exporter.runners

            def every_collector_polled() -> bool:
                audit = runner.audit
                return (
                    audit is not None
                    and audit.caught_up
                    and all(s.ever_succeeded for s in runner.statuses.values())
                    and runner.hygiene.summary is not None
                    and runner.probe is not None
                    and runner.probe.status.rounds_started == 1
                )

            await wait_until(
                every_collector_polled, within=60, what="a first poll of every collector"
            )
            await runner.refresh_snapshot()
            async with (
                running(exporter.app(), "127.0.0.1:0") as where,
                httpx.AsyncClient() as http,
            ):
                response = await http.get(f"{where.url}metrics")
                response.raise_for_status()
                return response.text
        finally:
            await exporter.stop()
