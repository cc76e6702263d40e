"""Typed, strict configuration: a YAML file, overridden by environment variables and flags.

* Unknown keys are errors naming the key, the file and, when it is close, the key that was meant.
* Every setting can be overridden without editing the file, by dotted path
  (`polling.audit_interval`,
  `tenants.contoso.critical_groups`; tenants are addressed by name):
  - environment: `ENTRA_DG_CONFIG__POLLING__AUDIT_INTERVAL=2m` (`__` separates path parts),
  - flags: `--config.set polling.audit_interval=2m` (repeatable; flags win over environment).
  Values are parsed as YAML scalars or flow collections (`[a, b]`).
* Secrets are never in the file: they come from an environment variable, a file, a certificate, a
  workload identity or a managed identity. Literal static tokens (labs, the simulator) are held
  as `SecretStr`, so they print as `**********`. No error message ever echoes an input value.
* Durations are Prometheus-style strings (`90s`, `30m`, `24h`, `7d`, `1h30m`) or plain seconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    WrapValidator,
    field_validator,
    model_validator,
)

from exporter.config.durations import Duration
from exporter.domain.hygiene import DEFAULT_INACTIVE_DAYS, DEFAULT_OBJECT_LIMIT
from exporter.domain.probe import ProbeSettings
from exporter.domain.rules import ObjectType
from exporter.domain.settings import MINUTE_BUCKET_RETENTION, ResumeSettings
from exporter.domain.settings import Thresholds as DomainThresholds

_T = DomainThresholds()
_R = ResumeSettings()

ENV_OVERRIDE_PREFIX = "ENTRA_DG_CONFIG__"
AUDIT_RETENTION_DAYS = 30
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MIN_POLL_INTERVAL = 1.0
MAX_LATENESS_ALLOWANCE = 86400.0
DEFAULT_HEADER_READ_TIMEOUT = 30.0
"""A connection that has not sent a whole request within this long of opening (or of its last
response) is closed: idle and slow (slowloris) clients cannot hold connections open."""
# The store keeps minute buckets at least this long (docs/architecture.md, "Store -> domain").


class Cloud(StrEnum):
    GLOBAL = "global"
    US_GOV = "usgov"
    US_GOV_DOD = "usgov_dod"
    CHINA = "china"


# Microsoft's own names for the clouds (Azure CLI and PowerShell environments, Connect-MgGraph
# -Environment, the M365 offering names), so a value copied from Microsoft's docs or a portal is
# understood. Keys are compared without case, spaces, hyphens or underscores. GCC (Moderate) runs
# in the commercial cloud; GCC High is the US Government cloud, DoD its own endpoints.
CLOUD_NAMES: dict[str, Cloud] = {
    **dict.fromkeys(
        ("global", "AzureCloud", "AzurePublicCloud", "Public", "Commercial", "GCC"), Cloud.GLOBAL
    ),
    **dict.fromkeys(
        (
            "usgov",
            "AzureUSGovernment",
            "AzureUSGovernmentCloud",
            "USGovernment",
            "GCC High",
            "USGovGCCHigh",
        ),
        Cloud.US_GOV,
    ),
    **dict.fromkeys(("usgov_dod", "DoD", "USGovDoD", "AzureDoD"), Cloud.US_GOV_DOD),
    **dict.fromkeys(("china", "AzureChinaCloud", "ChinaCloud", "21Vianet"), Cloud.CHINA),
}


def _cloud_key(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name).casefold()


_CLOUD_KEYS = {_cloud_key(name): cloud for name, cloud in CLOUD_NAMES.items()}


def parse_cloud(value: object) -> object:
    """A cloud as people spell it -> Cloud; anything else is left to the enum's own check."""
    if isinstance(value, Cloud) or not isinstance(value, str):
        return value
    cloud = _CLOUD_KEYS.get(_cloud_key(value))
    if cloud is None:
        raise ValueError(f"unknown cloud {value!r}: use one of {', '.join(CLOUD_NAMES)}")
    return cloud


class AuthMethod(StrEnum):
    CLIENT_SECRET = "client_secret"
    CERTIFICATE = "certificate"
    WORKLOAD_IDENTITY = "workload_identity"
    MANAGED_IDENTITY = "managed_identity"
    STATIC_TOKEN = "static_token"
    NONE = "none"


class StrictModel(BaseModel):
    # allow_inf_nan=False: YAML's .nan and .inf are floats, and no setting can work with them.
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False
    )


def _is_guid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


class Auth(StrictModel):
    method: AuthMethod
    client_id: str | None = None
    client_secret_env: str | None = Field(
        default=None, description="name of the environment variable holding the client secret"
    )
    client_secret_file: Path | None = None
    certificate_path: Path | None = None
    certificate_password_env: str | None = None
    managed_identity_client_id: str | None = Field(
        default=None, description="user-assigned identity; omit for system-assigned"
    )
    token: SecretStr | None = Field(default=None, description="static bearer token (labs only)")
    token_env: str | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _fields_match_method(self) -> Self:
        m = self.method
        needs_client_id = m in (AuthMethod.CLIENT_SECRET, AuthMethod.CERTIFICATE)
        if needs_client_id and not self.client_id:
            raise ValueError(f"auth method {m} needs client_id (the app registration's id)")
        if self.client_id is not None and not _is_guid(self.client_id):
            raise ValueError("client_id must be a GUID (the application (client) id)")
        if m is AuthMethod.CLIENT_SECRET and (self.client_secret_env is None) == (
            self.client_secret_file is None
        ):
            raise ValueError(
                "auth method client_secret needs exactly one of client_secret_env, "
                "client_secret_file (never the secret itself)"
            )
        if m is AuthMethod.CERTIFICATE and self.certificate_path is None:
            raise ValueError(
                "auth method certificate needs certificate_path (a PEM or PKCS12 file)"
            )
        if m is AuthMethod.STATIC_TOKEN and (
            sum(x is not None for x in (self.token, self.token_env, self.token_file)) != 1
        ):
            raise ValueError(
                "auth method static_token needs exactly one of token, token_env, token_file"
            )
        allowed = _AUTH_FIELDS[m]
        stray = [
            name
            for name in type(self).model_fields
            if name != "method" and name not in allowed and getattr(self, name) is not None
        ]
        if stray:
            raise ValueError(f"{', '.join(stray)} do(es) not apply to auth method {m}")
        return self

    def secret_problems(self, env: Mapping[str, str]) -> list[str]:
        """What would stop this auth from obtaining its secret, without reading it out."""
        problems: list[str] = []
        for var in (self.client_secret_env, self.certificate_password_env, self.token_env):
            if var is not None and not env.get(var):
                problems.append(f"environment variable {var} is not set or empty")
        for path in (self.client_secret_file, self.certificate_path, self.token_file):
            if path is not None and not os.access(path, os.R_OK):
                problems.append(f"file {path} does not exist or is not readable")
        return problems


_AUTH_FIELDS: dict[AuthMethod, frozenset[str]] = {
    AuthMethod.CLIENT_SECRET: frozenset({"client_id", "client_secret_env", "client_secret_file"}),
    AuthMethod.CERTIFICATE: frozenset(
        {"client_id", "certificate_path", "certificate_password_env"}
    ),
    AuthMethod.WORKLOAD_IDENTITY: frozenset({"client_id"}),
    AuthMethod.MANAGED_IDENTITY: frozenset({"managed_identity_client_id"}),
    AuthMethod.STATIC_TOKEN: frozenset({"token", "token_env", "token_file"}),
    AuthMethod.NONE: frozenset(),
}


_P = ProbeSettings(ObjectType.USER, "", "", "", "", "")


class ProbeConfig(StrictModel):
    """`tenants[].probe:` the canary probe (opt-in; exporter/domain/probe.py). Needs
    User.ReadWrite.All (Device.ReadWrite.All for a device) for the canary object only."""

    object_type: ObjectType = ObjectType.USER
    object_id: str = Field(description="the canary user's (or device's) object id, a GUID")
    property: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,119}$",
        description="the rule property the probe flips, e.g. extensionAttribute15",
    )
    match_value: str = Field(min_length=1, description="the value the canary group's rule selects")
    other_value: str = Field(
        default="", description="the value that takes the canary out (default: match_value-out)"
    )
    group_id: str = Field(description="the canary dynamic group's object id, a GUID")
    interval: Duration = Field(default=_P.interval, description="one round per interval")
    timeout: Duration = Field(default=_P.timeout, description="a round not seen by then times out")
    check_interval: Duration = Field(
        default=_P.check_interval,
        description="how often a round in flight reads the canary's membership (the resolution)",
    )
    normal_latency: Duration = Field(
        default=_P.normal_latency, description="a round seen within this is normal"
    )
    evidence_rounds: int = Field(
        default=_P.evidence_rounds,
        ge=1,
        le=100,
        description="consecutive normal rounds that let minimum_pause_with_evidence apply",
    )

    @field_validator("object_id", "group_id")
    @classmethod
    def _guid(cls, v: str) -> str:
        if not _is_guid(v):
            raise ValueError("must be an object id (a GUID)")
        return v.lower()

    @field_validator("interval", "timeout", "check_interval", "normal_latency")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v < MIN_POLL_INTERVAL:
            raise ValueError(f"must be a duration of at least {MIN_POLL_INTERVAL:g}s")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.other_value == self.match_value:
            raise ValueError("probe.other_value must differ from probe.match_value")
        if self.check_interval > self.timeout or self.normal_latency > self.timeout:
            raise ValueError(
                "probe.check_interval and probe.normal_latency must not exceed probe.timeout"
            )
        return self

    def settings(self) -> ProbeSettings:
        return ProbeSettings(
            object_type=self.object_type,
            object_id=self.object_id,
            property=self.property,
            match_value=self.match_value,
            other_value=self.other_value or f"{self.match_value}-out",
            group_id=self.group_id,
            interval=self.interval,
            timeout=self.timeout,
            check_interval=self.check_interval,
            normal_latency=self.normal_latency,
            evidence_rounds=self.evidence_rounds,
        )


class Tenant(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    tenant_id: str | None = Field(default=None, description="directory (tenant) id, a GUID")
    cloud: Cloud = Cloud.GLOBAL
    auth: Auth
    graph_base_url: str | None = Field(
        default=None,
        description="Graph root for the simulator or a lab (http://127.0.0.1:PORT); "
        "default: the cloud's Graph endpoint",
    )
    critical_groups: tuple[str, ...] = ()
    clock: Literal["system", "simulator"] = Field(
        default="system", description="simulator: follow the simulated tenant's clock (demo, tests)"
    )
    probe: ProbeConfig | None = Field(
        default=None, description="the canary probe: measured processing delay (opt-in)"
    )

    @field_validator("cloud", mode="before")
    @classmethod
    def _cloud_name(cls, v: object) -> object:
        return parse_cloud(v)

    @field_validator("tenant_id")
    @classmethod
    def _tenant_guid(cls, v: str | None) -> str | None:
        if v is not None and not _is_guid(v):
            raise ValueError("tenant_id must be a GUID (the directory (tenant) id)")
        return v

    @field_validator("critical_groups")
    @classmethod
    def _critical_guids(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [g for g in v if not _is_guid(g)]
        if bad:
            raise ValueError(f"critical_groups must be object ids (GUIDs); not one: {bad[0]!r}")
        if len(set(v)) != len(v):
            raise ValueError("critical_groups lists a group twice")
        return tuple(g.lower() for g in v)

    @field_validator("graph_base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.rstrip("/")
        if not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", v):
            raise ValueError("graph_base_url must be an http(s) URL such as http://127.0.0.1:8080")
        try:
            port = urlsplit(v).port
        except ValueError:  # not a number, or above 65535
            port = -1
        if port is not None and not 1 <= port <= 65535:
            raise ValueError("graph_base_url has a port outside 1-65535")
        if v.startswith("http://") and not _loopback_url(v):
            raise ValueError(
                "plain http is only allowed to 127.0.0.1, localhost or [::1]; use https"
            )
        return v

    @model_validator(mode="after")
    def _tenant_id_needed(self) -> Self:
        real_auth = self.auth.method not in (AuthMethod.STATIC_TOKEN, AuthMethod.NONE)
        if real_auth and self.tenant_id is None:
            raise ValueError(f"auth method {self.auth.method} needs tenant_id")
        if not real_auth and self.graph_base_url is None:
            raise ValueError(
                f"auth method {self.auth.method} is for the simulator and labs: set graph_base_url"
            )
        if self.clock == "simulator" and self.graph_base_url is None:
            raise ValueError("clock: simulator needs graph_base_url (the simulator's address)")
        return self


_LOOPBACK_AUTHORITY = re.compile(r"^(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?$", re.IGNORECASE)


def _loopback_url(url: str) -> bool:
    """The URL's whole authority is a loopback host and maybe a port: `localhost.attacker.example`,
    `localhost@attacker.example` and `[::1].attacker.example` are not."""
    return bool(_LOOPBACK_AUTHORITY.match(urlsplit(url).netloc))


class Polling(StrictModel):
    audit_interval: Duration = 60.0
    groups_interval: Duration = 300.0
    critical_status_interval: Duration = 300.0
    lateness_allowance: Duration = Field(default=1800.0, description="overlap of each audit window")
    reconcile_interval: Duration = Field(
        default=3600.0,
        description="how often older windows are re-read for events later than the allowance "
        "(0: never)",
    )
    reconcile_reach: Duration = Field(
        default=10800.0,
        description="how far back the re-read goes (from the lateness allowance to this)",
    )
    backfill_days: float = Field(default=7.0, gt=0)
    audit_requests_per_10s: float = Field(
        default=5.0, gt=0, description="Graph allows 5 per 10 s per app per tenant"
    )
    # Graph allows 122 per 10 s per app across all tenants; 110 leaves ~10% for the jitter of
    # a sliding window counted where requests arrive and for the ops commands and hygiene
    # samples that read the audit log with the same app (docs/scale.md).
    app_audit_requests_per_10s: float = Field(
        default=110.0,
        gt=0,
        description="shared by the tenants of one app registration (Graph: 122 per 10 s)",
    )
    request_timeout: Duration = 60.0
    retry_attempts: int = Field(
        default=6, ge=1, le=100, description="per Graph request, for errors other than 429"
    )
    retry_initial_delay: Duration = Field(default=1.0, description="first backoff; then doubles")
    retry_max_delay: Duration = Field(default=30.0, description="cap of one backoff")
    # A 1,000-event audit page is a few MB; the cap bounds what one hostile answer can take.
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=1024 * 1024,
        le=1024 * 1024 * 1024,
        description="a Graph answer larger than this fails its page unread",
    )

    @field_validator("audit_interval", "groups_interval", "critical_status_interval")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("a poll interval must be longer than 0s")
        if v < MIN_POLL_INTERVAL:
            raise ValueError(
                f"a poll interval must be at least {MIN_POLL_INTERVAL:g}s (Graph's limits and "
                "the store cannot follow faster)"
            )
        return v

    @field_validator("request_timeout", "retry_initial_delay", "retry_max_delay")
    @classmethod
    def _longer_than_zero(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be a duration longer than 0s")
        return v

    @field_validator("lateness_allowance")
    @classmethod
    def _lateness_within_retention(cls, v: float) -> float:
        if v >= MAX_LATENESS_ALLOWANCE:
            raise ValueError(
                f"must be shorter than {MAX_LATENESS_ALLOWANCE / 86400:g}d: every window would "
                "re-read the whole audit retention"
            )
        return v

    @model_validator(mode="after")
    def _reconcile_beyond_the_allowance(self) -> Self:
        if self.reconcile_interval > 0 and not (
            self.lateness_allowance < self.reconcile_reach <= MAX_LATENESS_ALLOWANCE
        ):
            raise ValueError(
                "reconcile_reach must be longer than lateness_allowance (it re-reads what the "
                f"allowance missed) and at most {MAX_LATENESS_ALLOWANCE / 86400:g}d"
            )
        return self

    @model_validator(mode="after")
    def _retry_delays_ordered(self) -> Self:
        if self.retry_max_delay < self.retry_initial_delay:
            raise ValueError(
                "retry_max_delay is shorter than retry_initial_delay: make the cap at least the "
                "first backoff"
            )
        return self

    @property
    def backfill_seconds(self) -> float:
        """The backfill, clamped to what the audit log retains (30 days on P1/P2)."""
        return min(self.backfill_days, AUDIT_RETENTION_DAYS) * 86400.0


class Metrics(StrictModel):
    # Each per-group series costs ~190 bytes of exposition; 300 keeps /metrics under 256 KiB
    # with 15,000 groups and 200 critical ones (bench/RESULTS.md, scrape).
    per_group_series_cap: int = Field(
        default=300, ge=0, description="per-group series beyond the critical groups"
    )


class Store(StrictModel):
    path: Path = Path("entra-dg-exporter.sqlite3")
    # Reading pages and committing them cost about the same CPU; in two processes a backfill
    # runs ~2x faster where a second core is free (bench/RESULTS.md, ingest).
    commit_process: bool = Field(
        default=True,
        description="commit audit pages from a second process (false: on a thread of this one)",
    )

    @model_validator(mode="after")
    def _shareable(self) -> Store:
        if self.commit_process and str(self.path) == ":memory:":
            raise ValueError(
                "path ':memory:' cannot be shared with the audit commit process: give a file, "
                "or set store.commit_process: false"
            )
        return self


class ThresholdsConfig(StrictModel):
    """`thresholds:` as configured; validated into the domain's `Thresholds` (whose defaults
    these are)."""

    # "Planned large-scale updates: ... more than 500 groups or ... more than 20,000 membership
    # changes" (Understand and manage dynamic group processing in Microsoft Entra ID).
    membership_changes_per_hour: int = Field(default=_T.membership_changes_per_hour, gt=0)
    groups_changed_per_hour: int = Field(default=_T.groups_changed_per_hour, gt=0)
    trigger_rate_factor: float = Field(default=_T.trigger_rate_factor, gt=1)
    trigger_rate_sustain: Duration = Field(
        default=_T.trigger_rate_sustain,
        description="how long the trigger rate must stay high (0: momentary)",
    )
    processing_lag: Duration = _T.processing_lag
    rule_changes_per_hour: int = Field(default=_T.rule_changes_per_hour, gt=0)
    stall_after: Duration = Field(
        default=_T.stall_after, description="triggers but no dynamic change"
    )
    baseline_floor_per_hour: float = Field(default=_T.baseline_floor_per_hour, ge=0)
    # Support article: "wait at least 12 hours"; management guide: "a minimum of 24 hours".
    minimum_pause: Duration = Field(
        default=_T.minimum_pause, description="support article: 12h; guide: 24h"
    )
    minimum_pause_with_evidence: Duration = Field(
        default=_T.minimum_pause_with_evidence,
        description="replaces minimum_pause while the canary probe shows normal latency",
    )
    recovery_tolerance: float = Field(default=_T.recovery_tolerance, ge=1)
    recovery_hours: int = Field(default=_T.recovery_hours, ge=1)
    watermark_max_age: Duration = Field(
        default=_T.watermark_max_age, description="older audit data is not trusted"
    )
    collector_max_age: Duration = Field(
        default=_T.collector_max_age,
        description="a collector without a success for this long is failing",
    )
    lag_trigger_horizon: Duration = Field(
        default=_T.lag_trigger_horizon,
        description="a trigger not followed by a change for this long expires",
    )
    lag_window: Duration = Field(
        default=_T.lag_window, description="lag samples (by change time) behind the median and p90"
    )
    episode_wave_gap: Duration = Field(
        default=_T.episode_wave_gap,
        description="pauses further apart than this are different waves",
    )
    episode_min_groups: int = Field(
        default=_T.episode_min_groups,
        ge=1,
        description="a wave this big can start an inferred pause episode",
    )
    episode_min_share: float = Field(
        default=_T.episode_min_share,
        gt=0,
        le=1,
        description="... and so can a wave holding this share of the paused groups",
    )
    episode_max_age: Duration = Field(
        default=_T.episode_max_age,
        description="without a ledger record, older pauses are parked groups, not an episode",
    )

    @field_validator(
        "processing_lag",
        "stall_after",
        "watermark_max_age",
        "collector_max_age",
        "lag_trigger_horizon",
        "lag_window",
        "episode_wave_gap",
        "episode_max_age",
    )
    @classmethod
    def _positive_duration(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("this threshold must be a duration longer than 0s")
        return v

    @field_validator("trigger_rate_sustain")
    @classmethod
    def _sustain_within_minute_buckets(cls, v: float) -> float:
        # The trailing hour is evaluated at every minute of the sustain window from the store's
        # minute buckets, which reach back MINUTE_BUCKET_RETENTION.
        limit = MINUTE_BUCKET_RETENTION - 3600.0
        if v > limit:
            raise ValueError(
                f"trigger_rate_sustain can be at most {limit / 3600:g}h: minute buckets are "
                f"kept for {MINUTE_BUCKET_RETENTION / 3600:g}h"
            )
        return v


class ResumeConfig(StrictModel):
    """`resume:` as configured; validated into the domain's `ResumeSettings`."""

    batch_size: int = Field(default=_R.batch_size, ge=1, le=1000)
    batch_interval: Duration = _R.batch_interval
    max_critical_groups: int = Field(
        default=_R.max_critical_groups,
        ge=1,
        description="critical groups per batch, resumed before the others",
    )


def _validated_as(model: type[StrictModel], domain: type[Any]) -> WrapValidator:
    """Validate a section with its pydantic model (constraints, durations, unknown keys, error
    locations) and hand the domain its own frozen dataclass."""

    def validate(value: Any, handler: Any) -> Any:
        if isinstance(value, domain):
            return value
        return domain(**model.model_validate(value).model_dump())

    return WrapValidator(validate)


Thresholds = Annotated[DomainThresholds, _validated_as(ThresholdsConfig, DomainThresholds)]
Resume = Annotated[ResumeSettings, _validated_as(ResumeConfig, ResumeSettings)]
SECTION_MODELS: dict[Any, type[StrictModel]] = {
    DomainThresholds: ThresholdsConfig,
    ResumeSettings: ResumeConfig,
}
"""The pydantic model that validates each section held as a domain type (for key hints)."""


class Web(StrictModel):
    listen_address: str = "127.0.0.1:9717"
    config_file: Path | None = Field(
        default=None, description="TLS and basic auth, exporter-toolkit format"
    )
    header_read_timeout: Duration = Field(
        default=DEFAULT_HEADER_READ_TIMEOUT,
        gt=0,
        le=3600,
        description="close a connection that has sent no whole request this long after it "
        "opened or after its last response (idle and slow clients)",
    )

    @field_validator("listen_address")
    @classmethod
    def _host_port(cls, v: str) -> str:
        parse_listen_address(v)
        return v


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """`127.0.0.1:9717`, `[::1]:0`, `:9717` (all interfaces) -> (host or None, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"{address!r} needs [host]:port, e.g. 127.0.0.1:9717 (or :9717 for every interface)"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{address!r}: write an IPv6 host in brackets, e.g. [::1]:9717")
    return host or None, int(port)


class Hygiene(StrictModel):
    """Tenant hygiene (docs/rules-linter.md, "Tenant hygiene"): headroom against Entra's limit
    and the dead-weight candidates."""

    object_limit: int = Field(
        default=DEFAULT_OBJECT_LIMIT,
        gt=0,
        description="Entra's limit of dynamic groups and dynamic administrative units combined",
    )
    inactive_days: int = Field(
        default=DEFAULT_INACTIVE_DAYS,
        ge=1,
        description="a group with no dynamic membership change for this many days is inactive",
    )
    member_count_requests_per_minute: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="$count requests for empty groups, at most this many per minute",
    )
    member_count_refresh: Duration = Field(
        default=7 * 86400.0,
        description="a group's member count is read again after this long",
    )
    change_sample_events: int = Field(
        # 10 pages: about 20 s at the audit log's 5 requests per 10 s.
        default=10_000,
        ge=1,
        description="lint-rules --tenant reads at most this many changes of the last 7 days",
    )


class Shard(StrictModel):
    """This replica's part of the configured tenants (docs/scale.md): shard `index` of `count`,
    tenants assigned by a stable hash of their name; the app-wide audit budget is divided by
    `count` so that the replicas together stay inside it."""

    index: int = Field(default=1, ge=1, description="this replica, 1..count")
    count: int = Field(default=1, ge=1, le=1000, description="replicas sharing the tenants")

    @model_validator(mode="after")
    def _index_within_count(self) -> Self:
        if self.index > self.count:
            raise ValueError(
                f"shard index {self.index} is beyond count {self.count}: give 1..count"
            )
        return self


class Config(StrictModel):
    tenants: tuple[Tenant, ...] = Field(min_length=1)
    shard: Shard = Shard()
    polling: Polling = Polling()
    metrics: Metrics = Metrics()
    store: Store = Store()
    thresholds: Thresholds = DomainThresholds()
    resume: Resume = ResumeSettings()
    web: Web = Web()
    hygiene: Hygiene = Hygiene()

    @field_validator("tenants")
    @classmethod
    def _unique_names(cls, v: tuple[Tenant, ...]) -> tuple[Tenant, ...]:
        names = [t.name for t in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tenant names must be unique; {dupes[0]!r} appears twice")
        return v

    @model_validator(mode="after")
    def _freshness_after_polls(self) -> Self:
        """Readiness calls a collector failing when its last success is older than
        collector_max_age, and the audit data stale past watermark_max_age: a poll interval
        longer than those makes every tenant flap to not ready between polls."""
        polling, thresholds = self.polling, self.thresholds
        slowest = max(
            ("audit_interval", polling.audit_interval),
            ("groups_interval", polling.groups_interval),
            ("critical_status_interval", polling.critical_status_interval),
            key=lambda item: item[1],
        )
        if slowest[1] >= thresholds.collector_max_age:
            raise ValueError(
                f"polling.{slowest[0]} ({slowest[1]:g}s) is not shorter than "
                f"thresholds.collector_max_age ({thresholds.collector_max_age:g}s): the collector "
                "would count as failing between polls; poll more often or raise the threshold"
            )
        if polling.audit_interval >= thresholds.watermark_max_age:
            raise ValueError(
                f"polling.audit_interval ({polling.audit_interval:g}s) is not shorter than "
                f"thresholds.watermark_max_age ({thresholds.watermark_max_age:g}s): the audit "
                "data would count as stale between polls; poll more often or raise the threshold"
            )
        return self

    def tenant(self, name: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.name == name:
                return tenant
        raise KeyError(name)
