"""The one clock abstraction. Nothing else in the project reads the system time directly.

Times are POSIX epoch seconds (float, UTC) everywhere inside the project; `sleep()` takes a
duration in the clock's own seconds, so on an accelerated clock a 60 s poll interval passes
in 1 s of wall time at speed 60.

* `SystemClock`: production.
* `VirtualClock`: owned by the simulator; runs at `speed` x wall time from a chosen start, can
  be advanced by hand (which wakes sleepers) or frozen with speed 0 (tests drive it).
* `FollowingClock`: the exporter's clock in demo and tests; follows a remote virtual clock
  from periodic `(now, speed)` readings (the simulator publishes them at `GET /_sim/clock`)
  and extrapolates in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=wall)


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
