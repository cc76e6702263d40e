"""What every benchmark shares: figures over repeated runs, the processes it drives (the
simulator and the exporter, each in its own process), and reading their CPU and memory."""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from exporter.simulator.exporter_config import simulated_tenant_config, write_config_file
from tests.support.processes import ChildProcess
from tests.support.waiting import eventually

START = 1_767_600_000.0
"""2026-01-05T08:00:00Z: every simulated tenant starts here (a Monday morning)."""
START_ISO = "2026-01-05T08:00:00Z"
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


# -- figures -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Figure:
    """One measured quantity over several runs: reported as median (min-max)."""

    unit: str
    values: list[float] = field(default_factory=list)
    digits: int = 0
    """Decimals when printed."""

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def low(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def high(self) -> float:
        return max(self.values) if self.values else math.nan

    def text(self) -> str:
        if not self.values:
            return "not measured"
        unit = f" {self.unit}" if self.unit else ""
        if len(self.values) == 1:
            return f"{_number(self.median, self.digits)}{unit}"
        return (
            f"{_number(self.median, self.digits)}{unit} "
            f"({_number(self.low, self.digits)}-{_number(self.high, self.digits)}, "
            f"{len(self.values)} runs)"
        )


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


@dataclass(slots=True)
class Row:
    what: str
    value: str
    target: str = ""
    met: bool | None = None
    """None: the row has no target."""


@dataclass(slots=True)
class Section:
    key: str
    title: str
    how: str
    """Markdown: what was run, and why the figure measures the exporter."""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(
        self, what: str, value: Figure | str, target: str = "", met: bool | None = None
    ) -> None:
        self.rows.append(
            Row(what, value.text() if isinstance(value, Figure) else value, target, met)
        )


# -- processes ---------------------------------------------------------------------------------


def console_script() -> str:
    """The `entra-dg-exporter` script next to this interpreter."""
    return str(Path(sys.executable).with_name("entra-dg-exporter"))


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def usage(pid: int) -> Usage:
    """CPU time (user + system, all threads) and resident memory of a process and its live
    descendants (the exporter's audit commit process), from /proc. Peak RSS is the sum of each
    process's own peak."""
    cpu = 0.0
    rss = peak = 0
    for member in _process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{member}/status").read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a child that ended meanwhile
        cpu += (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
        for line in status:
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1]) * 1024
    return Usage(cpu, rss, peak)


def _process_tree(pid: int) -> list[int]:
    found = [pid]
    for member in found:
        for task in Path(f"/proc/{member}/task").glob("*/children"):
            try:
                found += [int(child) for child in task.read_text().split()]
            except FileNotFoundError:
                continue
    return found


class _Child(ChildProcess):
    """A benchmark's child: its CPU and RSS (the whole process tree) can be read."""

    def __init__(self, command: Sequence[str], log_path: Path, env: Mapping[str, str]) -> None:
        super().__init__(log_path.stem, command, log_path, env=env)

    def usage(self) -> Usage:
        return usage(self.pid)


class SimulatorProcess(_Child):
    """`entra-dg-exporter simulate` on 127.0.0.1:0 in its own process, so that serving pages
    never takes CPU (or the GIL) from the exporter being measured."""

    def __init__(
        self,
        scenario: Mapping[str, Any],
        directory: Path,
        *,
        name: str = "simulator",
        throttle: bool = False,
        speed: float = 0.0,
        start: str = START_ISO,
        history_cache_mib: float = 0.0,
    ) -> None:
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(dict(scenario)), encoding="utf-8")
        command = [
            console_script(),
            "simulate",
            "--listen=127.0.0.1:0",
            f"--scenario={path}",
            f"--speed={speed:g}",
            "--seed=1",
            f"--start={start}",
            "--throttle" if throttle else "--no-throttle",
            "--no-operator-actions",
            f"--history-cache-mib={history_cache_mib:g}",
        ]
        super().__init__(command, directory / f"{name}.log", {})
        match = self.wait_for_line(r" at (http://\S+)$", within=600)
        self.ready_seconds = time.perf_counter() - self.started
        self.base_url = match.group(1)
        self.graph_url = self.base_url + "/v1.0"

    async def get(self, http: aiohttp.ClientSession, path: str, **params: Any) -> Any:
        async with http.get(self.base_url + path, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def post(self, http: aiohttp.ClientSession, path: str, body: Any) -> Any:
        async with http.post(self.base_url + path, json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def put(self, http: aiohttp.ClientSession, path: str, body: Any) -> Any:
        async with http.put(self.base_url + path, json=body) as response:
            response.raise_for_status()
            return await response.json()


class ExporterProcess(_Child):
    """`entra-dg-exporter serve` in its own process (its RSS and CPU are its own)."""

    def __init__(self, config_path: Path, directory: Path, *, name: str = "exporter") -> None:
        command = [
            console_script(),
            "serve",
            f"--config.file={config_path}",
            "--web.listen-address=127.0.0.1:0",
        ]
        super().__init__(command, directory / f"{name}.log", {"ENTRA_DG_LOG_LEVEL": "warning"})
        self._url: str | None = None

    def url(self, timeout: float = 120) -> str:
        """The /metrics URL, once the exporter says where it serves."""
        if self._url is None:
            match = self.wait_for_line(r"Serving metrics at (http://\S+)$", within=timeout)
            self._url = match.group(1)
        return self._url


def exporter_config(
    path: Path,
    graph_url: str,
    *,
    tenant: str = "sim",
    polling: Mapping[str, Any] | None = None,
    critical_groups: Sequence[str] = (),
    store: Path | None = None,
    thresholds: Mapping[str, Any] | None = None,
) -> Path:
    """A config file for one simulated tenant: static token, the simulator's clock."""
    return write_config_file(
        path,
        simulated_tenant_config(
            graph_url,
            store or path.parent / "state.sqlite3",
            token=TOKEN,
            tenant=tenant,
            critical_groups=critical_groups,
            polling=polling or {},
            thresholds=thresholds or {},
        ),
    )


# -- Prometheus text -----------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def samples(text: str, name: str) -> dict[str, float]:
    """label text -> value of every sample of one metric name in an exposition."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match and match.group(1) == name:
            found[match.group(2) or ""] = float(match.group(3))
    return found


# -- the exporter in this process -----------------------------------------------------------------


def fresh_directory(directory: Path) -> None:
    """An empty directory (a run never reads the last run's store)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


@dataclass(frozen=True, slots=True)
class Backfill:
    events: int
    """Counted by the store (every Series, and duplicates)."""
    requests: dict[str, int]
    """Audit-log requests by HTTP status code."""
    seconds: float
    cpu: float
    """CPU time of this process (all threads) meanwhile."""
    commit_cpu: float
    """CPU time of the exporter's audit commit process (0 when it commits on a thread)."""
    simulator_cpu: float


async def backfill_in_process(
    sim: SimulatorProcess,
    directory: Path,
    polling: Mapping[str, Any],
    *,
    tenant: str = "sim",
    query_mode: str | None = None,
) -> Backfill:
    """The real `Exporter` (store, tenant runner, every poller, snapshots) in this process,
    from `start()` until its audit poller has caught up with the simulator's clock.
    `query_mode`: an audit query mode (`exporter.domain.audit_query`) stored beforehand, as an
    exporter that stepped down in an earlier run finds it."""
    from exporter.config.loading import load_config
    from exporter.domain.audit_query import AuditQueryMode
    from exporter.domain.events import Series
    from exporter.runtime.service import Exporter
    from exporter.store.database import Store

    fresh_directory(directory)
    config = load_config(
        exporter_config(
            directory / "config.yml",
            sim.base_url,
            tenant=tenant,
            polling={"audit_interval": "1h", "groups_interval": "1h", **polling},
            # Freshness thresholds longer than the polls (config refuses shorter ones).
            thresholds={"collector_max_age": "2h", "watermark_max_age": "2h"},
        )
    )
    if query_mode is not None:
        store = Store(config.store.path)
        await store.open()
        try:
            await store.call(store.set_audit_query_mode, tenant, AuditQueryMode(query_mode), 0.0)
        finally:
            await store.close()
    exporter = Exporter(config)
    sim_cpu = sim.usage().cpu_seconds
    cpu = time.process_time()
    started = time.perf_counter()
    await exporter.start()
    try:
        runner = exporter.runners[0]

        async def caught_up() -> bool:
            audit = runner.audit
            return audit is not None and audit.caught_up

        await eventually(caught_up, within=3600, what="the backfill", interval=0.01)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        sim_cpu = sim.usage().cpu_seconds - sim_cpu
        commit_pid = exporter.commits.pid if exporter.commits is not None else None
        # The child started with the exporter: all its CPU time is this backfill's.
        commit_cpu = usage(commit_pid).cpu_seconds if commit_pid is not None else 0.0
        totals = await exporter.store.call(exporter.store.totals, tenant)
        graph = runner.graph
        requests = {
            code: n
            for (endpoint, code), n in (graph.requests.items() if graph else ())
            if endpoint == "directory_audits"
        }
    finally:
        await exporter.stop()
    counted = {*(s.value for s in Series), "duplicate"}
    events = sum(n for kind, n in totals.items() if kind in counted)
    return Backfill(events, requests, seconds, cpu, commit_cpu, sim_cpu)
