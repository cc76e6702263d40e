"""The one clock abstraction. Nothing else in the project reads the system time directly.

Times are POSIX epoch seconds (float, UTC) everywhere inside the project; `sleep()` takes a
duration in the clock's own seconds, so on an accelerated clock a 60 s poll interval passes
in 1 s of wall time at speed 60.

* `SystemClock`: production.
* `VirtualClock`: owned by the simulator; runs at `speed` x wall time from a chosen start, can
  be advanced by hand (which wakes sleepers) or frozen with speed 0 (tests drive it).
* `FollowingClock`: the exporter's clock in demo and tests; follows a remote virtual clock
  from periodic `(now, speed)` readings (the simulator publishes them at `GET /_sim/clock`)
  and extrapolates in between. `following_simulator()` is the one way to get one: the
  exporter and the ops commands both follow it, so their times share one timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import httpx

SIM_CLOCK_PATH = "/_sim/clock"
CLOCK_SYNC_INTERVAL = 1.0


class Clock(Protocol):
    def now(self) -> float:
        """Current time, epoch seconds."""
        ...

    @property
    def speed(self) -> float:
        """Clock seconds per wall-clock second (1 for the system clock)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of this clock's time."""
        ...


class SystemClock:
    speed = 1.0

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class _ExtrapolatingClock:
    """now = anchor + (monotonic - anchor_monotonic) * speed, re-anchored on every change."""

    def __init__(self, start: float, speed: float) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._anchor = start
        self._anchor_monotonic = time.monotonic()
        self._speed = speed
        self._changed = asyncio.Event()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._anchor + (time.monotonic() - self._anchor_monotonic) * self._speed

    def _reanchor(self, now: float, speed: float) -> None:
        self._anchor = now
        self._anchor_monotonic = time.monotonic()
        self._speed = speed
        # Wake every sleeper so it recomputes its deadline against the new timeline.
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        deadline = self.now() + max(0.0, seconds)
        while (remaining := deadline - self.now()) > 0:
            changed = self._changed
            wall = remaining / self._speed if self._speed > 0 else None
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that lands as the event is set (the clock is re-anchored every second), and a
            # poller cancelled at shutdown would then sleep on for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wall):
                    await changed.wait()


class VirtualClock(_ExtrapolatingClock):
    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a virtual clock only moves forward")
        self._reanchor(self.now() + seconds, self._speed)

    def set_speed(self, speed: float) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._reanchor(self.now(), speed)


class FollowingClock(_ExtrapolatingClock):
    def update(self, remote_now: float, remote_speed: float) -> None:
        """Adopt a fresh reading of the remote clock. Never moves backwards: a reading that is
        behind our extrapolation (network delay) only changes the speed."""
        self._reanchor(max(remote_now, self.now()), remote_speed)


class SimulatorClockUnavailable(Exception):
    """The simulator's clock could not be read (and the caller asked not to wait for it)."""


def simulator_clock_url(graph_base_url: str) -> str:
    return f"{graph_base_url.rstrip('/')}{SIM_CLOCK_PATH}"


async def read_simulator_clock(client: httpx.AsyncClient, url: str) -> tuple[float, float] | None:
    """(now, speed), or None while the simulator cannot be read: the caller retries."""
    try:
        response = await client.get(url)
        response.raise_for_status()
        body = response.json()
        return float(body["now"]), float(body["speed"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


@contextlib.asynccontextmanager
async def following_simulator(
    graph_base_url: str,
    *,
    wait: bool,
    wall_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[FollowingClock]:
    """A `FollowingClock` kept in step with the simulator at `graph_base_url` every
    CLOCK_SYNC_INTERVAL of wall time, for as long as the context is open.

    `wait`: retry the first reading with backoff until the simulator answers (the exporter,
    which may start before it); otherwise raise `SimulatorClockUnavailable` at once (an ops
    command, whose operator should hear that the simulator is not running)."""
    url = simulator_clock_url(graph_base_url)
    async with httpx.AsyncClient(timeout=5.0) as client:
        reading = await read_simulator_clock(client, url)
        delay = 0.2
        while reading is None:
            if not wait:
                raise SimulatorClockUnavailable(
                    f"cannot read the simulator's clock at {url}: is it running?"
                )
            await wall_sleep(delay)
            delay = min(delay * 2, 5.0)
            reading = await read_simulator_clock(client, url)
        clock = FollowingClock(*reading)

        async def keep_following() -> None:
            while True:
                await wall_sleep(CLOCK_SYNC_INTERVAL)
                if (fresh := await read_simulator_clock(client, url)) is not None:
                    clock.update(*fresh)

        task = asyncio.create_task(keep_following(), name="simulator-clock")
        try:
            yield clock
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def command_clock(graph_base_url: str | None, *, simulated: bool) -> AsyncIterator[Clock]:
    """A command's clock: the system's, or a simulated tenant's, followed as the exporter
    follows it (so times in the ledger and rules reading system.now share its timeline). It
    does not wait: SimulatorClockUnavailable tells the operator at once."""
    if not simulated:
        yield SystemClock()
        return
    async with following_simulator(graph_base_url or "", wait=False) as clock:
        yield clock
