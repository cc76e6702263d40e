"""Ingest: an audit-log backfill through the whole exporter pipeline, against a bare client.

The simulator runs in its own process with a cache of rendered history, and is warmed up by a
first pass over the same pages, so that serving a page costs it little CPU (its busy share is
reported). Then, alternately, in the same run:

* the bare client: aiohttp GET of each page, `orjson.loads`, count the events, follow the
  nextLink (the ceiling of what any Python client could do with these pages here);
* the exporter: the real `Exporter` with its default settings (msgraph-sdk transport, raw
  bytes, msgspec, read, classify; the pages committed to SQLite by its audit commit process;
  the snapshot refreshes and directory pollers alongside), from `start()` until its audit
  poller has caught up with the simulated clock. Its CPU is both processes'.

Both read every event of the same day of the same log with the same `$filter`, each window
oldest first, but not in the same windows: the bare client reads 6 h windows from the oldest
(the order the exporter read in before the present-first backfill), the exporter reads the
current hour and the six before it first, then the baseline's hours, then the rest newest to
oldest (`exporter.domain.backfill_order`): a window or two more, each ending in a partly empty
page.
Each pass starts after a full garbage collection.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yarl

from bench.common import AUTH, START, Figure, Section, SimulatorProcess, backfill_in_process
from exporter.config.models import Cloud
from exporter.graph.client import AUDIT_PAGE_SIZE, GraphClient
from exporter.graph.clouds import CLOUDS
from exporter.ingest.audit_poller import BACKFILL_CHUNK

LATENESS = 1800.0


@dataclass(frozen=True, slots=True)
class IngestSize:
    users: int
    devices: int
    groups: int
    history_days: float
    changes_per_hour: int
    user_updates_per_hour: int
    device_updates_per_hour: int
    cache_mib: float
    minimum_events: int


FULL = IngestSize(20_000, 5_000, 1_000, 1.0, 36_000, 10_000, 3_000, 2_000, 500_000)
SMOKE = IngestSize(2_000, 500, 60, 0.1, 3_000, 800, 200, 64, 0)


def scenario(size: IngestSize) -> dict[str, Any]:
    return {
        "name": "bench-ingest",
        "tenant": {
            "users": size.users,
            "devices": size.devices,
            "dynamic_groups": size.groups - 10,
            "administrative_units": 10,
            "static_groups": 50,
            "critical_groups": 10,
        },
        "history": {"days": size.history_days, "dynamic_changes_per_hour": size.changes_per_hour},
        "load": {
            "user_updates_per_hour": size.user_updates_per_hour,
            "device_updates_per_hour": size.device_updates_per_hour,
        },
    }


def windows(now: float, backfill: float) -> list[tuple[float, float]]:
    """The bare client's windows: 6 h from the oldest, the order the audit poller read a
    backfill in before it read the present first (`exporter.domain.backfill_order`)."""
    found = []
    start = now - backfill
    while True:
        end = min(start + BACKFILL_CHUNK, now)
        found.append((start, end))
        if end >= now:
            return found
        start = max(start, min(end, now - LATENESS))


@dataclass(frozen=True, slots=True)
class Pass:
    events: int
    pages: int
    seconds: float
    simulator_cpu: float
    client_cpu: float
    commit_cpu: float = 0.0
    """The exporter's audit commit process (the bare client has none)."""


async def bare_client(sim: SimulatorProcess, backfill: float) -> Pass:
    """aiohttp + orjson: fetch each page, parse it, count its events, follow its nextLink."""
    graph = GraphClient(root_url=sim.base_url, credential=None, scopes=[CLOUDS[Cloud.GLOBAL].scope])
    filters = [graph.audit_filter(start, end) for start, end in windows(START, backfill)]
    await graph.close()
    url = yarl.URL(sim.graph_url + "/auditLogs/directoryAudits")
    events = pages = 0
    sim_cpu = sim.usage().cpu_seconds
    cpu = time.process_time()
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers=AUTH) as http:
        for audit_filter in filters:
            query = {
                "$filter": audit_filter,
                "$orderby": "activityDateTime asc",
                "$top": str(AUDIT_PAGE_SIZE),
            }
            next_url: yarl.URL | None = url.with_query(query)
            while next_url is not None:
                async with http.get(next_url) as response:
                    response.raise_for_status()
                    body = await response.read()
                document = orjson.loads(body)
                events += len(document["value"])
                pages += 1
                link = document.get("@odata.nextLink")
                next_url = yarl.URL(link, encoded=True) if link else None
    return Pass(
        events,
        pages,
        time.perf_counter() - started,
        sim.usage().cpu_seconds - sim_cpu,
        time.process_time() - cpu,
    )


async def exporter_backfill(sim: SimulatorProcess, directory: Path, backfill_days: float) -> Pass:
    result = await backfill_in_process(
        sim,
        directory,
        {
            "backfill_days": backfill_days,
            "audit_requests_per_10s": 100_000,  # the simulator does not throttle here
            "lateness_allowance": f"{LATENESS:g}s",
        },
    )
    return Pass(
        result.events,
        result.requests.get("200", 0),
        result.seconds,
        result.simulator_cpu,
        result.cpu,
        result.commit_cpu,
    )


async def run(size: IngestSize, runs: int, workdir: Path) -> Section:
    section = Section(
        "ingest",
        "Ingest: audit-log backfill through the whole pipeline",
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    )
    backfill_days = size.history_days
    sim = SimulatorProcess(scenario(size), workdir, history_cache_mib=size.cache_mib)
    try:
        warm = await bare_client(sim, backfill_days * 86400)
        section.row(
            "simulator start-up (tenant build) / first pass (rendering history on demand)",
            f"{sim.ready_seconds:.1f} s / {warm.events:,} events in {warm.pages} pages, "
            f"{warm.seconds:.1f} s ({warm.events / warm.seconds:,.0f} events/s)",
        )
        rate_exporter = Figure("events/s")
        rate_bare = Figure("events/s")
        ratio = Figure("", digits=2)
        busy_exporter = Figure("%")
        busy_bare = Figure("%")
        cores = Figure("cores", digits=2)
        per_event = Figure("µs CPU/event", digits=1)
        per_event_main = Figure("µs CPU/event", digits=1)
        per_event_commit = Figure("µs CPU/event", digits=1)
        events = 0
        for run_index in range(runs):
            # Each pass starts from a collected heap, so that neither pays for the garbage of
            # the other (the bare client's rate is sensitive to it: bench/PROFILES.md).
            gc.collect()
            bare = await bare_client(sim, backfill_days * 86400)
            gc.collect()
            ingested = await exporter_backfill(sim, workdir / f"ingest-{run_index}", backfill_days)
            if ingested.events != bare.events:
                section.notes.append(
                    f"run {run_index + 1}: the exporter counted {ingested.events:,} events, the "
                    f"bare client {bare.events:,}"
                )
            events = ingested.events
            rate_exporter.add(ingested.events / ingested.seconds)
            rate_bare.add(bare.events / bare.seconds)
            ratio.add((ingested.events / ingested.seconds) / (bare.events / bare.seconds))
            busy_exporter.add(100 * ingested.simulator_cpu / ingested.seconds)
            busy_bare.add(100 * bare.simulator_cpu / bare.seconds)
            exporter_cpu = ingested.client_cpu + ingested.commit_cpu
            cores.add(exporter_cpu / ingested.seconds)
            per_event.add(1e6 * exporter_cpu / ingested.events)
            per_event_main.add(1e6 * ingested.client_cpu / ingested.events)
            per_event_commit.add(1e6 * ingested.commit_cpu / ingested.events)
        section.row(
            "events per backfill (1,000 per page)",
            f"{events:,} ({backfill_days:g} day of history)",
            f"at least {size.minimum_events:,}",
            events >= size.minimum_events,
        )
        section.row(
            "exporter: whole pipeline",
            rate_exporter,
            "at least 25,000 events/s",
            rate_exporter.median >= 25_000,
        )
        section.row("bare aiohttp + orjson, same pages", rate_bare)
        section.row("ratio exporter / bare (per run)", ratio, "at least 0.5", ratio.median >= 0.5)
        section.row("exporter CPU per event, both processes", per_event)
        section.row("of which the exporter's process (all threads)", per_event_main)
        section.row("of which the audit commit process", per_event_commit)
        section.row(
            "exporter events per CPU second (its rate on one core)",
            f"{1e6 / per_event.median:,.0f} events/s",
        )
        section.row("exporter CPU use during its backfill (cores, both processes)", cores)
        section.row("simulator busy during the exporter's backfill", busy_exporter)
        section.row("simulator busy during the bare client's pass", busy_bare)
    finally:
        sim.stop()
    return section


async def _main() -> None:  # pragma: no cover - manual use
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as directory:
        section = await run(FULL, 1, Path(directory))
        for row in section.rows:
            print(f"{row.what}: {row.value}")


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
