"""The readiness gate against a real running exporter: `entra-dg-exporter serve` watching the
simulated tenant in a storm, and `resume` asking its GET /api/v1/readiness. The exporter says
not ready (paused for less than the minimum, trigger rate not back to baseline); the resume is
refused and changes nothing, unless forced with a reason, which the ledger records."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from exporter.domain.episode import EpisodeSource
from exporter.domain.readiness import ReadinessState
from exporter.readiness.client import ReadinessClient
from exporter.simulator.app import RunningSimulator
from exporter.store.database import Store
from exporter.store.ledger import Ledger
from tests.ops_harness import (
    run_cli,
    small_storm,
    start_cli,
    states,
    toggles,
    write_ops_config,
)

HOUR = 3600.0
SERVING = re.compile(r"Serving metrics at (\S+)metrics")


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm(history_days=2) as running:
        yield running


@contextlib.asynccontextmanager
async def serving_exporter(config: Path) -> AsyncIterator[str]:
    """`entra-dg-exporter serve` as its own process; yields its base URL."""
    process = await start_cli("serve", "--config.file", str(config))
    assert process.stderr is not None
    stderr = process.stderr
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(60):
            while (match := SERVING.search((await stderr.readline()).decode())) is None:
                assert process.returncode is None, "the exporter exited"

        async def discard() -> None:
            while await stderr.read(65536):
                pass

        drain = asyncio.create_task(discard())
        yield match.group(1)
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=60)
        if drain is not None:
            await drain


async def assessed(url: str) -> tuple[ReadinessState, str]:
    """The exporter's readiness once it has assessed the tenant from complete data."""
    client = ReadinessClient(url, timeout=5.0)
    async with asyncio.timeout(90):
        while True:
            result = await client.tenant("sim")
            if result.state is not ReadinessState.CANNOT_TELL:
                return result.state, result.detail
            await asyncio.sleep(0.2)


async def test_resume_is_refused_while_the_running_exporter_says_not_ready(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(
        tmp_path,
        sim,
        resume={"batch_size": 10, "max_critical_groups": 5, "batch_interval": 0},
        polling={"backfill_days": 2, "audit_requests_per_10s": 1000},
    )
    common = ("--config.file", str(config))
    await sim.advance(3 * HOUR)  # into the storm
    code, _, err = await run_cli("pause", "--all", "--apply", "--yes", "--reason", "storm", *common)
    assert code == 0, err
    await sim.advance(600)
    before = states(sim)
    start = sim.clock.now()

    async with serving_exporter(config) as url:
        state, detail = await assessed(url)
        assert state is ReadinessState.NOT_READY, detail
        assert "minimum_pause" in detail
        episode = (await ReadinessClient(url, timeout=5.0).tenant("sim")).episode
        assert episode is not None
        assert episode.source is EpisodeSource.LEDGER, "the served exporter reads the ops ledger"
        assert episode.reason == "storm"

        gate = ("--exporter.url", url)
        code, out, err = await run_cli(
            "resume", "--non-critical", "--apply", "--yes", *gate, *common
        )
        assert code == 3, err
        assert "refused by the readiness check" in out
        assert "not_ready" in out
        assert states(sim) == before

        code, out, err = await run_cli(
            "resume", "--non-critical", "--apply", "--yes", "--force", *gate, *common
        )
        assert code == 2
        assert '--force needs --reason "...": the override is recorded' in err
        assert states(sim) == before

        code, out, err = await run_cli(
            "resume", "--non-critical", "--apply", "--yes", "--json", "--force",
            "--reason", "payroll cannot wait", *gate, *common,
        )  # fmt: skip
        assert code == 0, err
    document = orjson.loads(out)
    assert [r["state"] for r in document["readiness"]] == ["not_ready"]
    assert document["summary"]["changed"] == 10
    assert len(toggles(sim, start)) == 10

    store = Store(tmp_path / "state.sqlite3")
    await store.open()
    try:
        runs = await store.call(Ledger(store).runs, "sim")
    finally:
        await store.close()
    forced = runs[0]
    assert forced.forced
    assert forced.reason == "payroll cannot wait"
    assert forced.readiness == "not_ready"
    assert forced.operator == "oncall"
