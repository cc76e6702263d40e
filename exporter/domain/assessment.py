"""Everything on-call needs about one tenant at one instant, in one immutable value.

`assess_tenant(observations, thresholds=..., resume=..., now=...)` is what the collector, the
JSON API `/api/v1/readiness` and `check-resume` present. `TenantAssessment.to_json_dict()` gives
the documented JSON shape (docs/signals.md; schema: docs/readiness.schema.json).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.domain.baseline import MEASURE_SERIES, Baseline, Measure, deviation_ratio
from exporter.domain.episode import PauseEpisode
from exporter.domain.formatting import iso
from exporter.domain.groups import GroupState, LedgerEpisode, MembershipProcessingStatus
from exporter.domain.history import CountHistory
from exporter.domain.lag import LagSample, LagSummary, summarize_lag
from exporter.domain.plan import PlanSummary, episode_and_plan
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

    @property
    def pause_warranted(self) -> bool:
        return any(s.active for s in self.pause_signals)

    def rate(self, measure: Measure) -> RateReading:
        return next(r for r in self.rates if r.measure is measure)

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values; timestamps as ISO 8601 UTC strings, durations in seconds."""
        episode = self.episode
        return {
            "schema_version": SCHEMA_VERSION,
            "tenant": self.tenant,
            "evaluated_at": iso(self.evaluated_at),
            "audit_watermark": iso(self.audit_watermark),
            "pause_warranted": self.pause_warranted,
            "pause_signals": [
                {
                    "reason": s.reason.value,
                    "active": s.active,
                    "observed": s.observed,
                    "threshold": s.threshold,
                    "unit": s.unit,
                    "since": iso(s.since),
                    "detail": s.detail,
                }
                for s in self.pause_signals
            ],
            "readiness": {
                "state": self.readiness.state.value,
                "ready": self.readiness.ready,
                "exit_code": self.readiness.state.exit_code,
                "detail": self.readiness.detail,
                "conditions": [
                    {
                        "reason": c.condition.value,
                        "status": c.status.value,
                        "blocking": c.blocks,
                        "observed": c.observed,
                        "threshold": c.threshold,
                        "unit": c.unit,
                        "since": iso(c.since),
                        "detail": c.detail,
                    }
                    for c in self.readiness.conditions
                ],
            },
            "episode": None
            if episode is None
            else {
                "source": episode.source.value,
                "started_at": iso(episode.started_at),
                "started_by": episode.started_by,
                "reason": episode.reason,
                "ledger_episode_ids": list(episode.ledger_episode_ids),
                "groups": len(episode.group_ids),
                "paused_before": len(episode.paused_before),
                "undetermined": len(episode.undetermined),
            },
            "plan": {
                "critical_groups": self.plan.critical_groups,
                "other_groups": self.plan.other_groups,
                "batches": self.plan.batches,
                "batch_size": self.plan.batch_size,
                "max_critical_groups": self.plan.max_critical_groups,
                "batch_interval_seconds": self.plan.batch_interval_seconds,
                "estimated_duration_seconds": self.plan.estimated_duration_seconds,
                "excluded": {reason.value: n for reason, n in self.plan.excluded},
            },
            "rates": {
                r.measure.value: {
                    "last_hour": r.last_hour,
                    "baseline_per_hour": r.baseline,
                    "baseline_method": r.baseline_method,
                    "deviation_ratio": r.deviation_ratio,
                }
                for r in self.rates
            },
            "groups_changed_last_hour": self.groups_changed_last_hour,
            "groups": {
                "total": self.groups.total,
                "on": self.groups.on,
                "paused": self.groups.paused,
                "critical": self.groups.critical,
                "critical_failed": self.groups.critical_failed,
            },
            "lag": {
                "window_seconds": self.lag.window_seconds,
                "samples": self.lag.samples,
                "median_seconds": self.lag.median_seconds,
                "p90_seconds": self.lag.p90_seconds,
            },
        }


def make_baselines(history: CountHistory, thresholds: Thresholds) -> dict[Measure, Baseline]:
    return {m: Baseline(history, m, thresholds.baseline_floor_per_hour) for m in Measure}


def assess_tenant(
    observations: TenantObservations,
    *,
    thresholds: Thresholds,
    resume: ResumeSettings,
    now: float,
) -> TenantAssessment:
    obs = observations
    history = obs.history
    baselines = make_baselines(history, thresholds)
    lag = summarize_lag(obs.lag_samples, now=now, window=thresholds.lag_window)
    episode, plan = episode_and_plan(
        obs.groups,
        obs.ledger,
        now=now,
        thresholds=thresholds,
        resume=resume,
        critical_priority=obs.critical_priority,
    )
    signals = evaluate_pause_signals(
        history=history,
        baselines=baselines,
        groups=obs.groups,
        group_last_change=obs.group_last_change,
        lag=lag,
        thresholds=thresholds,
        now=now,
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
    )
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
