"""The simulator as an aiohttp app, and the in-process API tests and the demo use:

async with running_simulator("storm", seed=7, speed=0, throttle=False) as sim:
    sim.base_url        # http://127.0.0.1:PORT (Graph is under /v1.0 and /beta)
    sim.clock           # the tenant's VirtualClock
    sim.tenant          # SimulatedTenant: directory, queue, logs, ground truth
    await sim.advance(3600)   # move the clock and run the tenant up to it
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from exporter.clock import VirtualClock
from exporter.logs import get_logger
from exporter.simulator.access import AuthSettings, TokenGrant
from exporter.simulator.control_api import control_routes
from exporter.simulator.faults import FaultSettings
from exporter.simulator.graph_api import STATE, SimulatorState, graph_middleware, graph_routes
from exporter.simulator.scenarios import Scenario, ScenarioError, load_scenario, parse_scenario
from exporter.simulator.tenant import SimulatedTenant
from exporter.simulator.throttle import SlidingWindowLimiter, ThrottleSettings

log = get_logger(__name__)

ENGINE_TICK_SECONDS = 0.05
ENGINE_SLICE_STEPS = 5000


def merge_settings(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into `base` (dicts merge, anything else replaces)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_scenario(
    scenario: str | Path | Scenario | Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> Scenario:
    """A bundled name, a YAML path, a Scenario, or a mapping in the YAML format; then
    `overrides` deep-merged on top (`{"tenant": {"users": 300}}`)."""
    if isinstance(scenario, Scenario):
        resolved = scenario
    elif isinstance(scenario, Mapping):
        resolved = parse_scenario(dict(scenario), "scenario mapping")
    else:
        resolved = load_scenario(scenario)
    if overrides:
        raw = merge_settings(resolved.model_dump(mode="json", exclude_none=True), overrides)
        resolved = parse_scenario(raw, f"scenario {resolved.name!r} with overrides")
    return resolved


def build_app(state: SimulatorState) -> web.Application:
    app = web.Application(middlewares=[graph_middleware], client_max_size=4 * 1024 * 1024)
    app[STATE] = state
    app.add_routes(control_routes())
    app.add_routes(graph_routes())

    async def run_engine(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_engine_loop(state.tenant))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(run_engine)
    return app


async def _engine_loop(tenant: SimulatedTenant) -> None:
    """Keep the tenant up with its clock, in slices so requests are served meanwhile."""
    while True:
        caught_up = tenant.advance_to(tenant.clock.now(), max_steps=ENGINE_SLICE_STEPS)
        await asyncio.sleep(ENGINE_TICK_SECONDS if caught_up else 0)


@dataclass(eq=False)
class RunningSimulator:
    state: SimulatorState
    host: str
    port: int

    @property
    def tenant(self) -> SimulatedTenant:
        return self.state.tenant

    @property
    def clock(self) -> VirtualClock:
        return self.state.tenant.clock

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def graph_url(self) -> str:
        """What to give the SDK: `request_adapter.base_url` (no trailing slash)."""
        return f"{self.base_url}/v1.0"

    async def advance(self, seconds: float) -> None:
        """Move the clock forward and bring the tenant up to it (synchronously)."""
        self.clock.advance(seconds)
        self.tenant.catch_up()

    def set_faults(self, settings: FaultSettings) -> None:
        self.tenant.faults.configure(settings)

    def set_tokens(self, tokens: Mapping[str, TokenGrant] | None) -> None:
        self.state.auth = AuthSettings(tokens=None if tokens is None else dict(tokens))


@asynccontextmanager
async def running_simulator(
    scenario: str | Path | Scenario | Mapping[str, Any] = "steady",
    *,
    overrides: Mapping[str, Any] | None = None,
    seed: int | None = None,
    start: float | None = None,
    speed: float | None = None,
    throttle: bool | ThrottleSettings = True,
    faults: FaultSettings | None = None,
    operator_actions: bool | None = None,
    history_days: float | None = None,
    tokens: Mapping[str, TokenGrant] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    history_cache_mib: float = 0.0,
) -> AsyncIterator[RunningSimulator]:
    """Build the tenant, serve it on host:port (0: an ephemeral port), stop on exit.

    `history_cache_mib`: keep up to this much rendered history in memory, so that pages read
    again are served as fast as live ones (benchmarks; 0: render every page on demand)."""
    resolved = resolve_scenario(scenario, overrides)
    tenant = SimulatedTenant(
        resolved,
        seed=seed,
        start=start,
        speed=speed,
        operator_actions=operator_actions,
        faults=faults,
        history_days=history_days,
    )
    if tenant.history is not None and history_cache_mib > 0:
        tenant.history.configure_cache(round(history_cache_mib * 1024 * 1024))
    throttle_settings = (
        throttle if isinstance(throttle, ThrottleSettings) else ThrottleSettings(enabled=throttle)
    )
    state = SimulatorState(
        tenant=tenant,
        limiter=SlidingWindowLimiter(throttle_settings),
        auth=AuthSettings(tokens=None if tokens is None else dict(tokens)),
    )
    async with serving(build_app(state), host, port) as bound_port:
        yield RunningSimulator(state, host, bound_port)


@asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve `app` on host:port (0: an ephemeral port) until the block ends; yields the port
    it is bound to."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=False)
    await site.start()
    server = site._server
    assert server is not None
    assert hasattr(server, "sockets")
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        await runner.cleanup()


def load_tokens(path: Path) -> dict[str, TokenGrant]:
    """A YAML mapping token -> {permissions: [...], app_display_name: ...}."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read the token file: {exc}") from None
    try:
        return AuthSettings.model_validate({"tokens": raw}).tokens or {}
    except ValueError as exc:
        raise ScenarioError(f"{path}: {str(exc).splitlines()[0]}") from None
