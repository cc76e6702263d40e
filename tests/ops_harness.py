"""Running the pause/resume commands in process against the simulator, and reading the
simulated tenant's ground truth about what they did."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.config.loading import load_config
from exporter.domain.assessment import TenantAssessment
from exporter.domain.events import ProcessingState, Series
from exporter.graph.retry import RetryPolicy
from exporter.http.app import Readiness, create_app, running
from exporter.http.readiness_api import AssessmentView, readiness_routes
from exporter.ops.gate import ExporterReadiness, ReadinessSource
from exporter.ops.report import Report
from exporter.ops.runs import RunOptions
from exporter.ops.session import OpsSession, choose_tenant, open_session
from exporter.readiness.client import ReadinessClient
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.exporter_config import simulated_tenant_config, write_config_file
from exporter.simulator.model import Container
from exporter.simulator.truth import audit_counts
from tests.support.processes import start_cli as support_start_cli

TOKEN = "ops-test-token"
SMALL_STORM: dict[str, Any] = {
    "tenant": {
        "users": 600,
        "devices": 100,
        "dynamic_groups": 40,
        "administrative_units": 3,
        "static_groups": 3,
        "critical_groups": 3,
        "paused_groups": 2,
    }
}


@asynccontextmanager
async def small_storm(history_days: int = 0) -> AsyncIterator[RunningSimulator]:
    """The ops tests' tenant: the storm scenario, small, on a clock that moves only when told,
    without throttling and without the scenario's own operator (the tests are the operator)."""
    async with running_simulator(
        "storm",
        overrides=SMALL_STORM,
        speed=0,
        throttle=False,
        operator_actions=False,
        history_days=history_days,
    ) as running:
        yield running


FAST_RETRY = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.05)


def write_ops_config(
    directory: Path,
    sim: RunningSimulator,
    *,
    critical: list[str] | None = None,
    resume: Mapping[str, Any] | None = None,
    polling: Mapping[str, Any] | None = None,
    token: str = TOKEN,
    web_listen: str = "127.0.0.1:0",
) -> Path:
    document = simulated_tenant_config(
        sim.base_url,
        directory / "state.sqlite3",
        token=token,
        critical_groups=critical
        if critical is not None
        else [c.id for c in sim.tenant.critical_groups()],
        listen_address=web_listen,
        polling={
            "retry_attempts": 4,
            "retry_initial_delay": "0.01s",
            "retry_max_delay": "0.05s",
            **(polling or {}),
        },
    )
    if resume is not None:
        document["resume"] = dict(resume)
    return write_config_file(directory / "config.yaml", document)


async def run_op(
    config_path: Path,
    act: Callable[[OpsSession, RunOptions], Awaitable[Report]],
    *,
    apply: bool = True,
    readiness: ReadinessSource | None = None,
    parallel: int = 4,
    operator: str = "tester",
    options: Mapping[str, Any] | None = None,
) -> Report:
    config = load_config(config_path)
    tenant = choose_tenant(config, None)
    async with open_session(
        config, tenant, operator=operator, readiness=readiness, lock=apply, retry=FAST_RETRY
    ) as session:
        return await act(session, RunOptions(apply=apply, parallel=parallel, **(options or {})))


def dynamic(sim: RunningSimulator) -> list[Container]:
    return [c for c in sim.tenant.directory.containers if c.dynamic]


def states(sim: RunningSimulator) -> dict[str, ProcessingState]:
    return {c.id: c.state for c in dynamic(sim)}


def toggles(sim: RunningSimulator, since: float) -> Counter[str]:
    """Processing-state changes per object written to the audit log since `since`: each is one
    PATCH that changed something (a PATCH that changes nothing writes no event)."""
    counts = audit_counts(sim.tenant, since=since, by=["group"])
    result: Counter[str] = Counter()
    for object_id, entry in counts["groups"].items():
        n = entry["series"].get(Series.PROCESSING_STATE_CHANGE.value, 0)
        if n:
            result[object_id] = n
    return result


class ScriptedReadiness:
    """What the exporter's snapshot offers to `/api/v1/readiness`: one assessment per request,
    following a script (the last one repeats). Served by the real route and web layer."""

    def __init__(self, tenant: str, script: Sequence[TenantAssessment | None]) -> None:
        self.tenant = tenant
        self.script = list(script)
        self.requests = 0

    def __call__(self) -> list[AssessmentView]:
        assessment = self.script[min(self.requests, len(self.script) - 1)]
        self.requests += 1
        now = assessment.evaluated_at + 30.0 if assessment is not None else 0.0
        return [AssessmentView(self.tenant, assessment, now, 900.0, "first polls under way")]


@asynccontextmanager
async def readiness_server(source: ScriptedReadiness) -> AsyncIterator[str]:
    app = create_app(
        registry=CollectorRegistry(),
        readiness=lambda: Readiness.of({}),
        extra_routes=readiness_routes(source),
    )
    async with running(app, "127.0.0.1:0") as where:
        yield where.url


def exporter_readiness(url: str) -> ExporterReadiness:
    return ExporterReadiness(ReadinessClient(url, timeout=5.0))


async def start_cli(*args: str, **streams: Any) -> asyncio.subprocess.Process:
    """`entra-dg-exporter ARGS` as an operator named "oncall" would run it on a wide terminal."""
    return await support_start_cli(
        *args, env={"ENTRA_DG_OPERATOR": "oncall", "COLUMNS": "160"}, **streams
    )


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await start_cli(*args)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
