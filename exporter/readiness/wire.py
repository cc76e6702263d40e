"""The readiness wire format: `GET /api/v1/readiness` as msgspec Structs, shared by the server
(exporter/http/readiness_api.py encodes them) and the client (exporter/readiness/client.py
decodes them, for `check-resume` and the ops gate).

The Structs are the one definition of the JSON shape; docs/readiness-api.schema.json and
docs/readiness.schema.json describe it for other readers, and the tests validate what the server
sends against them. Decoding checks every type and enum value, so the client needs no validation
of its own. Unknown fields are ignored (a newer server may add some); anything that changes the
meaning of a field bumps API_VERSION. The reasons of pause signals and resume conditions are
plain strings on the wire for the same reason: a newer server adds reasons, and a client of an
older release still reads the answer and shows them, while the state and exit code (which the
server computes over every reason) stay the verdict.

Exit codes (check-resume's, and `exit_code` in the body) tell every state apart, so a pipeline
can gate on the code alone: only `ready` is 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import IntEnum

import msgspec

from exporter.domain import attribution
from exporter.domain.assessment import SCHEMA_VERSION, TenantAssessment
from exporter.domain.baseline import Measure
from exporter.domain.episode import EpisodeSource
from exporter.domain.plan import ExclusionReason, PlanSummary
from exporter.domain.probe import ProbeEvidence, ProbeOutcome
from exporter.domain.queue import QueueEstimate
from exporter.domain.readiness import (
    ConditionResult,
    ConditionStatus,
    ReadinessState,
    ResumeCondition,
)
from exporter.domain.signals import PauseSignal

API_VERSION = 1
READINESS_PATH = "/api/v1/readiness"


class ExitCode(IntEnum):
    READY = 0
    """Every resume condition holds and there is something to resume."""
    NOT_READY = 1
    CANNOT_TELL = 2
    """Unreachable, unreadable, stale, or a condition lacks data: never a reason to go."""
    NOT_PAUSED = 3
    """Nothing to resume: no pause episode. Not 0, so `check-resume && resume` cannot take
    "the exporter sees no pause" for "ready"."""


EXIT_CODES: dict[ReadinessState, ExitCode] = {
    ReadinessState.READY: ExitCode.READY,
    ReadinessState.NOT_READY: ExitCode.NOT_READY,
    ReadinessState.CANNOT_TELL: ExitCode.CANNOT_TELL,
    ReadinessState.NOT_PAUSED: ExitCode.NOT_PAUSED,
}

# Several tenants' codes as one, the most cautious first: not ready as soon as one tenant is
# (resuming them all is not safe whatever the others say), then cannot tell, then nothing to
# resume; 0 only when every tenant is ready.
_PRECEDENCE = (ExitCode.NOT_READY, ExitCode.CANNOT_TELL, ExitCode.NOT_PAUSED)


def combine_exit_codes(codes: Iterable[int]) -> ExitCode:
    """1 if any is not ready, else 2 if any cannot be told (or there are none), else 3 if any
    has nothing to resume, else 0."""
    seen = set(codes)
    if not seen:
        return ExitCode.CANNOT_TELL
    return next((code for code in _PRECEDENCE if code in seen), ExitCode.READY)


def _time(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def _epoch(t: datetime | None) -> float | None:
    return None if t is None else t.timestamp()


class PauseSignalWire(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    """A PauseReason value, or one a newer server added."""
    active: bool
    observed: float | None
    threshold: float
    unit: str
    since: datetime | None
    detail: str

    @classmethod
    def of(cls, s: PauseSignal) -> PauseSignalWire:
        return cls(
            reason=s.reason.value,
            active=s.active,
            observed=s.observed,
            threshold=s.threshold,
            unit=s.unit,
            since=_time(s.since),
            detail=s.detail,
        )


class Condition(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    """A ResumeCondition value, or one a newer server added."""
    status: ConditionStatus
    blocking: bool
    observed: float | None
    threshold: float
    unit: str
    since: datetime | None
    detail: str

    @classmethod
    def of(cls, c: ConditionResult) -> Condition:
        return cls(
            reason=c.condition.value,
            status=c.status,
            blocking=c.blocks,
            observed=c.observed,
            threshold=c.threshold,
            unit=c.unit,
            since=_time(c.since),
            detail=c.detail,
        )

    @property
    def since_epoch(self) -> float | None:
        return _epoch(self.since)


class ReadinessWire(msgspec.Struct, frozen=True, kw_only=True):
    state: ReadinessState
    ready: bool
    exit_code: ExitCode
    detail: str
    conditions: tuple[Condition, ...]


class Episode(msgspec.Struct, frozen=True, kw_only=True):
    """The current pause episode, summarised (counts, not ids)."""

    source: EpisodeSource
    started_at: datetime
    started_by: str | None
    reason: str | None
    ledger_episode_ids: tuple[str, ...]
    groups: int
    """Paused groups in the episode: what a resume would resume."""
    paused_before: int
    undetermined: int


class Excluded(msgspec.Struct, frozen=True, kw_only=True):
    paused_before_episode: int
    pause_time_unknown: int
    no_pause_episode: int
    already_on: int
    not_found: int
    canary_group: int = 0
    """The canary probe's group, never resumed unless named (#20)."""


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    critical_groups: int
    other_groups: int
    batches: int
    batch_size: int
    max_critical_groups: int
    batch_interval_seconds: float
    estimated_duration_seconds: float
    excluded: Excluded

    @classmethod
    def of(cls, p: PlanSummary) -> Plan:
        counts = {reason.value: n for reason, n in p.excluded}
        return cls(
            critical_groups=p.critical_groups,
            other_groups=p.other_groups,
            batches=p.batches,
            batch_size=p.batch_size,
            max_critical_groups=p.max_critical_groups,
            batch_interval_seconds=p.batch_interval_seconds,
            estimated_duration_seconds=p.estimated_duration_seconds,
            excluded=Excluded(**{r.value: counts.get(r.value, 0) for r in ExclusionReason}),
        )


class Rate(msgspec.Struct, frozen=True, kw_only=True):
    last_hour: int | None
    baseline_per_hour: float | None
    baseline_method: str
    deviation_ratio: float | None


class Rates(msgspec.Struct, frozen=True, kw_only=True):
    membership_changes: Rate
    user_changes: Rate
    device_changes: Rate


class Groups(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    on: int
    paused: int
    critical: int
    critical_failed: int


class Lag(msgspec.Struct, frozen=True, kw_only=True):
    window_seconds: float
    samples: int
    median_seconds: float | None
    p90_seconds: float | None


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    """The canary probe's evidence (#20): measured processing delay, not an estimate."""

    latest_latency_seconds: float | None
    latest_outcome: ProbeOutcome | None
    last_success: datetime | None
    consecutive_normal_rounds: int
    """Counted from the pause's start while there is a pause episode."""
    rounds_needed: int
    normal_latency_seconds: float
    in_flight_since: datetime | None
    keeping_up: bool | None
    detail: str

    @classmethod
    def of(cls, p: ProbeEvidence | None) -> Probe | None:
        if p is None:
            return None
        return cls(
            latest_latency_seconds=p.latest_latency,
            latest_outcome=p.latest_outcome,
            last_success=_time(p.last_success),
            consecutive_normal_rounds=p.consecutive_normal,
            rounds_needed=p.needed,
            normal_latency_seconds=p.normal_latency,
            in_flight_since=_time(p.in_flight_since),
            keeping_up=p.keeping_up,
            detail=p.detail,
        )


class Queue(msgspec.Struct, frozen=True, kw_only=True):
    """The work still waiting in the processing queue, seen from the audit log (#23,
    docs/signals.md "Queue")."""

    waiting_triggers: int
    oldest_waiting_seconds: float | None
    """None when too few wait to judge."""
    processed_through: datetime | None
    """The newest trigger known to be processed: the queue's front."""
    rate_per_hour: float | None
    drain_seconds: float | None
    """When the backlog will have drained at the recent rate: 0 when nothing waits, None when
    it cannot be told or is not draining."""

    @classmethod
    def of(cls, q: QueueEstimate | None) -> Queue | None:
        if q is None:
            return None
        return cls(
            waiting_triggers=q.waiting_triggers,
            oldest_waiting_seconds=q.oldest_waiting_seconds,
            processed_through=_time(q.processed_through),
            rate_per_hour=q.rate_per_hour,
            drain_seconds=q.drain_seconds,
        )


class MidResume(msgspec.Struct, frozen=True, kw_only=True):
    """Triggers climb again while some of the episode's groups are back On (#23)."""

    resumed_group_ids: tuple[str, ...]
    still_paused: int
    why: tuple[str, ...]
    command: str
    """Pauses exactly the resumed groups again."""


class Assessment(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant's assessment (docs/readiness.schema.json)."""

    schema_version: int
    tenant: str
    evaluated_at: datetime
    audit_watermark: datetime | None
    pause_warranted: bool
    pause_signals: tuple[PauseSignalWire, ...]
    readiness: ReadinessWire
    episode: Episode | None
    plan: Plan
    rates: Rates
    groups_changed_last_hour: int
    groups: Groups
    lag: Lag
    probe: Probe | None = None
    """Null without a canary probe."""
    queue: Queue | None = None
    mid_resume: MidResume | None = None

    @classmethod
    def of(cls, a: TenantAssessment) -> Assessment:
        e, r = a.episode, a.readiness
        rates = {
            m.value: Rate(
                last_hour=x.last_hour,
                baseline_per_hour=x.baseline,
                baseline_method=x.baseline_method,
                deviation_ratio=x.deviation_ratio,
            )
            for m in Measure
            for x in (a.rate(m),)
        }
        return cls(
            schema_version=SCHEMA_VERSION,
            tenant=a.tenant,
            evaluated_at=datetime.fromtimestamp(a.evaluated_at, UTC),
            audit_watermark=_time(a.audit_watermark),
            pause_warranted=a.pause_warranted,
            pause_signals=tuple(PauseSignalWire.of(s) for s in a.pause_signals),
            readiness=ReadinessWire(
                state=r.state,
                ready=r.ready,
                exit_code=EXIT_CODES[r.state],
                detail=r.detail,
                conditions=tuple(Condition.of(c) for c in r.conditions),
            ),
            episode=None
            if e is None
            else Episode(
                source=e.source,
                started_at=datetime.fromtimestamp(e.started_at, UTC),
                started_by=e.started_by,
                reason=e.reason,
                ledger_episode_ids=e.ledger_episode_ids,
                groups=len(e.group_ids),
                paused_before=len(e.paused_before),
                undetermined=len(e.undetermined),
            ),
            plan=Plan.of(a.plan),
            rates=Rates(**rates),
            groups_changed_last_hour=a.groups_changed_last_hour,
            groups=Groups(
                total=a.groups.total,
                on=a.groups.on,
                paused=a.groups.paused,
                critical=a.groups.critical,
                critical_failed=a.groups.critical_failed,
            ),
            lag=Lag(
                window_seconds=a.lag.window_seconds,
                samples=a.lag.samples,
                median_seconds=a.lag.median_seconds,
                p90_seconds=a.lag.p90_seconds,
            ),
            probe=Probe.of(a.probe),
            queue=Queue.of(a.queue),
            mid_resume=None
            if a.mid_resume is None
            else MidResume(
                resumed_group_ids=a.mid_resume.resumed_group_ids,
                still_paused=a.mid_resume.still_paused,
                why=a.mid_resume.why,
                command=a.mid_resume.command(a.tenant),
            ),
        )


class CauseCount(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    """An initiator (user principal name or app), a property (`user.extensionAttribute5`), or
    `other`."""
    triggers: int
    readers: int | None
    """For a property: dynamic groups and units whose rule reads it (None: not known yet)."""


class TriggerCauses(msgspec.Struct, frozen=True, kw_only=True):
    """Storm attribution: the trailing hour's triggers by initiator and by changed property,
    top 5 of each and `other` (docs/impact.md)."""

    initiators: tuple[CauseCount, ...]
    properties: tuple[CauseCount, ...]

    @classmethod
    def of(cls, causes: attribution.TriggerCauses | None) -> TriggerCauses | None:
        if causes is None:
            return None
        return cls(
            initiators=tuple(
                CauseCount(name=c.name, triggers=c.triggers, readers=c.readers)
                for c in causes.initiators
            ),
            properties=tuple(
                CauseCount(name=c.name, triggers=c.triggers, readers=c.readers)
                for c in causes.properties
            ),
        )


class TenantReadiness(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant's entry: its state as the exporter judges it now (a stale assessment is
    `cannot_tell`), and the assessment it was judged from (null before the first one)."""

    tenant: str
    state: ReadinessState
    exit_code: ExitCode
    detail: str
    stale: bool
    assessment_age_seconds: float | None
    assessment: Assessment | None
    trigger_causes: TriggerCauses | None = None

    @property
    def ready(self) -> bool:
        """Every resume condition holds and there is something to resume."""
        return self.state is ReadinessState.READY

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """Every resume condition, in the documented order (empty without an assessment)."""
        return () if self.assessment is None else self.assessment.readiness.conditions

    def condition(self, reason: ResumeCondition) -> Condition | None:
        return next((c for c in self.conditions if c.reason == reason.value), None)

    @property
    def pause_signals(self) -> tuple[PauseSignalWire, ...]:
        return () if self.assessment is None else self.assessment.pause_signals

    @property
    def pause_warranted(self) -> bool | None:
        return None if self.assessment is None else self.assessment.pause_warranted

    @property
    def episode(self) -> Episode | None:
        return None if self.assessment is None else self.assessment.episode

    @property
    def plan(self) -> Plan | None:
        return None if self.assessment is None else self.assessment.plan


class ReadinessBody(msgspec.Struct, frozen=True, kw_only=True):
    """The whole answer (docs/readiness-api.schema.json)."""

    api_version: int
    ready: bool
    """Every listed tenant is ready to resume (exactly when exit_code is 0)."""
    exit_code: ExitCode
    tenants: tuple[TenantReadiness, ...]

    @classmethod
    def of(cls, tenants: Iterable[TenantReadiness]) -> ReadinessBody:
        entries = tuple(tenants)
        code = combine_exit_codes(t.exit_code for t in entries)
        return cls(
            api_version=API_VERSION,
            ready=code is ExitCode.READY,
            exit_code=code,
            tenants=entries,
        )


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """What the server answers instead of a body (400, 404)."""

    error: str


def encode(body: ReadinessBody | ErrorBody) -> bytes:
    """Indented, one trailing newline: people read it with curl too."""
    return msgspec.json.format(msgspec.json.encode(body), indent=2) + b"\n"


class _Version(msgspec.Struct):
    api_version: object = None


_VERSION = msgspec.json.Decoder(_Version)
_BODY = msgspec.json.Decoder(ReadinessBody)
_ERROR = msgspec.json.Decoder(ErrorBody)


def api_version(data: bytes) -> object:
    """The body's api_version, read before the rest (None when it is not a JSON object):
    another version must be refused as such, not as a malformed answer."""
    try:
        return _VERSION.decode(data).api_version
    except msgspec.DecodeError:
        return None


def decode(data: bytes) -> ReadinessBody:
    """Raises msgspec.DecodeError (or its ValidationError) naming the first problem."""
    return _BODY.decode(data)


def decode_error(data: bytes) -> str | None:
    try:
        return _ERROR.decode(data).error
    except msgspec.DecodeError:
        return None


__all__ = [
    "API_VERSION",
    "EXIT_CODES",
    "READINESS_PATH",
    "Assessment",
    "Condition",
    "Episode",
    "ErrorBody",
    "ExitCode",
    "Plan",
    "ReadinessBody",
    "TenantReadiness",
    "combine_exit_codes",
    "decode",
    "encode",
]
