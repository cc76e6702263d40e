"""The pause/resume/plan commands as an operator meets them: real `entra-dg-exporter`
processes against the simulated tenant. Dry run by default, --apply, a confirmation prompt and
a progress bar on a terminal (a real pseudo-terminal), --json, the summary table, and bad ids
refused in one clear line each with nothing changed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.simulator.app import RunningSimulator
from exporter.simulator.faults import FaultScope, FaultSettings
from tests.ops_harness import (
    ScriptedReadiness,
    dynamic,
    readiness_server,
    run_cli,
    small_storm,
    start_cli,
    states,
    toggles,
    write_ops_config,
)
from tests.test_readiness_client import ready_assessment

PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON
SLOW_PATCHES = FaultSettings(scope=FaultScope.ALL, slow_rate=1.0, slow_seconds=0.05)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


async def test_dry_run_is_the_default_with_a_summary_and_json(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim)
    before = states(sim)
    code, out, err = await run_cli("pause", "--all", "--config.file", str(config))
    assert code == 0, err
    assert states(sim) == before
    assert "Summary (dry run)" in out
    assert "would_change" in out
    assert "Dry run: nothing was changed. Add --apply to act." in out

    code, out, err = await run_cli("pause", "--all", "--json", "--config.file", str(config))
    assert code == 0, err
    document = orjson.loads(out)
    assert document["applied"] is False
    assert document["status"] == "dry_run"
    assert document["summary"]["would_change"] == len(before) - 2
    assert document["summary"]["unchanged"] == 2
    assert {o["kind"] for o in document["objects"]} == {
        DirectoryObjectKind.GROUP.value,
        DirectoryObjectKind.ADMINISTRATIVE_UNIT.value,
    }
    assert states(sim) == before


async def test_apply_without_a_terminal_needs_yes(sim: RunningSimulator, tmp_path: Path) -> None:
    config = write_ops_config(tmp_path, sim)
    before = states(sim)
    code, out, err = await run_cli(
        "pause", "--all", "--apply", "--reason", "r", "--config.file", str(config)
    )
    assert code == 2
    assert out == ""
    assert err.splitlines() == ["error: --apply without a terminal to confirm on needs --yes"]
    assert states(sim) == before


async def test_bad_ids_are_refused_one_line_each(sim: RunningSimulator, tmp_path: Path) -> None:
    config = write_ops_config(tmp_path, sim)
    before = states(sim)
    code, _, err = await run_cli(
        "pause", "--group", "not-a-guid", "--apply", "--yes", "--config.file", str(config)
    )
    assert code == 2
    assert err.splitlines() == [
        "error: --group: 'not-a-guid' is not an object id "
        "(a GUID such as 3f2504e0-4f89-41d3-9a0c-0305e82c3301)"
    ]

    ids_file = tmp_path / "groups.txt"
    ids_file.write_text("# critical\n3F2504E0-4F89-41D3-9A0C-0305E82C3301\nnope\n")
    code, _, err = await run_cli(
        "pause", "--groups-file", str(ids_file), "--reason", "r", "--config.file", str(config)
    )
    assert code == 2
    assert err.splitlines() == [
        f"error: {ids_file}:3: 'nope' is not an object id "
        "(a GUID such as 3f2504e0-4f89-41d3-9a0c-0305e82c3301)"
    ]

    unknown = "00000000-0000-4000-8000-00000000abcd"
    static = next(c for c in sim.tenant.directory.containers if not c.dynamic)
    code, _, err = await run_cli(
        "pause", "--group", unknown, "--group", static.id, "--apply", "--yes",
        "--reason", "r", "--config.file", str(config),
    )  # fmt: skip
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0] == (
        f"error: --group {unknown}: no such group or administrative unit in this tenant"
    )
    assert lines[1].startswith(
        f"error: --group {static.id}: group {static.display_name!r} is not dynamic"
    )
    assert states(sim) == before


class Terminal:
    """A pseudo-terminal as the command's stdin and stderr: what it shows, and typing."""

    def __init__(self) -> None:
        self.controller, self.device = pty.openpty()
        self.shown = b""
        self._more = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.controller, self._read)

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            self.shown += os.read(self.controller, 65536)
        self._more.set()

    async def wait_for(self, text: bytes) -> None:
        async with asyncio.timeout(60):
            while text not in self.shown:
                self._more.clear()
                await self._more.wait()

    def type(self, text: str) -> None:
        os.write(self.controller, text.encode())

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.controller)
        os.close(self.controller)


async def run_on_terminal(answer: str, *args: str) -> tuple[int, str, bytes]:
    terminal = Terminal()
    try:
        process = await start_cli(*args, stdin=terminal.device, stderr=terminal.device)
        os.close(terminal.device)
        await terminal.wait_for(b"[y/N]")
        terminal.type(answer + "\n")
        out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        await asyncio.sleep(0.1)  # the last of the terminal's output
        assert process.returncode is not None
        return process.returncode, out.decode(), terminal.shown
    finally:
        terminal.close()


async def test_apply_on_a_terminal_asks_first_and_shows_progress(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim)
    before = states(sim)
    args = ("pause", "--all", "--apply", "--reason", "storm", "--config.file", str(config))

    code, out, shown = await run_on_terminal("n", *args)
    assert code == 1
    assert b"beginning a pause episode?" in shown
    assert "cancelled, nothing changed" in out
    assert states(sim) == before

    start = sim.clock.now()
    sim.set_faults(SLOW_PATCHES)
    code, out, shown = await run_on_terminal("y", *args)
    assert code == 0, shown.decode(errors="replace")
    assert all(s is PAUSED for s in states(sim).values())
    assert set(toggles(sim, start).values()) == {1}
    # The progress bar counted the objects on the terminal; the summary went to stdout.
    total = len(before) - 2
    assert f"{total}/{total}".encode() in shown
    assert "━".encode() in shown
    assert "Summary" in out
    assert "changed" in out


async def test_resume_and_plan_commands_change_groups_and_units(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(
        tmp_path, sim, resume={"batch_size": 100, "max_critical_groups": 5, "batch_interval": 0}
    )
    parked = {c.id for c in dynamic(sim) if c.paused}
    common = ("--config.file", str(config))
    code, _, err = await run_cli("pause", "--all", "--apply", "--yes", "--reason", "s", *common)
    assert code == 0, err
    unit = next(c for c in dynamic(sim) if c.kind is DirectoryObjectKind.ADMINISTRATIVE_UNIT)
    assert unit.paused
    source = ScriptedReadiness("sim", [ready_assessment()])
    async with readiness_server(source) as url:
        gate = ("--exporter.url", url)
        code, out, err = await run_cli("plan", "--json", *gate, *common)
        assert code == 0, err
        planned = orjson.loads(out)
        assert planned["plan"]["excluded"]["paused_before_episode"] == len(parked)
        assert [b["critical"] for b in planned["batches"]][:1] == [True]

        critical = [c.id for c in sim.tenant.critical_groups()]
        code, out, err = await run_cli(
            "resume", *(f"--group={c}" for c in critical), "--apply", "--yes", *gate, *common
        )
        assert code == 0, err
        assert all(states(sim)[c] is ON for c in critical)

        code, out, err = await run_cli(
            "resume", "--non-critical", "--apply", "--yes", "--json", *gate, *common
        )
        assert code == 0, err
    document = orjson.loads(out)
    assert document["status"] == "completed"
    assert document["summary"]["failed"] == 0
    # Everything the episode paused is On, units included; the parked groups stay paused
    # and the summary says why.
    assert {c for c, s in states(sim).items() if s is PAUSED} == parked
    assert states(sim)[unit.id] is ON
    excluded = [o for o in document["objects"] if o["result"] == "excluded"]
    assert {o["id"] for o in excluded} == parked
    assert all("paused before the episode" in o["detail"] for o in excluded)
