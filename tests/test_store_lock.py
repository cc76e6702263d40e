"""One writer per store (#14 item 1): a second `serve` on a store another exporter holds exits 1
with one line naming the store and the holder's pid; the holder's counts stay exact, and the ops
commands and the audit commit process work beside it. Real processes, real SQLite files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from exporter.simulator.app import running_simulator
from exporter.store.lock import StoreLock, StoreLockedError
from tests.harness import counted, truth, write_config
from tests.ops_harness import run_cli, small_storm, write_ops_config
from tests.support.waiting import wait_until
from tests.test_resilience import SMALL_STORM, read_state

SERVE = [sys.executable, "-c", "from exporter.cli.main import main; main()", "serve"]


async def serve(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *SERVE,
        "--config.file",
        str(config),
        "--web.listen-address=127.0.0.1:0",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_a_second_exporter_on_the_same_store_refuses_and_counts_stay_exact(
    tmp_path: Path,
) -> None:
    async with running_simulator(
        "storm", overrides=SMALL_STORM, speed=0, throttle=False, history_days=1
    ) as sim:
        await sim.advance(3600)
        # Slowly (2 requests per second): the first is still backfilling when the second starts.
        config = write_config(
            tmp_path / "config.yml", sim.base_url, polling={"audit_requests_per_10s": 20}
        )
        db = tmp_path / "state.sqlite3"
        now = sim.clock.now()
        first = await serve(config)
        try:
            await asyncio.sleep(1.0)
            second = await serve(config)
            _, err = await asyncio.wait_for(second.communicate(), 60)
            assert second.returncode == 1
            lines = err.decode().strip().splitlines()
            assert len(lines) == 1, lines
            assert str(db) in lines[0]
            assert f"pid {first.pid}" in lines[0]

            # The ops commands open the store beside the exporter (dry run: reads the ledger).
            code, _, ops_err = await run_cli("pause", "--config.file", str(config), "--all")
            assert code == 0, ops_err

            def progress() -> float:
                state = read_state(db)
                return 0.0 if state is None else (state[0] - state[1]) / (now - state[1])

            await wait_until(lambda: progress() >= 1.0, within=180, what="the backfill to end")
        finally:
            first.send_signal(signal.SIGTERM)
            await asyncio.wait_for(first.wait(), 30)
        assert first.returncode == 0
        state = read_state(db)
        assert state is not None
        _, backfill_start, totals = state
        assert counted(totals) == truth(sim, backfill_start)


def test_the_lock_is_released_on_stop_and_names_its_holder(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    held = StoreLock(store)
    held.acquire()
    with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}") as refused:
        StoreLock(store).acquire()
    assert str(store) in str(refused.value)
    held.release()
    again = StoreLock(store)
    again.acquire()
    assert again.held
    again.release()


async def test_ops_runs_with_different_stores_are_warned_about(tmp_path: Path) -> None:
    async with small_storm() as sim:
        first, second = tmp_path / "laptop", tmp_path / "jumphost"
        first.mkdir()
        second.mkdir()
        config_a = write_ops_config(first, sim)
        config_b = write_ops_config(second, sim)
        code, _, err = await run_cli(
            "pause", "--config.file", str(config_a), "--all", "--apply", "-y", "--reason", "storm"
        )
        assert code == 0, err
        assert "ledger" not in err  # the tenant's few parked groups are no pause
        # The same tenant, another store: its ledger never heard of that pause.
        code, out, err = await run_cli("pause", "--config.file", str(config_b), "--all", "--json")
        assert code == 0, err
        notes = [n for n in json.loads(out)["notes"] if "records no open pause" in n]
        assert len(notes) == 1
        assert str(second / "state.sqlite3") in notes[0]
        assert "the ledger disagrees with Graph" in err
        # With the store that paused, no such warning.
        code, out, err = await run_cli("pause", "--config.file", str(config_a), "--all", "--json")
        assert code == 0, err
        assert not [n for n in json.loads(out)["notes"] if "records no open pause" in n]
