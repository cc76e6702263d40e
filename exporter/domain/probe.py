"""The canary probe: measured processing delay, one round at a time (pure).

Entra has no queue metric. The probe changes one property of one canary object so that it
enters (then, next round, leaves) a canary dynamic group whose rule matches one value, and times
how long until the membership change shows: an active probe, as blackbox_exporter is for HTTP.

This module holds what the rounds mean, not how they are run (exporter/runtime/probe.py):

* `ProbeSettings`: the canary, its property and values, the interval, the timeout, and the
  evidence rule's bound and streak.
* `ProbeRound`: one flip and what became of it (`detected`, `timed_out`, `paused`, `failed`).
* `canary_rule_problem`: whether the canary group's rule really selects on that property and
  value (with the rule evaluator), for `config check`.
* `probe_evidence`: the latest latency, the streak of consecutive normal rounds and whether
  processing is currently keeping up; readiness uses it to shorten the minimum pause
  (`minimum_pause_with_evidence`, docs/signals.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from exporter.domain.formatting import human_duration, short_time
from exporter.domain.rules import ObjectType, parse

HOUR = 3600.0


class ProbeOutcome(StrEnum):
    """How a round ended; label values of entra_dynamic_probe_rounds_total{outcome}."""

    DETECTED = "detected"
    TIMED_OUT = "timed_out"
    PAUSED = "paused"
    """The canary group was paused: processing was not asked to do anything, not a timeout."""
    FAILED = "failed"
    """The flip itself failed (Graph refused the PATCH): nothing was measured."""


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    object_type: ObjectType
    object_id: str
    property: str
    """The rule property the probe changes (e.g. extensionAttribute15)."""
    match_value: str
    """The value the canary group's rule selects."""
    other_value: str
    """The value that takes the canary out of the group again."""
    group_id: str
    interval: float = 900.0
    timeout: float = 6 * HOUR
    check_interval: float = 60.0
    """How often a round in flight reads the canary's membership: the measurement's resolution."""
    normal_latency: float = HOUR
    """A round detected within this is normal (the evidence rule's bound)."""
    evidence_rounds: int = 3
    """Consecutive normal rounds that count as evidence that processing keeps up."""


@dataclass(frozen=True, slots=True)
class ProbeRound:
    number: int
    started_at: float
    entering: bool
    """True when the flip should add the canary to the group, False when it should remove it."""
    outcome: ProbeOutcome | None = None
    """None while in flight."""
    finished_at: float | None = None
    latency: float | None = None
    """Seconds from the flip to the membership change (detected rounds only)."""
    detail: str = ""

    @property
    def in_flight(self) -> bool:
        return self.outcome is None


def canary_rule_problem(rule_text: str | None, settings: ProbeSettings) -> str | None:
    """Why the canary group's rule would not measure anything, or None when it reads the
    probe's property and selects exactly on the flip: the match value in, the other value out."""
    name = f"{settings.object_type}.{settings.property}"
    if rule_text is None:
        return "the canary group has no dynamic membership rule; give a dynamic group"
    try:
        rule = parse(rule_text)
    except ValueError as exc:  # RuleSyntaxError, or a rule reading users and devices
        return f"the canary group's rule does not parse: {exc}"
    if rule.object_type is not settings.object_type:
        return (
            f"the canary group's rule selects {rule.object_type} objects, the canary is a "
            f"{settings.object_type}: set probe.object_type or choose another group"
        )
    if settings.property.casefold() not in {p.casefold() for p in rule.properties}:
        return (
            f"the canary group's rule does not read {name} (it reads "
            f"{', '.join(sorted(rule.properties)) or 'nothing'}): changing it moves nothing"
        )
    if not rule.matches({settings.property: settings.match_value}):
        return (
            f"the canary group's rule does not select {name} = {settings.match_value!r}: "
            "set probe.match_value to the value the rule matches"
        )
    if rule.matches({settings.property: settings.other_value}):
        return (
            f"the canary group's rule also selects {name} = {settings.other_value!r}: "
            "set probe.other_value to a value the rule does not match"
        )
    return None


@dataclass(frozen=True, slots=True)
class ProbeEvidence:
    """What the probe says about processing right now (part of the readiness body)."""

    latest_latency: float | None
    """Seconds, of the latest detected round."""
    latest_outcome: ProbeOutcome | None
    last_success: float | None
    """When the latest detected round's change was seen."""
    consecutive_normal: int
    """Detected rounds in a row, newest first, within `normal_latency` (paused rounds neither
    count nor break the streak; a timeout or a slow round breaks it)."""
    needed: int
    normal_latency: float
    in_flight_since: float | None
    """The start of the round in flight, if one is."""
    keeping_up: bool | None
    """True: the last `needed` measured rounds were normal and the one in flight (if any) is
    not already slower than normal. False: the latest measured round was slow or timed out, or
    the one in flight is. None: not enough rounds yet to tell."""
    detail: str


def probe_evidence(
    rounds: Sequence[ProbeRound],
    settings: ProbeSettings,
    now: float,
    *,
    since: float | None = None,
) -> ProbeEvidence:
    """Rounds oldest first. With `since` (a pause's start), only rounds started then or later
    count towards the streak: rounds before a pause say nothing about the recovery after it."""
    bound = settings.normal_latency
    needed = settings.evidence_rounds
    measured = [r for r in rounds if r.outcome in (ProbeOutcome.DETECTED, ProbeOutcome.TIMED_OUT)]
    latest_detected = next(
        (r for r in reversed(measured) if r.outcome is ProbeOutcome.DETECTED), None
    )
    streak = 0
    for r in reversed(measured):
        if since is not None and r.started_at < since:
            break
        if r.outcome is not ProbeOutcome.DETECTED or r.latency is None or r.latency > bound:
            break
        streak += 1
    flying = next((r for r in reversed(rounds) if r.in_flight), None)
    overdue = flying is not None and now - flying.started_at > bound
    latest = measured[-1] if measured else None
    keeping_up: bool | None
    if overdue or (
        latest is not None
        and (latest.outcome is ProbeOutcome.TIMED_OUT or (latest.latency or 0.0) > bound)
    ):
        keeping_up = False
    elif streak >= needed:
        keeping_up = True
    else:
        keeping_up = None
    last = rounds[-1] if rounds else None
    if (
        keeping_up
        and last is not None
        and last.outcome in (ProbeOutcome.PAUSED, ProbeOutcome.FAILED)
    ):
        # The evidence must be current: a probe that measures nothing now (its group paused,
        # its change refused) proves nothing about now, however good its last rounds were.
        keeping_up = None
    if flying is not None and overdue:
        detail = (
            f"the round started {short_time(flying.started_at)} is not seen after "
            f"{human_duration(now - flying.started_at)} (normal: within {human_duration(bound)})"
        )
    elif latest_detected is None and latest is None:
        detail = "no probe round measured yet"
        if last is not None and last.outcome is ProbeOutcome.PAUSED:
            detail = "the canary group is paused: the probe measures nothing while it is"
    else:
        parts = []
        if latest_detected is not None and latest_detected.latency is not None:
            parts.append(f"latest latency {human_duration(latest_detected.latency)}")
        if latest is not None and latest.outcome is ProbeOutcome.TIMED_OUT:
            parts.append(f"a round timed out after {human_duration(settings.timeout)}")
        parts.append(
            f"{streak} consecutive round(s) within {human_duration(bound)} ({needed} needed)"
        )
        detail = "; ".join(parts)
        if last is not None and last.outcome is ProbeOutcome.PAUSED:
            detail += "; the canary group is paused now"
    return ProbeEvidence(
        latest_latency=latest_detected.latency if latest_detected is not None else None,
        latest_outcome=latest.outcome if latest is not None else None,
        last_success=latest_detected.finished_at if latest_detected is not None else None,
        consecutive_normal=streak,
        needed=needed,
        normal_latency=bound,
        in_flight_since=flying.started_at if flying is not None else None,
        keeping_up=keeping_up,
        detail=detail,
    )
