"""A client for the exporter's `GET /api/v1/readiness`: fetch it and read it into typed results.

`check-resume` uses it, and so do the pause/resume operations to gate each resume batch:

```python
from exporter.readiness.client import ReadinessClient, ReadinessUnavailable

client = ReadinessClient("http://127.0.0.1:9717", timeout=10.0)
try:
    result = await client.tenant("contoso")  # or: report = await client.fetch()
except ReadinessUnavailable as exc:  # unreachable, refused, not an exporter, unreadable
    ...  # cannot tell: exit code 2
result.ready  # True only when every resume condition holds
result.exit_code  # 0 ready (or nothing paused), 1 not ready, 2 cannot tell
for condition in result.conditions:  # exporter.domain.readiness.ConditionResult
    print(condition.condition, condition.status, condition.detail)
```

An exporter behind a web config (exporter-toolkit format) needs `basic_auth=BasicAuth(user,
password)` and, for https, `tls=ClientTLS(ca_file=..., cert_file=..., key_file=...)`. The
synchronous twin `fetch_sync()` serves callers without an event loop.

Exit codes over several tenants combine like a logical AND over "ready": 1 (not ready) as soon
as one tenant is not ready, else 2 (cannot tell) if one cannot be told, else 0.

Imports stay light (no msgraph, no aiohttp): `check-resume` starts in a fraction of a second.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from exporter.domain.episode import EpisodeSource
from exporter.domain.plan import ExclusionReason, PlanSummary
from exporter.domain.readiness import (
    ConditionResult,
    ConditionStatus,
    ReadinessState,
    ResumeCondition,
)
from exporter.domain.signals import PauseReason, PauseSignal

_E = TypeVar("_E", bound=StrEnum)

READINESS_PATH = "/api/v1/readiness"
API_VERSION = 1
DEFAULT_URL = "http://127.0.0.1:9717"
DEFAULT_TIMEOUT = 10.0

EXIT_READY = 0
EXIT_NOT_READY = 1
EXIT_CANNOT_TELL = 2


def combine_exit_codes(codes: Iterable[int]) -> int:
    """Several tenants' exit codes as one: 1 if any is not ready (resuming them all is not
    safe, whatever the others say), else 2 if any cannot be told (or there are none), else 0."""
    seen = set(codes)
    if EXIT_NOT_READY in seen:
        return EXIT_NOT_READY
    if not seen or EXIT_CANNOT_TELL in seen:
        return EXIT_CANNOT_TELL
    return EXIT_READY


class ReadinessUnavailable(Exception):
    """No usable answer (unreachable, refused, not an exporter, unreadable): "cannot tell".
    The message is one line naming the problem and what to check."""

    exit_code = EXIT_CANNOT_TELL


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
class EpisodeSummary:
    """The current pause episode as the API summarises it (counts, not ids)."""

    source: EpisodeSource
    started_at: float
    started_by: str | None
    reason: str | None
    ledger_episode_ids: tuple[str, ...]
    groups: int
    """Paused groups in the episode: what a resume would resume."""
    paused_before: int
    undetermined: int


@dataclass(frozen=True, slots=True)
class TenantResumeReadiness:
    tenant: str
    state: ReadinessState
    """`cannot_tell` also when there is no assessment yet or it is stale."""
    exit_code: int
    detail: str
    stale: bool
    assessment_age_seconds: float | None
    evaluated_at: float | None
    audit_watermark: float | None
    pause_warranted: bool | None
    conditions: tuple[ConditionResult, ...]
    """Every resume condition, in the documented order (empty without an assessment)."""
    pause_signals: tuple[PauseSignal, ...]
    episode: EpisodeSummary | None
    plan: PlanSummary | None
    assessment: Mapping[str, Any] | None = field(repr=False)
    """The assessment as served (docs/readiness.schema.json)."""

    @property
    def ready(self) -> bool:
        """Every resume condition holds and there is something to resume."""
        return self.state is ReadinessState.READY

    def condition(self, reason: ResumeCondition) -> ConditionResult | None:
        return next((c for c in self.conditions if c.condition is reason), None)


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    url: str
    ready: bool
    exit_code: int
    tenants: tuple[TenantResumeReadiness, ...]
    body: Mapping[str, Any] = field(repr=False)
    """The answer as served (docs/readiness-api.schema.json), for `--json`."""

    def tenant(self, name: str) -> TenantResumeReadiness:
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

    async def tenant(self, name: str) -> TenantResumeReadiness:
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
    error = _error_message(response)
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
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ReadinessUnavailable(f"the answer from {url} is not JSON") from None
    return parse_readiness(body, url)


def _error_message(response: httpx.Response) -> str | None:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def parse_readiness(body: Any, url: str) -> ReadinessReport:
    """Read a /api/v1/readiness body. Raises ReadinessUnavailable naming what is wrong."""
    try:
        if not isinstance(body, dict):
            raise _Unexpected("the answer is not a JSON object")
        version = body.get("api_version")
        if version != API_VERSION:
            raise ReadinessUnavailable(
                f"{url} answers API version {version!r}; this client reads version "
                f"{API_VERSION}: use the check-resume of the exporter's own release"
            )
        tenants = tuple(_tenant(item) for item in _list(body, "tenants"))
        return ReadinessReport(
            url=url,
            ready=_bool(body, "ready"),
            exit_code=_exit_code(body),
            tenants=tenants,
            body=body,
        )
    except _Unexpected as exc:
        raise ReadinessUnavailable(f"unexpected answer from {url}: {exc}") from None


class _Unexpected(Exception):
    pass


def _get(obj: Mapping[str, Any], key: str) -> Any:
    if key not in obj:
        raise _Unexpected(f"{key!r} is missing")
    return obj[key]


def _bool(obj: Mapping[str, Any], key: str) -> bool:
    value = _get(obj, key)
    if not isinstance(value, bool):
        raise _Unexpected(f"{key!r} is not true or false")
    return value


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = _get(obj, key)
    if not isinstance(value, str):
        raise _Unexpected(f"{key!r} is not a string")
    return value


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = _get(obj, key)
    if value is not None and not isinstance(value, str):
        raise _Unexpected(f"{key!r} is not a string")
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = _get(obj, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Unexpected(f"{key!r} is not an integer")
    return value


def _number(obj: Mapping[str, Any], key: str) -> float:
    value = _get(obj, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unexpected(f"{key!r} is not a number")
    return float(value)


def _opt_number(obj: Mapping[str, Any], key: str) -> float | None:
    return None if _get(obj, key) is None else _number(obj, key)


def _time(obj: Mapping[str, Any], key: str) -> float | None:
    value = _opt_str(obj, key)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise _Unexpected(f"{key!r} is not an ISO 8601 time") from None


def _dict(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = _get(obj, key)
    if not isinstance(value, dict):
        raise _Unexpected(f"{key!r} is not an object")
    return value


def _list(obj: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = _get(obj, key)
    if not isinstance(value, list):
        raise _Unexpected(f"{key!r} is not a list")
    return value


def _exit_code(obj: Mapping[str, Any]) -> int:
    code = _int(obj, "exit_code")
    if code not in (EXIT_READY, EXIT_NOT_READY, EXIT_CANNOT_TELL):
        raise _Unexpected(f"exit_code {code} is not 0, 1 or 2")
    return code


def _enum(kind: type[_E], obj: Mapping[str, Any], key: str) -> _E:
    value = _str(obj, key)
    try:
        return kind(value)
    except ValueError:
        raise _Unexpected(f"{key!r} has an unknown value {value!r}") from None


def _tenant(item: Any) -> TenantResumeReadiness:
    if not isinstance(item, dict):
        raise _Unexpected("a tenant entry is not an object")
    name = _str(item, "tenant")
    try:
        raw = _get(item, "assessment")
        assessment = None if raw is None else _dict(item, "assessment")
        readiness = None if assessment is None else _dict(assessment, "readiness")
        return TenantResumeReadiness(
            tenant=name,
            state=_enum(ReadinessState, item, "state"),
            exit_code=_exit_code(item),
            detail=_str(item, "detail"),
            stale=_bool(item, "stale"),
            assessment_age_seconds=_opt_number(item, "assessment_age_seconds"),
            evaluated_at=None if assessment is None else _time(assessment, "evaluated_at"),
            audit_watermark=None if assessment is None else _time(assessment, "audit_watermark"),
            pause_warranted=None if assessment is None else _bool(assessment, "pause_warranted"),
            conditions=()
            if readiness is None
            else tuple(_condition(c) for c in _list(readiness, "conditions")),
            pause_signals=()
            if assessment is None
            else tuple(_signal(s) for s in _list(assessment, "pause_signals")),
            episode=None if assessment is None else _episode(_get(assessment, "episode")),
            plan=None if assessment is None else _plan(_dict(assessment, "plan")),
            assessment=assessment,
        )
    except _Unexpected as exc:
        raise _Unexpected(f"tenant {name!r}: {exc}") from None


def _condition(item: Any) -> ConditionResult:
    if not isinstance(item, dict):
        raise _Unexpected("a condition is not an object")
    return ConditionResult(
        condition=_enum(ResumeCondition, item, "reason"),
        status=_enum(ConditionStatus, item, "status"),
        observed=_opt_number(item, "observed"),
        threshold=_number(item, "threshold"),
        unit=_str(item, "unit"),
        since=_time(item, "since"),
        detail=_str(item, "detail"),
    )


def _signal(item: Any) -> PauseSignal:
    if not isinstance(item, dict):
        raise _Unexpected("a pause signal is not an object")
    return PauseSignal(
        reason=_enum(PauseReason, item, "reason"),
        active=_bool(item, "active"),
        observed=_opt_number(item, "observed"),
        threshold=_number(item, "threshold"),
        unit=_str(item, "unit"),
        since=_time(item, "since"),
        detail=_str(item, "detail"),
    )


def _episode(item: Any) -> EpisodeSummary | None:
    if item is None:
        return None
    if not isinstance(item, dict):
        raise _Unexpected("'episode' is not an object")
    started_at = _time(item, "started_at")
    if started_at is None:
        raise _Unexpected("'started_at' of the episode is null")
    ids = _list(item, "ledger_episode_ids")
    if not all(isinstance(i, str) for i in ids):
        raise _Unexpected("'ledger_episode_ids' holds something other than strings")
    return EpisodeSummary(
        source=_enum(EpisodeSource, item, "source"),
        started_at=started_at,
        started_by=_opt_str(item, "started_by"),
        reason=_opt_str(item, "reason"),
        ledger_episode_ids=tuple(ids),
        groups=_int(item, "groups"),
        paused_before=_int(item, "paused_before"),
        undetermined=_int(item, "undetermined"),
    )


def _plan(item: Mapping[str, Any]) -> PlanSummary:
    excluded = _dict(item, "excluded")
    return PlanSummary(
        critical_groups=_int(item, "critical_groups"),
        other_groups=_int(item, "other_groups"),
        batches=_int(item, "batches"),
        batch_size=_int(item, "batch_size"),
        max_critical_groups=_int(item, "max_critical_groups"),
        batch_interval_seconds=_number(item, "batch_interval_seconds"),
        estimated_duration_seconds=_number(item, "estimated_duration_seconds"),
        excluded=tuple((reason, _int(excluded, reason.value)) for reason in ExclusionReason),
    )
