"""Retrying Graph requests: Retry-After in all its forms, capped exponential backoff with jitter.

This replaces the SDK's RetryHandler (which the client is built without): that one adds a 3 s
base delay to every wait, ignores fractional Retry-After values such as `2.128` (Graph sends
them on the audit log) and does not retry connection errors at all.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from dataclasses import dataclass

from tenacity import RetryCallState

from exporter.clock import Clock

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class TransientError(Exception):
    """One attempt failed in a way another attempt may not (raised and caught inside graph/)."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    """Attempts per request for errors other than throttling."""
    throttled_attempts: int = 20
    """Attempts per request while Graph answers 429 with a Retry-After."""
    initial_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    """A Retry-After longer than this is not waited for: the request fails and the next poll
    tries again."""

    def wait_seconds(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            return error.retry_after
        # Capped exponential backoff plus up to one initial delay of jitter, so that tenants
        # retrying after the same outage spread out.
        exponent = max(0, state.attempt_number - 1)
        backoff = min(self.max_delay, self.initial_delay * 2.0**exponent)
        return min(self.max_delay, backoff + random.uniform(0, self.initial_delay))

    def should_stop(self, state: RetryCallState, throttled: int) -> bool:
        """`throttled`: how many of the attempts so far were answered with a Retry-After."""
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            return throttled >= self.throttled_attempts or error.retry_after > self.max_retry_after
        return state.attempt_number - throttled >= self.attempts


def parse_retry_after(headers: Mapping[str, str], wall: Clock) -> float | None:
    """Seconds to wait, from `Retry-After` (integer, fractional like `2.128`, or an HTTP date)
    or the `retry-after-ms` / `x-ms-retry-after-ms` headers; None when absent or unreadable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = lowered.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / 1000.0)
            except ValueError:
                pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - wall.now())
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return max(0.0, seconds)
