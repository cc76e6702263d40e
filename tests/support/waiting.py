"""Waiting for a condition with a deadline, failing with what was awaited. One place for it:
tests and benchmarks poll real processes and servers, never sleep a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

_T = TypeVar("_T")


async def wait_until(
    predicate: Callable[[], object], *, within: float, what: str, interval: float = 0.05
) -> None:
    """Poll a cheap synchronous `predicate` on the event loop until it is truthy."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def eventually(
    check: Callable[[], Awaitable[_T]], *, within: float, what: str, interval: float = 0.1
) -> _T:
    """Await `check()` until it returns something truthy, and return that."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


def wait_until_sync(
    check: Callable[[], bool],
    *,
    within: float,
    what: str,
    explain: Callable[[], str] = lambda: "",
    interval: float = 0.25,
) -> None:
    """Poll `check` from synchronous code; on timeout fail with `what` and `explain()` (logs)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}\n{explain()}")
        time.sleep(interval)
