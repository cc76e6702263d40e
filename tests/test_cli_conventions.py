"""The conventions node_exporter and exporter-toolkit users expect, checked on the real command
(`entra-dg-exporter` as its own process) against the simulated tenant: self-metrics and
--web.telemetry-path, --version with the source revision, logging flags before or after the
subcommand, JSON logs that are all JSON, and one-line errors that fail before anything starts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from exporter.simulator.app import RunningSimulator
from tests.ops_harness import run_cli, small_storm, start_cli, write_ops_config
from tests.prometheus_tools import REPO

pytestmark = pytest.mark.slow


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


@contextlib.asynccontextmanager
async def serving(*args: str) -> AsyncIterator[tuple[str, list[str]]]:
    """`entra-dg-exporter ARGS` until the JSON `serving metrics` line; yields its URL and the
    stderr lines read so far (the list keeps growing until the process ends)."""
    process = await start_cli(*args)
    assert process.stderr is not None
    stderr = process.stderr
    lines: list[str] = []
    url = None
    try:
        async with asyncio.timeout(60):
            while url is None:
                line = (await stderr.readline()).decode()
                assert line, f"the exporter exited: {''.join(lines)}"
                lines.append(line)
                event = orjson.loads(line)  # every line JSON, or this raises
                if event.get("event") == "serving metrics":
                    url = event["url"]

        async def collect() -> None:
            while line := (await stderr.readline()).decode():
                lines.append(line)

        reader = asyncio.create_task(collect())
        yield url, lines
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=60)
        with contextlib.suppress(UnboundLocalError):
            await reader


async def test_self_metrics_at_the_telemetry_path_with_json_logs_after_the_subcommand(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim)
    revision = checkout_revision()
    args = ("serve", "--config.file", str(config), "--web.telemetry-path", "/custom")
    async with (
        serving(*args, "--log.format", "json", "--log.level", "info") as (url, lines),
        aiohttp.ClientSession() as http,
    ):
        assert url.endswith("/custom")
        async with http.get(url) as r:
            assert r.status == 200
            text = await r.text()
        async with http.get(url.removesuffix("custom") + "metrics") as r:
            assert r.status == 404
        # /readyz's answer changing is logged once, with what it is now
        for _ in range(600):  # 60 s
            if changes := _events(lines, "exporter readiness changed"):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("no 'exporter readiness changed' line within 60 s")
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "python_gc_objects_collected_total",
        "python_info",
        # the audit commit child, read from /proc by the exporter
        "entra_dynamic_audit_commit_process_cpu_seconds_total",
        "entra_dynamic_audit_commit_process_resident_memory_bytes",
    ):
        assert f"\n{name}" in text, name
    assert f'revision="{revision}"' in text
    events = [orjson.loads(line)["event"] for line in lines]  # all JSON, or this raises
    assert "listening" in events
    assert changes[0]["tenant"] == "sim"
    assert changes[0]["ready"] is True
    assert len(_events(lines, "exporter readiness changed")) <= 2  # ready; maybe complete


def _events(lines: list[str], name: str) -> list[dict[str, object]]:
    return [e for e in map(orjson.loads, lines) if e["event"] == name]


async def test_disable_exporter_metrics_leaves_only_the_exporters_families(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim)
    args = ("--log.format", "json", "serve", "--config.file", str(config))
    async with (
        serving(*args, "--web.disable-exporter-metrics") as (url, _),
        aiohttp.ClientSession() as http,
        http.get(url) as r,
    ):
        text = await r.text()
    assert "entra_dynamic_exporter_build_info" in text
    assert "process_" not in text
    assert "python_" not in text.replace("python_version", "")


async def test_version_prints_the_version_and_the_checkouts_revision() -> None:
    revision = checkout_revision()
    code, out, _ = await run_cli("--version")
    assert code == 0
    assert f"(revision: {revision})" in out
    assert "entra-dg-exporter, version " in out


@pytest.mark.parametrize(
    "order",
    [
        ("--log.level", "warn", "config", "check", "--config.file", "{config}"),
        ("config", "check", "--config.file", "{config}", "--log.level", "warn"),
        ("config", "check", "{config}", "--log.format", "json", "--log.level", "WARN"),
    ],
)
async def test_logging_flags_before_or_after_the_subcommand(
    order: tuple[str, ...], tmp_path: Path
) -> None:
    config = _valid_config(tmp_path)
    code, _, err = await run_cli(*(a.format(config=config) for a in order))
    assert code == 0, err


async def test_a_bare_port_says_host_port_and_blames_the_flag(tmp_path: Path) -> None:
    config = _valid_config(tmp_path)
    code, _, err = await run_cli(
        "serve", "--config.file", str(config), "--web.listen-address", "9717"
    )
    assert code == 1
    assert err.strip().splitlines() == [
        "--web.listen-address: '9717' needs [host]:port, e.g. 127.0.0.1:9717 "
        "(or :9717 for every interface)"
    ]


async def test_a_port_in_use_fails_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    config = _valid_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await run_cli(
            "serve", "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}"
        )
    assert code == 1
    problems = [line for line in err.splitlines() if "level=" not in line]
    assert len(problems) == 1, err
    assert problems[0].startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert "--web.listen-address" in problems[0]
    assert not (tmp_path / "state.sqlite3").exists(), "the store was opened before the bind"


async def test_an_unresolvable_host_fails_in_one_line(tmp_path: Path) -> None:
    config = _valid_config(tmp_path)
    code, _, err = await run_cli(
        "serve", "--config.file", str(config), "--web.listen-address", "no-such-host.invalid:0"
    )
    assert code == 1
    problems = [line for line in err.splitlines() if "level=" not in line]
    assert len(problems) == 1, err
    assert problems[0].startswith("cannot listen on no-such-host.invalid:0: ")
    assert not (tmp_path / "state.sqlite3").exists()


async def test_invalid_tenant_fields_give_one_line_each_and_nothing_spurious(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("tenants:\n  - name: contoso\n    tenant_id: nope\n    auth: {method: none}\n")
    code, _, err = await run_cli("config", "check", "--config.file", str(bad))
    assert code == 1
    assert err.strip().splitlines() == [
        f"{bad}: tenants.contoso.tenant_id: tenant_id must be a GUID (the directory (tenant) id)"
    ]


def checkout_revision() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _valid_config(directory: Path) -> Path:
    path = directory / "config.yml"
    path.write_text(
        "tenants:\n  - name: sim\n    graph_base_url: http://127.0.0.1:1\n"
        "    auth: {method: none}\n"
        f"store:\n  path: {directory / 'state.sqlite3'}\n"
    )
    return path
