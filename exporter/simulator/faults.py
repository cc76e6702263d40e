"""Injectable faults: what a real Graph does to a client on a bad day.

Every knob is a probability per request (or, for late events, per event written) and all are
off by default. Draws come from their own seeded generator, so switching faults on or off never
changes the audit log itself (late events aside, which change only when an event appears).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class FaultScope(StrEnum):
    AUDIT = "audit"  # only GET /v1.0/auditLogs/directoryAudits
    ALL = "all"  # every Graph path (groups, administrative units, beta status too)


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    scope: FaultScope = FaultScope.AUDIT
    throttle_burst_rate: Rate = 0.0
    throttle_burst_length: Annotated[int, Field(ge=1)] = 3
    throttle_retry_after_seconds: Annotated[float, Field(gt=0.0)] = 1.5
    error_500_rate: Rate = 0.0
    error_503_rate: Rate = 0.0
    error_504_rate: Rate = 0.0
    reset_rate: Rate = 0.0
    slow_rate: Rate = 0.0
    slow_seconds: Annotated[float, Field(ge=0.0)] = 2.0
    truncate_rate: Rate = 0.0
    duplicate_rate: Rate = 0.0
    duplicate_max_events: Annotated[int, Field(ge=1)] = 5
    late_rate: Rate = 0.0
    late_min_seconds: Annotated[float, Field(ge=0.0)] = 1800.0
    late_max_seconds: Annotated[float, Field(ge=0.0)] = 7200.0
    # Switches, not rates (#13): whether directoryAudits accepts `or` in $filter, and `or`
    # together with $orderby, is not documented; some tenants reportedly refuse them (400).
    refuse_or_filters: bool = False
    refuse_orderby_with_or: bool = False

    def any_request_fault(self) -> bool:
        return self.enabled and any(
            rate > 0
            for rate in (
                self.throttle_burst_rate,
                self.error_500_rate,
                self.error_503_rate,
                self.error_504_rate,
                self.reset_rate,
                self.slow_rate,
                self.truncate_rate,
                self.duplicate_rate,
            )
        )


class FaultKind(StrEnum):
    THROTTLE = "throttle"
    ERROR_500 = "error_500"
    ERROR_503 = "error_503"
    ERROR_504 = "error_504"
    RESET = "reset"
    SLOW = "slow"
    TRUNCATE = "truncate"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(slots=True)
class FaultPlan:
    """What to do to one response. `fail` replaces the response; the others alter it."""

    fail: FaultKind | None = None
    retry_after: float = 0.0
    delay_seconds: float = 0.0
    truncate: bool = False
    duplicate_events: int = 0


class FaultInjector:
    def __init__(self, settings: FaultSettings | None = None, seed: int = 0) -> None:
        self.settings = settings or FaultSettings()
        self._rng = random.Random(f"faults-{seed}")
        # Late events draw from their own generator: which events are late then depends on the
        # order events are written (deterministic), not on how clients happened to poll.
        self._late_rng = random.Random(f"late-events-{seed}")
        self._burst_left = 0
        self.injected: dict[FaultKind, int] = dict.fromkeys(FaultKind, 0)

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._burst_left = 0

    def applies_to(self, is_audit: bool) -> bool:
        return self.settings.enabled and (is_audit or self.settings.scope is FaultScope.ALL)

    def plan(self, *, is_audit: bool) -> FaultPlan:
        plan = FaultPlan()
        settings = self.settings
        if not self.applies_to(is_audit) or not settings.any_request_fault():
            return plan
        draw = self._rng.random
        if self._burst_left > 0 or draw() < settings.throttle_burst_rate:
            if self._burst_left == 0:
                self._burst_left = settings.throttle_burst_length
            self._burst_left -= 1
            plan.fail = FaultKind.THROTTLE
            plan.retry_after = settings.throttle_retry_after_seconds
        elif draw() < settings.reset_rate:
            plan.fail = FaultKind.RESET
        elif draw() < settings.error_500_rate:
            plan.fail = FaultKind.ERROR_500
        elif draw() < settings.error_503_rate:
            plan.fail = FaultKind.ERROR_503
        elif draw() < settings.error_504_rate:
            plan.fail = FaultKind.ERROR_504
        if draw() < settings.slow_rate:
            plan.delay_seconds = settings.slow_seconds
            self.injected[FaultKind.SLOW] += 1
        if plan.fail is None:
            if draw() < settings.truncate_rate:
                plan.truncate = True
                self.injected[FaultKind.TRUNCATE] += 1
            if is_audit and draw() < settings.duplicate_rate:
                plan.duplicate_events = self._rng.randint(1, settings.duplicate_max_events)
                self.injected[FaultKind.DUPLICATE] += 1
        else:
            self.injected[plan.fail] += 1
        return plan

    def late_extra_delay(self) -> float:
        """Extra visibility delay for one event being written (0 for almost all)."""
        settings = self.settings
        if not settings.enabled or settings.late_rate <= 0:
            return 0.0
        if self._late_rng.random() >= settings.late_rate:
            return 0.0
        self.injected[FaultKind.LATE] += 1
        low = settings.late_min_seconds
        high = max(low, settings.late_max_seconds)
        return self._late_rng.uniform(low, high)
