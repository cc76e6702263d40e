"""The readiness gate against a real running exporter: `entra-dg-exporter serve` watching the
simulated tenant in a storm, and `resume` asking its GET /api/v1/readiness. The exporter says
not ready (paused for less than the minimum, trigger rate not back to baseline); the resume is
refused and changes nothing, unless forced with a reason, which the ledger records."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporter.domain.episode import EpisodeSource
from exporter.domain.events import ProcessingState
from exporter.domain.readiness import ReadinessState
from exporter.readiness.client import ReadinessClient
from exporter.simulator.app import RunningSimulator
from exporter.simulator.tenant import OPERATOR_ACTOR
from exporter.store.database import Store
from exporter.store.ledger import Ledger
from tests.ops_harness import (
    dynamic,
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


async def test_readiness_follows_the_ledger_at_once_after_adopt_pause_and_each_resume_batch(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """The simulator's clock stands still, so the exporter polls no groups during the test:
    everything it learns after its first polls comes from the pause ledger the commands write
    from their own processes. Before the ledger was read when answering, it said `not_paused`
    (then exit 0) after a pause until the next groups poll (147 s in the drill)."""
    config = write_ops_config(
        tmp_path,
        sim,
        critical=[],
        resume={"batch_size": 10, "max_critical_groups": 5, "batch_interval": 0},
        polling={"backfill_days": 2, "audit_requests_per_10s": 1000},
    )
    common = ("--config.file", str(config))
    await sim.advance(3 * HOUR)  # into the storm
    parked = sorted(c.id for c in dynamic(sim) if c.paused)
    pausable = len(dynamic(sim)) - len(parked)
    async with serving_exporter(config) as url:
        client = ReadinessClient(url, timeout=5.0)
        state, detail = await assessed(url)
        assert state is ReadinessState.NOT_PAUSED, detail
        gate_code = (await run_cli("check-resume", "--url", url, "--tenant", "sim"))[0]
        assert gate_code == 3, "nothing paused is never exit 0"

        # Someone pauses five groups with Microsoft's script; on-call adopts the pause.
        for c in [c for c in dynamic(sim) if not c.paused][:5]:
            sim.tenant.set_processing_state(c, ProcessingState.PAUSED, OPERATOR_ACTOR)
        code, _, err = await run_cli(
            "pause", "--adopt", "--except", ",".join(parked), "--reason", "pauseAll.ps1",
            "--apply", "--yes", *common,
        )  # fmt: skip
        assert code == 0, err
        adopted = await client.tenant("sim")
        assert adopted.state is ReadinessState.NOT_READY, adopted.detail
        assert adopted.episode is not None
        assert adopted.episode.source is EpisodeSource.LEDGER
        assert adopted.episode.groups == 5

        code, _, err = await run_cli(
            "pause", "--all", "--except", ",".join(parked), "--reason", "storm",
            "--apply", "--yes", *common,
        )  # fmt: skip
        assert code == 0, err
        asked = time.monotonic()
        paused = await client.tenant("sim")
        seconds = time.monotonic() - asked
        print(f"readiness showed the pause {seconds:.3f} s after pause --apply returned")
        assert paused.state is ReadinessState.NOT_READY, paused.detail
        assert paused.episode is not None
        assert paused.episode.groups == pausable
        assert (await run_cli("check-resume", "--url", url, "--tenant", "sim"))[0] == 1

        remaining = pausable
        while remaining:
            code, _, err = await run_cli(
                "resume", "--non-critical", "--force", "--reason", "drill", "--apply", "--yes",
                "--exporter.url", url, *common,
            )  # fmt: skip
            assert code == 0, err
            remaining -= min(10, remaining)
            after = await client.tenant("sim")
            if remaining:
                assert after.state is ReadinessState.NOT_READY, after.detail
                assert after.episode is not None
                assert after.episode.groups == remaining
                assert after.plan is not None
                assert after.plan.other_groups == remaining
            else:
                assert after.state is ReadinessState.NOT_PAUSED, after.detail
                assert after.exit_code == 3
        assert (await run_cli("check-resume", "--url", url, "--tenant", "sim"))[0] == 3


async def test_the_gate_does_not_take_an_exporter_that_sees_no_pause_for_a_go(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """An exporter reading another store (a misconfigured store.path) cannot see this tool's
    ledger, and on a still clock polls nothing: it says `not_paused`. The ledger holds a pause,
    so the gate calls that `cannot_tell` and the resume is refused, changing nothing."""
    settings: dict[str, Any] = {
        "critical": [],
        "resume": {"batch_size": 10, "max_critical_groups": 5, "batch_interval": 0},
        "polling": {"backfill_days": 2, "audit_requests_per_10s": 1000},
    }
    (tmp_path / "ops").mkdir()
    (tmp_path / "exporter").mkdir()
    ops = write_ops_config(tmp_path / "ops", sim, **settings)
    elsewhere = write_ops_config(tmp_path / "exporter", sim, **settings)
    await sim.advance(3 * HOUR)
    parked = sorted(c.id for c in dynamic(sim) if c.paused)
    async with serving_exporter(elsewhere) as url:
        state, detail = await assessed(url)
        assert state is ReadinessState.NOT_PAUSED, detail
        code, _, err = await run_cli(
            "pause", "--all", "--except", ",".join(parked), "--reason", "storm",
            "--apply", "--yes", "--config.file", str(ops),
        )  # fmt: skip
        assert code == 0, err
        assert (await ReadinessClient(url).tenant("sim")).state is ReadinessState.NOT_PAUSED
        before = states(sim)
        code, out, err = await run_cli(
            "resume", "--non-critical", "--apply", "--yes", "--exporter.url", url,
            "--config.file", str(ops),
        )  # fmt: skip
    assert code == 3, out + err
    assert "refused by the readiness check" in out
    assert "check that the exporter reads the same store.path" in " ".join(out.split())
    assert states(sim) == before
