"""Scrape latency of the web layer: plain HTTP, basic auth (bcrypt cost 10), TLS, gzip.

    .venv/bin/python -m bench.web_scrape [--scrapes 300] [--series 2000]

Serves a registry of N gauge series on 127.0.0.1:0 and scrapes /metrics sequentially over one
keep-alive connection (as Prometheus does), printing the median and p99 per setup, and the cost of
the first basic-auth request (the bcrypt check) against later ones (the cache).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ssl
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import bcrypt
from prometheus_client import CollectorRegistry, Gauge

from exporter.config.web import WebConfig, load_web_config
from exporter.http.app import Readiness, TenantReadiness, create_app, running
from tests.certs import make_tls_files

PASSWORD = "bench-password"


def registry_with(series: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauge = Gauge("entra_dynamic_bench", "bench series", ["tenant", "group_id"], registry=registry)
    for i in range(series):
        gauge.labels("contoso", f"{i:08d}-0000-0000-0000-000000000000").set(i)
    return registry


async def scrape_times(
    config: WebConfig | None,
    registry: CollectorRegistry,
    scrapes: int,
    headers: dict[str, str],
    client_ssl: ssl.SSLContext | bool,
) -> list[float]:
    ready = Readiness.of({"contoso": TenantReadiness(True, "bench")})
    app = create_app(registry=registry, readiness=lambda: ready, web_config=config)
    times = []
    async with (
        running(app, "127.0.0.1:0") as server,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl, limit=1)) as http,
    ):
        for _ in range(scrapes):
            start = time.perf_counter()
            async with http.get(server.url + "metrics", headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
            times.append(time.perf_counter() - start)
    return times


def summary(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:<34} first {times[0] * 1000:7.1f} ms   median "
        f"{statistics.median(times) * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms"
    )


async def main(scrapes: int, series: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="web-bench-"))
    tls = make_tls_files(directory)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    configs = {
        "auth": f"basic_auth_users:\n  alice: {hashed}\n",
        "tls": f"tls_server_config:\n  cert_file: {tls.server.cert}\n"
        f"  key_file: {tls.server.key}\n",
    }
    configs["tls+auth"] = configs["tls"] + configs["auth"]
    loaded: dict[str, WebConfig] = {}
    for name, text in configs.items():
        (directory / f"{name}.yml").write_text(text)
        loaded[name] = load_web_config(directory / f"{name}.yml")
    auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
    identity = {"Accept-Encoding": "identity"}
    trust = ssl.create_default_context(cafile=tls.ca.cert)
    registry = registry_with(series)
    print(f"{series} series, {scrapes} sequential scrapes each, one keep-alive connection")
    setups: list[tuple[str, WebConfig | None, dict[str, str], ssl.SSLContext | bool]] = [
        ("plain HTTP, identity", None, identity, True),
        ("plain HTTP, gzip", None, {"Accept-Encoding": "gzip"}, True),
        ("basic auth (bcrypt cost 10)", loaded["auth"], identity | auth, True),
        ("TLS", loaded["tls"], identity, trust),
        ("TLS + basic auth", loaded["tls+auth"], identity | auth, trust),
    ]
    for name, config, headers, client_ssl in setups:
        print(summary(name, await scrape_times(config, registry, scrapes, headers, client_ssl)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--series", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.scrapes, args.series))
