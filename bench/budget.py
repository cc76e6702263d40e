"""Graph budget: a backfill against the audit log's 5 requests per 10 s.

The simulator (its own process) enforces Graph's limit on a sliding 10 s window of real time
and answers 429 with an exact Retry-After to anything over it. The real `Exporter` runs with
its default limiter (`polling.audit_requests_per_10s: 5`) and backfills a week of history
from `start()` until it has caught up. Graph allows 0.5 requests/s, so fetching N pages takes
at least N / 0.5 s: the figure is the backfill's time over that minimum, and the 429s it met
(counted by the exporter and by the simulator).

Then the page cost of each audit query mode, measured: a second simulator writes a day of live
events, with other directory activity (application, service principal and policy management)
beside what the exporter ingests, and the exporter backfills that day once per mode
(`exporter.domain.audit_query`: `narrow` asks for the ingested activities, `time_ordered` and
`time_only` for the time range only, filtering here), the mode stored beforehand as an exporter
that stepped down finds it: requests per hour of event time and per 1,000 events counted.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import Figure, Section, SimulatorProcess, backfill_in_process
from exporter.domain.events import INGESTED_ACTIVITIES

GRAPH_REQUESTS_PER_SECOND = 0.5
THROTTLE_WINDOW_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class BudgetSize:
    days: float
    changes_per_hour: int
    user_updates_per_hour: int
    device_updates_per_hour: int
    mode_days: float = 1.0
    """Event time each per-mode backfill reads."""
    mode_pause: bool = True
    """Wait out the throttle window between the per-mode backfills (smoke runs send too few
    requests to need it)."""


FULL = BudgetSize(7, 150, 80, 20)
"""250 events an hour, ~42,000 over the week: two pages per 6-hour backfill window, ~56 pages,
so that a run takes under two minutes (the ratio to the minimum does not depend on the volume,
only on the limiter and on how pages follow each other)."""
SMOKE = BudgetSize(0.5, 60, 30, 10, mode_days=1 / 24, mode_pause=False)


def scenario(size: BudgetSize) -> dict[str, Any]:
    return {
        "name": "bench-budget",
        "tenant": {
            "users": 5_000,
            "devices": 1_000,
            "dynamic_groups": 200,
            "administrative_units": 5,
            "static_groups": 20,
            "critical_groups": 5,
        },
        "history": {"days": size.days, "dynamic_changes_per_hour": size.changes_per_hour},
        "load": {
            "user_updates_per_hour": size.user_updates_per_hour,
            "device_updates_per_hour": size.device_updates_per_hour,
        },
    }


async def run(size: BudgetSize, runs: int, workdir: Path) -> Section:
    section = Section(
        "budget",
        "Graph budget: a throttled backfill",
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    )
    sim = SimulatorProcess(scenario(size), workdir, name="simulator-budget", throttle=True)
    try:
        ratio = Figure("x minimum", digits=3)
        ratio_ideal = Figure("x", digits=3)
        seconds = Figure("s", digits=1)
        throttled = Figure("")
        refused = Figure("")
        pages = Figure("")
        events = Figure("")
        async with aiohttp.ClientSession() as http:
            for run_index in range(runs):
                if run_index:
                    # A fresh window, as for an exporter that starts: the last run's requests
                    # would otherwise still count against the first ones of this run.
                    await asyncio.sleep(THROTTLE_WINDOW_SECONDS + 1)
                before = (await sim.get(http, "/_sim/status"))["throttle"]["refused"]
                result = await backfill_in_process(
                    sim, workdir / f"budget-{run_index}", {"backfill_days": size.days}
                )
                after = (await sim.get(http, "/_sim/status"))["throttle"]["refused"]
                ok = result.requests.get("200", 0)
                minimum = ok / GRAPH_REQUESTS_PER_SECOND
                ideal = math.ceil(result.events / 1000) / GRAPH_REQUESTS_PER_SECOND
                ratio.add(result.seconds / minimum)
                ratio_ideal.add(result.seconds / ideal)
                seconds.add(result.seconds)
                throttled.add(result.requests.get("429", 0))
                refused.add(after - before)
                pages.add(ok)
                events.add(result.events)
        section.row(
            "events in the backfill / pages fetched",
            f"{events.median:,.0f} events over {size.days:g} days / {pages.median:,.0f} pages",
        )
        section.row("backfill time", seconds)
        section.row(
            "time / throttle-bound minimum (pages fetched / 0.5 per s)",
            ratio,
            "at most 1.1",
            ratio.high <= 1.1,
        )
        section.row(
            "time / minimum for ceil(events / 1,000) pages (what chunking into windows adds)",
            ratio_ideal,
        )
        section.row("429s received (exporter's count)", throttled, "0", throttled.high == 0)
        section.row("requests refused (simulator's count)", refused, "0", refused.high == 0)
        await _per_mode(section, size, workdir)
    finally:
        sim.stop()
    return section


async def _per_mode(section: Section, size: BudgetSize, workdir: Path) -> None:
    """One backfill of `size.mode_days` of live events per query mode: what each costs in
    requests."""
    from exporter.domain.audit_query import AuditQueryMode

    days = size.mode_days
    sim = SimulatorProcess(mode_scenario(), workdir, name="simulator-budget-modes", throttle=True)
    try:
        async with aiohttp.ClientSession() as http:
            clock = await sim.post(http, "/_sim/clock/advance", {"seconds": days * 86400})
            truth = await sim.get(
                http, "/_sim/truth/audit", visible="true", since=f"{clock['now'] - days * 86400}"
            )
        written = truth["total"]
        other = sum(n for a, n in truth["activities"].items() if a not in INGESTED_ACTIVITIES)
        section.row(
            f"query modes: the log read ({days * 24:g} hours of live events)",
            f"{written:,} events, {other:,} of them of activities the exporter does not ingest "
            f"({MODE_OTHER_PER_HOUR:g} an hour of application, service principal and policy "
            "management, and Microsoft 365 group expiration)",
        )
        hours = days * 24
        for mode in AuditQueryMode:
            if size.mode_pause:
                await asyncio.sleep(THROTTLE_WINDOW_SECONDS + 1)  # a fresh throttle window
            result = await backfill_in_process(
                sim,
                workdir / f"budget-mode-{mode.value}",
                {"backfill_days": days},
                query_mode=mode.value,
            )
            requests = result.requests.get("200", 0)
            section.row(
                f"query mode {mode.value}: requests ({result.events:,} events counted)",
                f"{requests:,} requests: {requests / hours:.2f} per hour of events, "
                f"{1000 * requests / max(result.events, 1):.2f} per 1,000 counted, "
                f"{result.seconds:.1f} s (429s: {result.requests.get('429', 0)})",
            )
    finally:
        sim.stop()


MODE_OTHER_PER_HOUR = 1_000.0
"""Other directory activity an hour in the per-mode log: about three times what the exporter
ingests here (an assumption, stated with the figures: tenants differ)."""


def mode_scenario() -> dict[str, Any]:
    base = scenario(FULL)
    return {
        **base,
        "name": "bench-budget-modes",
        "history": {"days": 0},
        "load": {**base["load"], "other_audit_events_per_hour": MODE_OTHER_PER_HOUR},
    }
