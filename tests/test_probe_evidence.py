"""The evidence rule (#20): the canary probe's normal latency for N consecutive rounds since the
pause began lets `minimum_pause_with_evidence` (12 h) replace `minimum_pause` (24 h); a slow,
timed-out or overdue round says processing is not keeping up, and blocks."""

from __future__ import annotations

from exporter.domain.probe import (
    ProbeEvidence,
    ProbeOutcome,
    ProbeRound,
    ProbeSettings,
    probe_evidence,
)
from exporter.domain.readiness import (
    ConditionStatus,
    Readiness,
    ReadinessState,
    ResumeCondition,
)
from exporter.domain.rules import ObjectType
from tests.test_readiness import NOW, episode, readiness

HOUR = 3600.0
SETTINGS = ProbeSettings(
    ObjectType.USER, "u", "extensionAttribute15", "in", "out", "g", evidence_rounds=3
)


def detected(number: int, started: float, latency: float) -> ProbeRound:
    return ProbeRound(
        number, started, number % 2 == 1, ProbeOutcome.DETECTED, started + latency, latency
    )


def evidence(rounds: list[ProbeRound], paused_at: float) -> ProbeEvidence:
    return probe_evidence(rounds, SETTINGS, NOW, since=paused_at)


def status(r: Readiness, condition: ResumeCondition) -> ConditionStatus:
    return next(c.status for c in r.conditions if c.condition is condition)


def test_normal_rounds_since_the_pause_shorten_the_minimum_to_twelve_hours() -> None:
    paused_at = NOW - 14 * HOUR
    rounds = [detected(n, paused_at + n * HOUR, 120.0) for n in range(1, 4)]
    probe = evidence(rounds, paused_at)
    assert probe.keeping_up is True
    r = readiness(ep=episode(paused_at), probe=probe)
    assert r.state is ReadinessState.READY
    minimum = next(c for c in r.conditions if c.condition is ResumeCondition.MINIMUM_PAUSE)
    assert minimum.threshold == 12 * HOUR
    assert "canary probe" in minimum.detail
    assert status(r, ResumeCondition.PROCESSING_KEEPING_UP) is ConditionStatus.MET
    # Without the probe the same pause is 10 hours short of Microsoft's 24.
    assert readiness(ep=episode(paused_at)).state is ReadinessState.NOT_READY


def test_rounds_before_the_pause_are_no_evidence_of_recovery() -> None:
    paused_at = NOW - 14 * HOUR
    rounds = [detected(1, paused_at - HOUR, 120.0)]
    rounds += [detected(n, paused_at + n * HOUR, 120.0) for n in (2, 3)]
    probe = evidence(rounds, paused_at)
    assert probe.consecutive_normal == 2
    assert probe.keeping_up is None
    r = readiness(ep=episode(paused_at), probe=probe)
    assert r.state is ReadinessState.NOT_READY
    assert status(r, ResumeCondition.MINIMUM_PAUSE) is ConditionStatus.BLOCKING
    assert status(r, ResumeCondition.PROCESSING_KEEPING_UP) is ConditionStatus.NOT_APPLICABLE


def test_a_timed_out_or_overdue_round_blocks_even_after_twenty_four_hours() -> None:
    paused_at = NOW - 30 * HOUR
    normal = [detected(n, paused_at + n * HOUR, 120.0) for n in range(1, 4)]
    timed_out = ProbeRound(4, paused_at + 5 * HOUR, False, ProbeOutcome.TIMED_OUT, NOW - HOUR)
    for probe in (
        evidence([*normal, timed_out], paused_at),
        evidence([*normal, ProbeRound(4, NOW - 2 * HOUR, False)], paused_at),  # in flight
        evidence([*normal, detected(4, NOW - 5 * HOUR, 3 * HOUR)], paused_at),  # slow
    ):
        assert probe.keeping_up is False, probe
        r = readiness(ep=episode(paused_at), probe=probe)
        assert r.state is ReadinessState.NOT_READY
        assert status(r, ResumeCondition.PROCESSING_KEEPING_UP) is ConditionStatus.BLOCKING
        assert status(r, ResumeCondition.MINIMUM_PAUSE) is ConditionStatus.MET


def test_paused_rounds_neither_count_nor_break_the_streak() -> None:
    paused_at = NOW - 14 * HOUR
    rounds = [detected(1, paused_at + HOUR, 60.0), detected(2, paused_at + 2 * HOUR, 60.0)]
    rounds.append(ProbeRound(3, paused_at + 3 * HOUR, True, ProbeOutcome.PAUSED, paused_at))
    rounds.append(detected(4, paused_at + 4 * HOUR, 60.0))
    probe = evidence(rounds, paused_at)
    assert probe.consecutive_normal == 3
    assert probe.keeping_up is True


def test_evidence_must_be_current() -> None:
    """Normal rounds, then the canary group paused (or the change refused): nothing is measured
    now, so nothing is evidence now."""
    paused_at = NOW - 14 * HOUR
    rounds = [detected(n, paused_at + n * HOUR, 60.0) for n in range(1, 4)]
    for outcome in (ProbeOutcome.PAUSED, ProbeOutcome.FAILED):
        last = ProbeRound(4, paused_at + 5 * HOUR, True, outcome, paused_at + 5 * HOUR)
        probe = evidence([*rounds, last], paused_at)
        assert probe.keeping_up is None, outcome
        r = readiness(ep=episode(paused_at), probe=probe)
        assert status(r, ResumeCondition.MINIMUM_PAUSE) is ConditionStatus.BLOCKING
