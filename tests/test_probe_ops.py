"""The canary group is protected (#20): `pause --all` leaves it On and the ledger records why;
a resume plan leaves it out unless it is named. Against the simulated tenant over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.domain.events import ProcessingState
from exporter.ops.pause import PauseRequest, pause
from exporter.ops.plan import plan
from exporter.ops.planning import ResumeRequest
from exporter.ops.report import Result, Status
from exporter.simulator.app import RunningSimulator
from exporter.store.database import Store
from exporter.store.ledger import Ledger, OpStatus
from tests.harness import add_probe
from tests.ops_harness import run_op, small_storm, states, write_ops_config

PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


def canary_config(sim: RunningSimulator, directory: Path) -> tuple[Path, str]:
    canary = next(
        c
        for c in sim.tenant.directory.containers
        if c.rule is not None and c.member_type == "user" and not c.paused and not c.critical
    )
    path = add_probe(
        write_ops_config(directory, sim),
        {
            "object_id": sim.tenant.directory.users.ids[0],
            "property": "extensionAttribute15",
            "match_value": "canary-in",
            "group_id": canary.id,
        },
    )
    return path, canary.id


async def test_pause_all_leaves_the_canary_group_on_and_the_ledger_says_why(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config, canary = canary_config(sim, tmp_path)
    report = await run_op(config, lambda s, o: pause(s, PauseRequest(all=True, reason="storm"), o))
    assert report.status is Status.COMPLETED
    after = states(sim)
    assert after[canary] is ON
    assert sum(s is PAUSED for s in after.values()) == len(after) - 1
    (line,) = [x for x in report.lines if x.id == canary]
    assert line.result is Result.EXCLUDED
    assert "canary" in (line.detail or "")
    store = Store(tmp_path / "state.sqlite3")
    await store.open()
    try:
        ledger = Ledger(store)
        (run,) = await store.call(ledger.runs, "sim")
        skipped = await store.call(ledger.operations, run.id, [OpStatus.SKIPPED])
    finally:
        await store.close()
    assert [(o.object.id, o.detail) for o in skipped] == [
        (canary, "excluded: the canary probe's group")
    ]


async def test_named_the_canary_is_paused_and_resume_plans_leave_it_out_unless_named(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config, canary = canary_config(sim, tmp_path)
    others = [
        c.id
        for c in sim.tenant.directory.containers
        if c.rule is not None and not c.paused and not c.critical and c.id != canary
    ][:3]
    named = PauseRequest(ids=(canary, *others), reason="drill")
    assert (await run_op(config, lambda s, o: pause(s, named, o))).status is Status.COMPLETED
    assert states(sim)[canary] is PAUSED

    default = await run_op(config, lambda s, o: plan(s, ResumeRequest()), apply=False)
    planned = {x.id for x in default.lines if x.result is Result.PLANNED}
    assert planned == set(others)
    (left_out,) = [x for x in default.lines if x.id == canary]
    assert "canary" in (left_out.detail or "")
    assert default.plan is not None
    assert default.plan["excluded"]["canary_group"] == 1

    by_name = await run_op(config, lambda s, o: plan(s, ResumeRequest(ids=(canary,))), apply=False)
    assert {x.id for x in by_name.lines if x.result is Result.PLANNED} == {canary}
