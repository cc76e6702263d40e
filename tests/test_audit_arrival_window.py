"""The audit limiter's arrival window: never a request sooner than the window after the
response to the one `requests` back."""

from __future__ import annotations

import asyncio

from exporter.graph.client import _ArrivalWindow


async def test_the_request_after_a_full_window_waits_for_the_oldest_response() -> None:
    loop = asyncio.get_running_loop()
    window = _ArrivalWindow(2, 0.3)
    await window.wait()  # empty: no wait
    window.record()
    first_response = loop.time()
    await window.wait()  # one of two: no wait
    window.record()
    await window.wait()
    assert loop.time() >= first_response + 0.3
    window.record()
    await asyncio.sleep(0.35)  # the oldest remembered response is already a window ago
    started = loop.time()
    await window.wait()
    assert loop.time() - started < 0.3
