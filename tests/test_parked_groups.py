"""Parked groups are never an incident (#13): groups already paused when the exporter first
lists them have an unknown pause time (never the first poll's), so they never form an inferred
pause episode; the plan proposes nothing before any pause, and a non-critical resume never
proposes a parked group. Against the simulator's storm tenant, which starts with two parked
groups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.domain.episode import detect_episode
from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.groups import GroupState
from exporter.domain.records import DirectoryObject
from exporter.domain.settings import Thresholds
from exporter.ops.plan import plan
from exporter.ops.planning import ResumeRequest
from exporter.ops.report import Result
from exporter.ops.resume import resume
from exporter.simulator.app import RunningSimulator
from exporter.store.database import Store
from tests.ops_harness import (
    ScriptedReadiness,
    dynamic,
    exporter_readiness,
    readiness_server,
    run_op,
    small_storm,
    states,
    write_ops_config,
)
from tests.test_readiness_client import ready_assessment

RESUME = {"max_critical_groups": 2, "batch_size": 10, "batch_interval": "0s"}
T0 = 1_714_564_800.0


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


async def exporter_has_listed(sim: RunningSimulator, state_file: Path) -> None:
    """What the exporter left in its state file after listing the tenant twice (ops read
    pause times from it)."""
    store = Store(state_file)
    await store.open()
    try:
        for kind in DirectoryObjectKind:
            objects = [
                DirectoryObject(kind, c.id, c.display_name, c.rule.text if c.rule else "", c.state)
                for c in dynamic(sim)
                if c.kind is kind
            ]
            for at in (sim.clock.now() - 120, sim.clock.now() - 60):
                await store.call(store.record_directory_poll, "sim", kind, objects, at)
    finally:
        await store.close()


@pytest.fixture
async def ready_url() -> AsyncIterator[str]:
    async with readiness_server(ScriptedReadiness("sim", [ready_assessment()])) as url:
        yield url


async def test_plan_before_any_pause_proposes_nothing(
    sim: RunningSimulator, tmp_path: Path, ready_url: str
) -> None:
    parked = {c.id for c in dynamic(sim) if c.paused}
    assert len(parked) == 2
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    await exporter_has_listed(sim, tmp_path / "state.sqlite3")
    report = await run_op(
        config,
        lambda s, _o: plan(s, ResumeRequest()),
        apply=False,
        readiness=exporter_readiness(url=ready_url),
    )
    assert report.batches == []
    assert report.episode is None


async def test_a_non_critical_resume_never_proposes_a_parked_group(
    sim: RunningSimulator, tmp_path: Path, ready_url: str
) -> None:
    parked = {c.id for c in dynamic(sim) if c.paused}
    config = write_ops_config(tmp_path, sim, resume=RESUME)
    await exporter_has_listed(sim, tmp_path / "state.sqlite3")
    report = await run_op(
        config,
        lambda s, o: resume(s, ResumeRequest(non_critical=True), o),
        readiness=exporter_readiness(url=ready_url),
    )
    assert all(states(sim)[g] is ProcessingState.PAUSED for g in parked)
    assert report.counts()[Result.CHANGED] == 0


async def test_parked_groups_have_no_pause_time_and_form_no_episode(store: Store) -> None:
    """Three parked groups of three paused: 'min(10 groups, 10% of the paused)' is 0.3, so
    with an invented time they were a significant wave, and the episode silenced the
    pause-warranted alert."""

    def listed(state_of: dict[str, ProcessingState]) -> list[DirectoryObject]:
        return [
            DirectoryObject(DirectoryObjectKind.GROUP, g, g, 'user.city -eq "x"', state)
            for g, state in state_of.items()
        ]

    parked = {f"p{i}": ProcessingState.PAUSED for i in range(3)}
    on = {f"o{i}": ProcessingState.ON for i in range(7)}
    await store.call(
        store.record_directory_poll, "t", DirectoryObjectKind.GROUP, listed(parked | on), T0
    )
    await store.call(
        store.record_directory_poll, "t", DirectoryObjectKind.GROUP, listed(parked | on), T0 + 60
    )
    paused = await store.call(store.paused_objects, "t")
    assert [(p.id, p.paused_since) for p in paused] == [(g, None) for g in sorted(parked)]
    states_now = await store.call(store.object_states, "t")
    groups = [
        GroupState(id=o.id, name=o.name, kind=o.kind, state=o.state, paused_since=o.paused_since)
        for o in states_now
        if o.state is not None
    ]
    assert detect_episode(groups, (), now=T0 + 120, thresholds=Thresholds()) is None
