"""Everything on-call needs about one tenant at one instant, in one immutable value.

`assess_tenant(observations, thresholds=..., resume=..., now=...)` is what the collector, the
JSON API `/api/v1/readiness` and `check-resume` present. Its JSON shape is the readiness wire
format's `Assessment` (exporter/readiness/wire.py; schema: docs/readiness.schema.json).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from exporter.domain.baseline import MEASURE_SERIES, Baseline, Measure, deviation_ratio
from exporter.domain.episode import PauseEpisode
from exporter.domain.groups import (
    GroupState,
    LedgerEpisode,
    MembershipProcessingStatus,
    reconcile_with_ledger,
)
from exporter.domain.history import CountHistory
from exporter.domain.lag import LagSample, LagSummary, summarize_lag
from exporter.domain.midresume import MidResumeStorm, mid_resume_storm
from exporter.domain.plan import PlanSummary, episode_and_plan
from exporter.domain.probe import ProbeEvidence, ProbeRound, ProbeSettings, probe_evidence
from exporter.domain.queue import QueueEstimate, WaitingTriggers, estimate_queue
from exporter.domain.readiness import CollectorHealth, Readiness, evaluate_readiness
from exporter.domain.settings import ResumeSettings, Thresholds
from exporter.domain.signals import (
    PauseSignal,
    evaluate_pause_signals,
    groups_changed_last_hour,
)

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class TenantObservations:
    """What the store knows about one tenant (docs/signals.md, "Inputs")."""

    tenant: str
    history: CountHistory
    groups: tuple[GroupState, ...]
    group_last_change: Mapping[str, float] = field(default_factory=dict)
    """Group id -> activityDateTime of its last dynamic membership change."""
    ledger: tuple[LedgerEpisode, ...] = ()
    collectors: tuple[CollectorHealth, ...] = ()
    audit_watermark: float | None = None
    lag_samples: tuple[LagSample, ...] = ()
    """Recent lag samples (at least those whose change falls within `lag_window`)."""
    critical_priority: tuple[str, ...] = ()
    """The tenant's configured critical groups, in order: the order critical groups resume."""
    probe_settings: ProbeSettings | None = None
    """The canary probe's settings; None without a probe (#20)."""
    probe_rounds: tuple[ProbeRound, ...] = ()
    """Its recent rounds, oldest first (the runner's memory, not the store)."""
    waiting: WaitingTriggers | None = None
    """Triggers after the processing queue's front that no change answered (`domain/queue`)."""


@dataclass(frozen=True, slots=True)
class RateReading:
    measure: Measure
    last_hour: int | None
    """Events in the trailing hour; None without data for it."""
    baseline: float | None
    """Expected count for the trailing hour (floored); None without history."""
    baseline_method: str
    deviation_ratio: float | None


@dataclass(frozen=True, slots=True)
class GroupCounts:
    total: int
    on: int
    paused: int
    critical: int
    critical_failed: int


@dataclass(frozen=True, slots=True)
class TenantAssessment:
    tenant: str
    evaluated_at: float
    audit_watermark: float | None
    pause_signals: tuple[PauseSignal, ...]
    readiness: Readiness
    episode: PauseEpisode | None
    plan: PlanSummary
    rates: tuple[RateReading, ...]
    groups_changed_last_hour: int
    groups: GroupCounts
    lag: LagSummary
    probe: ProbeEvidence | None = None
    """The canary probe's evidence, counted from the pause's start when there is one."""
    queue: QueueEstimate | None = None
    mid_resume: MidResumeStorm | None = None
    """Triggers climb again while some of the episode's groups are back On (#23)."""

    @property
    def pause_warranted(self) -> bool:
        return any(s.active for s in self.pause_signals)

    def rate(self, measure: Measure) -> RateReading:
        return next(r for r in self.rates if r.measure is measure)


def make_baselines(history: CountHistory, thresholds: Thresholds) -> dict[Measure, Baseline]:
    return {m: Baseline(history, m, thresholds.baseline_floor_per_hour) for m in Measure}


def assess_tenant(
    observations: TenantObservations,
    *,
    thresholds: Thresholds,
    resume: ResumeSettings,
    now: float,
) -> TenantAssessment:
    obs = replace(
        observations, groups=reconcile_with_ledger(observations.groups, observations.ledger)
    )
    history = obs.history
    baselines = make_baselines(history, thresholds)
    lag = summarize_lag(obs.lag_samples, now=now, window=thresholds.lag_window)
    queue = (
        None
        if obs.waiting is None
        else estimate_queue(
            obs.waiting,
            history,
            now=now,
            groups_on=sum(1 for g in obs.groups if not g.paused),
        )
    )
    episode, plan = episode_and_plan(
        obs.groups,
        obs.ledger,
        now=now,
        thresholds=thresholds,
        resume=resume,
        critical_priority=obs.critical_priority,
        canary=obs.probe_settings.group_id if obs.probe_settings is not None else None,
    )
    signals = evaluate_pause_signals(
        history=history,
        baselines=baselines,
        groups=obs.groups,
        group_last_change=obs.group_last_change,
        lag=lag,
        thresholds=thresholds,
        now=now,
        queue=queue,
    )
    probe = (
        None
        if obs.probe_settings is None
        else probe_evidence(
            obs.probe_rounds,
            obs.probe_settings,
            now,
            since=episode.started_at if episode is not None else None,
        )
    )
    readiness = evaluate_readiness(
        episode=episode,
        history=history,
        baselines=baselines,
        groups=obs.groups,
        collectors=obs.collectors,
        audit_watermark=obs.audit_watermark,
        thresholds=thresholds,
        now=now,
        probe=probe,
    )
    mid_resume = mid_resume_storm(episode, obs.groups, obs.ledger, signals, readiness)
    if mid_resume is not None:
        readiness = replace(readiness, detail=f"{readiness.detail}; {mid_resume.text(obs.tenant)}")
    return TenantAssessment(
        tenant=obs.tenant,
        evaluated_at=now,
        audit_watermark=obs.audit_watermark,
        pause_signals=signals,
        readiness=readiness,
        episode=episode,
        plan=plan.summary,
        rates=_rates(history, baselines, now),
        groups_changed_last_hour=groups_changed_last_hour(obs.group_last_change, now),
        groups=_group_counts(obs.groups),
        lag=lag,
        probe=probe,
        queue=queue,
        mid_resume=mid_resume,
    )


def _rates(
    history: CountHistory, baselines: Mapping[Measure, Baseline], now: float
) -> tuple[RateReading, ...]:
    known = history.trailing_hour_known(now)
    readings = []
    for measure in Measure:
        count = history.trailing_hour_count(MEASURE_SERIES[measure], now) if known else None
        expected = baselines[measure].trailing_hour(now)
        ratio = None if count is None else deviation_ratio(count, expected.expected)
        readings.append(
            RateReading(measure, count, expected.expected, expected.method.value, ratio)
        )
    return tuple(readings)


def _group_counts(groups: Sequence[GroupState]) -> GroupCounts:
    paused = sum(1 for g in groups if g.paused)
    return GroupCounts(
        total=len(groups),
        on=len(groups) - paused,
        paused=paused,
        critical=sum(1 for g in groups if g.critical),
        critical_failed=sum(
            1
            for g in groups
            if g.critical
            and g.status is not None
            and g.status.status is MembershipProcessingStatus.FAILED
        ),
    )
