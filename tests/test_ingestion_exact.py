"""Exact counting against the simulator's ground truth, over real HTTP with the real SDK.

The simulator's clock is frozen (speed 0) and moved by hand, so the exporter (which follows it)
sees a fixed audit log at each step; faults are injected on every audit request.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from exporter.config.loading import load_config
from exporter.config.models import Config
from exporter.ingest.audit_poller import MAX_PAGES_PER_COMMIT
from exporter.runtime.service import Exporter
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.faults import FaultSettings
from exporter.store.database import NewEvents
from tests.harness import counts_exactly, write_config

SMALL_STORM = {
    "tenant": {
        "users": 2500,
        "devices": 400,
        "dynamic_groups": 80,
        "administrative_units": 3,
        # The busy-store test needs backfill windows of more than one page; the dormant hygiene
        # examples thin the storm's history just below that (tests/test_hygiene_tenant.py uses
        # them).
        "hygiene_examples": False,
    }
}
# Rates high enough that every kind shows up in a few dozen requests, low enough that ten
# attempts per request always get through.
FAULTS = FaultSettings(
    throttle_burst_rate=0.15,
    throttle_burst_length=2,
    throttle_retry_after_seconds=0.128,
    error_500_rate=0.05,
    error_503_rate=0.05,
    error_504_rate=0.05,
    reset_rate=0.12,
    truncate_rate=0.12,
    duplicate_rate=0.3,
    late_rate=0.05,
    late_min_seconds=60,
    late_max_seconds=600,  # with the 15 min visibility delay, still within the 30 min allowance
)


@pytest.fixture
async def storm() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(
        "storm", overrides=SMALL_STORM, speed=0, throttle=False, history_days=1, faults=FAULTS
    ) as sim:
        await sim.advance(3 * 3600)  # into the bulk update that starts the storm
        yield sim


def storm_config(storm: RunningSimulator, tmp_path: Path, *, commit_process: bool = True) -> Config:
    return load_config(
        write_config(
            tmp_path / "config.yml",
            storm.base_url,
            polling={"audit_interval": "1m", "retry_attempts": 10},
            store={"commit_process": commit_process},
        )
    )


async def test_storm_with_faults_counts_exactly(storm: RunningSimulator, tmp_path: Path) -> None:
    exporter = Exporter(storm_config(storm, tmp_path))
    await exporter.start()
    try:
        runner = exporter.runners[0]
        totals = await counts_exactly(exporter, storm)
        assert totals["duplicate"] > 0  # the faults did put duplicates on the pages
        # By default the pages were committed by the audit commit process.
        assert exporter.commits is not None
        assert exporter.commits.committed > 0

        # Time moves on: the storm goes on, late events appear, later windows overlap.
        for _ in range(3):
            await storm.advance(1800)
            await counts_exactly(exporter, storm)

        graph = runner.graph
        assert graph is not None
        codes = {code for endpoint, code in graph.requests if endpoint == "directory_audits"}
        assert {"200", "429"} <= codes
        assert codes & {"500", "503", "504"}
        injected = {str(kind): n for kind, n in storm.tenant.faults.injected.items()}
        print("faults injected:", injected)
        for kind in ("throttle", "reset", "truncate", "duplicate", "late"):
            assert injected.get(kind, 0) > 0, f"no {kind} fault was injected: {injected}"
    finally:
        await exporter.stop()


async def test_a_healthy_throttled_run_meets_no_429(tmp_path: Path) -> None:
    async with running_simulator(
        "steady",
        overrides={
            "tenant": {"users": 300, "devices": 50, "dynamic_groups": 10},
            # Busy enough for pages of 1,000 to take 6 h of history or less: the backfill's
            # pieces are a page's worth at least (#18).
            "load": {"user_updates_per_hour": 150, "device_updates_per_hour": 5},
        },
        speed=0,
        throttle=True,
        history_days=2,
    ) as sim:
        # The default 5 requests per 10 s, against the simulator's sliding window of the same;
        # a 1.5-day backfill takes six pieces or more: more than one 10 s window admits.
        config = load_config(
            write_config(
                tmp_path / "config.yml",
                sim.base_url,
                polling={"audit_requests_per_10s": 5, "backfill_days": 1.5},
            )
        )
        exporter = Exporter(config)
        await exporter.start()
        try:
            await counts_exactly(exporter, sim)
            graph = exporter.runners[0].graph
            assert graph is not None
            audits = {c: n for (e, c), n in graph.requests.items() if e == "directory_audits"}
            assert audits.get("200", 0) >= 6
            assert set(audits) == {"200"}, audits
        finally:
            await exporter.stop()


class SlowConsumer:
    """Holds the store's thread a while on every commit, as a slow disk would, and records how
    many pages each commit held."""

    def __init__(self) -> None:
        self.group_sizes: list[int] = []

    def consume(self, db: sqlite3.Connection, tenant: str, pages: Sequence[NewEvents]) -> None:
        self.group_sizes.append(len(pages))
        # Longer than fetching a page takes on a loaded machine (50 ms was not, at load 5).
        time.sleep(0.25)

    def prune(self, db: sqlite3.Connection, tenant: str, now: float) -> None:
        pass


async def test_pages_that_wait_for_a_busy_store_commit_together_exactly(
    storm: RunningSimulator, tmp_path: Path
) -> None:
    """While the store commits, the next pages are fetched and wait; they then go in one
    transaction (at most MAX_PAGES_PER_COMMIT), duplicates across them included, and the counts
    are still exactly the simulator's."""
    slow = SlowConsumer()  # runs in this process: the pages commit on the store's thread
    exporter = Exporter(storm_config(storm, tmp_path, commit_process=False), consumers=[slow])
    await exporter.start()
    try:
        await counts_exactly(exporter, storm)
        assert max(slow.group_sizes) > 1, slow.group_sizes
        assert max(slow.group_sizes) <= MAX_PAGES_PER_COMMIT
    finally:
        await exporter.stop()
