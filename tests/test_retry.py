"""Retry-After in all its forms, and when retrying stops."""

from __future__ import annotations

import pytest
from tenacity import Future, RetryCallState

from exporter.clock import VirtualClock
from exporter.graph.retry import RetryPolicy, TransientError, parse_retry_after

NOW = 1_714_564_800.0  # Wed, 01 May 2024 12:00:00 GMT


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "2.128"}, 2.128),
        ({"retry-after": " 0.5 "}, 0.5),
        ({"Retry-After": "Wed, 01 May 2024 12:00:07 GMT"}, 7.0),
        ({"Retry-After": "Wed, 01 May 2024 11:00:00 GMT"}, 0.0),
        ({"Retry-After": "-4"}, 0.0),
        ({"x-ms-retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
    ],
)
async def test_retry_after_forms(headers: dict[str, str], seconds: float | None) -> None:
    clock = VirtualClock(NOW, speed=0)
    result = parse_retry_after(headers, clock)
    assert result == (pytest.approx(seconds) if seconds is not None else None)


def state_after(attempt: int, error: Exception) -> RetryCallState:
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    future = Future(attempt)
    future.set_exception(error)
    state.outcome = future
    return state


def test_backoff_is_capped_and_retry_after_honoured_exactly() -> None:
    policy = RetryPolicy(attempts=4, initial_delay=1.0, max_delay=5.0)
    waits = [policy.wait_seconds(state_after(n, TransientError("503"))) for n in range(1, 10)]
    assert all(0 <= w <= 5.0 for w in waits)
    assert waits[-1] >= 1.0
    assert policy.wait_seconds(state_after(1, TransientError("429", retry_after=2.128))) == 2.128


def test_stopping() -> None:
    policy = RetryPolicy(attempts=3, throttled_attempts=5, max_retry_after=60)
    plain = TransientError("reset")
    assert not policy.should_stop(state_after(2, plain), throttled=0)
    assert policy.should_stop(state_after(3, plain), throttled=0)
    # Throttled attempts have their own budget and do not use up the other.
    assert not policy.should_stop(state_after(6, plain), throttled=4)
    throttled = TransientError("429", retry_after=1.0)
    assert not policy.should_stop(state_after(4, throttled), throttled=4)
    assert policy.should_stop(state_after(5, throttled), throttled=5)
    assert policy.should_stop(state_after(1, TransientError("429", retry_after=61)), throttled=1)
