"""The web layer over real HTTP on 127.0.0.1 (port 0): metrics negotiation, probes, the landing
page, TLS, basic auth, headers, rate limit, graceful shutdown and signals."""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import re
import signal
import socket
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import bcrypt
import orjson
import pytest
from aiohttp import web
from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.config.models import parse_listen_address
from exporter.config.web import WebConfig, load_web_config
from exporter.http.app import (
    BASIC_AUTH,
    Link,
    ListenError,
    Listening,
    Readiness,
    TenantReadiness,
    create_app,
    running,
    serve,
    stop_on_signals,
)
from tests.certs import TLSFiles, make_tls_files, reissue_server_cert

LOCAL = "127.0.0.1:0"
PASSWORD = "s3cret"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()  # cost 4: fast tests
UTF8_HASH = bcrypt.hashpw("pässwörd".encode(), bcrypt.gensalt(4)).decode()

READY = Readiness.of(
    {
        "contoso": TenantReadiness(True, "audit log ingested to 12:03:00 UTC"),
        "fabrikam": TenantReadiness(True, "audit log ingested to 12:02:30 UTC"),
    }
)


def sample_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge(
        "entra_dynamic_resume_ready",
        "1 when every resume condition holds",
        ["tenant"],
        registry=registry,
    ).labels("contoso").set(1)
    Counter(
        "entra_dynamic_membership_changes", "changes", ["tenant", "operation"], registry=registry
    ).labels("contoso", "add").inc(42)
    return registry


def make_app(
    *,
    web_config: WebConfig | None = None,
    readiness: Callable[[], Readiness] = lambda: READY,
    extra_routes: Sequence[web.RouteDef] = (),
    links: Sequence[Link] = (),
    registry: CollectorRegistry | None = None,
) -> web.Application:
    return create_app(
        registry=registry or sample_registry(),
        readiness=readiness,
        extra_routes=extra_routes,
        web_config=web_config,
        links=links,
    )


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header as browsers send it (UTF-8)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write_web_config(tmp_path: Path, text: str) -> WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return load_web_config(path)


@asynccontextmanager
async def client(
    ssl_context: ssl.SSLContext | None = None, **kwargs: object
) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else True)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=10),
        **kwargs,  # type: ignore[arg-type]
    ) as session:
        yield session


# --- /metrics -----------------------------------------------------------------------------


async def test_metrics_default_text_format() -> None:
    async with (
        running(make_app(), LOCAL) as server,
        client() as http,
        http.get(server.url + "metrics", headers={"Accept-Encoding": "identity"}) as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        assert "Content-Encoding" not in r.headers
        assert "Accept" in r.headers["Vary"]
        body = await r.text()
    assert 'entra_dynamic_resume_ready{tenant="contoso"} 1.0' in body
    assert 'entra_dynamic_membership_changes_total{operation="add",tenant="contoso"} 42.0' in body
    assert "# EOF" not in body


async def test_metrics_openmetrics_when_asked_via_accept() -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    async with (
        running(make_app(), LOCAL) as server,
        client() as http,
        http.get(server.url + "metrics", headers={"Accept": accept}) as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        body = await r.text()
    assert body.endswith("# EOF\n")
    assert "# TYPE entra_dynamic_membership_changes counter" in body


@pytest.mark.parametrize("accept_encoding", ["gzip", "gzip, deflate", "deflate, gzip;q=0.9"])
async def test_metrics_gzip_when_accepted(accept_encoding: str) -> None:
    async with running(make_app(), LOCAL) as server, client(auto_decompress=False) as http:
        async with http.get(server.url + "metrics", headers={"Accept-Encoding": "identity"}) as r:
            plain = await r.read()
        headers = {"Accept-Encoding": accept_encoding}
        async with http.get(server.url + "metrics", headers=headers) as r:
            assert r.status == 200
            assert r.headers["Content-Encoding"] == "gzip"
            assert "Accept-Encoding" in r.headers["Vary"]
            compressed = await r.read()
    assert gzip.decompress(compressed) == plain


async def test_metrics_name_filter_is_honoured() -> None:
    async with running(make_app(), LOCAL) as server, client() as http:
        url = server.url + "metrics?name[]=entra_dynamic_resume_ready"
        async with http.get(url) as r:
            body = await r.text()
    assert "entra_dynamic_resume_ready" in body
    assert "entra_dynamic_membership_changes" not in body


class ThreadRecordingCollector(Collector):
    def __init__(self) -> None:
        self.threads: list[int] = []

    def collect(self) -> Iterable[Metric]:
        self.threads.append(threading.get_ident())
        yield GaugeMetricFamily("entra_dynamic_test_collected", "collected", value=1)


async def test_collect_runs_on_the_event_loop_thread() -> None:
    registry = CollectorRegistry()
    collector = ThreadRecordingCollector()
    registry.register(collector)
    collector.threads.clear()  # register() calls collect() once to learn the names
    async with (
        running(make_app(registry=registry), LOCAL) as server,
        client() as http,
        http.get(server.url + "metrics") as r,
    ):
        assert "entra_dynamic_test_collected 1.0" in await r.text()
    assert collector.threads == [threading.get_ident()]


# --- probes and landing page --------------------------------------------------------------


async def test_healthz() -> None:
    async with (
        running(make_app(), LOCAL) as server,
        client() as http,
        http.get(server.url + "healthz") as r,
    ):
        assert r.status == 200
        assert await r.text() == "ok\n"
        assert r.headers["Cache-Control"] == "no-store"


async def test_readyz_is_200_when_ready_and_503_with_detail_when_not() -> None:
    state = {"now": READY}
    app = make_app(readiness=lambda: state["now"])
    async with (
        running(app, LOCAL) as server,
        client() as http,
        http.get(server.url + "readyz") as r,
    ):
        assert r.status == 200
        assert r.content_type == "application/json"
        assert orjson.loads(await r.read()) == {
            "ready": True,
            "complete": True,
            "tenants": {
                "contoso": {
                    "ready": True,
                    "complete": True,
                    "detail": "audit log ingested to 12:03:00 UTC",
                },
                "fabrikam": {
                    "ready": True,
                    "complete": True,
                    "detail": "audit log ingested to 12:02:30 UTC",
                },
            },
        }
        state["now"] = Readiness.of(
            {
                "contoso": TenantReadiness(True, "audit log ingested to 12:03:00 UTC"),
                "fabrikam": TenantReadiness(False, "waiting for the first audit poll"),
            }
        )
        async with http.get(server.url + "readyz") as r:
            assert r.status == 503
            body = orjson.loads(await r.read())
    assert body["ready"] is False
    assert body["tenants"]["fabrikam"] == {
        "ready": False,
        "complete": True,
        "detail": "waiting for the first audit poll",
    }


async def test_a_backfill_under_way_is_served_but_never_called_complete() -> None:
    backfilling = Readiness.of(
        {"contoso": TenantReadiness(True, "backfilling the audit log: 54%", complete=False)}
    )
    app = make_app(readiness=lambda: backfilling)
    async with running(app, LOCAL) as server, client() as http:
        async with http.get(server.url + "readyz") as r:
            assert r.status == 200  # scrapeable while the backfill makes progress
            body = orjson.loads(await r.read())
        async with http.get(server.url) as r:
            page = await r.text()
    assert body["complete"] is False
    assert body["tenants"]["contoso"]["complete"] is False
    assert "Complete, fresh data for" not in page
    assert "still backfilling" in page
    assert "54%" in page


def test_readiness_of_needs_a_tenant_and_every_tenant_ready() -> None:
    assert not Readiness.of({}).ready
    assert Readiness.of({"a": TenantReadiness(True, "")}).ready
    assert not Readiness.of({"a": TenantReadiness(True, ""), "b": TenantReadiness(False, "")}).ready
    with pytest.raises(TypeError):
        READY.tenants["x"] = TenantReadiness(True, "")  # type: ignore[index]


async def test_a_failing_readiness_check_is_503_and_the_page_still_renders() -> None:
    def broken() -> Readiness:
        raise RuntimeError("store is locked")

    async with (
        running(make_app(readiness=broken), LOCAL) as server,
        client() as http,
        http.get(server.url + "readyz") as r,
    ):
        assert r.status == 503
        assert orjson.loads(await r.read()) == {"ready": False, "error": "failed"}
        async with http.get(server.url) as r:
            assert r.status == 200
            page = await r.text()
    assert "The readiness check failed" in page
    assert "store is locked" not in page


async def test_landing_page_names_the_product_links_and_tenants_and_escapes_all() -> None:
    hostile = Readiness.of(
        {
            "contoso": TenantReadiness(True, "ingested to 12:03 UTC"),
            "lab&co": TenantReadiness(False, '<script>alert("x")</script> & "quotes"'),
        }
    )
    links = [
        Link("/api/v1/readiness", "/api/v1/readiness", "resume readiness as JSON"),
        Link('docs?a=1&b="2"', "Runbook <docs>"),
    ]
    app = make_app(readiness=lambda: hostile, links=links)
    async with running(app, LOCAL) as server, client() as http, http.get(server.url) as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        page = await r.text()
    assert "<title>entra-dg-exporter</title>" in page
    assert f"<code>{__version__}</code>" in page
    for href in ("metrics", "healthz", "readyz", "/api/v1/readiness"):
        assert f'href="{href}"' in page
    assert 'href="docs?a=1&amp;b=&quot;2&quot;"' in page
    assert "Runbook &lt;docs&gt;" in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert '<th scope="row">lab&amp;co</th>' in page
    assert "not ready" in page


async def test_extra_routes_are_served_and_may_not_shadow_built_ins() -> None:
    async def readiness_api(request: web.Request) -> web.Response:
        return web.json_response({"resume_ready": False})

    app = make_app(extra_routes=[web.get("/api/v1/readiness", readiness_api)])
    async with (
        running(app, LOCAL) as server,
        client() as http,
        http.get(server.url + "api/v1/readiness") as r,
    ):
        assert r.status == 200
        assert await r.json() == {"resume_ready": False}
        async with http.get(server.url + "nope") as r:
            assert r.status == 404
    with pytest.raises(ValueError, match="/metrics clashes with a built-in route"):
        make_app(extra_routes=[web.get("/metrics", readiness_api)])


# --- web config: headers, rate limit ------------------------------------------------------


async def test_configured_headers_are_on_every_response(tmp_path: Path) -> None:
    config = write_web_config(
        tmp_path,
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        "    X-Content-Type-Options: nosniff\n"
        f"basic_auth_users:\n  alice: {HASH}\n",
    )
    auth = basic("alice", PASSWORD)
    async with running(make_app(web_config=config), LOCAL) as server, client() as http:
        for path, credentials, status in [
            ("metrics", auth, 200),
            ("", {}, 401),
            ("missing", auth, 404),
        ]:
            async with http.get(server.url + path, headers=credentials) as r:
                assert r.status == status
                assert r.headers["X-Frame-Options"] == "deny"
                assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_rate_limit_answers_429_beyond_the_burst(tmp_path: Path) -> None:
    config = write_web_config(tmp_path, "rate_limit:\n  interval: 1h\n  burst: 3\n")
    async with running(make_app(web_config=config), LOCAL) as server, client() as http:
        statuses = []
        for _ in range(5):
            async with http.get(server.url + "healthz") as r:
                statuses.append(r.status)
    assert statuses == [200, 200, 200, 429, 429]


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def client_context(tls: TLSFiles, *, cert: bool = False, stranger: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca.cert)
    if cert:
        context.load_cert_chain(tls.client.cert, tls.client.key)
    if stranger:
        context.load_cert_chain(tls.stranger.cert, tls.stranger.key)
    return context


async def test_tls_serves_https_and_refuses_plain_http(tmp_path: Path, tls_files: TLSFiles) -> None:
    config = write_web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {tls_files.server.cert}\n"
        f"  key_file: {tls_files.server.key}\n",
    )
    async with running(make_app(web_config=config), LOCAL) as server:
        assert server.scheme == "https"
        assert server.url == f"https://127.0.0.1:{server.port}/"
        async with client(client_context(tls_files)) as http, http.get(server.url + "metrics") as r:
            assert r.status == 200
            assert "entra_dynamic_resume_ready" in await r.text()
        async with client() as http:
            with pytest.raises(aiohttp.ClientError):
                await http.get(f"http://127.0.0.1:{server.port}/metrics")
            # and a client that does not trust the certificate is refused too
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(server.url + "metrics")


async def served_certificate_serial(port: int, context: ssl.SSLContext) -> int:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    return x509.load_der_x509_certificate(der).serial_number


async def test_rotated_certificates_are_served_without_a_restart(
    tmp_path: Path, tls_files: TLSFiles
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(tls_files.server.cert.read_bytes())
    key.write_bytes(tls_files.server.key.read_bytes())
    config = write_web_config(
        tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
    )
    trust = client_context(tls_files)
    original = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    async with running(make_app(web_config=config), LOCAL) as server:
        assert await served_certificate_serial(server.port, trust) == original
        # a half-done rotation (key not yet replaced) keeps the working pair
        (tmp_path / "new").mkdir()
        renewed = reissue_server_cert(tls_files, tmp_path / "new")
        os.replace(renewed.cert, cert)
        assert await served_certificate_serial(server.port, trust) == original
        os.replace(renewed.key, key)
        rotated = await served_certificate_serial(server.port, trust)
        assert rotated == x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
        assert rotated != original
        async with client(trust) as http, http.get(server.url + "healthz") as r:
            assert r.status == 200


async def test_tls_minimum_version_is_enforced(tmp_path: Path, tls_files: TLSFiles) -> None:
    config = write_web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {tls_files.server.cert}\n"
        f"  key_file: {tls_files.server.key}\n  min_version: TLS13\n",
    )
    old = client_context(tls_files)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    async with running(make_app(web_config=config), LOCAL) as server:
        async with client(client_context(tls_files)) as http, http.get(server.url + "healthz") as r:
            assert r.status == 200
        async with client(old) as http:
            with pytest.raises(aiohttp.ClientError):
                await http.get(server.url + "healthz")


async def test_client_certificates_are_required_and_verified(
    tmp_path: Path, tls_files: TLSFiles
) -> None:
    config = write_web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {tls_files.server.cert}\n"
        f"  key_file: {tls_files.server.key}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {tls_files.ca.cert}\n",
    )
    async with running(make_app(web_config=config), LOCAL) as server:
        ok = client_context(tls_files, cert=True)
        async with client(ok) as http, http.get(server.url + "healthz") as r:
            assert r.status == 200
        for refused in (client_context(tls_files), client_context(tls_files, stranger=True)):
            async with client(refused) as http:
                with pytest.raises(aiohttp.ClientError):
                    async with http.get(server.url + "healthz") as r:
                        await r.read()


# --- basic auth -----------------------------------------------------------------------------


@pytest.fixture
def auth_config(tmp_path: Path) -> WebConfig:
    return write_web_config(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n  jörg: {UTF8_HASH}\n")


async def test_basic_auth_right_wrong_unknown_missing(auth_config: WebConfig) -> None:
    async def api(request: web.Request) -> web.Response:
        return web.json_response({})

    app = make_app(web_config=auth_config, extra_routes=[web.get("/api/v1/readiness", api)])
    cases: list[tuple[dict[str, str], int]] = [
        (basic("alice", PASSWORD), 200),
        (basic("alice", "wrong"), 401),
        (basic("mallory", PASSWORD), 401),
        ({}, 401),
        ({"Authorization": "Basic !!not-base64!!"}, 401),
        ({"Authorization": "Bearer abc"}, 401),
        (basic("jörg", "pässwörd"), 200),
    ]
    async with running(app, LOCAL) as server, client() as http:
        for path in ("", "metrics", "readyz", "api/v1/readiness"):  # /healthz: see below
            for headers, status in cases:
                async with http.get(server.url + path, headers=headers) as r:
                    assert (path, headers, r.status) == (path, headers, status)
                    if status == 401:
                        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")


async def test_bcrypt_runs_once_per_credentials_then_the_cache_answers(
    auth_config: WebConfig,
) -> None:
    app = make_app(web_config=auth_config)
    authenticator = app[BASIC_AUTH]
    right = basic("alice", PASSWORD)
    wrong = basic("alice", "guess")
    unknown = basic("mallory", "guess")
    async with running(app, LOCAL) as server, client() as http:

        async def status(headers: dict[str, str]) -> int:
            async with http.get(server.url + "readyz", headers=headers) as r:
                return r.status

        assert [await status(right) for _ in range(5)] == [200] * 5
        assert (authenticator.bcrypt_checks, authenticator.cache_hits) == (1, 4)
        # a burst of identical scrapes waits for the one bcrypt check instead of repeating it
        burst = await asyncio.gather(*(status(right | {"X-N": str(i)}) for i in range(10)))
        assert burst == [200] * 10
        assert authenticator.bcrypt_checks == 1
        # wrong passwords and unknown users pay bcrypt too (no timing oracle), once each
        assert [await status(wrong) for _ in range(3)] == [401] * 3
        assert [await status(unknown) for _ in range(3)] == [401] * 3
        assert authenticator.bcrypt_checks == 3


async def test_concurrent_first_logins_share_one_bcrypt_check(auth_config: WebConfig) -> None:
    app = make_app(web_config=auth_config)
    right = basic("alice", PASSWORD)
    async with running(app, LOCAL) as server, client() as http:

        async def status() -> int:
            async with http.get(server.url + "readyz", headers=right) as r:
                return r.status

        assert await asyncio.gather(*(status() for _ in range(10))) == [200] * 10
    assert app[BASIC_AUTH].bcrypt_checks == 1


# --- serving: addresses, graceful shutdown, signals -----------------------------------------


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("127.0.0.1:9717", ("127.0.0.1", 9717)),
        ("[::1]:0", ("::1", 0)),
        (":9717", (None, 9717)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen_address(address: str, parsed: tuple[str | None, int]) -> None:
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "9717", "127.0.0.1:http", "::1:9717", "host:70000"]
)
def test_parse_listen_address_rejects(address: str) -> None:
    with pytest.raises(ValueError, match=r"needs \[host\]:port|brackets"):
        parse_listen_address(address)


def test_listening_url_for_people() -> None:
    assert Listening("http", (("0.0.0.0", 9717),)).url == "http://localhost:9717/"
    assert Listening("https", (("::1", 443),)).url == "https://[::1]:443/"


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
async def test_serves_on_ipv6_loopback() -> None:
    async with running(make_app(), "[::1]:0") as server, client() as http:
        assert server.url == f"http://[::1]:{server.port}/"
        async with http.get(server.url + "healthz") as r:
            assert r.status == 200


async def test_an_address_in_use_is_a_one_line_listen_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}: "):
            async with running(make_app(), f"127.0.0.1:{port}"):
                pass


async def wait_until_refused(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionError:  # refused, or reset from the closed listener's backlog
            return
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.01)
    raise AssertionError("the server kept accepting connections after stop")


async def test_graceful_shutdown_finishes_the_in_flight_request() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    cleaned_up: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="finished")

    async def cleanup(app: web.Application) -> None:
        cleaned_up.append("done")

    app = make_app(extra_routes=[web.get("/slow", slow)])
    app.on_cleanup.append(cleanup)
    stop = asyncio.Event()
    bound: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve(app, LOCAL, stop=stop, on_listening=bound.set_result, shutdown_timeout=5)
    )
    listening = await asyncio.wait_for(bound, 5)
    async with client() as http:
        response = asyncio.create_task(http.get(listening.url + "slow"))
        await asyncio.wait_for(entered.wait(), 5)
        stop.set()
        await wait_until_refused(listening.port)  # no new connections while it drains
        assert not server.done()
        release.set()
        async with await asyncio.wait_for(response, 5) as r:
            assert r.status == 200
            assert await r.text() == "finished"
    await asyncio.wait_for(server, 5)
    assert cleaned_up == ["done"]


async def test_shutdown_timeout_bounds_a_request_that_never_ends() -> None:
    entered = asyncio.Event()
    cancelled: list[bool] = []

    async def stuck(request: web.Request) -> web.Response:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        raise AssertionError("unreachable")

    stop = asyncio.Event()
    bound: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
    app = make_app(extra_routes=[web.get("/stuck", stuck)])
    server = asyncio.create_task(
        serve(app, LOCAL, stop=stop, on_listening=bound.set_result, shutdown_timeout=0.2)
    )
    listening = await asyncio.wait_for(bound, 5)
    async with client() as http:
        response = asyncio.create_task(http.get(listening.url + "stuck"))
        await asyncio.wait_for(entered.wait(), 5)
        stop.set()
        await asyncio.wait_for(server, 5)
        with pytest.raises(aiohttp.ClientError):
            await response
    assert cancelled == [True]


async def test_first_signal_sets_stop_then_handlers_step_aside() -> None:
    stop = asyncio.Event()
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) == signal.default_int_handler


DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"


async def test_healthz_needs_no_credentials_and_the_docker_healthcheck_passes_behind_auth(
    auth_config: WebConfig,
) -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[[^\n]*\])$", dockerfile, flags=re.M | re.S)
    assert match is not None
    command: list[str] = orjson.loads(match.group(1))
    app = make_app(web_config=auth_config)
    async with running(app, LOCAL) as server, client() as http:
        async with http.get(server.url + "healthz") as r:
            assert r.status == 200
        async with http.get(server.url + "metrics") as r:
            assert r.status == 401, "everything else still needs credentials"
        async with http.get(server.url + "readyz") as r:
            assert r.status == 401
        # The image's HEALTHCHECK, as Docker runs it, pointed at this server's port.
        command = [part.replace(":9717/", f":{server.port}/") for part in command]
        assert command[0] == "python"
        probe = await asyncio.create_subprocess_exec(sys.executable, *command[1:])
        assert await asyncio.wait_for(probe.wait(), timeout=30) == 0
