"""Benchmarks of the simulated tenant (not run by the test suite).

    .venv/bin/python bench/bench_simulator.py            # the full-size tenant (~1 GiB, ~2 min)
    .venv/bin/python bench/bench_simulator.py --small    # a quick look

Measures: building a tenant of 15,000 dynamic groups and 200,000 users (with 30 days of
history at 20,000 membership changes per hour), in this process; then, against
`entra-dg-exporter simulate` running that tenant in its own process with throttling off,
serving 1,000-event pages through real HTTP for history (generated on demand) and for the live
log (pre-serialized), with time-window + activity filters; and a 500,000-event backfill.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter.simulator.app import resolve_scenario
from exporter.simulator.tenant import SimulatedTenant

START = 1_767_600_000.0  # 2026-01-05T08:00:00Z
ACTIVITIES = (
    "(activityDisplayName eq 'Add member to group' or activityDisplayName eq "
    "'Remove member from group' or activityDisplayName eq 'Update user' or "
    "activityDisplayName eq 'Update device')"
)
AUTH = {"Authorization": "Bearer bench"}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def _page_through(
    http: httpx.AsyncClient, sim: _Server, params: dict[str, str], limit: int
) -> tuple[int, int, float]:
    """(events, pages, seconds): follow nextLinks until `limit` events or the end. The client
    only counts events and finds the nextLink, so the figure is the server's."""
    url = sim.graph_url + "/auditLogs/directoryAudits"
    events = pages = 0
    started = time.perf_counter()
    response = await http.get(url, params=params, headers=AUTH)
    while True:
        body = response.content
        pages += 1
        events += body.count(b'"activityDisplayName":')
        marker = body.find(b'"@odata.nextLink":"')
        if marker < 0 or events >= limit:
            break
        end = body.index(b'"', marker + 19)
        response = await http.get(body[marker + 19 : end].decode(), headers=AUTH)
    return events, pages, time.perf_counter() - started


def _scenario(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "name": "bench",
        "tenant": {
            "users": args.users,
            "devices": args.devices,
            "dynamic_groups": args.groups - 10,
            "administrative_units": 10,
            "static_groups": 50,
            "critical_groups": 10,
        },
        "history": {"days": args.days, "dynamic_changes_per_hour": args.changes_per_hour},
        "load": {"user_updates_per_hour": 8000, "device_updates_per_hour": 2000},
    }


def measure_build(args: argparse.Namespace) -> None:
    scenario = resolve_scenario(_scenario(args))
    started = time.perf_counter()
    tenant = SimulatedTenant(scenario, seed=1, start=START, speed=0)
    built = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dynamic = sum(1 for c in tenant.directory.containers if c.rule is not None)
    members = sum(len(c.members) for c in tenant.directory.containers)
    history = tenant.history.total() if tenant.history else 0
    print(
        f"build: {built:.1f} s for {len(tenant.directory.users):,} users, "
        f"{len(tenant.directory.devices):,} devices, {dynamic:,} dynamic groups and units, "
        f"{members:,} memberships, {history:,} history events; max RSS {rss:,.0f} MiB"
    )


class _Server:
    """`entra-dg-exporter simulate` in a child process, so the client does not share its CPU."""

    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        path = directory / "bench.yaml"
        path.write_text(yaml.safe_dump(_scenario(args)), encoding="utf-8")
        command = [
            str(Path(sys.executable).with_name("entra-dg-exporter")),
            "simulate",
            "--listen=127.0.0.1:0",
            f"--scenario={path}",
            "--speed=0",
            "--seed=1",
            "--start=2026-01-05T08:00:00Z",
            "--no-throttle",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"at (http://\S+)$", line.strip())
        if match is None:
            raise RuntimeError(f"simulate did not start: {line!r}")
        self.base_url = match.group(1)
        self.graph_url = self.base_url + "/v1.0"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


async def measure_serving(args: argparse.Namespace, server: _Server) -> None:
    async with httpx.AsyncClient(timeout=300) as http:
        window = (
            f"activityDateTime ge {_iso(START - 3 * 86400)} and activityDateTime le {_iso(START)}"
        )
        for order in ("asc", "desc"):
            params = {
                "$filter": f"{window} and {ACTIVITIES}",
                "$orderby": f"activityDateTime {order}",
                "$top": "1000",
            }
            events, pages, seconds = await _page_through(http, server, params, args.pages * 1000)
            print(
                f"history pages ({order}, window + activities): {events:,} events in {pages} "
                f"pages, {seconds:.2f} s: {events / seconds:,.0f} events/s"
            )
        params = {
            "$filter": f"activityDateTime ge {_iso(START - 29 * 86400)} and {ACTIVITIES}",
            "$orderby": "activityDateTime asc",
            "$top": "1000",
        }
        events, pages, seconds = await _page_through(http, server, params, args.backfill)
        print(
            f"backfill: {events:,} events in {pages} pages, {seconds:.1f} s: "
            f"{events / seconds:,.0f} events/s (Graph's throttled ceiling: 500 events/s)"
        )
        started = time.perf_counter()
        response = await http.post(
            server.base_url + "/_sim/clock/advance", json={"seconds": args.live_hours * 3600}
        )
        response.raise_for_status()
        status = (await http.get(server.base_url + "/_sim/status")).json()
        print(
            f"live: {status['live_events']:,} events written over {args.live_hours:g} simulated "
            f"hours in {time.perf_counter() - started:.1f} s"
        )
        params = {
            "$filter": f"activityDateTime ge {_iso(START)} and {ACTIVITIES}",
            "$orderby": "activityDateTime asc",
            "$top": "1000",
        }
        events, pages, seconds = await _page_through(http, server, params, args.pages * 1000)
        print(
            f"live pages (window + activities): {events:,} events in {pages} pages, "
            f"{seconds:.2f} s: {events / seconds:,.0f} events/s"
        )


def main(args: argparse.Namespace) -> None:
    measure_build(args)
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        server = _Server(args, Path(directory))
        print(f"simulate: serving after {time.perf_counter() - started:.1f} s (start-up and build)")
        try:
            asyncio.run(measure_serving(args, server))
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 20,000-user tenant, 7 days")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=50_000)
    parser.add_argument("--groups", type=int, default=15_000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--changes-per-hour", type=float, default=20_000)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--backfill", type=int, default=500_000)
    parser.add_argument("--live-hours", type=float, default=6)
    arguments = parser.parse_args()
    if arguments.small:
        arguments.users, arguments.devices, arguments.groups = 20_000, 5_000, 1_000
        arguments.days, arguments.backfill, arguments.pages = 7, 100_000, 30
    main(arguments)
