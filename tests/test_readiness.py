"""Resume readiness: each condition, the recovery streak, and the overall state."""

from __future__ import annotations

import pytest

from exporter.config.durations import parse_duration
from exporter.domain.assessment import make_baselines
from exporter.domain.episode import EpisodeSource, PauseEpisode
from exporter.domain.events import Series
from exporter.domain.groups import GroupState, MembershipProcessingStatus
from exporter.domain.history import HOUR, MINUTE, CountHistory
from exporter.domain.probe import ProbeEvidence
from exporter.domain.readiness import (
    CollectorHealth,
    ConditionStatus,
    Readiness,
    ReadinessState,
    ResumeCondition,
    evaluate_readiness,
)
from exporter.domain.settings import Thresholds
from exporter.readiness.wire import EXIT_CODES
from tests.domain_builders import MONDAY, WEEK, HistoryBuilder, group

NOW = MONDAY + 10 * HOUR + 20 * MINUTE
T = Thresholds()
HEALTHY = tuple(
    CollectorHealth(name, True, NOW - 60)
    for name in ("audit", "groups", "administrative_units", "critical_status")
)
GROUPS = (group(1, paused_since=NOW - 30 * HOUR), group(2, critical=True))


def episode(started_at: float = NOW - 30 * HOUR) -> PauseEpisode:
    return PauseEpisode(EpisodeSource.LEDGER, started_at, ("g1",), (), ())


def quiet_tenant(end: float = NOW) -> HistoryBuilder:
    return (
        HistoryBuilder(MONDAY - 4 * WEEK, end)
        .rate(Series.TRIGGER_USER, 100)
        .rate(Series.TRIGGER_DEVICE, 40)
    )


def readiness(
    history: CountHistory | None = None,
    *,
    ep: PauseEpisode | None = None,
    groups: tuple[GroupState, ...] = GROUPS,
    collectors: tuple[CollectorHealth, ...] = HEALTHY,
    watermark: float | None = NOW - 5 * MINUTE,
    thresholds: Thresholds = T,
    no_episode: bool = False,
    probe: ProbeEvidence | None = None,
) -> Readiness:
    history = history or quiet_tenant().build()
    return evaluate_readiness(
        episode=None if no_episode else (ep or episode()),
        history=history,
        baselines=make_baselines(history, thresholds),
        groups=groups,
        collectors=collectors,
        audit_watermark=watermark,
        thresholds=thresholds,
        now=NOW,
        probe=probe,
    )


def condition(r: Readiness, c: ResumeCondition) -> tuple[ConditionStatus, float | None]:
    found = next(x for x in r.conditions if x.condition is c)
    return found.status, found.observed


def test_all_conditions_met_is_ready_and_every_condition_is_reported() -> None:
    r = readiness()
    assert r.state is ReadinessState.READY
    assert r.ready
    assert [c.condition for c in r.conditions] == list(ResumeCondition)
    # Without a canary probe its condition does not apply (#20); every other one is met.
    assert all(
        c.status is ConditionStatus.MET
        for c in r.conditions
        if c.condition is not ResumeCondition.PROCESSING_KEEPING_UP
    )
    assert condition(r, ResumeCondition.PROCESSING_KEEPING_UP)[0] is (
        ConditionStatus.NOT_APPLICABLE
    )
    assert EXIT_CODES[r.state] == 0


@pytest.mark.parametrize(
    ("minimum", "age_hours", "status"),
    [
        ("24h", 23.9, ConditionStatus.BLOCKING),
        ("24h", 24, ConditionStatus.MET),
        ("12h", 13, ConditionStatus.MET),  # the support article's figure
        ("12h", 11, ConditionStatus.BLOCKING),
    ],
)
def test_minimum_pause(minimum: str, age_hours: float, status: ConditionStatus) -> None:
    thresholds = Thresholds(minimum_pause=parse_duration(minimum))
    r = readiness(ep=episode(NOW - age_hours * HOUR), thresholds=thresholds)
    assert condition(r, ResumeCondition.MINIMUM_PAUSE) == (status, age_hours * HOUR)
    expected = ReadinessState.READY if status is ConditionStatus.MET else ReadinessState.NOT_READY
    assert r.state is expected


def storm_until(end_of_storm: float) -> CountHistory:
    b = quiet_tenant()
    b.rate(Series.TRIGGER_DEVICE, 2000, MONDAY, end_of_storm)
    return b.build()


@pytest.mark.parametrize(
    ("storm_ends", "streak", "status"),
    [
        pytest.param(MONDAY + 7 * HOUR, 3, ConditionStatus.MET, id="three-quiet-hours"),
        pytest.param(MONDAY + 8 * HOUR, 2, ConditionStatus.BLOCKING, id="two-quiet-hours"),
        pytest.param(MONDAY + 10 * HOUR, 0, ConditionStatus.BLOCKING, id="storm-in-last-hour"),
    ],
)
def test_recovery_counts_consecutive_complete_hours(
    storm_ends: float, streak: int, status: ConditionStatus
) -> None:
    r = readiness(storm_until(storm_ends))
    assert condition(r, ResumeCondition.TRIGGER_RATE_RECOVERY) == (status, streak)


def test_recovery_counter_resets_when_the_rate_climbs_again() -> None:
    b = quiet_tenant()
    b.rate(Series.TRIGGER_DEVICE, 2000, MONDAY, MONDAY + 5 * HOUR)
    assert condition(readiness(b.build()), ResumeCondition.TRIGGER_RATE_RECOVERY)[1] == 5
    b.hour(Series.TRIGGER_DEVICE, MONDAY + 8 * HOUR, 500)  # one hour climbs again
    r = readiness(b.build())
    assert condition(r, ResumeCondition.TRIGGER_RATE_RECOVERY) == (ConditionStatus.BLOCKING, 1)
    assert r.state is ReadinessState.NOT_READY


def test_a_partial_hour_that_already_exceeds_breaks_the_streak() -> None:
    b = quiet_tenant()
    b.add(Series.TRIGGER_USER, MONDAY + 10 * HOUR + 5 * MINUTE, 1000)
    r = readiness(b.build())
    status, observed = condition(r, ResumeCondition.TRIGGER_RATE_RECOVERY)
    assert (status, observed) == (ConditionStatus.BLOCKING, 0)
    assert "climbing again" in r.conditions[1].detail


def test_recovery_uses_the_tolerance() -> None:
    b = quiet_tenant()
    for h in range(1, 4):
        b.hour(Series.TRIGGER_USER, MONDAY + (10 - h) * HOUR, 40)  # 140 = 1.4 x 100
    assert condition(readiness(b.build()), ResumeCondition.TRIGGER_RATE_RECOVERY)[0] is (
        ConditionStatus.MET
    )
    tight = Thresholds(recovery_tolerance=1.2)
    r = readiness(b.build(), thresholds=tight)
    assert condition(r, ResumeCondition.TRIGGER_RATE_RECOVERY) == (ConditionStatus.BLOCKING, 0)


def test_recovery_judged_on_complete_hours_before_the_watermark() -> None:
    # Audit data only complete to 08:40: the last complete hour is 07:00-08:00.
    b = quiet_tenant(end=MONDAY + 8 * HOUR + 40 * MINUTE)
    b.hour(Series.TRIGGER_USER, MONDAY + 7 * HOUR, 900)
    r = readiness(b.build())
    assert condition(r, ResumeCondition.TRIGGER_RATE_RECOVERY) == (ConditionStatus.BLOCKING, 0)


def test_gap_in_the_recovery_window_cannot_tell() -> None:
    b = quiet_tenant().gap(MONDAY + 8 * HOUR, MONDAY + 9 * HOUR)
    r = readiness(b.build())
    assert condition(r, ResumeCondition.TRIGGER_RATE_RECOVERY) == (ConditionStatus.UNKNOWN, 1)
    assert r.state is ReadinessState.CANNOT_TELL
    assert EXIT_CODES[r.state] == 2


def test_no_baseline_yet_cannot_tell() -> None:
    b = HistoryBuilder(NOW - 4 * HOUR, NOW).rate(Series.TRIGGER_USER, 100)
    r = readiness(b.build())
    assert condition(r, ResumeCondition.TRIGGER_RATE_RECOVERY)[0] is ConditionStatus.UNKNOWN
    assert r.state is ReadinessState.CANNOT_TELL


@pytest.mark.parametrize(
    ("watermark", "status"),
    [
        (NOW - 59 * MINUTE, ConditionStatus.MET),
        (NOW - 61 * MINUTE, ConditionStatus.BLOCKING),
        (None, ConditionStatus.BLOCKING),
    ],
)
def test_stale_watermark_cannot_tell(watermark: float | None, status: ConditionStatus) -> None:
    r = readiness(watermark=watermark)
    assert condition(r, ResumeCondition.AUDIT_DATA_STALE)[0] is status
    expected = ReadinessState.READY if status is ConditionStatus.MET else ReadinessState.CANNOT_TELL
    assert r.state is expected


def test_stale_data_wins_over_not_ready_and_not_paused() -> None:
    young = readiness(ep=episode(NOW - HOUR), watermark=NOW - 5 * HOUR)
    assert young.state is ReadinessState.CANNOT_TELL
    assert readiness(no_episode=True, watermark=None).state is ReadinessState.CANNOT_TELL


@pytest.mark.parametrize(
    "collectors",
    [
        pytest.param((), id="none-reported"),
        pytest.param(
            (*HEALTHY[:3], CollectorHealth("critical_status", False, NOW - HOUR)), id="stale"
        ),
        pytest.param((*HEALTHY[:3], CollectorHealth("groups", False, None)), id="never"),
    ],
)
def test_failing_collector_cannot_tell(collectors: tuple[CollectorHealth, ...]) -> None:
    r = readiness(collectors=collectors)
    assert condition(r, ResumeCondition.COLLECTOR_FAILING)[0] is ConditionStatus.BLOCKING
    assert r.state is ReadinessState.CANNOT_TELL


def test_one_failed_poll_with_a_recent_success_is_still_healthy() -> None:
    collectors = (*HEALTHY[:3], CollectorHealth("critical_status", False, NOW - 5 * MINUTE))
    r = readiness(collectors=collectors)
    assert r.state is ReadinessState.READY
    assert "retrying: critical_status" in r.conditions[3].detail


def test_failed_critical_group_blocks() -> None:
    groups = (*GROUPS, group(3, critical=True, status=MembershipProcessingStatus.FAILED))
    r = readiness(groups=groups)
    assert condition(r, ResumeCondition.CRITICAL_GROUP_FAILED) == (ConditionStatus.BLOCKING, 1)
    assert "boom" in r.conditions[4].detail
    assert r.state is ReadinessState.NOT_READY
    assert EXIT_CODES[r.state] == 1
    running = (*GROUPS, group(3, critical=True, status=MembershipProcessingStatus.RUNNING))
    assert readiness(groups=running).state is ReadinessState.READY


def test_no_episode_is_not_paused_and_moot() -> None:
    r = readiness(no_episode=True)
    assert r.state is ReadinessState.NOT_PAUSED
    assert not r.ready
    assert EXIT_CODES[r.state] == 3, "nothing to resume is not ready: never 0"
    assert condition(r, ResumeCondition.MINIMUM_PAUSE)[0] is ConditionStatus.NOT_APPLICABLE
    assert not any(c.blocks for c in r.conditions)
    assert "1 group(s) paused outside any episode" in r.detail
