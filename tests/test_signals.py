"""Pause-warranted signals on hand-built histories: each reason, always all reported."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from exporter.domain.assessment import make_baselines
from exporter.domain.baseline import Measure
from exporter.domain.events import ObjectType, Series
from exporter.domain.history import HOUR, MINUTE, CountHistory
from exporter.domain.lag import LagSample, LagSummary, summarize_lag
from exporter.domain.settings import Thresholds
from exporter.domain.signals import (
    PauseReason,
    PauseSignal,
    evaluate_pause_signals,
    trailing_run,
)
from tests.domain_builders import MONDAY, WEEK, HistoryBuilder, gid, group

NOW = MONDAY + 10 * HOUR + 30 * MINUTE
T = Thresholds()
NO_LAG = LagSummary(3600.0, 0, None, None)


def normal_tenant(end: float = NOW) -> HistoryBuilder:
    """Four weeks of an ordinary tenant: 100 user and 40 device changes, 200 membership
    changes an hour."""
    return (
        HistoryBuilder(MONDAY - 4 * WEEK, end)
        .rate(Series.TRIGGER_USER, 100)
        .rate(Series.TRIGGER_DEVICE, 40)
        .rate(Series.DYNAMIC_ADD, 120)
        .rate(Series.DYNAMIC_REMOVE, 80)
    )


def burst(b: HistoryBuilder, series: Series, start: float, end: float, per_minute: int) -> None:
    t = start
    while t < end:
        b.add(series, t, per_minute)
        t += MINUTE


def signals(
    history: CountHistory,
    *,
    groups: tuple = (),  # type: ignore[type-arg]
    last_change: Mapping[str, float] | None = None,
    lag: LagSummary = NO_LAG,
    thresholds: Thresholds = T,
    now: float = NOW,
) -> dict[PauseReason, PauseSignal]:
    result = evaluate_pause_signals(
        history=history,
        baselines=make_baselines(history, thresholds),
        groups=groups or (group(1),),
        group_last_change=last_change if last_change is not None else {gid(1): now - 60},
        lag=lag,
        thresholds=thresholds,
        now=now,
    )
    assert [s.reason for s in result] == list(PauseReason)
    return {s.reason: s for s in result}


def test_no_history_reports_every_reason_inactive() -> None:
    result = signals(CountHistory({}, {}, ()), last_change={})
    assert not any(s.active for s in result.values())
    assert result[PauseReason.MEMBERSHIP_CHANGES].observed is None
    assert "no audit data" in result[PauseReason.MEMBERSHIP_CHANGES].detail
    assert result[PauseReason.TRIGGER_RATE].observed is None


def test_normal_tenant_warrants_nothing() -> None:
    result = signals(normal_tenant().build())
    assert not any(s.active for s in result.values()), result
    assert result[PauseReason.MEMBERSHIP_CHANGES].observed == 200
    assert result[PauseReason.TRIGGER_RATE].observed == pytest.approx(1.0)


def test_all_zero_history_warrants_nothing() -> None:
    result = signals(HistoryBuilder(MONDAY - 4 * WEEK, NOW).build(), last_change={})
    assert not any(s.active for s in result.values())
    assert result[PauseReason.TRIGGER_RATE].observed == 0  # 0 / floor


def test_membership_changes_since_when_the_trailing_hour_reached_the_threshold() -> None:
    b = HistoryBuilder(NOW - 3 * HOUR, NOW)
    burst(b, Series.DYNAMIC_ADD, NOW - 2 * HOUR, NOW, 400)  # 24,000 an hour
    s = signals(b.build())[PauseReason.MEMBERSHIP_CHANGES]
    assert (s.active, s.observed, s.threshold) == (True, 24_000, 20_000)
    # 50 minutes of 400 a minute make 20,000: the 50th minute bucket of the burst.
    assert s.since == pytest.approx(NOW - 2 * HOUR + 49 * MINUTE)


def test_membership_exactly_at_threshold_is_active() -> None:
    b = HistoryBuilder(NOW - 3 * HOUR, NOW)
    b.add(Series.DYNAMIC_ADD, NOW - 10 * MINUTE, 19_999)
    assert not signals(b.build())[PauseReason.MEMBERSHIP_CHANGES].active
    b.add(Series.DYNAMIC_REMOVE, NOW - 5 * MINUTE, 1)
    s = signals(b.build())[PauseReason.MEMBERSHIP_CHANGES]
    assert s.active
    assert s.observed == 20_000
    assert s.since == pytest.approx(NOW - 5 * MINUTE)


def test_groups_changed_counts_distinct_groups_in_the_trailing_hour() -> None:
    history = normal_tenant().build()
    last = {gid(i): NOW - 10 * MINUTE for i in range(499)} | {gid(999): NOW - 2 * HOUR}
    s = signals(history, last_change=last)[PauseReason.GROUPS_CHANGED]
    assert (s.active, s.observed) == (False, 499)
    last[gid(500)] = NOW - 59 * MINUTE
    s = signals(history, last_change=last)[PauseReason.GROUPS_CHANGED]
    assert (s.active, s.observed, s.since) == (True, 500, None)


@pytest.mark.parametrize(
    ("burst_start", "burst_end", "active", "since_about"),
    [
        pytest.param(NOW - 45 * MINUTE, NOW, True, NOW - 37 * MINUTE, id="sustained"),
        pytest.param(NOW - 10 * MINUTE, NOW, False, NOW - 2 * MINUTE, id="momentary"),
        pytest.param(NOW - 4 * HOUR, NOW - 3 * HOUR, False, None, id="over"),
    ],
)
def test_trigger_rate_must_be_sustained(
    burst_start: float, burst_end: float, active: bool, since_about: float | None
) -> None:
    b = normal_tenant()
    # 60 more device changes a minute: the trailing hour passes 5 x 40 = 200 after 3 minutes
    # ... and user changes stay normal.
    burst(b, Series.TRIGGER_DEVICE, burst_start, burst_end, 60)
    s = signals(b.build())[PauseReason.TRIGGER_RATE]
    assert s.active is active
    assert s.threshold == 5
    if since_about is None:
        assert s.since is None
    else:
        assert s.since == pytest.approx(since_about, abs=6 * MINUTE)
        assert "device changes" in s.detail


def test_trigger_rate_sustain_is_configurable_and_zero_means_momentary() -> None:
    b = normal_tenant()
    burst(b, Series.TRIGGER_DEVICE, NOW - 10 * MINUTE, NOW, 60)
    momentary = Thresholds(trigger_rate_sustain=0)
    assert signals(b.build(), thresholds=momentary)[PauseReason.TRIGGER_RATE].active


def test_trigger_rate_run_ends_at_a_gap() -> None:
    b = normal_tenant()
    burst(b, Series.TRIGGER_USER, NOW - 3 * HOUR, NOW, 60)
    b.gap(NOW - 100 * MINUTE, NOW - 99 * MINUTE)
    s = signals(b.build())[PauseReason.TRIGGER_RATE]
    assert s.active
    # the first step whose trailing hour no longer reaches back into the gap
    assert s.since == pytest.approx(NOW - 40 * MINUTE, abs=MINUTE)


def test_floor_keeps_a_tiny_tenant_from_flapping() -> None:
    b = HistoryBuilder(MONDAY - 4 * WEEK, NOW).rate(Series.TRIGGER_USER, 2)
    burst(b, Series.TRIGGER_USER, NOW - HOUR, NOW, 1)  # 30x its usual 2/h, but only 62 events
    s = signals(b.build())[PauseReason.TRIGGER_RATE]
    assert not s.active
    assert s.observed == pytest.approx(62 / 20)


def test_trailing_run_reports_count_and_since() -> None:
    b = HistoryBuilder(NOW - 5 * HOUR, NOW)
    burst(b, Series.RULE_CHANGE, NOW - 90 * MINUTE, NOW, 1)
    run = trailing_run(b.build(), (Series.RULE_CHANGE,), NOW, lambda _t: 10)
    assert run.count == 60
    assert run.since == pytest.approx(NOW - 81 * MINUTE)


def test_rule_change_storm() -> None:
    b = normal_tenant()
    for i in range(10):
        b.add(Series.RULE_CHANGE, NOW - (i + 1) * 3 * MINUTE)
    s = signals(b.build())[PauseReason.RULE_CHANGE_STORM]
    assert (s.active, s.observed, s.threshold) == (True, 10, 10)


def lag_summary(lags: list[float], now: float = NOW) -> LagSummary:
    samples = [LagSample(now - i, lag, ObjectType.USER) for i, lag in enumerate(lags)]
    return summarize_lag(samples, now=now, window=HOUR)


@pytest.mark.parametrize(
    ("lags", "active", "observed"),
    [
        pytest.param([5 * HOUR] * 9, False, None, id="too-few-samples"),
        pytest.param([5 * HOUR] * 10, True, 5 * HOUR, id="above"),
        pytest.param([4 * HOUR] * 10, False, 4 * HOUR, id="at-bound-is-not-above"),
        pytest.param([60.0] * 6 + [20 * HOUR] * 5, False, 60.0, id="median-is-robust"),
    ],
)
def test_processing_lag(lags: list[float], active: bool, observed: float | None) -> None:
    s = signals(normal_tenant().build(), lag=lag_summary(lags))[PauseReason.PROCESSING_LAG]
    assert (s.active, s.observed) == (active, observed)


STALL_GROUPS = tuple(group(i) for i in range(10))


def stalled_tenant(end: float = NOW) -> HistoryBuilder:
    """Triggers keep coming; dynamic changes stopped 4 hours before NOW."""
    b = normal_tenant(end)
    b.gap(NOW - 4 * HOUR, end)
    b.coverage.append((NOW - 4 * HOUR, end))
    b.rate(Series.TRIGGER_USER, 100, NOW - 4 * HOUR, end)
    return b


def test_processing_stalled_when_triggers_come_and_changes_stop() -> None:
    last = {gid(1): NOW - 4 * HOUR}
    s = signals(stalled_tenant().build(), groups=STALL_GROUPS, last_change=last)[
        PauseReason.PROCESSING_STALLED
    ]
    assert s.active, s.detail
    assert s.observed == 4 * HOUR
    assert s.since == NOW - 4 * HOUR


@pytest.mark.parametrize(
    ("case", "groups", "last_change"),
    [
        ("recent change", STALL_GROUPS, NOW - 2 * HOUR),
        ("all paused", tuple(group(i, paused_since=NOW - 5 * HOUR) for i in range(10)), None),
        (
            "few On: few changes due",
            (*tuple(group(i, paused_since=NOW - 5 * HOUR) for i in range(199)), group(999)),
            None,
        ),
    ],
)
def test_processing_not_stalled(case: str, groups: tuple, last_change: float | None) -> None:  # type: ignore[type-arg]
    last = {gid(1): last_change if last_change is not None else NOW - 4 * HOUR}
    s = signals(stalled_tenant().build(), groups=groups, last_change=last)[
        PauseReason.PROCESSING_STALLED
    ]
    assert not s.active, (case, s.detail)


def test_a_resume_restarts_the_stall_clock() -> None:
    # The groups were paused for a day and resumed 20 minutes ago: no change since the pause,
    # but the re-evaluations have only just been queued.
    b = stalled_tenant()
    b.add(Series.PROCESSING_STATE_CHANGE, NOW - 20 * MINUTE, 10)
    last = {gid(1): NOW - 24 * HOUR}
    s = signals(b.build(), groups=STALL_GROUPS, last_change=last)[PauseReason.PROCESSING_STALLED]
    assert not s.active, s.detail
    assert s.observed == 19 * MINUTE  # from the end of the minute it happened in
    assert "paused or resumed" in s.detail
    # Hours after the resume, still nothing: that is a stall.
    later = NOW + 4 * HOUR
    b = stalled_tenant(later)
    b.add(Series.PROCESSING_STATE_CHANGE, NOW - 20 * MINUTE, 10)
    s = signals(b.build(), groups=STALL_GROUPS, last_change=last, now=later)[
        PauseReason.PROCESSING_STALLED
    ]
    assert s.active, s.detail
    assert s.since == NOW - 19 * MINUTE
    # The groups poll saw the resume before the audit log shows it.
    resumed = tuple(replace(g, resumed_at=NOW - 5 * MINUTE) for g in STALL_GROUPS)
    s = signals(stalled_tenant().build(), groups=resumed, last_change=last)[
        PauseReason.PROCESSING_STALLED
    ]
    assert not s.active, s.detail
    assert s.observed == 5 * MINUTE


def test_processing_not_stalled_on_a_quiet_tenant() -> None:
    b = HistoryBuilder(MONDAY - 4 * WEEK, NOW).rate(Series.TRIGGER_USER, 5)
    s = signals(b.build(), groups=STALL_GROUPS, last_change={})[PauseReason.PROCESSING_STALLED]
    assert not s.active
    assert "only" in s.detail


def test_baselines_cover_every_measure() -> None:
    assert set(make_baselines(CountHistory({}, {}, ()), T)) == set(Measure)
