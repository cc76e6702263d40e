"""Pause warranted: one signal per reason, every reason always reported (docs/signals.md).

Trailing-hour counts come from the minute buckets: the trailing hour at t is the 60 minute
buckets ending with the one that holds the last instant before t. It is evaluated at `now` and,
to say since when a condition holds (and whether it is sustained), at every minute before it
until the condition fails or the data ends (at most 47 h back: minute buckets are kept 48 h).
The still-arriving tail after the audit watermark counts what has arrived so far, a lower
bound: pause signals then err on the side of not firing, and catch up within the lateness
allowance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from exporter.domain.baseline import TRIGGER_MEASURES, Baseline, Measure, deviation_ratio
from exporter.domain.events import RELEVANT_TRIGGER_SERIES, ObjectType, Series
from exporter.domain.formatting import human_duration, short_time
from exporter.domain.groups import GroupState
from exporter.domain.history import (
    HOUR,
    MINUTE,
    CountHistory,
    floor_to,
    last_minute_bucket,
    trailing_hour,
)
from exporter.domain.lag import LagSummary
from exporter.domain.queue import QueueEstimate
from exporter.domain.settings import MINUTE_BUCKET_RETENTION, Thresholds

MIN_LAG_SAMPLES = 10
"""Fewer lag samples than this in the window say nothing about a queue: a quiet tenant's handful
of changes can include one matched to an old unrelated trigger."""

STALL_MIN_EXPECTED_CHANGES = 5.0
"""A stall is only called when history says at least this many dynamic changes were due in the
window: seeing none of 5 expected by chance has a probability under 1% (Poisson)."""

MEMBERSHIP_SERIES = (Series.DYNAMIC_ADD, Series.DYNAMIC_REMOVE)
TRIGGER_SERIES = (
    *RELEVANT_TRIGGER_SERIES[ObjectType.USER],
    *RELEVANT_TRIGGER_SERIES[ObjectType.DEVICE],
)
"""Triggers that can start re-evaluation (relevance rule or unknown, #13)."""
RULE_CHANGE_SERIES = (Series.RULE_CHANGE,)
PROCESSING_STATE_SERIES = (Series.PROCESSING_STATE_CHANGE,)


class PauseReason(StrEnum):
    """Label values of entra_dynamic_pause_warranted{reason} (docs/architecture.md)."""

    MEMBERSHIP_CHANGES = "membership_changes"
    GROUPS_CHANGED = "groups_changed"
    TRIGGER_RATE = "trigger_rate"
    PROCESSING_LAG = "processing_lag"
    RULE_CHANGE_STORM = "rule_change_storm"
    PROCESSING_STALLED = "processing_stalled"


@dataclass(frozen=True, slots=True)
class PauseSignal:
    reason: PauseReason
    active: bool
    observed: float | None
    """None when it cannot be judged (no data, no baseline, too few samples)."""
    threshold: float
    unit: str
    since: float | None
    """When the observed condition began (the current run), where meaningful."""
    detail: str


@dataclass(frozen=True, slots=True)
class Run:
    """The trailing hour at now, and how long the condition has held up to now."""

    count: int | None
    since: float | None


def trailing_run(
    history: CountHistory,
    series: tuple[Series, ...],
    now: float,
    threshold_at: Callable[[float], float | None],
) -> Run:
    """Trailing-hour count at `now`, and the earliest instant t (in minute steps back from now)
    such that the count at every step from t to now was >= threshold_at(step). `since` is None
    when the condition does not hold now. A step without data or without a threshold ends it."""
    if not history.trailing_hour_known(now):
        return Run(None, None)
    last = last_minute_bucket(now)
    lookback = MINUTE_BUCKET_RETENTION - HOUR
    if math.isfinite(history.minutes_from):
        lookback = min(lookback, max(0.0, now - history.minutes_from - HOUR))
    steps = int(lookback // MINUTE)
    first_bucket = last - (steps + 59) * MINUTE
    counts = history.minute_counts(series, first_bucket, last)
    prefix = [0, *itertools.accumulate(counts)]

    def window(k: int) -> int:
        end = len(counts) - k  # exclusive index of the step's last bucket + 1
        return prefix[end] - prefix[end - 60]

    now_count = window(0)
    since: float | None = None
    for k in range(steps + 1):
        t = now - k * MINUTE
        if k and not history.trailing_hour_known(t):
            break
        threshold = threshold_at(t)
        if threshold is None or window(k) < threshold:
            break
        since = t
    return Run(now_count, since)


def _fixed_threshold_signal(
    reason: PauseReason,
    history: CountHistory,
    series: tuple[Series, ...],
    threshold: float,
    unit: str,
    what: str,
    now: float,
) -> PauseSignal:
    run = trailing_run(history, series, now, lambda _t: threshold)
    if run.count is None:
        return PauseSignal(
            reason, False, None, threshold, unit, None, "no audit data for the trailing hour"
        )
    active = run.since is not None
    detail = f"{run.count:,} {what} in the trailing hour (threshold {threshold:,.0f})"
    if run.since is not None:
        detail += f", at or above it since {short_time(run.since)}"
    return PauseSignal(reason, active, float(run.count), threshold, unit, run.since, detail)


def membership_changes_signal(
    history: CountHistory, thresholds: Thresholds, now: float
) -> PauseSignal:
    return _fixed_threshold_signal(
        PauseReason.MEMBERSHIP_CHANGES,
        history,
        MEMBERSHIP_SERIES,
        thresholds.membership_changes_per_hour,
        "changes_per_hour",
        "dynamic membership changes",
        now,
    )


def rule_change_storm_signal(
    history: CountHistory, thresholds: Thresholds, now: float
) -> PauseSignal:
    return _fixed_threshold_signal(
        PauseReason.RULE_CHANGE_STORM,
        history,
        RULE_CHANGE_SERIES,
        thresholds.rule_changes_per_hour,
        "rule_changes_per_hour",
        "membership rule changes",
        now,
    )


def groups_changed_last_hour(group_last_change: Mapping[str, float], now: float) -> int:
    """Groups whose last dynamic change falls in the `trailing_hour` at `now`."""
    start, end = trailing_hour(now)
    return sum(1 for t in group_last_change.values() if start <= t < end)


def groups_changed_signal(
    history: CountHistory,
    group_last_change: Mapping[str, float],
    thresholds: Thresholds,
    now: float,
) -> PauseSignal:
    threshold = float(thresholds.groups_changed_per_hour)
    reason, unit = PauseReason.GROUPS_CHANGED, "groups_per_hour"
    if not history.trailing_hour_known(now):
        return PauseSignal(
            reason, False, None, threshold, unit, None, "no audit data for the trailing hour"
        )
    count = groups_changed_last_hour(group_last_change, now)
    # Only the last change per group is kept, so there is no history to say since when.
    detail = f"{count:,} groups had a dynamic membership change in the trailing hour"
    detail += f" (threshold {threshold:,.0f})"
    return PauseSignal(reason, count >= threshold, float(count), threshold, unit, None, detail)


def trigger_rate_signal(
    history: CountHistory,
    baselines: Mapping[Measure, Baseline],
    thresholds: Thresholds,
    now: float,
) -> PauseSignal:
    factor = thresholds.trigger_rate_factor
    sustain = thresholds.trigger_rate_sustain
    reason, unit = PauseReason.TRIGGER_RATE, "ratio"
    readings: list[tuple[Measure, float, Run, float]] = []
    for measure in TRIGGER_MEASURES:
        baseline = baselines[measure]

        def limit(t: float, baseline: Baseline = baseline) -> float | None:
            expected = baseline.trailing_hour(t).expected
            return None if expected is None else factor * expected

        run = trailing_run(history, baseline.series, now, limit)
        expected = baseline.trailing_hour(now).expected
        ratio = None if run.count is None else deviation_ratio(run.count, expected)
        if ratio is not None and expected is not None:
            readings.append((measure, ratio, run, expected))
    if not readings:
        return PauseSignal(
            reason,
            False,
            None,
            factor,
            unit,
            None,
            "no baseline or no audit data for the trailing hour yet",
        )
    sustained = [r for r in readings if r[2].since is not None and now - r[2].since >= sustain]
    if sustained:
        measure, ratio, run, expected = min(sustained, key=lambda r: (r[2].since, r[0].value))
    else:
        measure, ratio, run, expected = max(readings, key=lambda r: (r[1], r[0].value))
    # Only changes a rule reads, or of unknown relevance, are counted (#13): say so.
    noun = measure.value.replace("_", " ") + " (rule-relevant or unknown)"
    detail = (
        f"{noun} at {ratio:.1f}x baseline ({run.count:,} in the trailing hour, "
        f"{expected:,.0f} expected; threshold {factor:g}x"
    )
    if run.since is not None:
        held = human_duration(now - run.since)
        detail += f", above it for {held} since {short_time(run.since)}"
        detail += f", sustain {human_duration(sustain)})"
    else:
        detail += ")"
    return PauseSignal(reason, bool(sustained), ratio, factor, unit, run.since, detail)


def processing_lag_signal(
    lag: LagSummary, thresholds: Thresholds, queue: QueueEstimate | None = None
) -> PauseSignal:
    """The larger of the finished pairs' median lag and the oldest waiting trigger's age
    (#23): finished work alone trails a growing queue by the queue's own length."""
    threshold = thresholds.processing_lag
    reason, unit = PauseReason.PROCESSING_LAG, "seconds"
    window = human_duration(lag.window_seconds)
    finished = (
        lag.median_seconds
        if lag.median_seconds is not None and lag.samples >= MIN_LAG_SAMPLES
        else None
    )
    waiting = queue.oldest_waiting_seconds if queue is not None else None
    if finished is None and waiting is None:
        return PauseSignal(
            reason,
            False,
            None,
            threshold,
            unit,
            None,
            f"{lag.samples} lag sample(s) in the last {window}; "
            f"{MIN_LAG_SAMPLES} are needed to judge",
        )
    parts = []
    if finished is not None:
        parts.append(
            f"median estimated lag {human_duration(finished)} over {lag.samples:,} changes in "
            f"the last {window} (p90 {human_duration(lag.p90_seconds or 0)})"
        )
    if waiting is not None and queue is not None:
        parts.append(
            f"oldest of {queue.waiting_triggers:,} waiting changes {human_duration(waiting)} old"
        )
    observed = max(v for v in (finished, waiting) if v is not None)
    detail = "; ".join(parts) + f" (threshold {human_duration(threshold)})"
    return PauseSignal(reason, observed > threshold, observed, threshold, unit, None, detail)


def processing_stalled_signal(
    history: CountHistory,
    membership_baseline: Baseline,
    groups: Sequence[GroupState],
    group_last_change: Mapping[str, float],
    thresholds: Thresholds,
    now: float,
) -> PauseSignal:
    """Triggers keep coming, groups are On, history says changes were due, and none came for
    `stall_after`. Microsoft: a failure to add a guest to one Microsoft 365 group can block
    updates of other groups in the tenant."""
    window = thresholds.stall_after
    reason, unit = PauseReason.PROCESSING_STALLED, "seconds"

    def quiet(
        detail: str, observed: float | None = None, since: float | None = None
    ) -> PauseSignal:
        return PauseSignal(reason, False, observed, window, unit, since, detail)

    on = sum(1 for g in groups if not g.paused)
    if not on:
        return quiet("no dynamic group is On: no change is expected")
    last_change = max(group_last_change.values(), default=None)
    quiet_since = last_change if last_change is not None else history.coverage_start
    if quiet_since is None:
        return quiet("no audit data yet")
    what = "last dynamic change" if last_change is not None else "no dynamic change since"
    # A pause or resume restarts the clock: groups resumed after a day paused have had no
    # change for a day, and need their full re-evaluation before changes can flow again.
    # The groups poll may see a resume minutes before the audit log shows it.
    resumed = [g.resumed_at for g in groups if not g.paused and g.resumed_at is not None]
    toggles = (
        _last_minute_with(history, PROCESSING_STATE_SERIES, quiet_since, now),
        max(resumed, default=None),
    )
    toggled = max((t for t in toggles if t is not None and t <= now), default=None)
    if toggled is not None and toggled > quiet_since:
        quiet_since, what = toggled, "groups paused or resumed at"
    silence = now - quiet_since
    when = f"{what} {short_time(quiet_since)} ({human_duration(silence)} ago)"
    if silence < window:
        return quiet(when, silence)
    start = max(now - window, history.minutes_from)
    first, last = floor_to(start, MINUTE), last_minute_bucket(now)
    triggers = sum(history.minute_counts(TRIGGER_SERIES, first, last))
    needed_triggers = max(1.0, thresholds.baseline_floor_per_hour * (now - start) / HOUR)
    if triggers < needed_triggers:
        return quiet(f"{when}; only {triggers:,} object changes in that time", silence, quiet_since)
    expected = _expected_between(membership_baseline, now - window, now)
    if expected is None:
        return quiet(f"{when}; no baseline to say changes were due", silence, quiet_since)
    expected *= on / len(groups)
    if expected < STALL_MIN_EXPECTED_CHANGES:
        return quiet(
            f"{when}; only {expected:.1f} changes were due for the {on:,} groups that are On",
            silence,
            quiet_since,
        )
    return PauseSignal(
        reason,
        True,
        silence,
        window,
        unit,
        quiet_since,
        f"{when} although {triggers:,} objects changed and about {expected:,.0f} changes "
        f"were due for the {on:,} groups that are On",
    )


def _last_minute_with(
    history: CountHistory, series: tuple[Series, ...], since: float, now: float
) -> float | None:
    """The end of the last minute bucket in [since, now) holding an event of `series`."""
    first = floor_to(max(since, history.minutes_from), MINUTE)
    last = last_minute_bucket(now)
    if last < first:
        return None
    counts = history.minute_counts(series, first, last)
    for i in range(len(counts) - 1, -1, -1):
        if counts[i]:
            return float(first + (i + 1) * MINUTE)
    return None


def _expected_between(baseline: Baseline, start: float, end: float) -> float | None:
    """Unfloored expected count over [start, end): each clock hour's median, by overlap."""
    total = 0.0
    hour = floor_to(start, HOUR)
    while hour < end:
        raw = baseline.hour(hour).raw
        if raw is None:
            return None
        overlap = min(end, hour + HOUR) - max(start, hour)
        total += raw * overlap / HOUR
        hour += HOUR
    return total


def evaluate_pause_signals(
    *,
    history: CountHistory,
    baselines: Mapping[Measure, Baseline],
    groups: Sequence[GroupState],
    group_last_change: Mapping[str, float],
    lag: LagSummary,
    thresholds: Thresholds,
    now: float,
    queue: QueueEstimate | None = None,
) -> tuple[PauseSignal, ...]:
    """Every reason, in PauseReason order."""
    return (
        membership_changes_signal(history, thresholds, now),
        groups_changed_signal(history, group_last_change, thresholds, now),
        trigger_rate_signal(history, baselines, thresholds, now),
        processing_lag_signal(lag, thresholds, queue),
        rule_change_storm_signal(history, thresholds, now),
        processing_stalled_signal(
            history,
            baselines[Measure.MEMBERSHIP_CHANGES],
            groups,
            group_last_change,
            thresholds,
            now,
        ),
    )
