import asyncio
import time

import pytest

from exporter.clock import FollowingClock, SystemClock, VirtualClock


def test_system_clock_tracks_wall_time() -> None:
    assert abs(SystemClock().now() - time.time()) < 1.0


async def test_virtual_clock_runs_at_its_speed() -> None:
    clock = VirtualClock(start=1_000_000.0, speed=100.0)
    await asyncio.sleep(0.05)
    assert 1_000_003.0 < clock.now() < 1_000_060.0


async def test_frozen_virtual_clock_moves_only_when_advanced() -> None:
    clock = VirtualClock(start=500.0, speed=0.0)
    await asyncio.sleep(0.01)
    assert clock.now() == 500.0
    clock.advance(3600)
    assert clock.now() == 4100.0
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


async def test_advance_wakes_sleepers_on_a_frozen_clock() -> None:
    clock = VirtualClock(start=0.0, speed=0.0)
    sleeper = asyncio.create_task(clock.sleep(600))
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.advance(599)
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.advance(1)
    await asyncio.wait_for(sleeper, timeout=1)


async def test_accelerated_sleep_takes_a_fraction_of_wall_time() -> None:
    clock = VirtualClock(start=0.0, speed=1000.0)
    started = time.monotonic()
    await clock.sleep(60)
    assert time.monotonic() - started < 1.0
    assert clock.now() >= 60


def test_following_clock_never_moves_backwards() -> None:
    clock = FollowingClock(start=10_000.0, speed=0.0)
    clock.update(9_000.0, 0.0)
    assert clock.now() == 10_000.0
    clock.update(12_000.0, 60.0)
    assert clock.now() >= 12_000.0
    assert clock.speed == 60.0
