"""A tenant at Entra's limit (15,000 dynamic groups, 10% of them paused, 200 critical) and an
exporter process that has caught up with it: the setting of the scrape and cold-start
benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    ExporterProcess,
    SimulatorProcess,
    exporter_config,
    samples,
)
from tests.support.waiting import eventually

TENANT = "sim"


@dataclass(frozen=True, slots=True)
class FleetSize:
    users: int
    devices: int
    groups: int
    """Dynamic groups and units together (Entra's limit is 15,000)."""
    paused: int
    critical: int
    changes_per_hour: int
    settle_seconds: float
    """Waited after the first complete exposition: one more snapshot refresh (every ~5 s)."""


FULL = FleetSize(50_000, 10_000, 15_000, 1_500, 200, 5_000, 6.0)
SMOKE = FleetSize(3_000, 500, 300, 30, 20, 500, 0.0)


def scenario(size: FleetSize) -> dict[str, Any]:
    return {
        "name": "bench-fleet",
        "tenant": {
            "users": size.users,
            "devices": size.devices,
            "dynamic_groups": size.groups - 10,
            "administrative_units": 10,
            "static_groups": 50,
            "critical_groups": size.critical,
            "paused_groups": size.paused,
        },
        "history": {"days": 1, "dynamic_changes_per_hour": size.changes_per_hour},
        "load": {"user_updates_per_hour": 2_000, "device_updates_per_hour": 500},
    }


@dataclass(slots=True)
class Fleet:
    size: FleetSize
    sim: SimulatorProcess
    config: Path
    directory: Path
    exporter: ExporterProcess | None = None

    def start_exporter(self, name: str = "exporter") -> ExporterProcess:
        self.exporter = ExporterProcess(self.config, self.directory, name=name)
        return self.exporter

    def stop_exporter(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None


def synced(text: str, size: FleetSize) -> bool:
    """The exposition shows the whole tenant: groups listed, every critical group's status,
    the audit backfill complete."""
    groups = samples(text, "entra_dynamic_groups")
    paused = sum(v for labels, v in groups.items() if 'state="paused"' in labels)
    statuses = samples(text, "entra_dynamic_group_processing_status")
    progress = samples(text, "entra_dynamic_audit_backfill_progress_ratio")
    return (
        paused >= size.paused
        and len(statuses) >= size.critical
        and bool(progress)
        and min(progress.values()) >= 1.0
    )


async def scrape_text(http: aiohttp.ClientSession, url: str) -> str | None:
    try:
        async with http.get(url, headers={"Accept-Encoding": "identity"}) as response:
            if response.status != 200:
                return None
            return await response.text()
    except aiohttp.ClientError:
        return None


@contextlib.asynccontextmanager
async def running_fleet(size: FleetSize, workdir: Path) -> AsyncIterator[Fleet]:
    """The simulator at speed 1 (the exporter polls as it would in production) and an exporter
    that has listed every group, polled every critical group's status and backfilled a day."""
    directory = workdir / "fleet"
    directory.mkdir(parents=True, exist_ok=True)
    sim = SimulatorProcess(scenario(size), directory, name="simulator-fleet", speed=1.0)
    try:
        async with aiohttp.ClientSession() as http:
            critical = (await sim.get(http, "/_sim/scenario"))["critical_groups"]
        config = exporter_config(
            directory / "config.yml",
            sim.base_url,
            tenant=TENANT,
            critical_groups=critical,
            polling={
                "backfill_days": 1,
                "audit_requests_per_10s": 100_000,  # the simulator does not throttle here
            },
        )
        fleet = Fleet(size, sim, config, directory)
        exporter = fleet.start_exporter("exporter-sync")
        url = exporter.url()

        async def done() -> bool:
            async with aiohttp.ClientSession() as http:
                text = await scrape_text(http, url)
            return text is not None and synced(text, size)

        await eventually(done, within=1800, what="the exporter to sync the tenant", interval=1.0)
        await asyncio.sleep(size.settle_seconds)
        try:
            yield fleet
        finally:
            fleet.stop_exporter()
    finally:
        sim.stop()
