"""The canary probe drill (#20): a storm, a pause, and when resuming is judged safe, with the
probe's measured evidence against Microsoft's fixed wait.

The simulator (in process, its clock driven step by step) runs the storm scenario on a small
tenant with a canary user and a canary group (`user.extensionAttribute15 -eq "canary-in"`); the
real `Exporter` follows it, with a canary probe (a round every 15 minutes, checked every minute)
and the default thresholds. A bulk push changes 80 % of the users over an hour from +10 min;
at `PAUSE_AT` the drill runs `pause --all` (the ops command: the canary group stays On). Every
step of `STEP` simulated seconds it records the probe's rounds against the simulator's truth
(`truth.membership_trace`), when the simulator's queue really drained, and the exporter's
readiness. Figures: the probe's latency before, at the peak of, and after the storm; its worst
error against the truth; the drain after the pause; and how long after the pause readiness said
`ready` (with the evidence rule), against the 24 hours the minimum pause alone would take.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import exporter.clock
from bench.common import Section
from exporter.clock import FollowingClock
from exporter.config.models import Config
from exporter.domain.probe import ProbeOutcome, ProbeRound
from exporter.domain.readiness import ReadinessState
from exporter.ops.pause import PauseRequest, pause
from exporter.ops.runs import RunOptions
from exporter.ops.session import open_session
from exporter.runtime.service import Exporter
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.exporter_config import simulated_tenant_config
from exporter.simulator.truth import membership_trace
from tests.support.waiting import wait_until

HOUR = 3600.0
CANARY_GROUP = "Canary"
START = 1_796_418_000.0  # 2026-12-04T21:00:00Z, the signals e2e test's start
PUSH_AT = 600.0
PAUSE_AT = 2 * HOUR
STEP = 60.0
"""The probe's check interval: the drill moves the clock one check at a time."""
POLL = 300.0
DRAINED_LAG = 180.0


@dataclass(frozen=True, slots=True)
class DrillSize:
    users: int
    groups: int
    evaluations_per_hour: float
    history_days: float
    until: float
    """Simulated seconds after the start at which the drill gives up waiting for `ready`."""


FULL = DrillSize(2500, 80, 3000.0, 1.0, PAUSE_AT + 26 * HOUR)
SMOKE = DrillSize(300, 10, 3000.0, 0.1, PAUSE_AT + HOUR)


def scenario_overrides(size: DrillSize) -> dict[str, Any]:
    return {
        "tenant": {
            "users": size.users,
            "devices": size.users // 6,
            "dynamic_groups": size.groups,
            "administrative_units": 2,
            "groups": [{"name": CANARY_GROUP, "rule": 'user.extensionAttribute15 -eq "canary-in"'}],
        },
        "processing": {"evaluations_per_hour": size.evaluations_per_hour},
        "history": {"days": size.history_days},
        "operator_actions": False,
        "timeline": [
            {
                "at": f"{PUSH_AT:g}s",
                "action": "bulk_update",
                "object_type": "user",
                "fraction": 0.8,
                "set": {"extensionAttribute3": "wave-5"},
                "over": "1h",
            }
        ],
    }


@dataclass
class DrillResult:
    rounds: list[ProbeRound] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    """Measured minus true latency, per detected round."""
    drained_at: float | None = None
    evidence_at: float | None = None
    """When readiness first saw the probe's evidence (processing keeping up) after the pause."""
    ready_at: float | None = None
    minimum_pause_threshold: float | None = None
    wall_seconds: float = 0.0


def config_for(sim: RunningSimulator, directory: Path) -> Config:
    canary_user = sim.tenant.directory.users.ids[11]
    document = simulated_tenant_config(
        sim.graph_url.removesuffix("/v1.0"),
        directory / "state.sqlite3",
        token="drill",
        polling={
            "audit_interval": f"{POLL:g}s",
            "groups_interval": f"{POLL:g}s",
            "critical_status_interval": f"{POLL:g}s",
            "backfill_days": 1,
            "audit_requests_per_10s": 1000,
        },
    )
    document["tenants"][0]["probe"] = {
        "object_id": canary_user,
        "property": "extensionAttribute15",
        "match_value": "canary-in",
        "group_id": sim.tenant.find(CANARY_GROUP).id,
        "check_interval": "1m",
    }
    return Config.model_validate(document)


async def drill(size: DrillSize, directory: Path) -> DrillResult:
    result = DrillResult()
    started = time.perf_counter()
    saved = exporter.clock.CLOCK_SYNC_INTERVAL
    exporter.clock.CLOCK_SYNC_INTERVAL = 0.02
    try:
        async with running_simulator(
            "storm",
            overrides=scenario_overrides(size),
            speed=0,
            throttle=False,
            start=START,
        ) as sim:
            sim.tenant.trace_membership(sim.tenant.find(CANARY_GROUP))
            config = config_for(sim, directory)
            service = Exporter(config)
            await service.start()
            try:
                await _drive(sim, service, config, size, result)
            finally:
                await service.stop()
    finally:
        exporter.clock.CLOCK_SYNC_INTERVAL = saved
    result.wall_seconds = time.perf_counter() - started
    return result


async def _drive(
    sim: RunningSimulator, service: Exporter, config: Config, size: DrillSize, result: DrillResult
) -> None:
    (runner,) = service.runners
    await wait_until(
        lambda: runner.audit is not None and runner.audit.caught_up and runner.probe is not None,
        within=300,
        what="the exporter's backfill",
    )
    probe = runner.probe
    assert probe is not None
    clock = runner.clock
    assert isinstance(clock, FollowingClock)
    paused = False
    offset = 0.0
    while offset < size.until:
        offset += STEP
        await sim.advance(START + offset - sim.clock.now())
        now = sim.clock.now()
        clock.update(now, 0)

        # The probe waits for its next check (its measurements are what the drill times), and
        # no collector has fallen behind. The pollers are not waited for step by step: a poll
        # that ends after the clock moved on starts its interval from then, so their schedule
        # drifts by up to a step, far inside the freshness bounds readiness applies.
        def settled(now: float = now) -> bool:
            return (
                all(
                    s.last_success is not None and now < s.last_success + 2 * POLL
                    for s in runner.statuses.values()
                )
                and probe.wake_at is not None
                and probe.wake_at > now
            )

        try:
            await wait_until(
                settled, within=120, what=f"the exporter at +{offset / HOUR:.2f} h", interval=0.01
            )
        except AssertionError as exc:
            state = {
                s.name: (None if s.last_success is None else s.last_success - now, s.last_error)
                for s in runner.statuses.values()
            }
            wake = None if probe.wake_at is None else probe.wake_at - now
            raise AssertionError(f"{exc}: collectors {state}, probe wakes in {wake}") from None
        if not paused and offset >= PAUSE_AT:
            paused = True
            tenant = config.tenants[0]
            async with open_session(
                config, tenant, operator="drill", readiness=None, lock=True
            ) as session:
                await pause(
                    session,
                    PauseRequest(all=True, reason="storm drill"),
                    RunOptions(apply=True, parallel=8),
                )
        if paused and result.drained_at is None:
            backlog = sim.tenant.queue.backlog(round(now * 1_000_000))
            # Drained: the oldest change waiting is no older than a healthy pickup (0.5-1.5 min).
            if float(backlog["lag_seconds"] or 0.0) <= DRAINED_LAG:
                result.drained_at = now
        if offset % POLL:
            continue
        runner.assessor.request()
        await wait_until(lambda: not runner.assessor.pending, within=60, what="an assessment")
        latest = runner.assessor.latest
        if (
            paused
            and result.evidence_at is None
            and latest is not None
            and latest.probe is not None
            and latest.probe.keeping_up
        ):
            result.evidence_at = now
        if paused and latest is not None and latest.readiness.state is ReadinessState.READY:
            result.ready_at = now
            minimum = next(
                c for c in latest.readiness.conditions if c.condition.value == "minimum_pause"
            )
            result.minimum_pause_threshold = minimum.threshold
            break
    result.rounds = list(probe.status.rounds)
    trace = membership_trace(sim.tenant, CANARY_GROUP)
    for r in result.rounds:
        if r.outcome is not ProbeOutcome.DETECTED or r.latency is None:
            continue
        change = next(
            (c for c in trace if c["trigger"] >= r.started_at and c["add"] == r.entering), None
        )
        if change is not None:
            result.errors.append(r.latency - change["latency"])


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "not reached"
    return f"{seconds / 60:.0f} min" if seconds < 2 * HOUR else f"{seconds / HOUR:.1f} h"


async def run(size: DrillSize, workdir: Path) -> Section:
    directory = workdir / "probe_drill"
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (directory / "state.sqlite3").unlink()
    result = await drill(size, directory)
    pause_at = START + PAUSE_AT
    detected = [r for r in result.rounds if r.outcome is ProbeOutcome.DETECTED and r.latency]
    before = [r.latency or 0.0 for r in detected if r.started_at < START + PUSH_AT]
    during = [r.latency or 0.0 for r in detected if START + PUSH_AT <= r.started_at < pause_at]
    after = [r.latency or 0.0 for r in detected if r.started_at >= pause_at]
    section = Section(
        "probe_drill",
        "Canary probe drill: measured delay, and when resuming is judged safe",
        __doc__ or "",
    )
    section.row("probe latency before the storm (median)", _minutes(_median(before)))
    section.row("probe latency at the storm's peak", _minutes(max(during, default=None)))
    section.row(
        "probe latency after the pause (last round)", _minutes(after[-1] if after else None)
    )
    section.row(
        "worst error of a measurement against the simulator's truth",
        f"{max((abs(e) for e in result.errors), default=0.0):.0f} s over "
        f"{len(result.errors)} round(s) (check interval 60 s)",
    )
    section.row(
        "queue drained after the pause (simulator truth)",
        _minutes(None if result.drained_at is None else result.drained_at - pause_at),
    )
    section.row(
        "evidence after the pause (3 rounds in a row within 1 h)",
        _minutes(None if result.evidence_at is None else result.evidence_at - pause_at),
    )
    section.row(
        "ready after the pause, with the probe's evidence",
        _minutes(None if result.ready_at is None else result.ready_at - pause_at),
    )
    section.row(
        "minimum pause applied when ready (24 h without evidence)",
        _minutes(result.minimum_pause_threshold),
    )
    section.notes.append(
        f"{len(result.rounds)} probe rounds, {len(detected)} detected; "
        f"{result.wall_seconds:.0f} s of real time"
    )
    return section


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


__all__ = ["FULL", "SMOKE", "DrillSize", "run"]
