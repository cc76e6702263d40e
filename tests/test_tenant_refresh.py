"""Snapshot refreshes requested together (several poll ends at once) share one store read."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import exporter.runtime.snapshot
import exporter.runtime.tenant_runner
from exporter.config.loading import load_config
from exporter.runtime.service import Exporter
from exporter.simulator.app import running_simulator
from tests.harness import write_config
from tests.support.waiting import wait_until

SMALL = {"tenant": {"users": 300, "devices": 50, "dynamic_groups": 10, "administrative_units": 1}}


async def test_refreshes_asked_for_while_one_runs_share_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_simulator(
        "steady", overrides=SMALL, speed=0, throttle=False, history_days=0.1
    ) as sim:
        polling = {"audit_interval": "1h", "groups_interval": "1h"}
        # Freshness thresholds longer than the polls: config refuses any that are not (#14).
        fresh = {"collector_max_age": "2h", "watermark_max_age": "2h"}
        config = load_config(
            write_config(tmp_path / "config.yml", sim.base_url, polling=polling, thresholds=fresh)
        )
        # Only the refreshes this test asks for: no periodic one in the middle.
        monkeypatch.setattr(exporter.runtime.tenant_runner, "SNAPSHOT_INTERVAL", 3600.0)
        service = Exporter(config)
        await service.start()
        try:
            runner = service.runners[0]
            await wait_until(
                lambda: (
                    all(s.polls for s in runner.statuses.values())
                    and runner.rule_usage.usage is not None
                ),
                within=60,
                what="every first poll",
            )
            await runner.refresh_snapshot()  # the last poll end's own refresh is over
            reads: list[float] = []
            real = exporter.runtime.snapshot.read_store_view

            def slow_read(*args: Any, **kwargs: Any) -> Any:
                reads.append(time.monotonic())
                time.sleep(0.2)  # on the store's thread, as a busy store would be
                return real(*args, **kwargs)

            monkeypatch.setattr(exporter.runtime.tenant_runner, "read_store_view", slow_read)
            first = asyncio.create_task(runner.refresh_snapshot())
            await asyncio.sleep(0.05)  # the first refresh is reading
            asked = time.monotonic()
            await asyncio.gather(first, *(runner.refresh_snapshot() for _ in range(4)))
            # The first read, then one for the four asked while it ran, begun after they asked.
            assert len(reads) == 2
            assert reads[1] > asked
        finally:
            await service.stop()
