"""The audit log's request limits: 5 requests per 10 s per app per tenant, and 122 per 10 s per
app across all tenants when one process serves a fleet (Graph's documented reporting-API
limits), on real wall-clock time.

Virtual time would be wrong here: a client at speed 600 still waits real seconds for Graph, and
so does the exporter that is being tested against it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from exporter.clock import Clock, SystemClock


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    enabled: bool = True
    requests: int = 5
    window_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.requests < 1:
            raise ValueError(f"throttle requests must be >= 1, got {self.requests}")
        if self.window_seconds <= 0:
            raise ValueError(f"throttle window must be > 0 s, got {self.window_seconds}")


class SlidingWindowLimiter:
    """At most `requests` admitted requests in any `window_seconds`. A refused request is not
    counted, so its Retry-After (the time until the oldest admitted request leaves the window,
    naturally fractional) is exact: a client that waits that long is admitted."""

    def __init__(self, settings: ThrottleSettings, wall: Clock | None = None) -> None:
        self._wall = wall or SystemClock()
        self._admitted: deque[float] = deque()
        self.settings = settings
        self.refused = 0
        self.admitted_total = 0

    def configure(self, settings: ThrottleSettings) -> None:
        self.settings = settings
        self._admitted.clear()

    def wait(self) -> float | None:
        """What `admit` would answer, without counting anything."""
        if not self.settings.enabled:
            return None
        now = self._wall.now()
        window = self.settings.window_seconds
        while self._admitted and self._admitted[0] <= now - window:
            self._admitted.popleft()
        if len(self._admitted) >= self.settings.requests:
            return max(0.001, self._admitted[0] + window - now)
        return None

    def admit(self) -> float | None:
        """None if the request may proceed (and it is counted), else seconds to wait."""
        if not self.settings.enabled:
            self.admitted_total += 1
            return None
        now = self._wall.now()
        window = self.settings.window_seconds
        while self._admitted and self._admitted[0] <= now - window:
            self._admitted.popleft()
        if len(self._admitted) >= self.settings.requests:
            self.refused += 1
            return max(0.001, self._admitted[0] + window - now)
        self._admitted.append(now)
        self.admitted_total += 1
        return None
