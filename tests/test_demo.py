"""The two commands a newcomer runs: `demo` (its real /metrics pass `promtool check metrics`)
and `serve` (configuration errors are one line each, exit 1)."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import httpx
from click.testing import CliRunner

from exporter.cli.main import cli
from tests.support.processes import start_cli
from tests.support.waiting import eventually
from tests.test_collector import check_metrics
from tests.test_resilience import sample

FIXTURES = Path(__file__).parent / "fixtures" / "config"


async def test_demo_serves_metrics_that_promtool_accepts() -> None:
    process = await start_cli(
        "demo", "--web.listen-address", "127.0.0.1:0", stderr=asyncio.subprocess.DEVNULL
    )
    assert process.stdout is not None
    try:
        printed: dict[str, str] = {}
        while "Resume" not in printed:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert line, "the demo exited before printing its URLs"
            if match := re.match(r"(Metrics|Resume):\s+(\S+)", line):
                printed[match.group(1)] = match.group(2)
        metrics_url = printed["Metrics"]
        async with httpx.AsyncClient() as web:

            async def backfilled() -> bool:
                text = (await web.get(metrics_url)).text
                ratio = sample(text, "entra_dynamic_audit_backfill_progress_ratio", {})
                return ratio == 1.0

            await eventually(backfilled, within=120, what="the demo's backfill")
            ready = await web.get(metrics_url.replace("/metrics", "/readyz"))
            assert ready.status_code == 200, ready.text
            resume = await web.get(printed["Resume"])
            assert resume.status_code == 200, resume.text
            tenants = [t["tenant"] for t in resume.json()["tenants"]]
            assert tenants == ["demo"], "the printed readiness API answers for the demo tenant"
            exposition = (await web.get(metrics_url)).content
        text = exposition.decode()
        for family in (
            "entra_dynamic_groups",
            "entra_dynamic_membership_changes_total",
            "entra_dynamic_object_changes_last_hour",
            # The demo's paused groups were parked before any audit event: their state is
            # exported, their pause time is unknown (no paused-since series, #13).
            "entra_dynamic_group_paused",
            "entra_dynamic_collector_success",
            "entra_dynamic_audit_watermark_timestamp_seconds",
            "entra_dynamic_graph_requests_total",
            "entra_dynamic_group_processing_status",
            "entra_dynamic_exporter_build_info",
        ):
            assert f"\n{family}{{" in text, f"{family} missing from the demo's /metrics"
        assert (
            sample(text, "entra_dynamic_membership_changes_total", {"operation": "add"}) or 0
        ) > 0
        check_metrics(exposition)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        # SIGTERM is a graceful stop: exit status 0, within the shutdown timeout.
        exit_status = await asyncio.wait_for(process.wait(), 30)
    assert exit_status == 0


def test_serve_reports_config_errors_one_per_line() -> None:
    bad = FIXTURES / "invalid-unknown-key.yml"
    result = CliRunner().invoke(cli, ["serve", "--config.file", str(bad)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines
    assert all(line.startswith(str(bad)) for line in lines), lines
    result = CliRunner().invoke(
        cli,
        ["serve", "--config.file", str(FIXTURES / "valid.yml"), "--web.listen-address", "nope"],
        env={"CONTOSO_CLIENT_SECRET": "x"},
    )
    assert result.exit_code == 1
    assert result.output.startswith("--web.listen-address: ")  # the flag, not the file
