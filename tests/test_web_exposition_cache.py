"""/metrics with an exposition key: rendered once per key object and format, gzipped once,
rendered again when the key object is replaced."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.http.app import Readiness, TenantReadiness, create_app, running

OPENMETRICS = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4"


class Counting(Collector):
    def __init__(self) -> None:
        self.value = 1.0
        self.collections = 0

    def collect(self) -> Iterable[Metric]:
        self.collections += 1
        family = GaugeMetricFamily("bench_value", "a value", labels=["kind"])
        family.add_metric(["a"], self.value)
        yield family


async def test_rendering_is_reused_until_the_key_object_is_replaced() -> None:
    registry = CollectorRegistry()
    collector = Counting()
    registry.register(collector)
    key: list[object] = [object()]
    app = create_app(
        registry=registry,
        readiness=lambda: Readiness.of({"t": TenantReadiness(True, "ok")}),
        exposition_key=lambda: key[0],
    )
    async with (
        running(app, "127.0.0.1:0") as server,
        aiohttp.ClientSession(auto_decompress=False) as http,
    ):
        url = server.url + "metrics"

        async def scrape(headers: dict[str, str]) -> tuple[str, str, str]:
            async with http.get(url, headers=headers) as response:
                assert response.status == 200
                body = await response.read()
                encoding = response.headers.get("Content-Encoding", "")
                text = gzip.decompress(body) if encoding == "gzip" else body
                return text.decode(), response.headers["Content-Type"], encoding

        plain = {"Accept-Encoding": "identity"}
        first = await scrape(plain)
        assert 'bench_value{kind="a"} 1.0' in first[0]
        assert first[1].startswith("text/plain")
        registered = collector.collections
        collector.value = 2.0
        assert await scrape(plain) == first
        assert collector.collections == registered

        openmetrics = await scrape({"Accept": OPENMETRICS, "Accept-Encoding": "gzip"})
        assert openmetrics[1].startswith("application/openmetrics-text")
        assert openmetrics[2] == "gzip"
        assert openmetrics[0].endswith("# EOF\n")
        assert 'bench_value{kind="a"} 2.0' in openmetrics[0]

        key[0] = object()
        assert 'bench_value{kind="a"} 2.0' in (await scrape(plain))[0]
        filtered = await scrape({"Accept-Encoding": "identity", "X": "y"})
        assert "2.0" in filtered[0]
        async with http.get(url, params={"name[]": "other"}, headers=plain) as response:
            assert "bench_value" not in await response.text()


async def test_exporter_metrics_are_fresh_on_every_scrape_while_the_snapshot_part_is_cached() -> (
    None
):
    snapshot_registry = CollectorRegistry()
    snapshot = Counting()
    snapshot_registry.register(snapshot)
    own_registry = CollectorRegistry()
    own = Counting()
    own_registry.register(own)
    own.value = 10.0
    app = create_app(
        registry=snapshot_registry,
        readiness=lambda: Readiness.of({"t": TenantReadiness(True, "ok")}),
        exposition_key=lambda: "one key for the whole test",
        exporter_metrics=own_registry,
        exporter_metrics_max_age=0.0,
        telemetry_path="/telemetry",
    )
    async with (
        running(app, "127.0.0.1:0") as server,
        aiohttp.ClientSession(auto_decompress=False) as http,
    ):
        url = server.url + "telemetry"

        async def scrape(headers: dict[str, str]) -> str:
            async with http.get(url, headers=headers) as response:
                assert response.status == 200
                body = await response.read()
            if response.headers.get("Content-Encoding") == "gzip":
                # One gzip member, complete: what any client (curl --compressed too) reads.
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                text = inflater.decompress(body)
                assert inflater.eof
                assert not inflater.unused_data
                return text.decode()
            return body.decode()

        for headers in (
            {"Accept-Encoding": "identity"},
            {"Accept-Encoding": "gzip"},
            {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"},
            {"Accept": OPENMETRICS, "Accept-Encoding": "identity"},
        ):
            first = await scrape(headers)
            own.value += 1
            second = await scrape(headers)
            assert f'bench_value{{kind="a"}} {own.value - 1}' in first
            assert f'bench_value{{kind="a"}} {own.value}' in second, "the own part is fresh"
            if "Accept" in headers:
                assert second.count("# EOF") == 1
                assert second.endswith("# EOF\n")
        cached_collections = snapshot.collections
        await scrape({"Accept-Encoding": "gzip"})
        assert snapshot.collections == cached_collections, "the snapshot part stays cached"
        async with http.get(server.url + "metrics") as response:
            assert response.status == 404, "served at the telemetry path only"


async def test_exporter_metrics_are_rendered_again_only_once_their_max_age_has_passed() -> None:
    """50 scrapers at once must not each pay the self-metrics' rendering (bench/RESULTS.md,
    scrape section): within the max age the rendering is served again, per format."""
    own_registry = CollectorRegistry()
    own = Counting()
    own_registry.register(own)
    app = create_app(
        registry=CollectorRegistry(),
        readiness=lambda: Readiness.of({"t": TenantReadiness(True, "ok")}),
        exposition_key=lambda: "one key",
        exporter_metrics=own_registry,
        exporter_metrics_max_age=3600.0,
    )
    async with running(app, "127.0.0.1:0") as server, aiohttp.ClientSession() as http:
        url = server.url + "metrics"
        for headers in ({}, {"Accept": OPENMETRICS}):
            async with http.get(url, headers=headers) as response:
                first = await response.text()
            own.value += 1
            async with http.get(url, headers=headers) as response:
                assert await response.text() == first
        assert own.collections == 2, "rendered once per format"
