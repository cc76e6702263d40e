"""Many simulated tenants in one process, as one app registration sees Graph:

    async with running_fleet({"t01": ("steady", {...}), "t02": "storm"}, speed=60) as fleet:
        fleet.graph_base_url("t01")   # http://127.0.0.1:PORT/tenants/t01 (Graph under /v1.0)
        fleet.tenants["t01"]          # SimulatedTenant: ground truth, as for a lone tenant

Each tenant is the lone simulator's app (`exporter.simulator.app.build_app`) mounted under
`/tenants/NAME`, with its own clock, its `/_sim/` control paths and its own audit limit (5 per
10 s); the audit requests of every tenant also pass one app-wide limit (122 per 10 s per app
across all tenants, graph-facts). A request either limit refuses gets a 429 with the
Retry-After of the longer wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from exporter.simulator.access import AuthSettings, TokenGrant
from exporter.simulator.app import build_app, resolve_scenario, serving
from exporter.simulator.graph_api import SimulatorState
from exporter.simulator.scenarios import Scenario, ScenarioError
from exporter.simulator.tenant import SimulatedTenant
from exporter.simulator.throttle import SlidingWindowLimiter, ThrottleSettings

APP_AUDIT_REQUESTS_PER_10S = 122
TENANT_PREFIX = "/tenants/"

ScenarioSpec = str | Path | Scenario | Mapping[str, Any]
TenantSpec = ScenarioSpec | tuple[ScenarioSpec, Mapping[str, Any]]
"""A scenario, or (scenario, overrides)."""


@dataclass(eq=False)
class RunningFleet:
    states: dict[str, SimulatorState]
    app_limiter: SlidingWindowLimiter
    host: str
    port: int

    @property
    def tenants(self) -> dict[str, SimulatedTenant]:
        return {name: state.tenant for name, state in self.states.items()}

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def graph_base_url(self, tenant: str) -> str:
        """What a tenant's `graph_base_url` is (its `/_sim/clock` is under it too)."""
        return f"{self.base_url}{TENANT_PREFIX}{tenant}"

    def refused(self) -> dict[str, int]:
        """Audit requests refused with a 429: per tenant (its own limit) and `app` (the
        app-wide one)."""
        counts = {name: state.limiter.refused for name, state in self.states.items()}
        counts["app"] = self.app_limiter.refused
        return counts


def load_fleet(path: Path) -> dict[str, TenantSpec]:
    """A fleet file: a YAML mapping tenant name -> {scenario: NAME or FILE (default steady),
    overrides: {...}}. ScenarioError names what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read the fleet file: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(f"{path}: give a mapping of tenant name -> {{scenario, overrides}}")
    fleet: dict[str, TenantSpec] = {}
    for name, entry in raw.items():
        entry = entry or {}
        if not isinstance(entry, dict) or set(entry) - {"scenario", "overrides"}:
            raise ScenarioError(
                f"{path}: tenant {name!r}: give scenario and/or overrides, nothing else"
            )
        fleet[str(name)] = (entry.get("scenario", "steady"), entry.get("overrides") or {})
    return fleet


@asynccontextmanager
async def running_fleet(
    tenants: Mapping[str, TenantSpec],
    *,
    seed: int | None = None,
    start: float | None = None,
    speed: float | None = None,
    throttle: bool = True,
    tenant_requests_per_10s: int = 5,
    app_requests_per_10s: int = APP_AUDIT_REQUESTS_PER_10S,
    history_days: float | None = None,
    tokens: Mapping[str, TokenGrant] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    history_cache_mib: float = 0.0,
) -> AsyncIterator[RunningFleet]:
    """Build every tenant (seeded by `seed` and its position), serve them on host:port, stop
    on exit. `history_cache_mib` is per tenant."""
    if not tenants:
        raise ValueError("a fleet needs at least one tenant")
    app_limiter = SlidingWindowLimiter(
        ThrottleSettings(enabled=throttle, requests=app_requests_per_10s)
    )
    root = web.Application()
    states: dict[str, SimulatorState] = {}
    for index, (name, spec) in enumerate(tenants.items()):
        scenario, overrides = spec if isinstance(spec, tuple) else (spec, None)
        tenant = SimulatedTenant(
            resolve_scenario(scenario, overrides),
            seed=None if seed is None else seed + index,
            start=start,
            speed=speed,
            history_days=history_days,
        )
        if tenant.history is not None and history_cache_mib > 0:
            tenant.history.configure_cache(round(history_cache_mib * 1024 * 1024))
        state = SimulatorState(
            tenant=tenant,
            limiter=SlidingWindowLimiter(
                ThrottleSettings(enabled=throttle, requests=tenant_requests_per_10s)
            ),
            auth=AuthSettings(tokens=None if tokens is None else dict(tokens)),
            path_prefix=f"{TENANT_PREFIX}{name}",
            app_limiter=app_limiter,
        )
        states[name] = state
        root.add_subapp(state.path_prefix, build_app(state))
    async with serving(root, host, port) as bound_port:
        yield RunningFleet(states, app_limiter, host, bound_port)


__all__ = [
    "APP_AUDIT_REQUESTS_PER_10S",
    "RunningFleet",
    "TenantSpec",
    "load_fleet",
    "running_fleet",
]
