"""Scrape: /metrics of a tenant at Entra's limit, under 50 concurrent scrapers.

The exporter runs as its own process (`entra-dg-exporter serve`, default caps: 500 per-group
series beyond the critical groups) against a simulated tenant of 15,000 dynamic groups, 1,500
of them paused and 200 critical, at clock speed 1, so it polls as in production while it is
scraped. The scrapers run in the benchmark's process (the exporter has its own core): each of
50 keeps its own keep-alive connection, as 50 Prometheus servers would, and scrapes in a closed
loop (the next scrape as soon as the last one ended, far more often than any real scrape
interval) with Prometheus's headers (OpenMetrics preferred, gzip). Latency is from sending the
request to having read the whole body.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp

from bench.common import Figure, Section
from bench.large_tenant import Fleet

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
)
SCRAPE_HEADERS = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
SCRAPERS = 50
BODY_LIMIT = 256 * 1024
P99_LIMIT_MS = 100.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def body_size(url: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(url, headers=headers) as response,
    ):
        response.raise_for_status()
        return len(await response.read())


async def _scraper(url: str, until: float, latencies: list[float]) -> None:
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as http:
        while time.perf_counter() < until:
            started = time.perf_counter()
            async with http.get(url, headers=SCRAPE_HEADERS) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"/metrics answered {response.status}")
            latencies.append(time.perf_counter() - started)


async def closed_loop(url: str, scrapers: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_scraper(url, until, latencies) for _ in range(scrapers)))
    return latencies


async def run(fleet: Fleet, runs: int, seconds: float) -> Section:
    section = Section(
        "scrape",
        f"Scrape: /metrics with {fleet.size.groups:,} dynamic groups under {SCRAPERS} scrapers",
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    )
    assert fleet.exporter is not None
    url = fleet.exporter.url()
    text_size = await body_size(url, {"Accept-Encoding": "identity"})
    openmetrics_size = await body_size(
        url, {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "identity"}
    )
    gzip_size = await body_size(url, SCRAPE_HEADERS)
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Accept-Encoding": "identity"}) as response,
    ):
        series = sum(1 for line in (await response.text()).splitlines() if line and line[0] != "#")
    single = Figure("ms", digits=1)
    p50 = Figure("ms", digits=1)
    p99 = Figure("ms", digits=1)
    rate = Figure("scrapes/s")
    cpu = Figure("ms CPU/scrape", digits=2)
    for _ in range(runs):
        alone = await closed_loop(url, 1, min(seconds, 5.0))
        single.add(1000 * statistics.median(alone))
        before = fleet.exporter.usage().cpu_seconds
        latencies = await closed_loop(url, SCRAPERS, seconds)
        spent = fleet.exporter.usage().cpu_seconds - before
        p50.add(1000 * percentile(latencies, 0.5))
        p99.add(1000 * percentile(latencies, 0.99))
        rate.add(len(latencies) / seconds)
        cpu.add(1000 * spent / len(latencies))
    section.row(
        "series in the exposition",
        f"{series:,} ({fleet.size.paused:,} paused, {fleet.size.critical} critical groups)",
    )
    section.row(
        "body: OpenMetrics / text 0.0.4 / gzip (as Prometheus asks)",
        f"{openmetrics_size / 1024:,.0f} / {text_size / 1024:,.0f} / {gzip_size / 1024:,.0f} KiB",
        "under 256 KiB",
        max(openmetrics_size, text_size) < BODY_LIMIT,
    )
    section.row("latency, one scraper alone (median)", single)
    section.row(f"latency p50, {SCRAPERS} scrapers", p50)
    section.row(f"latency p99, {SCRAPERS} scrapers", p99, "under 100 ms", p99.median < P99_LIMIT_MS)
    section.row("scrapes served per second (closed loop)", rate)
    section.row("exporter CPU per scrape", cpu)
    return section


async def _main() -> None:  # pragma: no cover - manual use
    import tempfile

    from bench.large_tenant import FULL, running_fleet

    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as directory:
        async with running_fleet(FULL, Path(directory)) as fleet:
            section = await run(fleet, 1, 10)
    for row in section.rows:
        print(f"{row.what}: {row.value}")


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
