"""`python -m bench`: every benchmark of the exporter against the simulator on 127.0.0.1, and
bench/RESULTS.md.

    .venv/bin/python -m bench                  # full size, 3 runs each (~20 min on 2 cores)
    .venv/bin/python -m bench --smoke          # tiny sizes, one run: proves they still run
    .venv/bin/python -m bench --only ingest,budget --output /tmp/results.md
    .venv/bin/python -m bench --only fleet --fleet-full  # 100 tenants, 30 days (~1 h)
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import click

from bench import (
    budget,
    coldstart,
    detection,
    fleet,
    fresh_install,
    impact,
    ingest,
    large_tenant,
    memory,
    ops,
    probe_drill,
    scrape,
    time_to_signal,
)
from bench.common import MIB, Section

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "ingest",
    "budget",
    "scrape",
    "cold_start",
    "memory",
    "time_to_signal",
    "ops",
    "impact",
    "probe_drill",
    "fleet",
    "fresh_install",
    "detection",
)
PACKAGES = (
    "aiohttp",
    "httpx",
    "msgraph-sdk",
    "msgspec",
    "orjson",
    "prometheus-client",
    "structlog",
)


@dataclass(frozen=True, slots=True)
class Plan:
    smoke: bool
    runs: int
    scrape_seconds: float
    fleet_full: bool = False
    """The fleet at full size (30 days of history, a 1.5M-event tenant) instead of scaled."""


async def run_all(plan: Plan, only: Sequence[str], workdir: Path) -> list[Section]:
    sections: list[Section] = []

    def wanted(key: str) -> bool:
        return key in only

    async def step(key: str, benchmark: Callable[[], Awaitable[Section]]) -> None:
        if not wanted(key):
            return
        started = time.perf_counter()
        click.echo(f"{time.strftime('%H:%M:%S')} {key} ...", err=True)
        section = await benchmark()
        section.notes.append(f"took {time.perf_counter() - started:.0f} s of real time")
        sections.append(section)
        click.echo(f"{time.strftime('%H:%M:%S')} {key} done", err=True)

    runs = plan.runs
    await step(
        "ingest",
        lambda: ingest.run(ingest.SMOKE if plan.smoke else ingest.FULL, runs, workdir),
    )
    await step(
        "budget",
        lambda: budget.run(budget.SMOKE if plan.smoke else budget.FULL, runs, workdir),
    )
    if wanted("scrape") or wanted("cold_start"):
        size = large_tenant.SMOKE if plan.smoke else large_tenant.FULL
        click.echo(f"{time.strftime('%H:%M:%S')} syncing {size.groups:,} groups ...", err=True)
        async with large_tenant.running_fleet(size, workdir) as tenant:
            await step("scrape", lambda: scrape.run(tenant, runs, plan.scrape_seconds))
            await step("cold_start", lambda: coldstart.run(tenant, runs))
    await step(
        "memory",
        lambda: memory.run(memory.SMOKE if plan.smoke else memory.FULL, workdir),
    )
    await step(
        "time_to_signal",
        lambda: time_to_signal.run(
            time_to_signal.SMOKE if plan.smoke else time_to_signal.FULL, runs, workdir
        ),
    )
    await step("ops", lambda: ops.run(ops.SMOKE if plan.smoke else ops.FULL, runs))
    await step(
        "impact",
        lambda: impact.run(impact.SMOKE if plan.smoke else impact.FULL, runs, workdir),
    )
    await step(
        "probe_drill",
        lambda: probe_drill.run(probe_drill.SMOKE if plan.smoke else probe_drill.FULL, workdir),
    )
    await step(
        "fleet",
        lambda: fleet.run(
            fleet.SMOKE if plan.smoke else fleet.FULL if plan.fleet_full else fleet.SCALED,
            workdir,
        ),
    )
    await step(
        "fresh_install",
        lambda: fresh_install.run(fresh_install.SMOKE if plan.smoke else fresh_install.FULL),
    )
    await step("detection", lambda: detection.run(plan.smoke, workdir))
    return sections


# -- RESULTS.md ------------------------------------------------------------------------------------


def _command(*args: str) -> str:
    try:
        return subprocess.run(
            list(args), capture_output=True, text=True, check=True, cwd=HERE
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) * 1024 / MIB / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def render(
    sections: Sequence[Section], *, plan: Plan, load_before: str, load_after: str, seconds: float
) -> str:
    commit = _command("git", "rev-parse", "--short", "HEAD")
    dirty = _command("git", "status", "--porcelain", "--untracked-files=no")
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m bench`"
        + (" --smoke (tiny sizes: these figures mean nothing)" if plan.smoke else "")
        + f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{plan.runs} run(s) per figure unless a row says otherwise, "
        f"{seconds / 60:.0f} min in all. Figures are median (min-max, runs).",
        "",
        "## Machine",
        "",
        f"* CPU: {_cpu_model()}, {os.cpu_count()} logical cores; memory {_memory_total()}",
        f"* OS: {platform.platform()}",
        f"* Python {platform.python_version()} ({sys.implementation.name})",
        "* " + ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
        f"* exporter commit {commit}" + (" (with uncommitted changes)" if dirty else ""),
        f"* load average (1/5/15 min) before: {load_before}; after: {load_after}. The machine is "
        "shared with other engineers' test runs: compare the ratios within one run (both sides "
        "measured alternately under the same load) rather than absolute rates across runs.",
        "",
        "## Summary",
        "",
        "| benchmark | figure | target | met |",
        "|---|---|---|---|",
    ]
    for section in sections:
        for row in section.rows:
            if row.target:
                met = "yes" if row.met else "**no**"
                lines.append(f"| {section.key} | {row.what}: {row.value} | {row.target} | {met} |")
    for section in sections:
        lines += ["", f"## {section.title}", "", section.how, "", "| | |", "|---|---|"]
        for row in section.rows:
            target = f" (target: {row.target})" if row.target else ""
            lines.append(f"| {row.what} | {row.value}{target} |")
        if section.notes:
            lines.append("")
            lines += [f"* {note}" for note in section.notes]
    profiles = HERE / "PROFILES.md"
    if profiles.exists():
        lines += ["", profiles.read_text(encoding="utf-8").strip()]
    return "\n".join(lines) + "\n"


@click.command(help=__doc__)
@click.option("--smoke", is_flag=True, help="Tiny sizes, one run (CI: proves they still run).")
@click.option("--runs", type=click.IntRange(1), default=None, help="Runs per figure (3).")
@click.option(
    "--only",
    default=",".join(BENCHMARKS),
    show_default=True,
    help="Comma-separated benchmarks to run.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=HERE / "RESULTS.md",
    help="Where to write the results (default: bench/RESULTS.md).",
)
@click.option(
    "--fleet-full",
    is_flag=True,
    help="The fleet section at full size: 100 tenants, 30 days, one at 1.5M events (~1 h).",
)
def main(smoke: bool, runs: int | None, only: str, output: Path, fleet_full: bool) -> None:
    chosen = [key.strip() for key in only.split(",") if key.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        raise click.BadParameter(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
            param_hint="--only",
        )
    plan = Plan(smoke, runs or (1 if smoke else 3), 2.0 if smoke else 10.0, fleet_full)
    load_before = _load()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="entra-dg-bench-") as workdir:
        sections = asyncio.run(run_all(plan, chosen, Path(workdir)))
    text = render(
        sections,
        plan=plan,
        load_before=load_before,
        load_after=_load(),
        seconds=time.perf_counter() - started,
    )
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)


if __name__ == "__main__":
    main()
