"""The canary probe against the simulator over real HTTP (msgraph-sdk): each round's measured
latency agrees with the simulator's truth (`truth.membership_trace`) within one check interval,
in a steady tenant and through a storm whose backlog the latency follows up and back down; a
paused canary group is `paused`, not a timeout; a missing permission is one line naming it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from exporter.cli.main import cli
from exporter.clock import FollowingClock
from exporter.config.loading import ConfigError, load_config
from exporter.domain.events import ProcessingState
from exporter.domain.probe import ProbeOutcome, ProbeRound, ProbeSettings, canary_rule_problem
from exporter.domain.rules import ObjectType
from exporter.graph.client import GraphClient
from exporter.graph.credentials import StaticTokenCredential
from exporter.graph.retry import RetryPolicy
from exporter.http.app import running
from exporter.runtime.probe import KEPT_ROUNDS, CanaryProbe
from exporter.runtime.service import Exporter
from exporter.simulator.access import TokenGrant
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.tenant import OPERATOR_ACTOR
from exporter.simulator.truth import membership_trace
from exporter.store.database import Store
from exporter.store.probe import canary_key
from tests.harness import add_probe, write_config
from tests.support.waiting import wait_until

CANARY_GROUP = "Canary"
CANARY_RULE = 'user.extensionAttribute15 -eq "canary-in"'
CHECK = 60.0
TENANT: dict[str, Any] = {
    "tenant": {
        "users": 300,
        "devices": 20,
        "dynamic_groups": 12,
        "administrative_units": 0,
        "critical_groups": 1,
        "paused_groups": 0,
        "groups": [
            {"name": CANARY_GROUP, "rule": CANARY_RULE},
            {"name": "Canary devices", "rule": 'device.extensionAttribute15 -eq "canary-in"'},
        ],
    },
    # Slow enough that a storm of a couple of hundred users builds an hour's backlog.
    "processing": {"evaluations_per_hour": 1500},
}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(
        "steady", overrides=TENANT, speed=0, throttle=False, history_days=0
    ) as running:
        running.tenant.trace_membership(running.tenant.find(CANARY_GROUP))
        yield running


def graph_for(sim: RunningSimulator, token: str = "any") -> GraphClient:
    return GraphClient(
        root_url=sim.base_url,
        credential=StaticTokenCredential(token),
        scopes=["https://graph.microsoft.com/.default"],
        audit_requests_per_10s=1000,
        retry=RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.05),
    )


def settings_for(sim: RunningSimulator, **changes: Any) -> ProbeSettings:
    canary = sim.tenant.directory.users.ids[7]
    return ProbeSettings(
        object_type=ObjectType.USER,
        object_id=canary,
        property="extensionAttribute15",
        match_value="canary-in",
        other_value="canary-out",
        group_id=sim.tenant.find(CANARY_GROUP).id,
        interval=900.0,
        timeout=changes.pop("timeout", 6 * 3600.0),
        check_interval=CHECK,
        **changes,
    )


async def run_rounds(
    sim: RunningSimulator,
    probe: CanaryProbe,
    rounds: int,
    step: float = CHECK / 2,
    each_step: Callable[[], None] = lambda: None,
) -> None:
    """Drive the simulated clock in steps, letting the probe act at each (and `each_step`),
    until `rounds` rounds have ended. One call per test: cancelling the probe between rounds
    would leave a flip unwatched."""

    def asleep() -> bool:
        wake = probe.wake_at
        return wake is not None and wake > sim.clock.now()

    task = asyncio.create_task(probe.run())
    try:
        while sum(1 for r in probe.status.rounds if not r.in_flight) < rounds:
            await wait_until(asleep, within=10, what="the probe waiting for the clock")
            each_step()
            await sim.advance(step)
        if task.done():
            task.result()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def assert_within_one_check(sim: RunningSimulator, rounds: list[ProbeRound]) -> list[float]:
    """Each detected round's latency against the truth: the change it caused, applied at
    trigger + truth latency, is seen no earlier and at most one check interval later."""
    trace = membership_trace(sim.tenant, CANARY_GROUP)
    measured = []
    for r in rounds:
        assert r.outcome is ProbeOutcome.DETECTED, r
        change = next(c for c in trace if c["trigger"] >= r.started_at and c["add"] == r.entering)
        assert r.latency is not None
        assert change["latency"] <= r.latency <= change["latency"] + CHECK, (r, change)
        measured.append(r.latency)
    return measured


async def test_steady_tenant_latency_matches_the_truth(sim: RunningSimulator) -> None:
    graph = graph_for(sim)
    try:
        probe = CanaryProbe(tenant="sim", settings=settings_for(sim), graph=graph, clock=sim.clock)
        await run_rounds(sim, probe, 3)
        rounds = [r for r in probe.status.rounds if not r.in_flight]
        assert [r.entering for r in rounds] == [True, False, True]
        latencies = assert_within_one_check(sim, rounds)
        # The pickup delay is 0.5 to 1.5 minutes: a healthy tenant answers within minutes.
        assert all(30 <= x <= 180 for x in latencies), latencies
        status = probe.status
        assert status.rounds_started == 3
        assert status.outcomes[ProbeOutcome.DETECTED] == 3
        assert status.latency.count == 3
        evidence = status.evidence(sim.clock.now())
        assert evidence.keeping_up is True
        assert evidence.consecutive_normal == 3
    finally:
        await graph.close()


async def test_latency_follows_a_storm_backlog_up_and_back_down(sim: RunningSimulator) -> None:
    graph = graph_for(sim)
    try:
        probe = CanaryProbe(tenant="sim", settings=settings_for(sim), graph=graph, clock=sim.clock)
        stormed: list[float] = []

        def storm_after_the_first_round() -> None:
            if not stormed and any(not r.in_flight for r in probe.status.rounds):
                stormed.append(sim.clock.now())
                sim.tenant.start_storm(
                    objects=300, attribute="department", value="Storm", over_seconds=60
                )

        # A round before the storm, rounds in its backlog, and rounds long after it drained.
        await run_rounds(sim, probe, 6, step=CHECK, each_step=storm_after_the_first_round)
        before = probe.status.rounds[0].latency
        rounds = [r for r in probe.status.rounds if not r.in_flight]
        latencies = assert_within_one_check(sim, rounds)
        assert before is not None
        assert before < 180
        storm_peak = max(latencies[1:4])
        # The canary waited behind the storm's backlog: tens of minutes instead of one or two.
        assert storm_peak > max(1200, 10 * before), latencies
        assert latencies[-1] < 180, latencies  # and once it drained, minutes again
        evidence = probe.status.evidence(sim.clock.now())
        assert evidence.latest_latency == latencies[-1]
    finally:
        await graph.close()


async def test_a_paused_canary_group_is_reported_paused_not_timed_out(
    sim: RunningSimulator,
) -> None:
    graph = graph_for(sim)
    try:
        probe = CanaryProbe(
            tenant="sim", settings=settings_for(sim, timeout=600.0), graph=graph, clock=sim.clock
        )
        task = asyncio.create_task(probe.run())
        await wait_until(lambda: probe.status.rounds_started == 1, within=10, what="a flip")
        group = sim.tenant.find(CANARY_GROUP)
        sim.tenant.set_processing_state(group, ProcessingState.PAUSED, OPERATOR_ACTOR)
        try:
            while not any(not r.in_flight for r in probe.status.rounds):
                await wait_until(
                    lambda: probe.wake_at is not None and probe.wake_at > sim.clock.now(),
                    within=10,
                    what="the probe waiting",
                )
                await sim.advance(CHECK)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert probe.status.rounds[0].outcome is ProbeOutcome.PAUSED
        assert probe.status.outcomes[ProbeOutcome.TIMED_OUT] == 0
    finally:
        await graph.close()


async def test_a_missing_write_permission_is_one_line_naming_it(sim: RunningSimulator) -> None:
    sim.set_tokens({"reader": TokenGrant(permissions=("Directory.Read.All",))})
    graph = graph_for(sim, "reader")
    try:
        probe = CanaryProbe(tenant="sim", settings=settings_for(sim), graph=graph, clock=sim.clock)
        done = await probe.round()
        assert done.outcome is ProbeOutcome.FAILED
        error = probe.status.last_error or ""
        assert "User.ReadWrite.All" in error
        assert "\n" not in error
        assert probe.status.rounds_started == 0
    finally:
        await graph.close()


def test_the_canary_rule_must_select_on_the_flip() -> None:
    settings = ProbeSettings(
        ObjectType.USER, "u", "extensionAttribute15", "canary-in", "canary-out", "g"
    )
    assert canary_rule_problem(CANARY_RULE, settings) is None
    assert "does not read user.extensionAttribute15" in (
        canary_rule_problem('user.department -eq "canary-in"', settings) or ""
    )
    assert "does not select" in (
        canary_rule_problem('user.extensionAttribute15 -eq "other"', settings) or ""
    )
    assert "also selects" in (
        canary_rule_problem('user.extensionAttribute15 -startsWith "canary"', settings) or ""
    )
    assert "selects device objects" in (
        canary_rule_problem('device.extensionAttribute15 -eq "canary-in"', settings) or ""
    )
    assert "no dynamic membership rule" in (canary_rule_problem(None, settings) or "")


async def test_the_exporter_runs_the_probe_exports_it_and_readiness_shows_it(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    settings = settings_for(sim)
    path = write_config(tmp_path / "config.yml", sim.base_url, polling={"audit_interval": "1m"})
    add_probe(
        path,
        {
            "object_id": settings.object_id,
            "property": settings.property,
            "match_value": settings.match_value,
            "group_id": settings.group_id,
            "check_interval": "1m",
            "evidence_rounds": 2,
        },
    )
    service = Exporter(load_config(path))
    await service.start()
    try:
        (runner,) = service.runners
        await wait_until(lambda: runner.probe is not None, within=30, what="the probe")
        probe = runner.probe
        assert probe is not None
        clock = runner.clock
        assert isinstance(clock, FollowingClock)
        while sum(1 for r in probe.status.rounds if not r.in_flight) < 2:
            await wait_until(
                lambda: probe.wake_at is not None and probe.wake_at > clock.now(),
                within=30,
                what="the probe waiting for the clock",
            )
            await sim.advance(CHECK)
            clock.update(sim.clock.now(), 0)
        rounds = [r for r in probe.status.rounds if not r.in_flight]
        assert_within_one_check(sim, rounds)
        runner.assessor.request()
        await wait_until(
            lambda: not runner.assessor.pending, within=30, what="an assessment with the probe"
        )
        await runner.refresh_snapshot()
        async with running(service.app(), "127.0.0.1:0") as where, httpx.AsyncClient() as http:
            metrics = (await http.get(f"{where.url}metrics")).text
            body = (await http.get(f"{where.url}api/v1/readiness")).json()
        assert 'entra_dynamic_probe_latency_seconds_count{tenant="sim"} 2.0' in metrics
        assert 'entra_dynamic_probe_rounds_started_total{tenant="sim"} 2.0' in metrics
        assert 'entra_dynamic_probe_rounds_total{outcome="detected",tenant="sim"} 2.0' in metrics
        assert 'entra_dynamic_probe_rounds_total{outcome="timed_out",tenant="sim"} 0.0' in metrics
        assert "entra_dynamic_probe_last_success_timestamp_seconds" in metrics
        assessment = body["tenants"][0]["assessment"]
        assert assessment["probe"]["keeping_up"] is True
        assert assessment["probe"]["latest_latency_seconds"] == rounds[-1].latency
        keeping_up = next(
            c
            for c in assessment["readiness"]["conditions"]
            if c["reason"] == "processing_keeping_up"
        )
        assert keeping_up["status"] == "met"
        assert (
            'entra_dynamic_graph_requests_total{code="204",endpoint="user_update",tenant="sim"} 2.0'
            in metrics
        )
    finally:
        await service.stop()

    # A restart continues the streak: the rounds are in the store.
    again = Exporter(load_config(path))
    await again.start()
    try:
        (runner,) = again.runners
        await wait_until(lambda: runner.probe is not None, within=30, what="the probe")
        assert runner.probe is not None
        assert [r.number for r in runner.probe.status.rounds][:2] == [1, 2]
        assert runner.probe.status.rounds[:2] == tuple(rounds)
        assert runner.probe.status.evidence(sim.clock.now()).consecutive_normal >= 2
    finally:
        await again.stop()


async def test_config_check_verifies_the_canary_rule_with_the_evaluator(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    settings = settings_for(sim)

    async def check(match_value: str) -> Result:
        path = add_probe(
            write_config(tmp_path / f"{match_value}.yml", sim.base_url),
            {
                "object_id": settings.object_id,
                "property": settings.property,
                "match_value": match_value,
                "group_id": settings.group_id,
            },
        )
        return await asyncio.to_thread(
            CliRunner().invoke, cli, ["config", "check", str(path)], catch_exceptions=False
        )

    good = await check("canary-in")
    assert good.exit_code == 0, good.output
    bad = await check("canary-typo")
    assert bad.exit_code == 1
    (line,) = bad.output.strip().splitlines()
    assert "tenants.sim.probe: group 'Canary'" in line
    assert "does not select user.extensionAttribute15 = 'canary-typo'" in line


def test_a_bad_probe_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    path = add_probe(
        write_config(tmp_path / "config.yml", "http://127.0.0.1:9"),
        {
            "object_id": "not-a-guid",
            "property": "extensionAttribute15",
            "match_value": "canary-in",
            "group_id": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        },
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert "probe.object_id" in problem
    assert "GUID" in problem


async def test_an_ingested_audit_change_gives_the_exact_time(sim: RunningSimulator) -> None:
    """When the audit log already holds the canary group's change, its activity time is the
    measurement (exact), not the membership read's check time."""
    group = sim.tenant.find(CANARY_GROUP)

    async def logged_since(since: float) -> float | None:
        changes = [
            c["time"] for c in membership_trace(sim.tenant, CANARY_GROUP) if c["time"] >= since
        ]
        return changes[-1] if changes else None

    graph = graph_for(sim)
    try:
        probe = CanaryProbe(
            tenant="sim",
            settings=settings_for(sim),
            graph=graph,
            clock=sim.clock,
            audit_change_since=logged_since,
        )
        await run_rounds(sim, probe, 2)
        trace = membership_trace(sim.tenant, group.id)
        rounds = [r for r in probe.status.rounds if not r.in_flight]
        assert [r.latency for r in rounds] == pytest.approx(
            [c["latency"] for c in trace[:2]], abs=1e-3
        )
    finally:
        await graph.close()


async def test_a_device_canary_is_patched_and_read_as_a_device(sim: RunningSimulator) -> None:
    """Device.ReadWrite.All's side: PATCH /devices/{id} (extensionAttributes), checkMemberGroups
    on the device."""
    sim.tenant.trace_membership(sim.tenant.find("Canary devices"))
    settings = replace(
        settings_for(sim),
        object_type=ObjectType.DEVICE,
        object_id=sim.tenant.directory.devices.ids[3],
        group_id=sim.tenant.find("Canary devices").id,
    )
    graph = graph_for(sim)
    try:
        probe = CanaryProbe(tenant="sim", settings=settings, graph=graph, clock=sim.clock)
        await run_rounds(sim, probe, 2)
        rounds = [r for r in probe.status.rounds if not r.in_flight]
        assert [r.outcome for r in rounds] == [ProbeOutcome.DETECTED] * 2
        trace = membership_trace(sim.tenant, "Canary devices")
        assert [(c["member"], c["add"]) for c in trace] == [
            (settings.object_id, True),
            (settings.object_id, False),
        ]
        assert graph.requests[("device_update", "204")] == 2
    finally:
        await graph.close()


async def test_a_restarted_probe_watches_the_flip_it_left_in_flight(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """Stopped between its flip and the change, the probe must not flip again when it starts
    (that would time the wrong change, or undo the first): it watches the round it left, and its
    latency is still the truth's within one check interval."""
    store = Store(tmp_path / "state.sqlite3")
    await store.open()
    graph = graph_for(sim)
    settings = settings_for(sim)
    canary = canary_key(settings.group_id, settings.object_id, settings.property)

    async def keep(done: ProbeRound) -> None:
        await store.call(store.keep_probe_round, "sim", canary, done, KEPT_ROUNDS)

    try:
        first = CanaryProbe(
            tenant="sim", settings=settings, graph=graph, clock=sim.clock, keep=keep
        )
        task = asyncio.create_task(first.run())
        await wait_until(lambda: first.status.rounds_started == 1, within=10, what="a flip")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (left,) = await store.call(store.probe_rounds, "sim", canary)
        assert left.in_flight
        flips = graph.requests["user_update", "204"]

        kept = await store.call(store.probe_rounds, "sim", canary)
        second = CanaryProbe(
            tenant="sim", settings=settings, graph=graph, clock=sim.clock, kept=kept, keep=keep
        )
        await run_rounds(sim, second, 2)
        rounds = [r for r in second.status.rounds if not r.in_flight]
        assert [(r.number, r.entering) for r in rounds] == [(1, True), (2, False)]
        assert rounds[0].started_at == left.started_at
        assert_within_one_check(sim, rounds)
        # One flip for round 2 only, and maybe round 3's, started as round 2 ended.
        assert graph.requests["user_update", "204"] - flips in (1, 2)
        stored = await store.call(store.probe_rounds, "sim", canary)
        assert stored[:2] == rounds
        assert await store.call(store.probe_rounds, "sim", "another/canary/key") == []
    finally:
        await graph.close()
        await store.close()


async def test_the_store_keeps_the_last_rounds_of_each_canary(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    await store.open()
    try:
        for number in range(1, 11):
            done = ProbeRound(number, number * 900.0, number % 2 == 1, ProbeOutcome.DETECTED)
            await store.call(store.keep_probe_round, "sim", "g/o/p", done, 4)
        await store.call(store.keep_probe_round, "sim", "g/o/other", ProbeRound(1, 0.0, True), 4)
        kept = await store.call(store.probe_rounds, "sim", "g/o/p")
        assert [r.number for r in kept] == [7, 8, 9, 10]
        assert kept[-1] == ProbeRound(10, 9000.0, False, ProbeOutcome.DETECTED)
        (other,) = await store.call(store.probe_rounds, "sim", "g/o/other")
        assert other.in_flight
    finally:
        await store.close()
