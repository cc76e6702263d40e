"""The demo's narrative: one line per turn of a tenant's story, told from the exporter's snapshot.

`Story.observe(snapshot)` compares the tenant's latest assessment and group counts with what it
saw last and returns the lines to print: the storm (pause warranted, and why), the pause, resume
readiness (blocked, then ready), each resume batch, the end of the episode. It reads only the
in-memory snapshot (what /metrics and the console read), so it never asks the store anything
and says nothing the metrics would not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.domain.baseline import Measure
from exporter.domain.readiness import ConditionStatus, ReadinessState
from exporter.domain.signals import PauseReason, PauseSignal
from exporter.runtime.snapshot import TenantSnapshot

SETTLE = 15 * 60
"""Tenant-clock seconds a change of the paused count must hold before it is told."""
STABLE = 3
"""Looks in a row a readiness state must hold before the story tells it."""


def clock_text(t: float) -> str:
    """A tenant-clock instant as the story prints it (UTC, to the minute)."""
    return time.strftime("%a %d %b %H:%M UTC", time.gmtime(t))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _reason_text(signal: PauseSignal) -> str:
    if signal.observed is None:
        return signal.reason.value
    if signal.unit == "seconds":
        return f"{signal.reason.value}: {signal.observed / 3600:.1f} h"
    if signal.unit == "ratio":
        return f"{signal.reason.value}: {signal.observed:,.0f}x baseline"
    return f"{signal.reason.value}: {signal.observed:,.0f} {signal.unit.replace('_', ' ')}"


@dataclass
class Story:
    """What one tenant's story has told so far."""

    tenant: str
    caught_up: bool = False
    warranted: frozenset[PauseReason] = frozenset()
    paused: int | None = None
    readiness: ReadinessState | None = None
    _latest: int = 0
    _change_at: float = 0.0
    _last_change: float = 0.0
    batches_seen: int = 0
    batches_planned: int = 0
    told_in_episode: set[ReadinessState] = field(default_factory=set)
    """Ready and not ready are told once per episode: a flap (stale data for a moment on a
    busy machine) is not a turn of the story."""
    candidate: ReadinessState | None = None
    seen: int = 0
    told: list[str] = field(default_factory=list)

    def observe(self, part: TenantSnapshot) -> list[str]:
        lines: list[str] = []
        at = clock_text(part.taken_at)

        def say(text: str) -> None:
            lines.append(f"{at}  {text}")

        if not self.caught_up and part.backfill is not None and part.backfill.fraction >= 1.0:
            self.caught_up = True
            days = (part.backfill.target - part.backfill.start) / 86400
            say(f"backfill complete: {days:.1f} days of audit log read; watching live")
        assessment = part.assessment
        if assessment is None or not self.caught_up:
            self.told += lines
            return lines

        active = frozenset(s.reason for s in assessment.pause_signals if s.active)
        if active and not self.warranted:
            say(f"{self._storm_headline(part)}: pause warranted ({', '.join(sorted(active))})")
        elif active - self.warranted:
            added = [s for s in assessment.pause_signals if s.reason in active - self.warranted]
            say("pause also warranted by " + "; ".join(_reason_text(s) for s in added))
        elif self.warranted and not active:
            say("pause no longer warranted: the signals are back below their thresholds")
        self.warranted = active

        paused = assessment.groups.paused
        if self.paused is None:
            self.paused = self._latest = paused
        if paused != self._latest:
            if self._latest == self.paused:
                self._change_at = part.taken_at
            self._latest, self._last_change = paused, part.taken_at
        # Groups and administrative units are listed by different polls minutes apart: one
        # operator action is told once the count has held for SETTLE of the tenant's clock.
        if paused != self.paused and part.taken_at - self._last_change >= SETTLE:
            when = clock_text(self._change_at)
            if paused > self.paused:
                episode = assessment.episode
                who = (
                    "by this tool (ledger)"
                    if episode is not None and episode.source.value == "ledger"
                    else "by the operator"
                )
                self.batches_seen = 0
                self.told_in_episode = set()
                lines.append(
                    f"{when}  {_plural(paused - self.paused, 'group')} paused {who} "
                    f"({paused:,} paused now)"
                )
            else:
                self.batches_seen += 1
                planned = self.batches_planned
                of = f" of {planned}" if planned >= self.batches_seen else ""
                lines.append(
                    f"{when}  batch {self.batches_seen}{of} resumed: "
                    f"{_plural(self.paused - paused, 'group')}, {paused:,} still paused"
                )
            self.paused = paused
        if paused != self.paused:
            self.told += lines
            return lines  # the rest of the story waits until this turn is told

        self._tell_readiness(part, say)
        self.told += lines
        return lines

    def _tell_readiness(self, part: TenantSnapshot, say: Callable[[str], None]) -> None:
        assessment = part.assessment
        assert assessment is not None
        readiness = assessment.readiness
        # A state is told once it has held for STABLE looks in a row.
        if readiness.state is not self.candidate:
            self.candidate, self.seen = readiness.state, 0
        self.seen += 1
        if self.seen != STABLE or readiness.state is self.readiness:
            return
        previous, self.readiness = self.readiness, readiness.state
        # A condition that does not apply (the probe's, with no probe) is not one to meet.
        conditions = [
            c for c in readiness.conditions if c.status is not ConditionStatus.NOT_APPLICABLE
        ]
        if readiness.state is ReadinessState.READY:
            if ReadinessState.READY in self.told_in_episode:
                return
            self.told_in_episode.add(ReadinessState.READY)
            self.batches_planned = assessment.plan.batches
            met = [c for c in conditions if c.status is ConditionStatus.MET]
            counted = (
                f"all {len(conditions)} conditions met"
                if len(met) == len(conditions)
                else f"{len(met)} of {len(conditions)} conditions met, none blocking"
            )
            batches = assessment.plan.batches
            plan = f"{batches} batch" if batches == 1 else f"{batches} batches"
            say(f"ready to resume: {counted}; plan: {plan}")
        elif readiness.state is ReadinessState.NOT_READY:
            if ReadinessState.NOT_READY in self.told_in_episode:
                return
            self.told_in_episode.add(ReadinessState.NOT_READY)
            blocking = [c.condition.value for c in conditions if c.blocks]
            say(f"not ready to resume: blocked by {', '.join(blocking) or 'nothing named'}")
        elif readiness.state is ReadinessState.NOT_PAUSED:
            if previous is not None and self.told_in_episode:
                say("nothing left to resume: the episode is over")
        elif previous is not None and self.told_in_episode:
            # Only within an episode: outside one, there is nothing to resume anyway.
            say(f"cannot tell whether to resume: {readiness.detail}")

    @staticmethod
    def _storm_headline(part: TenantSnapshot) -> str:
        assessment = part.assessment
        assert assessment is not None
        active = {s.reason: s for s in assessment.pause_signals if s.active}
        if PauseReason.TRIGGER_RATE not in active:
            first = next(iter(active.values()))
            if first.reason is PauseReason.PROCESSING_LAG and first.observed is not None:
                return f"processing lag {first.observed / 3600:.1f} h"
            return _reason_text(first)
        ratios = [
            (r.deviation_ratio, r.measure)
            for r in assessment.rates
            if r.measure in (Measure.USER_CHANGES, Measure.DEVICE_CHANGES)
            and r.deviation_ratio is not None
        ]
        if not ratios:
            return "storm"
        ratio, measure = max(ratios)
        return f"trigger rate {ratio:,.0f}x baseline ({measure.value.replace('_', ' ')})"
