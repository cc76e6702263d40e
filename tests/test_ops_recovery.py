"""Idempotent and resumable: a real `entra-dg-exporter pause/resume --apply` process killed
midway (SIGKILL) or interrupted (SIGINT), then run again, ends in the right state with every
object toggled exactly once (counted in the simulator's audit ground truth). Also: throttled
PATCHes are retried, not failures; a missing permission is named and fatal to nothing else."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.ops.pause import PauseRequest, pause
from exporter.ops.planning import ResumeRequest
from exporter.ops.report import Report, Result, Status
from exporter.ops.resume import resume
from exporter.ops.runs import RunOptions
from exporter.ops.session import OpsSession
from exporter.simulator.access import TokenGrant
from exporter.simulator.app import RunningSimulator
from exporter.simulator.faults import FaultKind, FaultScope, FaultSettings
from exporter.store.database import Store
from exporter.store.ledger import Ledger, OpStatus, RunStatus
from tests.ops_harness import (
    TOKEN,
    ScriptedReadiness,
    dynamic,
    readiness_server,
    run_cli,
    run_op,
    small_storm,
    start_cli,
    states,
    toggles,
    write_ops_config,
)
from tests.test_readiness_client import ready_assessment

PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON
SLOW_PATCHES = FaultSettings(scope=FaultScope.ALL, slow_rate=1.0, slow_seconds=0.15)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


def op_counts(store_path: Path, target: str = "%") -> dict[str, int]:
    """Operation statuses as committed so far (read while the other process writes), for
    PATCHes to `target` (Paused, On; all by default)."""
    try:
        db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return {}
    try:
        return dict(
            db.execute(
                "SELECT status, COUNT(*) FROM ops_operations WHERE target LIKE ? GROUP BY status",
                (target,),
            )
        )
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


async def kill_when(
    process: asyncio.subprocess.Process,
    store: Path,
    done_at_least: int,
    sig: signal.Signals,
    target: str = "%",
) -> dict[str, int]:
    deadline = time.monotonic() + 60
    while op_counts(store, target).get("done", 0) < done_at_least:
        assert process.returncode is None, "the run finished before it could be interrupted"
        assert time.monotonic() < deadline, "the run made no progress"
        await asyncio.sleep(0.02)
    process.send_signal(sig)
    await asyncio.wait_for(process.communicate(), timeout=60)
    return op_counts(store, target)


async def ledger_runs(store_path: Path) -> list:  # type: ignore[type-arg]
    store = Store(store_path)
    await store.open()
    try:
        return await store.call(Ledger(store).runs, "sim")
    finally:
        await store.close()


async def test_a_pause_killed_midway_and_run_again_toggles_each_object_once(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim)
    store = tmp_path / "state.sqlite3"
    on_before = {c.id for c in dynamic(sim) if not c.paused}
    parked = {c.id for c in dynamic(sim) if c.paused}
    start = sim.clock.now()
    sim.set_faults(SLOW_PATCHES)
    args = ("pause", "--all", "--apply", "--yes", "--reason", "storm", "--config.file", str(config))

    process = await start_cli(*args)
    at_kill = await kill_when(process, store, 8, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    # Killed with requests in flight: their intent is committed, their outcome is not.
    assert at_kill.get("sending", 0) >= 1
    assert at_kill.get("planned", 0) >= 1
    assert 0 < sum(s is PAUSED for i, s in states(sim).items() if i in on_before) < len(on_before)

    code, out, err = await run_cli(*args)
    assert code == 0, err
    assert "settled" in out
    assert all(s is PAUSED for s in states(sim).values())
    assert toggles(sim, start) == dict.fromkeys(on_before, 1)

    first, second = reversed(await ledger_runs(store))
    assert first.status is RunStatus.INTERRUPTED
    assert second.status is RunStatus.COMPLETED
    assert first.episode_id == second.episode_id
    s = Store(store)
    await s.open()
    try:
        (episode,) = await s.call(Ledger(s).episodes, "sim")
    finally:
        await s.close()
    assert set(episode.paused) == on_before
    assert set(episode.already_paused) == parked
    assert episode.started_by == "oncall"


async def test_a_resume_batch_killed_midway_is_finished_by_the_next_run(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(
        tmp_path, sim, resume={"batch_size": 20, "max_critical_groups": 5, "batch_interval": 0}
    )
    store = tmp_path / "state.sqlite3"
    await run_op(config, lambda s, o: pause(s, PauseRequest(all=True, reason="storm"), o))
    await sim.advance(3600)
    start = sim.clock.now()
    sim.set_faults(SLOW_PATCHES)
    source = ScriptedReadiness("sim", [ready_assessment()])
    async with readiness_server(source) as url:
        args = (
            "resume", "--non-critical", "--apply", "--yes",
            "--config.file", str(config), "--exporter.url", url,
        )  # fmt: skip
        process = await start_cli(*args)
        await kill_when(process, store, 6, signal.SIGKILL, target="On")
        half = {c for c, n in toggles(sim, start).items() if n}
        assert 0 < len(half) < 20

        code, out, err = await run_cli(*args)
    assert code == 0, err
    assert "finishes the batch" in out
    resumed = toggles(sim, start)
    # One batch in all (20 objects), finished rather than followed by a second one.
    assert len(resumed) == 20
    assert set(resumed.values()) == {1}
    assert half <= set(resumed)
    runs = await ledger_runs(store)
    assert runs[0].continues == runs[1].id


async def test_ctrl_c_stops_after_the_requests_in_flight_and_records_them(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim)
    store = tmp_path / "state.sqlite3"
    start = sim.clock.now()
    sim.set_faults(SLOW_PATCHES)
    args = ("pause", "--all", "--apply", "--yes", "--reason", "storm", "--config.file", str(config))
    process = await start_cli(*args)
    at_stop = await kill_when(process, store, 8, signal.SIGINT)
    assert process.returncode == 1
    assert at_stop.get("sending", 0) == 0  # every request in flight got its outcome recorded
    assert at_stop.get("planned", 0) >= 1
    (run,) = await ledger_runs(store)
    assert run.status is RunStatus.INTERRUPTED

    code, _, err = await run_cli(*args)
    assert code == 0, err
    assert all(s is PAUSED for s in states(sim).values())
    assert set(toggles(sim, start).values()) == {1}


async def test_throttled_patches_are_retried_not_counted_as_failures(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """Regression: the scripts' 429 branch read an undefined variable, so throttled calls
    counted as failures."""
    config = write_ops_config(tmp_path, sim)
    sim.set_faults(
        FaultSettings(
            scope=FaultScope.ALL,
            throttle_burst_rate=0.3,
            throttle_burst_length=3,
            throttle_retry_after_seconds=0.05,
        )
    )
    start = sim.clock.now()
    on_before = {c.id for c in dynamic(sim) if not c.paused}
    sent: Counter[tuple[str, str]] = Counter()

    async def act(session: OpsSession, options: RunOptions) -> Report:
        report = await pause(session, PauseRequest(all=True, reason="r"), options)
        sent.update(session.graph.requests)
        return report

    report = await run_op(config, act)
    assert sim.tenant.faults.injected[FaultKind.THROTTLE] >= 10
    assert report.status is Status.COMPLETED
    assert report.counts()[Result.FAILED] == 0
    assert report.counts()[Result.CHANGED] == len(on_before)
    assert toggles(sim, start) == dict.fromkeys(on_before, 1)

    # The report and the ledger say what throttling cost, as the client's own counts do.
    patch_endpoints = ("group_update", "administrative_unit_update")
    throttled = sum(sent[(e, "429")] for e in patch_endpoints)
    requests = sum(n for (e, _code), n in sent.items() if e in patch_endpoints)
    assert throttled >= 10
    summary = report.to_json()["requests"]
    assert (summary["requests"], summary["throttled"]) == (requests, throttled)
    assert summary["retried_objects"] >= 1
    (run,) = await ledger_runs(tmp_path / "state.sqlite3")
    store = Store(tmp_path / "state.sqlite3")
    await store.open()
    try:
        ops = await store.call(Ledger(store).operations, run.id)
    finally:
        await store.close()
    assert sum(op.throttled for op in ops) == throttled
    assert sum(op.requests for op in ops) == requests


async def test_a_missing_permission_is_named_and_stops_only_that_kind(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    sim.set_tokens(
        {TOKEN: TokenGrant(permissions=("Group.ReadWrite.All", "AdministrativeUnit.Read.All"))}
    )
    config = write_ops_config(tmp_path, sim)
    report = await run_op(config, lambda s, o: pause(s, PauseRequest(all=True, reason="r"), o))
    assert report.status is Status.FAILED
    units = [c for c in dynamic(sim) if c.kind is DirectoryObjectKind.ADMINISTRATIVE_UNIT]
    groups = [c for c in dynamic(sim) if c.kind is DirectoryObjectKind.GROUP]
    assert all(c.paused for c in groups)
    assert not any(c.paused for c in units)
    failed = [ln for ln in report.lines if ln.result is Result.FAILED]
    skipped = [ln for ln in report.lines if ln.result is Result.SKIPPED]
    assert len(failed) >= 1
    assert len(failed) + len(skipped) == len(units)
    assert all("AdministrativeUnit.ReadWrite.All" in (ln.detail or "") for ln in failed + skipped)

    # The CLI says it in one line and exits 1; the groups are untouched the second time.
    code, out, _ = await run_cli(
        "pause", "--all", "--apply", "--yes", "--reason", "r", "--config.file", str(config)
    )
    assert code == 1
    assert "AdministrativeUnit.ReadWrite.All" in out


async def test_only_one_changing_run_per_tenant(sim: RunningSimulator, tmp_path: Path) -> None:
    config = write_ops_config(tmp_path, sim)
    store = tmp_path / "state.sqlite3"
    # Slow enough (one PATCH at a time, 0.3 s each) that the first run is still changing the
    # tenant while a second process starts, however loaded the machine is.
    sim.set_faults(FaultSettings(scope=FaultScope.ALL, slow_rate=1.0, slow_seconds=0.3))
    args = ("pause", "--all", "--apply", "--yes", "--reason", "storm", "--config.file", str(config))
    first = await start_cli(*args, "--parallel", "1")
    deadline = time.monotonic() + 60
    while op_counts(store).get("done", 0) < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    code, _, err = await run_cli(*args)
    first_still_running = first.returncode is None
    assert first_still_running, "the first run ended before the second one tried"
    assert code == 1
    assert "another pause/resume run is changing tenant 'sim'" in err
    await asyncio.wait_for(first.communicate(), timeout=60)
    assert first.returncode == 0
    # The resume of a run that never started, in between, must not have stolen anything.
    assert OpStatus.SENDING.value not in op_counts(store)


async def test_resume_reports_nothing_to_do_without_an_episode(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim)
    source = ScriptedReadiness("sim", [ready_assessment()])
    async with readiness_server(source) as url:
        from tests.ops_harness import exporter_readiness

        report = await run_op(
            config,
            lambda s, o: resume(s, ResumeRequest(non_critical=True), o),
            readiness=exporter_readiness(url),
        )
    assert report.status is Status.NOTHING_TO_DO
    excluded = [ln for ln in report.lines if ln.result is Result.EXCLUDED]
    assert len(excluded) == 2  # the parked groups: no episode, so never resumed unless named
    assert all("no pause episode" in (ln.detail or "") for ln in excluded)


async def test_a_missing_group_write_permission_is_named(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    sim.set_tokens(
        {TOKEN: TokenGrant(permissions=("Group.Read.All", "AdministrativeUnit.ReadWrite.All"))}
    )
    config = write_ops_config(tmp_path, sim)
    code, out, _ = await run_cli(
        "pause", "--all", "--apply", "--yes", "--reason", "r", "--config.file", str(config)
    )
    assert code == 1
    assert "Group.ReadWrite.All" in out
    units = [c for c in dynamic(sim) if c.kind is DirectoryObjectKind.ADMINISTRATIVE_UNIT]
    groups = [c for c in dynamic(sim) if c.kind is DirectoryObjectKind.GROUP]
    assert all(c.paused for c in units)
    assert sum(c.paused for c in groups) == 2  # only the two parked before
