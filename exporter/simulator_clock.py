"""Following a simulated tenant's clock (`clock: simulator`): the exporter and the ops commands
both read `/_sim/clock` and keep a `FollowingClock` in step, so their times share one timeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from exporter.clock import FollowingClock
from exporter.config import Tenant

SIM_CLOCK_PATH = "/_sim/clock"
CLOCK_SYNC_INTERVAL = 1.0


def simulator_clock_url(tenant: Tenant) -> str:
    return f"{(tenant.graph_base_url or '').rstrip('/')}{SIM_CLOCK_PATH}"


async def read_simulator_clock(client: httpx.AsyncClient, url: str) -> tuple[float, float] | None:
    """(now, speed), or None while the simulator cannot be read: the caller retries."""
    try:
        response = await client.get(url)
        response.raise_for_status()
        body = response.json()
        return float(body["now"]), float(body["speed"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


async def keep_following(
    client: httpx.AsyncClient,
    url: str,
    clock: FollowingClock,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Update `clock` from the simulator every CLOCK_SYNC_INTERVAL (wall time), forever."""
    while True:
        await sleep(CLOCK_SYNC_INTERVAL)
        reading = await read_simulator_clock(client, url)
        if reading is not None:
            clock.update(*reading)
