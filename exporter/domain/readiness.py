"""Resume ready: every condition, each with its status, and one overall state.

States, in the order they are decided:

1. `cannot_tell` when the data cannot be trusted: the audit watermark is stale or a
   collector has not succeeded recently. Nothing else is judged on untrusted data, not even
   whether something is paused (the groups collector may be the one failing).
2. `not_paused` when there is no pause episode: resume is moot. The resume_ready gauge
   is 0 (nothing to resume, so no "ready" alert), and the conditions are still reported.
3. `cannot_tell` when a condition lacks the data to be judged (no baseline yet, a gap
   in the audit data inside the recovery window).
4. `not_ready` when any condition blocks.
5. `ready`.

check-resume's exit code for each state is the wire format's (exporter/readiness/wire.py).

Recovery is judged on the trigger rate, never on membership changes: while groups are paused
membership changes fall to near zero by construction (DESIGN.md section 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from exporter.domain.baseline import TRIGGER_MEASURES, Baseline, Measure
from exporter.domain.episode import PauseEpisode
from exporter.domain.formatting import human_duration, short_time
from exporter.domain.groups import GroupState, MembershipProcessingStatus
from exporter.domain.history import HOUR, CountHistory, floor_to
from exporter.domain.probe import ProbeEvidence
from exporter.domain.settings import Thresholds

RECOVERY_LOOKBACK_HOURS = 168
"""How far back the recovery streak is followed to say since when it holds."""


class ReadinessState(StrEnum):
    READY = "ready"
    NOT_READY = "not_ready"
    CANNOT_TELL = "cannot_tell"
    NOT_PAUSED = "not_paused"


class ResumeCondition(StrEnum):
    """Label values of entra_dynamic_resume_blocked{reason} (docs/architecture.md)."""

    MINIMUM_PAUSE = "minimum_pause"
    TRIGGER_RATE_RECOVERY = "trigger_rate_recovery"
    AUDIT_DATA_STALE = "audit_data_stale"
    COLLECTOR_FAILING = "collector_failing"
    CRITICAL_GROUP_FAILED = "critical_group_failed"
    PROCESSING_KEEPING_UP = "processing_keeping_up"
    """The canary probe's measured latency (#20): blocks when it shows processing is not
    keeping up; not applicable without a probe or before it has enough rounds."""


TRUST_CONDITIONS = frozenset({ResumeCondition.AUDIT_DATA_STALE, ResumeCondition.COLLECTOR_FAILING})


class ConditionStatus(StrEnum):
    MET = "met"
    BLOCKING = "blocking"
    UNKNOWN = "unknown"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True)
class CollectorHealth:
    """One collector (`audit`, `groups`, `administrative_units`, `critical_status`)."""

    name: str
    success: bool
    """Whether its last poll succeeded."""
    last_success: float | None


@dataclass(frozen=True, slots=True)
class ConditionResult:
    condition: ResumeCondition
    status: ConditionStatus
    observed: float | None
    threshold: float
    unit: str
    since: float | None
    """Since when the current status holds, where known."""
    detail: str

    @property
    def blocks(self) -> bool:
        """What entra_dynamic_resume_blocked{reason} exports: 1 unless met or not applicable."""
        return self.status in (ConditionStatus.BLOCKING, ConditionStatus.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Readiness:
    state: ReadinessState
    conditions: tuple[ConditionResult, ...]
    detail: str

    @property
    def ready(self) -> bool:
        """What entra_dynamic_resume_ready exports."""
        return self.state is ReadinessState.READY


def minimum_pause(
    episode: PauseEpisode | None,
    thresholds: Thresholds,
    now: float,
    probe: ProbeEvidence | None = None,
) -> ConditionResult:
    """The pause's age against `minimum_pause`, or against `minimum_pause_with_evidence` while
    the canary probe shows processing keeping up (normal latency for its evidence rounds since
    the pause began): measured evidence replaces the waiting (docs/signals.md)."""
    evidence = probe is not None and probe.keeping_up is True
    minimum = (
        min(thresholds.minimum_pause_with_evidence, thresholds.minimum_pause)
        if evidence
        else thresholds.minimum_pause
    )
    c, unit = ResumeCondition.MINIMUM_PAUSE, "seconds"
    if episode is None:
        return ConditionResult(
            c, ConditionStatus.NOT_APPLICABLE, None, minimum, unit, None, "no pause episode"
        )
    age = now - episode.started_at
    text = (
        f"paused for {human_duration(age)} since {short_time(episode.started_at)} "
        f"({episode.source.value}); minimum {human_duration(minimum)}"
    )
    if evidence:
        text += " (with the canary probe's evidence of processing keeping up)"
    if age >= minimum:
        return ConditionResult(
            c, ConditionStatus.MET, age, minimum, unit, episode.started_at + minimum, text
        )
    text += f", reached at {short_time(episode.started_at + minimum)}"
    return ConditionResult(
        c, ConditionStatus.BLOCKING, age, minimum, unit, episode.started_at, text
    )


def trigger_rate_recovery(
    history: CountHistory,
    baselines: Mapping[Measure, Baseline],
    thresholds: Thresholds,
    now: float,
) -> ConditionResult:
    """Consecutive complete hours, counted back from the last one the audit data covers, in
    which every object type's trigger count stayed within tolerance x its baseline. A partial
    current hour that has already exceeded it breaks the streak at once: counts only grow."""
    needed = thresholds.recovery_hours
    tolerance = thresholds.recovery_tolerance
    c, unit = ResumeCondition.TRIGGER_RATE_RECOVERY, "hours"
    end = history.coverage_end
    if end is None:
        return ConditionResult(
            c, ConditionStatus.UNKNOWN, None, needed, unit, None, "no audit data yet"
        )
    end = min(end, now)
    current = floor_to(end, HOUR)
    for measure in TRIGGER_MEASURES:
        expected = baselines[measure].hour(current).expected
        so_far = sum(history.hourly.get(s, {}).get(current, 0) for s in baselines[measure].series)
        if expected is not None and so_far > tolerance * expected:
            return ConditionResult(
                c,
                ConditionStatus.BLOCKING,
                0,
                needed,
                unit,
                None,
                f"{measure.value.replace('_', ' ')} climbing again: {so_far:,} since "
                f"{short_time(current)}, above {tolerance:g} x {expected:,.0f} expected",
            )

    streak, stop = 0, ""
    unknown = False
    for k in range(1, RECOVERY_LOOKBACK_HOURS + 1):
        hour = current - k * HOUR
        verdict = _hour_within(history, baselines, hour, tolerance)
        if verdict is None:
            unknown = streak < needed
            stop = f"no data or no baseline for the hour of {short_time(hour)}"
            break
        if verdict:
            stop = f"{verdict} in the hour of {short_time(hour)}"
            break
        streak += 1
    since = current - streak * HOUR if streak else None
    text = (
        f"{streak} consecutive complete hour(s) within {tolerance:g} x baseline ({needed} needed)"
    )
    if stop:
        text += f"; before that: {stop}"
    if streak >= needed:
        assert since is not None
        return ConditionResult(
            c, ConditionStatus.MET, streak, needed, unit, since + needed * HOUR, text
        )
    status = ConditionStatus.UNKNOWN if unknown else ConditionStatus.BLOCKING
    return ConditionResult(c, status, streak, needed, unit, since, text)


def _hour_within(
    history: CountHistory,
    baselines: Mapping[Measure, Baseline],
    hour: int,
    tolerance: float,
) -> str | None:
    """'' when every trigger measure was within tolerance in that hour, a description of the
    excess when one was not, None when it cannot be judged."""
    for measure in TRIGGER_MEASURES:
        baseline = baselines[measure]
        count = history.hour_count(baseline.series, hour)
        expected = baseline.hour(hour).expected
        if count is None or expected is None:
            return None
        if count > tolerance * expected:
            noun = measure.value.replace("_", " ")
            return f"{count:,} {noun} (above {tolerance:g} x {expected:,.0f})"
    return ""


def audit_data_fresh(
    audit_watermark: float | None, thresholds: Thresholds, now: float
) -> ConditionResult:
    limit = thresholds.watermark_max_age
    c, unit = ResumeCondition.AUDIT_DATA_STALE, "seconds"
    if audit_watermark is None:
        return ConditionResult(
            c, ConditionStatus.BLOCKING, None, limit, unit, None, "no audit data ingested yet"
        )
    age = now - audit_watermark
    text = f"audit data complete up to {short_time(audit_watermark)} ({human_duration(age)} ago)"
    if age > limit:
        return ConditionResult(
            c,
            ConditionStatus.BLOCKING,
            age,
            limit,
            unit,
            audit_watermark + limit,
            f"{text}; trusted up to {human_duration(limit)}",
        )
    return ConditionResult(c, ConditionStatus.MET, age, limit, unit, None, text)


def collectors_healthy(
    collectors: Sequence[CollectorHealth], thresholds: Thresholds, now: float
) -> ConditionResult:
    limit = thresholds.collector_max_age
    c, unit = ResumeCondition.COLLECTOR_FAILING, "collectors"
    if not collectors:
        return ConditionResult(
            c, ConditionStatus.BLOCKING, None, 0, unit, None, "no collector has reported yet"
        )
    failing = sorted(
        (x for x in collectors if x.last_success is None or now - x.last_success > limit),
        key=lambda x: x.name,
    )
    shaky = sorted(x.name for x in collectors if not x.success and x not in failing)
    if not failing:
        text = f"{len(collectors)} collector(s) succeeded within {human_duration(limit)}"
        if shaky:
            text += f" (last poll failed, retrying: {', '.join(shaky)})"
        return ConditionResult(c, ConditionStatus.MET, 0, 0, unit, None, text)
    parts = [
        f"{x.name} (never succeeded)"
        if x.last_success is None
        else f"{x.name} (last success {human_duration(now - x.last_success)} ago)"
        for x in failing
    ]
    known = [x.last_success + limit for x in failing if x.last_success is not None]
    since = min(known) if len(known) == len(failing) else None
    return ConditionResult(
        c,
        ConditionStatus.BLOCKING,
        len(failing),
        0,
        unit,
        since,
        f"failing: {', '.join(parts)}",
    )


def no_failed_critical_group(groups: Sequence[GroupState]) -> ConditionResult:
    c, unit = ResumeCondition.CRITICAL_GROUP_FAILED, "groups"
    failed = sorted(
        (
            g
            for g in groups
            if g.critical
            and g.status is not None
            and g.status.status is MembershipProcessingStatus.FAILED
        ),
        key=lambda g: (g.name.casefold(), g.id),
    )
    critical = sum(1 for g in groups if g.critical)
    if not failed:
        text = f"no failed processing status among {critical} critical group(s)"
        return ConditionResult(c, ConditionStatus.MET, 0, 0, unit, None, text)
    names = "; ".join(
        f"{g.name} ({g.id})" + (f": {g.status.error_message}" if g.status.error_message else "")
        for g in failed[:3]
        if g.status is not None
    )
    more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
    return ConditionResult(
        c,
        ConditionStatus.BLOCKING,
        len(failed),
        0,
        unit,
        None,
        f"processing status Failed: {names}{more}",
    )


def processing_keeping_up(probe: ProbeEvidence | None) -> ConditionResult:
    c, unit = ResumeCondition.PROCESSING_KEEPING_UP, "seconds"
    if probe is None:
        return ConditionResult(
            c, ConditionStatus.NOT_APPLICABLE, None, 0, unit, None, "no canary probe configured"
        )
    status = {
        True: ConditionStatus.MET,
        False: ConditionStatus.BLOCKING,
        None: ConditionStatus.NOT_APPLICABLE,
    }[probe.keeping_up]
    prefix = {
        True: "processing is keeping up",
        False: "processing is not keeping up",
        None: "not enough probe rounds since the pause to tell",
    }[probe.keeping_up]
    return ConditionResult(
        c,
        status,
        probe.latest_latency,
        probe.normal_latency,
        unit,
        probe.in_flight_since if probe.keeping_up is False else None,
        f"{prefix}: {probe.detail}",
    )


def evaluate_readiness(
    *,
    episode: PauseEpisode | None,
    history: CountHistory,
    baselines: Mapping[Measure, Baseline],
    groups: Sequence[GroupState],
    collectors: Sequence[CollectorHealth],
    audit_watermark: float | None,
    thresholds: Thresholds,
    now: float,
    probe: ProbeEvidence | None = None,
) -> Readiness:
    conditions = (
        minimum_pause(episode, thresholds, now, probe),
        trigger_rate_recovery(history, baselines, thresholds, now),
        audit_data_fresh(audit_watermark, thresholds, now),
        collectors_healthy(collectors, thresholds, now),
        no_failed_critical_group(groups),
        processing_keeping_up(probe),
    )
    blocking = [x for x in conditions if x.blocks]
    untrusted = [x for x in blocking if x.condition in TRUST_CONDITIONS]
    paused = sum(1 for g in groups if g.paused)
    if untrusted:
        state = ReadinessState.CANNOT_TELL
        detail = (
            "cannot tell: the data cannot be trusted ("
            + "; ".join(x.detail for x in untrusted)
            + ")"
        )
    elif episode is None:
        state = ReadinessState.NOT_PAUSED
        detail = "nothing to resume: no pause episode"
        if paused:
            detail += (
                f" ({paused:,} group(s) paused outside any episode: parked, or paused at an "
                "unknown time; name them to resume them)"
            )
    elif any(x.status is ConditionStatus.UNKNOWN for x in blocking):
        state = ReadinessState.CANNOT_TELL
        detail = "cannot tell: " + "; ".join(
            x.detail for x in blocking if x.status is ConditionStatus.UNKNOWN
        )
    elif blocking:
        state = ReadinessState.NOT_READY
        detail = "not ready: " + ", ".join(x.condition.value for x in blocking)
    else:
        state = ReadinessState.READY
        detail = f"ready to resume {len(episode.group_ids):,} group(s)"
    return Readiness(state, conditions, detail)
