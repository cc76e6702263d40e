"""Operations: PATCH throughput of pause and resume against the simulator.

Pauses every dynamic group of a simulated tenant through the real Graph client (intent and
outcome committed to the SQLite ledger around every PATCH), then resumes them all in one
forced run, and reports objects per second, one at a time and several in parallel; then the
same with Graph answering bursts of 429 (Retry-After honoured) on every path. The simulator
does not rate-limit group writes by itself; the 429 bursts stand in for Graph's throttling of
directory writes. There is no target: the figures size a recovery (how long pausing or resuming
a tenant takes).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Figure, Section
from exporter.config.loading import load_config
from exporter.graph.retry import RetryPolicy
from exporter.ops.pause import PauseRequest, pause
from exporter.ops.planning import ResumeRequest
from exporter.ops.report import Result
from exporter.ops.resume import resume
from exporter.ops.runs import RunOptions
from exporter.ops.session import choose_tenant, open_session
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.exporter_config import simulated_tenant_config, write_config_file
from exporter.simulator.faults import FaultKind, FaultScope, FaultSettings


def write_config(directory: Path, sim: RunningSimulator) -> Path:
    return write_config_file(
        directory / "config.yaml",
        simulated_tenant_config(
            sim.base_url,
            directory / "state.sqlite3",
            token="bench",
            tenant="bench",
            resume={"batch_size": 1000, "batch_interval": "0s"},
        ),
    )


@dataclass(frozen=True, slots=True)
class OpsSize:
    groups: int
    parallel: tuple[int, ...]
    throttle_rate: float
    """Share of requests answered by a burst of three 429s, in the throttled pass."""
    throttled_parallel: int
    """The throttled pass runs at this parallelism only: one at a time, each burst stalls the
    whole run for its Retry-After (2,000 objects take ~6 minutes), which sizes nothing new."""


FULL = OpsSize(2_000, (1, 8), 0.05, 8)
SMOKE = OpsSize(40, (4,), 0.05, 4)


@dataclass(frozen=True, slots=True)
class Throughput:
    """One pause-everything and resume-everything pass."""

    paused: int
    pause_seconds: float
    pause_failed: int
    resumed: int
    resume_seconds: float
    throttled: int
    """429s the simulator answered (all retried)."""


async def run(size: OpsSize, runs: int) -> Section:
    section = Section(
        "ops",
        "Operations: pause and resume throughput",
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    )
    passes = [(0.0, parallel) for parallel in size.parallel]
    passes.append((size.throttle_rate, size.throttled_parallel))
    for rate, parallel in passes:
        paused, resumed = Figure("objects/s"), Figure("objects/s")
        failed = throttled = 0
        for _ in range(runs):
            one = await _pass(size.groups, parallel, rate)
            paused.add(one.paused / one.pause_seconds)
            resumed.add(one.resumed / one.resume_seconds)
            failed += one.pause_failed
            throttled += one.throttled
        where = f"{size.groups:,} groups, {parallel} in parallel" + (
            f", {rate:.0%} of requests answered 3x429 ({throttled:,} 429s in all)" if rate else ""
        )
        section.row(f"pause, {where}", paused)
        section.row(f"resume (forced, one batch), {where}", resumed)
        if failed:
            section.notes.append(f"{where}: {failed} pause(s) failed")
    return section


async def _pass(groups: int, parallel: int, throttle_rate: float) -> Throughput:
    overrides = {
        "tenant": {
            "users": 2000,
            "devices": 200,
            "dynamic_groups": groups,
            "administrative_units": 5,
            "critical_groups": 0,
            "paused_groups": 0,
        }
    }
    async with running_simulator(
        "storm",
        overrides=overrides,
        speed=0,
        throttle=False,
        operator_actions=False,
        history_days=0,
    ) as sim:
        if throttle_rate:
            sim.set_faults(
                FaultSettings(
                    scope=FaultScope.ALL,
                    throttle_burst_rate=throttle_rate,
                    throttle_burst_length=3,
                    throttle_retry_after_seconds=0.5,
                )
            )
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(write_config(Path(tmp), sim))
            tenant = choose_tenant(config, None)
            options = RunOptions(apply=True, parallel=parallel)
            async with open_session(
                config,
                tenant,
                operator="bench",
                readiness=None,
                lock=True,
                retry=RetryPolicy(attempts=6, initial_delay=0.05, max_delay=1.0),
            ) as session:
                started = time.perf_counter()
                report = await pause(session, PauseRequest(all=True, reason="bench"), options)
                paused_s = time.perf_counter() - started
                changed = report.counts()[Result.CHANGED]
                failed = report.counts()[Result.FAILED]
                started = time.perf_counter()
                back = await resume(
                    session,
                    ResumeRequest(non_critical=True, all_batches=True, force=True, reason="bench"),
                    options,
                )
                resumed_s = time.perf_counter() - started
        return Throughput(
            paused=changed,
            pause_seconds=paused_s,
            pause_failed=failed,
            resumed=back.counts()[Result.CHANGED],
            resume_seconds=resumed_s,
            throttled=sim.tenant.faults.injected[FaultKind.THROTTLE],
        )
