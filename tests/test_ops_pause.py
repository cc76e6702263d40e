"""pause / pause --adopt against the simulated tenant over real HTTP with the real SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.groups import LedgerEpisode
from exporter.ops.adopt import AdoptRequest, adopt
from exporter.ops.pause import PauseRequest, pause
from exporter.ops.report import Result, Status
from exporter.ops.targets import TargetError
from exporter.simulator.app import RunningSimulator
from exporter.store.database import Store
from exporter.store.ledger import EpisodeObject, Ledger, Role, RunRecord
from tests.ops_harness import dynamic, run_op, small_storm, states, toggles, write_ops_config

PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


async def ledger_view(
    config_dir: Path, tenant: str = "sim"
) -> tuple[tuple[LedgerEpisode, ...], dict[str, list[EpisodeObject]], list[RunRecord]]:
    store = Store(config_dir / "state.sqlite3")
    await store.open()
    try:
        ledger = Ledger(store)
        episodes = await store.call(ledger.episodes, tenant)
        objects = {e.id: await store.call(ledger.episode_objects, e.id) for e in episodes}
        runs = await store.call(ledger.runs, tenant)
        return episodes, objects, runs
    finally:
        await store.close()


async def test_pause_all_is_a_dry_run_until_applied(sim: RunningSimulator, tmp_path: Path) -> None:
    config = write_ops_config(tmp_path, sim)
    before = states(sim)
    paused_before = {i for i, s in before.items() if s is PAUSED}
    assert len(paused_before) == 2  # the scenario parks two groups
    start = sim.clock.now()

    dry = await run_op(config, lambda s, o: pause(s, PauseRequest(all=True), o), apply=False)
    assert dry.status is Status.DRY_RUN
    assert states(sim) == before
    counts = dry.counts()
    assert counts[Result.WOULD_CHANGE] == len(before) - 2
    assert counts[Result.UNCHANGED] == 2

    report = await run_op(config, lambda s, o: pause(s, PauseRequest(all=True, reason="storm"), o))
    assert report.status is Status.COMPLETED
    assert all(s is PAUSED for s in states(sim).values())
    # Groups and administrative units alike, each toggled exactly once.
    kinds = {c.kind for c in dynamic(sim)}
    assert kinds == {DirectoryObjectKind.GROUP, DirectoryObjectKind.ADMINISTRATIVE_UNIT}
    assert toggles(sim, start) == {i: 1 for i in before if i not in paused_before}

    episodes, objects, runs = await ledger_view(tmp_path)
    (episode,) = episodes
    assert episode.started_by == "tester"
    assert episode.reason == "storm"
    assert set(episode.already_paused) == paused_before
    assert set(episode.paused) == set(before) - paused_before
    assert all(
        o.paused_at is not None and not o.pending
        for o in objects[episode.id]
        if o.role is Role.PAUSED
    )
    assert [r.command.value for r in runs] == ["pause"]


async def test_pause_all_except_honours_the_exclusions(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """Regression: Microsoft's pauseAllExcept read an exclusion variable that was never set,
    so it paused the critical groups too."""
    critical = [c.id for c in sim.tenant.critical_groups()]
    config = write_ops_config(tmp_path, sim)
    report = await run_op(
        config,
        lambda s, o: pause(s, PauseRequest(all=True, except_ids=tuple(critical), reason="r"), o),
    )
    assert report.status is Status.COMPLETED
    after = states(sim)
    assert all(after[c] is ON for c in critical)
    assert sum(s is PAUSED for s in after.values()) == len(after) - len(critical)
    excluded = {line.id for line in report.lines if line.result is Result.EXCLUDED}
    assert excluded == set(critical)


async def test_except_critical_uses_the_configured_critical_groups(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    critical = [c.id for c in sim.tenant.critical_groups()]
    config = write_ops_config(tmp_path, sim)
    await run_op(
        config, lambda s, o: pause(s, PauseRequest(all=True, except_critical=True, reason="r"), o)
    )
    after = states(sim)
    assert {c for c in critical if after[c] is ON} == set(critical)


async def test_bad_ids_are_named_and_nothing_changes(sim: RunningSimulator, tmp_path: Path) -> None:
    config = write_ops_config(tmp_path, sim)
    static = next(c for c in sim.tenant.directory.containers if not c.dynamic)
    unknown = "00000000-0000-4000-8000-00000000abcd"
    before = states(sim)
    with pytest.raises(TargetError) as info:
        await run_op(
            config,
            lambda s, o: pause(
                s, PauseRequest(all=True, except_ids=(unknown, static.id), reason="r"), o
            ),
        )
    problems = info.value.problems
    assert any(unknown in p and "no such group" in p for p in problems)
    assert any(static.id in p and "not dynamic" in p for p in problems)
    assert states(sim) == before


async def test_pause_specific_objects(sim: RunningSimulator, tmp_path: Path) -> None:
    config = write_ops_config(tmp_path, sim)
    unit = next(c for c in dynamic(sim) if c.kind is DirectoryObjectKind.ADMINISTRATIVE_UNIT)
    group = next(c for c in dynamic(sim) if c.kind is DirectoryObjectKind.GROUP and not c.paused)
    parked = next(c for c in dynamic(sim) if c.paused)
    report = await run_op(
        config,
        lambda s, o: pause(s, PauseRequest(ids=(unit.id, group.id, parked.id), reason="r"), o),
    )
    assert report.status is Status.COMPLETED
    assert {line.id: line.result for line in report.lines} == {
        unit.id: Result.CHANGED,
        group.id: Result.CHANGED,
        parked.id: Result.UNCHANGED,
    }
    assert sum(c.paused for c in dynamic(sim)) == 4


async def test_adopt_records_a_pause_made_elsewhere_without_patching(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    parked = {c.id for c in dynamic(sim) if c.paused}
    # "Microsoft's script": pause ten groups directly.
    from exporter.simulator.tenant import OPERATOR_ACTOR as OPERATOR

    scripted = [c for c in dynamic(sim) if not c.paused][:10]
    for c in scripted:
        sim.tenant.set_processing_state(c, PAUSED, OPERATOR)
    await sim.advance(60)
    start = sim.clock.now()
    config = write_ops_config(tmp_path, sim)
    report = await run_op(
        config,
        lambda s, o: adopt(
            s, AdoptRequest(except_ids=tuple(sorted(parked)), reason="pauseAll.ps1 at 08:00"), o
        ),
    )
    assert report.status is Status.COMPLETED
    assert toggles(sim, start) == {}
    episodes, _, _ = await ledger_view(tmp_path)
    (episode,) = episodes
    assert set(episode.paused) == {c.id for c in scripted}
    assert set(episode.already_paused) == parked
