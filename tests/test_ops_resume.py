"""resume and plan against the simulated tenant (real SDK, real HTTP), gated by the readiness
API served by the real route and web layer, fed with real assessments of the domain.

Regressions for Microsoft's sample scripts: a non-critical run resumes one batch (their
unpausedNonCritical followed every page and resumed everything); the cap on critical groups
per batch is enforced (theirs was printed, never enforced); groups paused before the episode
stay paused (theirs switched them back on)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.domain.events import ProcessingState
from exporter.ops.pause import PauseRequest, pause
from exporter.ops.plan import plan
from exporter.ops.planning import ResumeRequest
from exporter.ops.report import Result, Status
from exporter.ops.resume import resume
from exporter.simulator.app import RunningSimulator
from exporter.store.database import Store
from exporter.store.ledger import Ledger, RunStatus
from tests.ops_harness import (
    ScriptedReadiness,
    dynamic,
    exporter_readiness,
    readiness_server,
    run_op,
    small_storm,
    states,
    toggles,
    write_ops_config,
)
from tests.support.waiting import wait_until
from tests.test_readiness_client import not_ready_assessment, ready_assessment

PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON
RESUME = {"max_critical_groups": 2, "batch_size": 10, "batch_interval": "0s"}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


@pytest.fixture
async def ready() -> AsyncIterator[tuple[ScriptedReadiness, str]]:
    source = ScriptedReadiness("sim", [ready_assessment()])
    async with readiness_server(source) as url:
        yield source, url


async def paused_episode(sim: RunningSimulator, config: Path) -> tuple[set[str], set[str]]:
    """Pause everything through the tool; returns (parked before, paused by the episode)."""
    parked = {c.id for c in dynamic(sim) if c.paused}
    report = await run_op(config, lambda s, o: pause(s, PauseRequest(all=True, reason="storm"), o))
    assert report.status is Status.COMPLETED
    await sim.advance(3600)
    return parked, {c.id for c in dynamic(sim)} - parked


def critical_ids(sim: RunningSimulator) -> list[str]:
    return [c.id for c in sim.tenant.critical_groups()]


async def test_a_critical_resume_respects_the_cap_per_batch(
    sim: RunningSimulator, tmp_path: Path, ready: tuple[ScriptedReadiness, str]
) -> None:
    """Regression: "only 5 critical groups at a time" was printed, never enforced."""
    _, url = ready
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    await paused_episode(sim, config)
    critical = critical_ids(sim)
    assert len(critical) == 4  # three generated and "All employees"
    other = next(c.id for c in dynamic(sim) if c.id not in critical and c.paused)
    named = (*critical, other)

    report = await run_op(
        config,
        lambda s, o: resume(s, ResumeRequest(ids=named), o),
        readiness=exporter_readiness(url),
    )
    assert report.status is Status.COMPLETED
    resumed = [c for c in named if states(sim)[c] is ON]
    assert len(resumed) == 2
    assert set(resumed) <= set(critical)
    assert [(b.number, b.critical, b.objects, b.status) for b in report.batches] == [
        (1, True, 2, "completed"),
        (2, True, 2, "deferred"),
        (3, False, 1, "deferred"),
    ]

    # Continuing batch by batch resumes the rest, critical ones before the others.
    report = await run_op(
        config,
        lambda s, o: resume(s, ResumeRequest(ids=named, all_batches=True), o),
        readiness=exporter_readiness(url),
    )
    assert report.status is Status.COMPLETED
    assert all(states(sim)[c] is ON for c in named)
    assert [(b.critical, b.objects) for b in report.batches] == [(True, 2), (False, 1)]


async def test_a_non_critical_run_resumes_at_most_one_batch(
    sim: RunningSimulator, tmp_path: Path, ready: tuple[ScriptedReadiness, str]
) -> None:
    """Regression: unpausedNonCritical said "100 at a time" but resumed everything."""
    _, url = ready
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    _parked, ours = await paused_episode(sim, config)
    start = sim.clock.now()
    report = await run_op(
        config,
        lambda s, o: resume(s, ResumeRequest(non_critical=True), o),
        readiness=exporter_readiness(url),
    )
    assert report.status is Status.COMPLETED
    now_on = {c for c, s in states(sim).items() if s is ON}
    assert len(now_on) == 10
    assert now_on <= ours - set(critical_ids(sim))
    assert set(toggles(sim, start)) == now_on
    counts = report.counts()
    assert counts[Result.CHANGED] == 10
    assert counts[Result.DEFERRED] == len(ours) - 10  # later batches, and critical held back
    assert any("critical object(s) of the episode are still paused" in n for n in report.notes)


async def test_groups_paused_before_the_episode_stay_paused(
    sim: RunningSimulator, tmp_path: Path, ready: tuple[ScriptedReadiness, str]
) -> None:
    """Regression: nothing recorded which groups were already paused, so a non-critical
    resume switched them back on."""
    _, url = ready
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    parked, _ours = await paused_episode(sim, config)
    readiness = exporter_readiness(url)
    await run_op(
        config,
        lambda s, o: resume(s, ResumeRequest(ids=tuple(critical_ids(sim)), all_batches=True), o),
        readiness=readiness,
    )
    report = await run_op(
        config,
        lambda s, o: resume(s, ResumeRequest(non_critical=True, all_batches=True), o),
        readiness=readiness,
    )
    assert report.status is Status.COMPLETED
    after = states(sim)
    assert {c for c, s in after.items() if s is PAUSED} == parked
    excluded = {ln.id: ln.detail for ln in report.lines if ln.result is Result.EXCLUDED}
    assert set(excluded) == parked
    assert all("paused before the episode" in (d or "") for d in excluded.values())
    # Everything the episode paused is On again: the episode has ended.
    store = Store(tmp_path / "state.sqlite3")
    await store.open()
    try:
        (episode,) = await store.call(Ledger(store).episodes, "sim")
        assert episode.ended_at is not None
    finally:
        await store.close()
    # Named explicitly, a parked group is resumed.
    one = sorted(parked)[0]
    await run_op(config, lambda s, o: resume(s, ResumeRequest(ids=(one,)), o), readiness=readiness)
    assert states(sim)[one] is ON


async def test_resume_refuses_while_not_ready_unless_forced(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    await paused_episode(sim, config)
    before = states(sim)
    source = ScriptedReadiness("sim", [not_ready_assessment()])
    async with readiness_server(source) as url:
        refused = await run_op(
            config,
            lambda s, o: resume(s, ResumeRequest(non_critical=True), o),
            readiness=exporter_readiness(url),
        )
        assert refused.status is Status.REFUSED
        assert refused.exit_code == 3
        assert states(sim) == before
        assert refused.readiness[0]["state"] == "not_ready"

        forced = await run_op(
            config,
            lambda s, o: resume(
                s, ResumeRequest(non_critical=True, force=True, reason="CEO's laptop"), o
            ),
            readiness=exporter_readiness(url),
        )
    assert forced.status is Status.COMPLETED
    assert sum(s is ON for s in states(sim).values()) == 10
    store = Store(tmp_path / "state.sqlite3")
    await store.open()
    try:
        run = (await store.call(Ledger(store).runs, "sim"))[0]
    finally:
        await store.close()
    assert run.forced
    assert run.reason == "CEO's laptop"
    assert run.readiness == "not_ready"


async def test_an_unreachable_exporter_means_cannot_tell(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    await paused_episode(sim, config)
    source = ScriptedReadiness("sim", [ready_assessment()])
    async with readiness_server(source) as url:
        pass  # the server is gone: nothing listens there any more
    report = await run_op(
        config,
        lambda s, o: resume(s, ResumeRequest(non_critical=True), o),
        readiness=exporter_readiness(url),
    )
    assert report.status is Status.REFUSED
    assert report.readiness[0]["state"] == "cannot_tell"
    assert "cannot reach the exporter" in report.readiness[0]["detail"]


async def test_batch_by_batch_stops_when_readiness_no_longer_holds(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    _, _ours = await paused_episode(sim, config)
    # ready before batches 1 and 2, then the trigger rate climbs again
    source = ScriptedReadiness(
        "sim", [ready_assessment(), ready_assessment(), not_ready_assessment()]
    )
    async with readiness_server(source) as url:
        report = await run_op(
            config,
            lambda s, o: resume(s, ResumeRequest(non_critical=True, all_batches=True), o),
            readiness=exporter_readiness(url),
        )
    assert report.status is Status.STOPPED
    assert report.exit_code == 3
    assert source.requests == 3
    assert sum(s is ON for s in states(sim).values()) == 20
    assert [b.status for b in report.batches][:3] == ["completed", "completed", "refused"]
    assert [r["state"] for r in report.readiness] == ["ready", "ready", "not_ready"]
    store = Store(tmp_path / "state.sqlite3")
    await store.open()
    try:
        ledger = Ledger(store)
        run = (await store.call(ledger.runs, "sim"))[0]
        batches = await store.call(ledger.batches, run.id)
    finally:
        await store.close()
    assert run.status is RunStatus.STOPPED
    assert [(b.number, b.readiness, b.status) for b in batches] == [
        (1, "ready", "completed"),
        (2, "ready", "completed"),
    ]


async def test_plan_shows_the_batches_without_changing_anything(
    sim: RunningSimulator, tmp_path: Path, ready: tuple[ScriptedReadiness, str]
) -> None:
    _, url = ready
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    parked, ours = await paused_episode(sim, config)
    before = states(sim)
    report = await run_op(
        config,
        lambda s, _o: plan(s, ResumeRequest()),
        apply=False,
        readiness=exporter_readiness(url),
    )
    assert states(sim) == before
    critical = len(critical_ids(sim))
    others = len(ours) - critical
    assert report.plan is not None
    assert report.plan["critical_groups"] == critical
    assert report.plan["other_groups"] == others
    assert report.batches[0].critical
    assert [b.objects for b in report.batches] == [2, 2] + [10] * (others // 10) + (
        [others % 10] if others % 10 else []
    )
    assert report.plan["excluded"]["paused_before_episode"] == len(parked)
    assert report.readiness[0]["state"] == "ready"


async def test_batch_by_batch_waits_the_interval_on_the_tenants_clock(
    sim: RunningSimulator, tmp_path: Path, ready: tuple[ScriptedReadiness, str]
) -> None:
    """Between batches the run waits resume.batch_interval (here 10 minutes of the simulated
    tenant's clock, which stands still unless moved), then re-checks readiness."""
    source, url = ready
    config = write_ops_config(tmp_path, sim, resume={**RESUME, "batch_interval": "10m"})
    await paused_episode(sim, config)
    stop = asyncio.Event()

    def resumed() -> int:
        return sum(s is ON for s in states(sim).values())

    run = asyncio.create_task(
        run_op(
            config,
            lambda s, o: resume(s, ResumeRequest(non_critical=True, all_batches=True), o),
            readiness=exporter_readiness(url),
            options={"stop": stop},
        )
    )
    await wait_until(lambda: resumed() == 10, within=30, what="the first batch")
    await sim.advance(599)
    await asyncio.sleep(2.5)  # the run follows the simulator's clock once a second
    assert resumed() == 10
    assert source.requests == 1
    await sim.advance(1)
    await wait_until(lambda: resumed() == 20, within=30, what="the second batch")
    assert source.requests == 2
    stop.set()
    report = await asyncio.wait_for(run, timeout=30)
    assert [b.status for b in report.batches][:2] == ["completed", "completed"]


async def test_plan_after_a_partial_resume_counts_only_what_is_left(
    sim: RunningSimulator, tmp_path: Path, ready: tuple[ScriptedReadiness, str]
) -> None:
    """#23: after one batch is back On, `plan` counts the groups still paused, nothing more."""
    _, url = ready
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    _parked, ours = await paused_episode(sim, config)
    await run_op(
        config,
        lambda s, o: resume(s, ResumeRequest(non_critical=True), o),
        readiness=exporter_readiness(url),
    )
    left = {c for c in ours if states(sim)[c] is not ON}
    assert len(left) == len(ours) - 10
    report = await run_op(
        config,
        lambda s, _o: plan(s, ResumeRequest()),
        apply=False,
        readiness=exporter_readiness(url),
    )
    assert report.plan is not None
    assert report.plan["critical_groups"] + report.plan["other_groups"] == len(left)
    assert sum(b.objects for b in report.batches) == len(left)
    assert report.counts().get(Result.PLANNED, 0) == len(left)
    assert report.episode is not None


async def test_pause_resumed_pauses_again_exactly_the_groups_back_on(
    sim: RunningSimulator, tmp_path: Path, ready: tuple[ScriptedReadiness, str]
) -> None:
    """#23, a storm mid-resume: `pause --resumed` re-pauses the episode's groups a resume
    switched back On, and nothing else; they join the open episode."""
    _, url = ready
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    _parked, ours = await paused_episode(sim, config)
    await run_op(
        config,
        lambda s, o: resume(s, ResumeRequest(non_critical=True), o),
        readiness=exporter_readiness(url),
    )
    back_on = {c for c in ours if states(sim)[c] is ON}
    assert len(back_on) == 10
    on_before = {c for c, s in states(sim).items() if s is ON}
    start = sim.clock.now()
    report = await run_op(
        config, lambda s, o: pause(s, PauseRequest(resumed=True, reason="mid-resume storm"), o)
    )
    assert report.status is Status.COMPLETED
    assert set(toggles(sim, start)) == back_on
    assert {c for c, s in states(sim).items() if s is ON} == on_before - back_on
    assert report.episode is not None
    assert not report.episode.get("new")
