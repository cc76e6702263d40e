"""A client for the exporter's `GET /api/v1/readiness`: fetch it and read it into typed results.

`check-resume` uses it, and so do the pause/resume operations to gate each resume batch:

```python
from exporter.readiness.client import ReadinessClient, ReadinessUnavailable

client = ReadinessClient("http://127.0.0.1:9717", timeout=10.0)
try:
    result = await client.tenant("contoso")  # or: report = await client.fetch()
except ReadinessUnavailable as exc:  # unreachable, refused, not an exporter, unreadable
    ...  # cannot tell: exit code 2
result.ready  # True only when every resume condition holds and something is paused
result.exit_code  # 0 ready, 1 not ready, 2 cannot tell, 3 nothing to resume
for condition in result.conditions:  # exporter.readiness.wire.Condition
    print(condition.reason, condition.status, condition.detail)
```

The results are the wire format's own Structs (exporter/readiness/wire.py), decoded and checked
by msgspec: the server encodes the same types. An exporter behind a web config (exporter-toolkit
format) needs `basic_auth=BasicAuth(user, password)` and, for https,
`tls=ClientTLS(ca_file=..., cert_file=..., key_file=...)`. The synchronous twin `fetch_sync()`
serves callers without an event loop.

Imports stay light (no msgraph, no aiohttp): `check-resume` starts in a fraction of a second.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from exporter.readiness.wire import (
    API_VERSION,
    READINESS_PATH,
    ExitCode,
    ReadinessBody,
    TenantReadiness,
    api_version,
    decode,
    decode_error,
)

DEFAULT_URL = "http://127.0.0.1:9717"
DEFAULT_TIMEOUT = 10.0


class ReadinessUnavailable(Exception):
    """No usable answer (unreachable, refused, not an exporter, unreadable): "cannot tell".
    The message is one line naming the problem and what to check."""

    exit_code = ExitCode.CANNOT_TELL


@dataclass(frozen=True, slots=True)
class BasicAuth:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """https settings for an exporter whose web config serves TLS."""

    ca_file: Path | None = None
    """The CA that signed the exporter's certificate (default: the system's CAs)."""
    cert_file: Path | None = None
    """A client certificate, for `client_auth_type: RequireAndVerifyClientCert`."""
    key_file: Path | None = None
    insecure_skip_verify: bool = False
    """Do not verify the exporter's certificate (labs only)."""

    def ssl_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
            if self.cert_file is not None:
                context.load_cert_chain(
                    str(self.cert_file), str(self.key_file) if self.key_file else None
                )
        except (OSError, ssl.SSLError) as exc:
            raise ReadinessUnavailable(
                f"cannot load the TLS files ({exc}): check the CA, certificate and key paths"
            ) from None
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    url: str
    body: ReadinessBody
    """The answer as decoded (docs/readiness-api.schema.json); `--json` prints it again."""
    raw: bytes = field(repr=False)

    @property
    def ready(self) -> bool:
        return self.body.ready

    @property
    def exit_code(self) -> ExitCode:
        return self.body.exit_code

    @property
    def tenants(self) -> tuple[TenantReadiness, ...]:
        return self.body.tenants

    def tenant(self, name: str) -> TenantReadiness:
        for t in self.tenants:
            if t.tenant == name:
                return t
        raise ReadinessUnavailable(f"{self.url} did not report tenant {name!r}")


def readiness_url(base_url: str) -> str:
    """The API's address under an exporter's base URL (a path prefix is kept); a URL that
    already names the API is used as it is."""
    url = base_url.strip()
    if not url.startswith(("http://", "https://")):
        raise ReadinessUnavailable(
            f"{url!r} is not an http(s) URL: give the exporter's address, e.g. {DEFAULT_URL}"
        )
    trimmed = url.split("?", 1)[0].rstrip("/")
    if trimmed.endswith(READINESS_PATH):
        return trimmed
    return trimmed + READINESS_PATH


class ReadinessClient:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        basic_auth: BasicAuth | None = None,
        tls: ClientTLS | None = None,
    ) -> None:
        self.url = readiness_url(url)
        self.timeout = timeout
        self._auth = (
            httpx.BasicAuth(basic_auth.username, basic_auth.password) if basic_auth else None
        )
        self._tls = tls

    def _client_options(self) -> dict[str, Any]:
        verify: ssl.SSLContext | bool = True
        if self._tls is not None:
            verify = self._tls.ssl_context()
        return {"timeout": self.timeout, "auth": self._auth, "verify": verify, "trust_env": False}

    @staticmethod
    def _params(tenant: str | None) -> dict[str, str]:
        return {} if tenant is None else {"tenant": tenant}

    async def fetch(self, tenant: str | None = None) -> ReadinessReport:
        """Every tenant, or only `tenant`. Raises ReadinessUnavailable."""
        try:
            async with httpx.AsyncClient(**self._client_options()) as client:
                response = await client.get(self.url, params=self._params(tenant))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return parse_response(response, self.url)

    async def tenant(self, name: str) -> TenantReadiness:
        return (await self.fetch(name)).tenant(name)

    def fetch_sync(self, tenant: str | None = None) -> ReadinessReport:
        try:
            with httpx.Client(**self._client_options()) as client:
                response = client.get(self.url, params=self._params(tenant))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return parse_response(response, self.url)

    def _transport_error(self, exc: httpx.HTTPError) -> ReadinessUnavailable:
        if isinstance(exc, httpx.TimeoutException):
            return ReadinessUnavailable(
                f"the exporter at {self.url} did not answer within {self.timeout:g} s"
            )
        reason = str(exc) or type(exc).__name__
        return ReadinessUnavailable(f"cannot reach the exporter at {self.url}: {reason}")


def parse_response(response: httpx.Response, url: str) -> ReadinessReport:
    status = response.status_code
    error = decode_error(response.content)
    if status == 401:
        raise ReadinessUnavailable(
            f"the exporter at {url} asks for credentials (401): give the basic auth user and "
            "password of its web config"
        )
    if status == 404:
        raise ReadinessUnavailable(
            error
            if error
            else f"{url} was not found (404): is this an entra-dg-exporter? check the URL"
        )
    if status == 429:
        raise ReadinessUnavailable(f"the exporter at {url} is rate limiting requests (429)")
    if status != 200:
        raise ReadinessUnavailable(
            f"the exporter at {url} answered HTTP {status}" + (f": {error}" if error else "")
        )
    return parse_readiness(response.content, url)


def parse_readiness(data: bytes, url: str) -> ReadinessReport:
    """Read a /api/v1/readiness body. Raises ReadinessUnavailable naming what is wrong."""
    version = api_version(data)
    if version is not None and version != API_VERSION:
        raise ReadinessUnavailable(
            f"{url} answers API version {version!r}; this client reads version "
            f"{API_VERSION}: use the check-resume of the exporter's own release"
        )
    try:
        body = decode(data)
    except msgspec.DecodeError as exc:
        raise ReadinessUnavailable(f"unexpected answer from {url}: {exc}") from None
    return ReadinessReport(url=url, body=body, raw=data)
