"""PATCH throughput of the pause/resume operations against the simulator:
`python bench/ops.py [--groups N] [--parallel 1,4,8] [--throttle-rate 0.05]`.

Pauses every dynamic group of a simulated tenant through the real Graph client (intent and
outcome committed to the SQLite ledger around every PATCH), then resumes them all in one
forced run, and reports objects per second; then the same with Graph answering bursts of 429
(Retry-After honoured) on every path. The simulator does not rate-limit group writes by
itself; the 429 bursts stand in for Graph's throttling of directory writes.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from exporter.config import load_config
from exporter.graph.retry import RetryPolicy
from exporter.ops.operations import PauseRequest, ResumeRequest, RunOptions, pause, resume
from exporter.ops.report import Result
from exporter.ops.session import choose_tenant, open_session
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.faults import FaultKind, FaultScope, FaultSettings


def write_config(directory: Path, sim: RunningSimulator) -> Path:
    path = directory / "config.yaml"
    document = {
        "tenants": [
            {
                "name": "bench",
                "graph_base_url": sim.base_url,
                "clock": "simulator",
                "auth": {"method": "static_token", "token": "bench"},
            }
        ],
        "store": {"path": str(directory / "state.sqlite3")},
        "resume": {"batch_size": 1000, "batch_interval": "0s"},
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Throughput:
    """One pause-everything and resume-everything pass."""

    groups: int
    parallel: int
    throttle_rate: float
    paused: int
    pause_seconds: float
    pause_failed: int
    resumed: int
    resume_seconds: float
    throttled: int
    """429s the simulator answered (all retried)."""

    def text(self) -> str:
        return (
            f"objects {self.paused:>6}  parallel {self.parallel:>2}  "
            f"429 burst rate {self.throttle_rate:<4}  "
            f"pause {self.paused / self.pause_seconds:7.0f}/s ({self.pause_seconds:5.1f} s, "
            f"{self.pause_failed} failed)  "
            f"resume {self.resumed / self.resume_seconds:7.0f}/s ({self.resume_seconds:5.1f} s)  "
            f"429s answered {self.throttled}"
        )


async def run(groups: int, parallel: int, throttle_rate: float) -> Throughput:
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
            groups=groups,
            parallel=parallel,
            throttle_rate=throttle_rate,
            paused=changed,
            pause_seconds=paused_s,
            pause_failed=failed,
            resumed=back.counts()[Result.CHANGED],
            resume_seconds=resumed_s,
            throttled=sim.tenant.faults.injected[FaultKind.THROTTLE],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--parallel", default="1,4,8")
    parser.add_argument("--throttle-rate", type=float, default=0.05)
    args = parser.parse_args()
    for rate in (0.0, args.throttle_rate):
        for parallel in (int(p) for p in args.parallel.split(",")):
            print(asyncio.run(run(args.groups, parallel, rate)).text(), flush=True)


if __name__ == "__main__":
    main()
