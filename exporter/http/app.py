"""The exporter's HTTP face: /metrics, /healthz, /readyz, the landing page, and serving them.

* `create_app()` builds the aiohttp application; other modules add their routes through
  `extra_routes` (e.g. `/api/v1/readiness`) and their lifecycle through the returned app's
  `on_startup` / `cleanup_ctx` / `on_cleanup` before serving it.
* `serve()` (or `running()`) binds, serves until told to stop, then shuts down gracefully.
* The web config file (exporter-toolkit format, `exporter.config.web`) adds TLS, response headers,
  basic auth on every path but /healthz (liveness, "ok" only), and a rate limit.

`/metrics` is prometheus_client's own aiohttp handler: `collect()` runs on the event loop, so
collectors must only read an in-memory snapshot (no I/O), which is the project's rule anyway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import html
import secrets
import signal
import socket
import time
import zlib
from collections import OrderedDict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import bcrypt
import orjson
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from aiolimiter import AsyncLimiter
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.config.models import DEFAULT_HEADER_READ_TIMEOUT, parse_listen_address
from exporter.config.web import RateLimit, ReloadingServerContext, WebConfig
from exporter.domain.hygiene import Headroom
from exporter.http.console import CONSOLE_STYLE
from exporter.logs import get_logger

PRODUCT = "entra-dg-exporter"
TAGLINE = "Observability and safe pause/resume for Microsoft Entra ID dynamic group processing."
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
DEFAULT_TELEMETRY_PATH = "/metrics"
HEALTHZ_PATH = "/healthz"

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TenantReadiness:
    """Whether the exporter serves trustworthy data for one tenant, and a line saying why."""

    ready: bool
    detail: str
    complete: bool = True
    """False while the data is partial though served (the audit backfill under way): ready to
    be scraped, but not yet "complete, fresh data"."""
    causes: tuple[str, ...] = ()
    """Storm attribution, one line each (the trailing hour's triggers by initiator and by
    property), for the landing page."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """The exporter's own readiness to serve (first polls done, data fresh), for `/readyz` and
    the landing page. The callable that returns it runs on the event loop for every probe, so it
    must only read in-memory state.

    Not to be confused with resume-readiness (may paused groups be resumed?), which is
    `/api/v1/readiness` and `check-resume`.
    """

    ready: bool
    tenants: Mapping[str, TenantReadiness] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenants", MappingProxyType(dict(self.tenants)))

    @classmethod
    def of(cls, tenants: Mapping[str, TenantReadiness]) -> Readiness:
        """Ready when there is at least one tenant and every tenant is ready."""
        return cls(ready=bool(tenants) and all(t.ready for t in tenants.values()), tenants=tenants)

    def to_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "tenants": {
                name: {"ready": t.ready, "complete": t.complete, "detail": t.detail}
                for name, t in self.tenants.items()
            },
            "complete": self.complete,
        }

    @property
    def complete(self) -> bool:
        """Ready, and every tenant's data complete (no backfill under way)."""
        return self.ready and all(t.complete for t in self.tenants.values())


class Link(NamedTuple):
    """An extra link on the landing page. Relative hrefs keep working behind a path prefix."""

    href: str
    text: str
    description: str = ""


BUILTIN_LINKS = (
    Link("metrics", "/metrics", "Prometheus metrics (OpenMetrics when asked for)"),
    Link(
        "healthz",
        "/healthz",
        "liveness: 200 while the process serves requests (no credentials needed)",
    ),
    Link("readyz", "/readyz", "readiness: 200 when every tenant's data is trustworthy, else 503"),
)

BASIC_AUTH: web.AppKey[BasicAuthenticator] = web.AppKey("basic_auth")
WEB_CONFIG: web.AppKey[WebConfig | None] = web.AppKey("web_config")


_EXPOSITIONS_KEPT = 8
"""Renderings kept per key (one per distinct Accept header and encoding; Prometheus sends one)."""

_OPENMETRICS_EOF = b"# EOF\n"

SELF_METRICS_MAX_AGE = 1.0
"""Seconds a rendering of the process and runtime metrics is served again."""


class _Rendering(NamedTuple):
    """The cached part of one /metrics answer: the snapshot's families without OpenMetrics'
    `# EOF` (the per-scrape part ends the body), and, when gzip was asked for, the compressor
    fed with them but not flushed, so that a scrape only compresses its own small tail."""

    body: bytes
    content_type: str
    gzip_head: bytes
    gzip_state: zlib._Compress | None


def _gzip_head(body: bytes) -> tuple[bytes, zlib._Compress]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    return compressor.compress(body), compressor


def _cached_exposition(
    registry: CollectorRegistry,
    key: Callable[[], object],
    per_scrape: CollectorRegistry | None = None,
    per_scrape_max_age: float = 0.0,
) -> Handler:
    """A /metrics handler serving the rendering made for the current key (compared by
    identity), uncompressed: `metrics_handler` gzips it, and aiohttp caches nothing, so the
    gzipped body is kept here too and sent as is.

    `per_scrape` (the process and runtime metrics, which change without the key) is appended
    to every answer, rendered at most once per `per_scrape_max_age` seconds per format: its ~40
    series cost 0.6 ms to render (prometheus_client's OpenMetrics encoder escapes each HELP
    text a character at a time), which 50 concurrent scrapers turned into a 5x longer p99
    (bench/RESULTS.md); a sample a second old is as good as a fresh one to anything that
    scrapes every few seconds. The gzip stream is one member: the compressor that took the
    cached part is copied and fed the tail."""
    rendered: dict[tuple[str, bool], _Rendering] = {}
    current: list[object] = [None]
    tails: dict[str, tuple[float, bytes]] = {}  # by content type, which names the encoder

    def tail_for(encoder: Callable[[CollectorRegistry], bytes], content_type: str) -> bytes:
        if per_scrape is None:
            return b""
        now = time.monotonic()
        cached = tails.get(content_type)
        if cached is not None and now - cached[0] < per_scrape_max_age:
            return cached[1]
        tail = encoder(per_scrape)
        tails[content_type] = (now, tail)
        return tail

    async def handler(request: web.Request) -> web.StreamResponse:
        now = key()
        if now is not current[0]:
            rendered.clear()
            current[0] = now
        accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
        compress = gzip_accepted(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        entry = rendered.get((accept, compress))
        encoder, content_type = choose_encoder(accept)
        if entry is None:
            body = encoder(registry)
            if per_scrape is not None:
                body = body.removesuffix(_OPENMETRICS_EOF)
            head, state = _gzip_head(body) if compress else (b"", None)
            if len(rendered) >= _EXPOSITIONS_KEPT:
                rendered.clear()
            entry = rendered[(accept, compress)] = _Rendering(body, content_type, head, state)
        tail = tail_for(encoder, content_type)
        headers = {hdrs.CONTENT_TYPE: entry.content_type}
        if entry.gzip_state is not None:
            compressor = entry.gzip_state.copy()
            body = entry.gzip_head + compressor.compress(tail) + compressor.flush()
            headers[hdrs.CONTENT_ENCODING] = "gzip"
        else:
            body = entry.body + tail
        return web.Response(body=body, headers=headers)

    return handler


class _Combined(Collector):
    """Several registries as one, for the uncached rendering (name[] filters, or no key)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self._registries = registries

    def collect(self) -> Iterable[Metric]:
        for registry in self._registries:
            yield from registry.collect()


def create_app(
    *,
    registry: CollectorRegistry,
    readiness: Callable[[], Readiness],
    extra_routes: Sequence[web.AbstractRouteDef] = (),
    web_config: WebConfig | None = None,
    links: Sequence[Link] = (),
    exposition_key: Callable[[], object] | None = None,
    exporter_metrics: CollectorRegistry | None = None,
    exporter_metrics_max_age: float = SELF_METRICS_MAX_AGE,
    telemetry_path: str = DEFAULT_TELEMETRY_PATH,
    headroom: Callable[[], Mapping[str, Headroom]] | None = None,
    console: Callable[[], Awaitable[str]] | None = None,
    console_refresh: float = 30.0,
) -> web.Application:
    """The exporter's aiohttp application. Every path, extra routes included, gets the web
    config's headers, rate limit and basic auth; `serve` takes its TLS settings from the app, so
    the two can never disagree.

    `headroom`: each tenant's dynamic groups and units against Entra's limit, for the landing
    page (in-memory state only: it runs on the event loop).

    `exposition_key`: when the registry's output is a function of one object (the exporter's
    immutable snapshot), /metrics renders (and gzips) once per object and format, and serves
    those bytes until the object is replaced: rendering costs ~10 ms of CPU per 500 series,
    which 50 concurrent scrapers would otherwise queue behind (bench/RESULTS.md).

    `exporter_metrics`: the exporter's own process and runtime metrics, appended after the
    registry's and rendered again once `exporter_metrics_max_age` seconds old (None:
    `--web.disable-exporter-metrics`). `telemetry_path`: where
    /metrics is served (`--web.telemetry-path`). `console`: the landing page's live sections
    (exporter.http.console), refreshed by the browser every `console_refresh` seconds."""
    telemetry_path = check_telemetry_path(telemetry_path)
    middlewares: list[Middleware] = []
    if web_config is not None and web_config.rate_limit is not None:
        limiter = _rate_limiter(web_config.rate_limit)
        if limiter is not None:
            middlewares.append(_rate_limit_middleware(limiter))
    authenticator = None
    if web_config is not None and web_config.basic_auth_users:
        authenticator = BasicAuthenticator(
            {u: h.get_secret_value() for u, h in web_config.basic_auth_users.items()}
        )
        middlewares.append(authenticator.middleware)
    app = web.Application(middlewares=middlewares)
    if authenticator is not None:
        app[BASIC_AUTH] = authenticator
    app[WEB_CONFIG] = web_config
    if web_config is not None:
        headers = web_config.http_server_config.headers.items()
        if headers:
            app.on_response_prepare.append(_set_headers(headers))

    everything = registry
    if exporter_metrics is not None:
        everything = CollectorRegistry(auto_describe=False)
        everything.register(_Combined(registry, exporter_metrics))
    uncached = make_aiohttp_handler(everything, disable_compression=True)
    metrics = uncached
    metrics_link = Link(telemetry_path.lstrip("/"), telemetry_path, BUILTIN_LINKS[0].description)
    all_links = (metrics_link, *BUILTIN_LINKS[1:], *links)

    if exposition_key is not None:
        metrics = _cached_exposition(
            registry, exposition_key, exporter_metrics, exporter_metrics_max_age
        )

    async def metrics_handler(request: web.Request) -> web.StreamResponse:
        # name[] filters: rare, rendered each time as prometheus_client does
        response = await (uncached if request.query else metrics)(request)
        # prometheus_client's rule (any gzip in Accept-Encoding); aiohttp on its own would
        # prefer deflate, which Prometheus never asks for.
        if hdrs.CONTENT_ENCODING in response.headers:
            pass  # gzipped once by the cache
        elif gzip_accepted(request.headers.get(hdrs.ACCEPT_ENCODING, "")):
            response.enable_compression(web.ContentCoding.gzip)
        response.headers[hdrs.VARY] = "Accept, Accept-Encoding"
        return response

    async def healthz(request: web.Request) -> web.StreamResponse:
        # Answering at all proves the loop is turning; readiness is /readyz's business.
        return web.Response(text="ok\n", headers={hdrs.CACHE_CONTROL: "no-store"})

    async def readyz(request: web.Request) -> web.StreamResponse:
        state = _current_readiness(readiness)
        body = state.to_json() if state is not None else {"ready": False, "error": "failed"}
        return web.Response(
            body=orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n",
            status=200 if state is not None and state.ready else 503,
            content_type="application/json",
            headers={hdrs.CACHE_CONTROL: "no-store"},
        )

    async def landing(request: web.Request) -> web.StreamResponse:
        sections = await _console_sections(console) if console is not None else None
        page = render_landing_page(
            readiness=_current_readiness(readiness),
            links=all_links,
            console=sections,
            refresh=console_refresh if console is not None else None,
            headroom=headroom() if headroom is not None else None,
        )
        return web.Response(
            text=page, content_type="text/html", headers={hdrs.CACHE_CONTROL: "no-store"}
        )

    builtin = [
        web.get(telemetry_path, metrics_handler),
        web.get(HEALTHZ_PATH, healthz),
        web.get("/readyz", readyz),
        web.get("/", landing),
    ]
    # aiohttp would let a second GET /metrics through silently, the first one winning.
    taken = {route.path for route in builtin}
    clashes = [r.path for r in extra_routes if isinstance(r, web.RouteDef) and r.path in taken]
    if clashes:
        raise ValueError(f"extra route {clashes[0]} clashes with a built-in route")
    app.add_routes([*builtin, *extra_routes])
    return app


def check_telemetry_path(path: str) -> str:
    """The telemetry path as given, or ValueError (one line) if it cannot be one."""
    if not path.startswith("/") or path in ("/", "/healthz", "/readyz") or "?" in path:
        raise ValueError(
            f"--web.telemetry-path {path!r} must be an absolute path other than /, /healthz "
            "and /readyz, e.g. /metrics"
        )
    return path


async def _console_sections(console: Callable[[], Awaitable[str]]) -> str:
    try:
        return await console()
    except Exception:
        log.exception("console failed")
        return '<p class="bad">The console failed; see the exporter log.</p>'


def _current_readiness(readiness: Callable[[], Readiness]) -> Readiness | None:
    try:
        return readiness()
    except Exception:
        log.exception("readiness check failed")
        return None


def _set_headers(
    headers: Sequence[tuple[str, str]],
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in headers:
            response.headers[name] = value

    return on_prepare


def _rate_limiter(config: RateLimit) -> AsyncLimiter | None:
    if config.interval <= 0:
        return None
    # A bucket of `burst` tokens refilled at one per interval, as golang.org/x/time/rate.
    return AsyncLimiter(max_rate=config.burst, time_period=config.interval * config.burst)


def _rate_limit_middleware(limiter: AsyncLimiter) -> Middleware:
    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not limiter.has_capacity():
            raise web.HTTPTooManyRequests()
        await limiter.acquire()  # immediate: there is capacity and nothing awaits in between
        return await handler(request)

    return rate_limit


class BasicAuthenticator:
    """HTTP basic auth against bcrypt hashes, as exporter-toolkit does it.

    bcrypt costs ~70 ms per check at cost 10, too much to pay on every scrape, so outcomes are
    cached per (user, hash, password) - keyed by a keyed BLAKE2 digest, never the password
    itself - in a small LRU. Unknown users are checked against a dummy hash of the same cost, so
    response time does not reveal which users exist. bcrypt runs in a worker thread (it releases
    the GIL) one check at a time, so a burst of logins neither stalls the loop nor eats every
    core.
    """

    CACHE_SIZE = 256

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {name.encode(): hashed.encode() for name, hashed in users.items()}
        costs = sorted(int(h.split(b"$")[2]) for h in self._users.values())
        self._dummy_hash = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(costs[-1]))
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = asyncio.Lock()
        self.bcrypt_checks = 0
        self.cache_hits = 0

    async def check(self, header: str | None) -> bool:
        """Whether an Authorization header carries a valid user and password."""
        credentials = parse_basic_auth(header)
        if credentials is None:
            return False
        user, password = credentials
        known = user in self._users
        hashed = self._users.get(user, self._dummy_hash)
        key = self._key(user, hashed, password)
        if (cached := self._cached(key)) is not None:
            return cached and known
        async with self._lock:
            if (cached := self._cached(key)) is not None:  # checked while we waited
                return cached and known
            ok = await asyncio.to_thread(_checkpw, password, hashed)
            self.bcrypt_checks += 1
        self._cache[key] = ok
        if len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return ok and known

    def _key(self, *parts: bytes) -> bytes:
        digest = hashlib.blake2b(key=self._cache_key, digest_size=32)
        for part in parts:
            digest.update(len(part).to_bytes(4, "big"))
            digest.update(part)
        return digest.digest()

    def _cached(self, key: bytes) -> bool | None:
        ok = self._cache.get(key)
        if ok is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
        return ok

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # /healthz answers "ok" and nothing else, so it is the one path without credentials:
        # a Docker HEALTHCHECK or a kubelet liveness probe cannot carry a password, and the
        # web config file stays exactly exporter-toolkit's (no key of ours to exempt it).
        if request.path == HEALTHZ_PATH and request.method in ("GET", "HEAD"):
            return await handler(request)
        if await self.check(request.headers.get(hdrs.AUTHORIZATION)):
            return await handler(request)
        raise web.HTTPUnauthorized(
            text="401 Unauthorized\n",
            headers={hdrs.WWW_AUTHENTICATE: f'Basic realm="{PRODUCT}", charset="UTF-8"'},
        )


def _checkpw(password: bytes, hashed: bytes) -> bool:
    """bcrypt.checkpw, with a password it refuses (bcrypt 5 raises on more than 72 bytes) a
    failed login rather than a 500."""
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def parse_basic_auth(header: str | None) -> tuple[bytes, bytes] | None:
    """`Basic base64(user:password)` -> (user, password) as sent (browsers send UTF-8), or
    None if the header is missing or is not basic auth."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


# --- landing page -------------------------------------------------------------------------

_STYLE = """
:root { color-scheme: light dark; --fg: #1b1b1f; --bg: #fdfdfd; --muted: #4a4a55;
  --line: #d0d0d8; --ok: #0b6b2e; --bad: #a4161a; --link: #0b57d0; }
@media (prefers-color-scheme: dark) { :root { --fg: #ececf1; --bg: #16161a; --muted: #b8b8c4;
  --line: #3a3a44; --ok: #6fd08c; --bad: #ff8a8a; --link: #8ab4f8; } }
body { font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); max-width: 48rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.75rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); }
a { color: var(--link); }
a:focus-visible { outline: 3px solid var(--link); outline-offset: 2px; }
.muted { color: var(--muted); }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.warn { color: #b45f06; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; color: var(--muted); padding-bottom: .25rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
ul.links { padding-left: 1.2rem; }
ul.links li { margin: .3rem 0; }
code { font-size: .95em; }
"""


def _status(ready: bool) -> str:
    if ready:
        return '<span class="ok"><span aria-hidden="true">&#10003; </span>ready</span>'
    return '<span class="bad"><span aria-hidden="true">&#10007; </span>not ready</span>'


def _tenants(count: int) -> str:
    return f"{count} tenant" if count == 1 else f"{count} tenants"


def render_landing_page(
    *,
    readiness: Readiness | None,
    links: Sequence[Link] = BUILTIN_LINKS,
    version: str = __version__,
    headroom: Mapping[str, Headroom] | None = None,
    console: str | None = None,
    refresh: float | None = None,
) -> str:
    """The HTML of `/`: what this is, where to go, and each tenant's readiness. No scripts, no
    external assets; every interpolated value is escaped (`console`: sections rendered, and
    escaped, by exporter.http.console; shown first, with `refresh` seconds between reloads)."""
    e = html.escape
    if readiness is None:
        overall = '<p class="bad">The readiness check failed; see the exporter log.</p>'
        rows = causes = ""
    else:
        total = len(readiness.tenants)
        ready = sum(t.ready for t in readiness.tenants.values())
        partial = sum(not t.complete for t in readiness.tenants.values())
        if readiness.complete:
            summary = (
                f"Complete, fresh data for {'the' if total == 1 else 'all'} {_tenants(total)}."
            )
        elif readiness.ready:
            summary = (
                f"Serving, but {partial} of {_tenants(total)} still backfilling the audit log: "
                "counts and signals are partial until it completes (see Detail)."
            )
        else:
            summary = f"{ready} of {_tenants(total)} ready; /readyz answers 503 until all are."
        overall = f"<p>{_status(readiness.ready)} &mdash; {e(summary)}</p>"
        rows = "".join(
            f'<tr><th scope="row">{e(name)}</th><td>{_status(t.ready)}</td>'
            f"<td>{e(t.detail)}</td></tr>"
            for name, t in readiness.tenants.items()
        )
        causes = "".join(
            f'<tr><th scope="row">{e(name)}</th><td><ul class="links">'
            + "".join(f"<li>{e(line)}</li>" for line in t.causes)
            + "</ul></td></tr>"
            for name, t in readiness.tenants.items()
            if t.causes
        )
    table = (
        "<table><caption>Per tenant</caption><thead><tr>"
        '<th scope="col">Tenant</th><th scope="col">Status</th><th scope="col">Detail</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else '<p class="muted">No tenant has reported yet.</p>'
        if readiness is not None
        else ""
    )
    limits = _headroom_section(headroom) if headroom else ""
    attribution = (
        '<section aria-labelledby="causes"><h2 id="causes">Trigger causes, trailing hour</h2>'
        '<p class="muted">Who made the user and device updates that trigger re-evaluation, and '
        "which properties they changed (with the dynamic rules that read each).</p>"
        '<table><thead><tr><th scope="col">Tenant</th><th scope="col">Causes</th></tr>'
        f"</thead><tbody>{causes}</tbody></table></section>"
        if causes
        else ""
    )
    items = "".join(
        f'<li><a href="{e(link.href)}">{e(link.text)}</a>'
        + (f' <span class="muted">&mdash; {e(link.description)}</span>' if link.description else "")
        + "</li>"
        for link in links
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(PRODUCT)}</title>
<link rel="icon" href="data:,">
{f'<meta http-equiv="refresh" content="{refresh:g}">' if refresh else ""}
<style>{_STYLE}{CONSOLE_STYLE if console is not None else ""}</style>
</head>
<body>
<header>
<h1>{e(PRODUCT)}</h1>
<p>{e(TAGLINE)}</p>
<p class="muted">Version <code>{e(version)}</code></p>
</header>
<main>
{console or ""}
<section aria-labelledby="status">
<h2 id="status">Exporter status</h2>
<p class="muted">Whether the exporter has complete, fresh data for each tenant. (Whether paused
groups may be resumed is a different question.)</p>
{overall}
{table}
</section>
{limits}{attribution}
<section aria-labelledby="endpoints">
<h2 id="endpoints">Endpoints</h2>
<ul class="links">{items}</ul>
</section>
</main>
</body>
</html>
"""


_LEVEL_CLASS = {"ok": "ok", "warning": "warn", "critical": "bad"}


def _headroom_section(headroom: Mapping[str, Headroom]) -> str:
    """Each tenant's dynamic groups and units against Entra's limit (Microsoft: "Regularly
    review the number of groups in your tenant. Delete inactive or outdated groups.")."""
    e = html.escape
    rows = "".join(
        f'<tr><th scope="row">{e(name)}</th><td>{h.groups:,}</td><td>{h.units:,}</td>'
        f"<td>{h.used:,} of {h.limit:,}</td>"
        f'<td><span class="{_LEVEL_CLASS[h.level]}">{h.ratio:.1%} ({e(h.level)})</span></td></tr>'
        for name, h in sorted(headroom.items())
    )
    return f"""<section aria-labelledby="limit">
<h2 id="limit">Dynamic group limit</h2>
<p class="muted">Dynamic groups and dynamic administrative units against the tenant's limit;
warning from 80&nbsp;%, critical from 95&nbsp;%. <code>entra-dg-exporter lint-rules
--config.file</code> lists inactive, empty, never-matching, duplicate and memberOf groups.</p>
<table><caption>Per tenant</caption><thead><tr><th scope="col">Tenant</th>
<th scope="col">Groups</th><th scope="col">Units</th><th scope="col">Used</th>
<th scope="col">Share</th></tr></thead><tbody>{rows}</tbody></table>
</section>
"""


# --- serving ------------------------------------------------------------------------------


class ListenError(OSError):
    """The listen address cannot be bound; the message is one line naming it."""


@dataclass(frozen=True, slots=True)
class Listening:
    """Where a running server can be reached (port 0 resolved to the real port)."""

    scheme: str
    addresses: tuple[tuple[str, int], ...]
    tls: bool = False
    basic_auth: bool = False

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    @property
    def url(self) -> str:
        """A URL for people and tests; a wildcard bind is shown as localhost."""
        host = self.addresses[0][0]
        if host in ("0.0.0.0", "::"):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}/"


def log_listening(listening: Listening) -> None:
    log.info("listening", url=listening.url, tls=listening.tls, basic_auth=listening.basic_auth)


@asynccontextmanager
async def running(
    app: web.Application,
    listen_address: str,
    *,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    header_read_timeout: float = DEFAULT_HEADER_READ_TIMEOUT,
    announce: bool = True,
) -> AsyncIterator[Listening]:
    """Serve `app` (from `create_app`, whose web config gives TLS) while the block runs; on
    exit stop accepting, let in-flight requests finish for up to `shutdown_timeout` seconds,
    then run the app's cleanup hooks."""
    host, port = parse_listen_address(listen_address)
    web_config = app.get(WEB_CONFIG)
    tls = web_config.tls_server_config if web_config is not None else None
    ssl_context = ReloadingServerContext(tls).context if tls is not None else None
    # aiohttp's keep-alive timer starts when a connection opens and again after each response,
    # and closes the connection if no complete request has arrived by then: a header-read
    # timeout and an idle timeout in one.
    runner = web.AppRunner(
        app,
        shutdown_timeout=shutdown_timeout,
        access_log=None,
        keepalive_timeout=header_read_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            fix = (
                "give a host name or address of this machine"
                if isinstance(exc, socket.gaierror)
                else "free the port or give another [host]:port"
            )
            raise ListenError(
                exc.errno,
                f"cannot listen on {listen_address}: {exc.strerror or exc}; "
                f"{fix} with --web.listen-address",
            ) from None
        listening = Listening(
            scheme="https" if ssl_context is not None else "http",
            addresses=tuple((str(a[0]), int(a[1])) for a in runner.addresses),
            tls=ssl_context is not None,
            basic_auth=BASIC_AUTH in app,
        )
        if announce:
            log_listening(listening)
        yield listening
    finally:
        await runner.cleanup()


async def serve(
    app: web.Application,
    listen_address: str,
    *,
    stop: asyncio.Event,
    on_listening: Callable[[Listening], None] | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    header_read_timeout: float = DEFAULT_HEADER_READ_TIMEOUT,
) -> None:
    """Serve until `stop` is set, then shut down gracefully (see `running`). `on_listening`
    is called once bound, with the real address (port 0 resolved)."""
    async with running(
        app,
        listen_address,
        shutdown_timeout=shutdown_timeout,
        header_read_timeout=header_read_timeout,
    ) as listening:
        if on_listening is not None:
            on_listening(listening)
        await stop.wait()
        log.info("shutting down", timeout_seconds=shutdown_timeout)


@contextmanager
def stop_on_signals(
    stop: asyncio.Event,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> Iterator[None]:
    """Set `stop` on the first SIGTERM or SIGINT. The handlers then step aside, so a second
    signal acts as it normally would (a second Ctrl-C interrupts a stuck shutdown)."""
    loop = asyncio.get_running_loop()

    def remove() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    def on_signal(sig: signal.Signals) -> None:
        log.info("signal received, stopping", signal=sig.name)
        stop.set()
        remove()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        remove()
