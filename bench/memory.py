"""Memory: the exporter's RSS with 30 days of history in its store, then after a further week.

A tenant at Entra's limit of 15,000 dynamic groups changes 20,000 memberships an hour. Fetching
and classifying 14.4 million events would time the simulator, not the exporter's memory, so the
history is written straight into the exporter's store by the store's own code
(`Store.commit_audit_page`, 1,000-event pages as the audit poller commits them, pruning as it
prunes): membership changes spread uniformly over the simulator's groups (the most per-group rows
a given volume can make) and users, with the audit watermark at the simulator's clock; the groups
are listed in the store at the history's start, as by an exporter that ran that month (otherwise
every change would wait for a listing: the held-changes case, measured apart). Then the
exporter runs as its own process (`entra-dg-exporter serve`) on that store against the
simulator's tenant, lists every group, catches up, and is scraped; its RSS (and peak) is read
from /proc, summed over its two processes (the exporter and its audit commit process). A
further simulated week is written the same way (the store prunes what ages out) and the
exporter is started again on it: flat means the second figure is not above the first.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    MIB,
    START,
    ExporterProcess,
    Figure,
    Section,
    SimulatorProcess,
    exporter_config,
    fresh_directory,
    samples,
)
from bench.large_tenant import scrape_text
from exporter.domain.events import Series
from exporter.domain.records import ClassifiedEvent
from exporter.ingest.audit_poller import SEEN_MARGIN
from exporter.store.database import PageBatch, Store
from tests.listing import list_dynamic_groups
from tests.support.waiting import eventually

TENANT = "sim"
LATENESS = 1800.0
PAGE = 1000
RSS_LIMIT_MIB = 250.0


@dataclass(frozen=True, slots=True)
class MemorySize:
    groups: int
    users: int
    changes_per_hour: int
    days: float
    further_days: float
    scrapes: int
    settle_seconds: float
    """Waited once synced: a snapshot refresh (every ~5 s) with everything in it."""


FULL = MemorySize(15_000, 50_000, 20_000, 30, 7, 30, 6.0)
SMOKE = MemorySize(200, 1_000, 2_000, 1, 0.25, 2, 0.0)


def scenario(size: MemorySize, start_iso: str) -> dict[str, Any]:
    return {
        "name": "bench-memory",
        "start": start_iso,
        "tenant": {
            "users": size.users,
            "devices": 1_000,
            "dynamic_groups": size.groups - 10,
            "administrative_units": 10,
            "static_groups": 50,
            "critical_groups": 10,
            "paused_groups": size.groups // 10,
        },
        "history": {"days": 0},
        "load": {"user_updates_per_hour": 500, "device_updates_per_hour": 100},
    }


@dataclass(slots=True)
class HistoryWriter:
    """Writes synthetic membership changes into the store, page by page, in time order."""

    store: Store
    group_ids: Sequence[str]
    user_ids: Sequence[str]
    changes_per_hour: int
    backfill_start: float
    rng: random.Random
    written: int = 0

    def write(self, start: float, end: float) -> float:
        """Events in [start, end); returns the CPU seconds it took."""
        cpu = time.process_time()
        step = 3600.0 / self.changes_per_hour
        groups, users, rng = self.group_ids, self.user_ids, self.rng
        series = (Series.DYNAMIC_ADD, Series.DYNAMIC_REMOVE)
        moment = start
        next_prune = start + 3600.0
        while moment < end:
            events = []
            for _ in range(PAGE):
                if moment >= end:
                    break
                self.written += 1
                events.append(
                    ClassifiedEvent(
                        f"bench-{self.written:012d}",
                        moment,
                        series[self.written & 1],
                        rng.choice(groups),
                        rng.choice(users),
                        None,
                    )
                )
                moment += step
            watermark = events[-1].time
            self.store.commit_audit_page(
                TENANT,
                PageBatch(
                    events=events,
                    malformed=(),
                    watermark=watermark,
                    next_start=watermark - LATENESS,
                    backfill_start=self.backfill_start,
                    now=watermark,
                    malformed_time=watermark,
                    coverage_start=self.backfill_start,
                ),
            )
            if moment >= next_prune:
                self.store.prune(TENANT, moment, moment - LATENESS - SEEN_MARGIN)
                next_prune += 3600.0
        self.store.prune(TENANT, end, end - LATENESS - SEEN_MARGIN)
        return time.process_time() - cpu


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True, slots=True)
class Reading:
    rss: float
    peak: float
    after_scrapes: float
    sync_seconds: float


def _simulator(size: MemorySize, directory: Path, now: float, name: str) -> SimulatorProcess:
    return SimulatorProcess(
        scenario(size, _iso(now)), directory, name=f"simulator-{name}", speed=1.0, start=_iso(now)
    )


async def _measure(
    size: MemorySize, sim: SimulatorProcess, directory: Path, store_path: Path, name: str
) -> Reading:
    """The exporter on the store against the simulator: synced, scraped, measured."""
    try:
        config = exporter_config(
            directory / f"config-{name}.yml",
            sim.base_url,
            tenant=TENANT,
            store=store_path,
            polling={"backfill_days": 30, "audit_requests_per_10s": 100_000},
        )
        exporter = ExporterProcess(config, directory, name=f"exporter-{name}")
        started = time.perf_counter()
        try:
            url = exporter.url()
            paused = size.groups // 10

            async def synced() -> bool:
                async with aiohttp.ClientSession() as http:
                    text = await scrape_text(http, url)
                if text is None:
                    return False
                groups = samples(text, "entra_dynamic_groups")
                progress = samples(text, "entra_dynamic_audit_backfill_progress_ratio")
                return (
                    sum(v for labels, v in groups.items() if 'state="paused"' in labels) >= paused
                    and bool(progress)
                    and min(progress.values()) >= 1.0
                )

            await eventually(
                synced, within=900, what=f"the exporter ({name}) to sync", interval=0.5
            )
            sync_seconds = time.perf_counter() - started
            await asyncio.sleep(size.settle_seconds)
            rss = exporter.usage().rss_bytes
            async with aiohttp.ClientSession() as http:
                for _ in range(size.scrapes):
                    if await scrape_text(http, url) is None:
                        raise RuntimeError(f"/metrics of the exporter ({name}) failed")
            final = exporter.usage()
            return Reading(
                rss / MIB, final.peak_rss_bytes / MIB, final.rss_bytes / MIB, sync_seconds
            )
        finally:
            exporter.stop()
    finally:
        sim.stop()


async def run(size: MemorySize, workdir: Path) -> Section:
    section = Section(
        "memory",
        f"Memory: {size.days:g} days at {size.changes_per_hour:,} membership changes per hour, "
        f"{size.groups:,} groups",
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    )
    directory = workdir / "memory"
    fresh_directory(directory)
    store_path = directory / "state.sqlite3"
    sim = _simulator(size, directory, START, "month")
    # The simulator's group ids, so that the exporter finds a group for every per-group count.
    async with aiohttp.ClientSession() as http:
        listed = await sim.get(http, "/_sim/groups", dynamic="true")
    group_ids = [g["id"] for g in listed["groups"]]
    user_ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(size.users)]
    history_start = START - size.days * 86400
    store = Store(store_path)
    try:
        await store.open()
        writer = HistoryWriter(
            store, group_ids, user_ids, size.changes_per_hour, history_start, random.Random(1)
        )
        await list_dynamic_groups(store, TENANT, group_ids, at=history_start)
        write_cpu = await store.run(lambda: writer.write(history_start, START))
        first_events = writer.written
    except BaseException:
        sim.stop()
        raise
    finally:
        await store.close()
    first = await _measure(size, sim, directory, store_path, "month")
    db_month = store_path.stat().st_size / MIB
    later = START + size.further_days * 86400
    store = Store(store_path)
    await store.open()
    writer.store = store
    try:
        write_cpu += await store.run(lambda: writer.write(START, later))
    finally:
        await store.close()
    sim = _simulator(size, directory, later, "week-later")
    second = await _measure(size, sim, directory, store_path, "week-later")
    db_week = store_path.stat().st_size / MIB

    def mib(value: float) -> Figure:
        figure = Figure("MiB", digits=1)
        figure.add(value)
        return figure

    section.row(
        "history written into the store",
        f"{first_events:,} events over {size.days:g} days, then "
        f"{writer.written - first_events:,} over {size.further_days:g} more "
        f"({writer.written / write_cpu:,.0f} events/s of store CPU); store file "
        f"{db_month:,.0f} MiB, then {db_week:,.0f} MiB",
    )
    section.row(
        f"RSS after {size.days:g} days, synced",
        mib(first.rss),
        "at most 250 MiB",
        first.rss <= RSS_LIMIT_MIB,
    )
    section.row(
        f"  after {size.scrapes} scrapes / peak",
        f"{first.after_scrapes:.1f} / {first.peak:.1f} MiB",
    )
    section.row(
        f"RSS after {size.further_days:g} more days, synced",
        mib(second.rss),
        "at most 250 MiB, flat",
        second.rss <= RSS_LIMIT_MIB and second.rss <= first.rss * 1.1,
    )
    section.row(
        f"  after {size.scrapes} scrapes / peak",
        f"{second.after_scrapes:.1f} / {second.peak:.1f} MiB",
    )
    section.row(
        "exporter start to synced (month / week later)",
        f"{first.sync_seconds:.1f} s / {second.sync_seconds:.1f} s",
    )
    return section
