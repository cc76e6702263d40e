"""A storm mid-resume (#23): triggers climb again while some of the episode's groups are already
back On. Those groups take the new work into the queue; pausing exactly them again stops it
without touching the groups still paused (the plan resumes them all later).

The groups back On are the ones an open ledger episode paused and last recorded On (a resume
batch switched them), or, for an episode inferred from pause times, groups seen resumed since it
began. "Triggers climb again" is the resume gate's own reading: the trigger-rate recovery
condition blocks again, or a pause reason is active.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from exporter.domain.episode import PauseEpisode
from exporter.domain.events import ProcessingState
from exporter.domain.groups import GroupState, LedgerEpisode
from exporter.domain.readiness import ConditionStatus, Readiness, ResumeCondition
from exporter.domain.signals import PauseSignal

CLI = "entra-dg-exporter"
PAUSE_AGAIN_FLAG = "--resumed"
"""`pause --resumed`: the open episode's objects a resume switched back On."""


@dataclass(frozen=True, slots=True)
class MidResumeStorm:
    resumed_group_ids: tuple[str, ...]
    """The episode's groups back On, sorted."""
    still_paused: int
    why: tuple[str, ...]
    """What says triggers climb: active pause reasons and/or `trigger_rate_recovery`."""

    def command(self, tenant: str) -> str:
        return (
            f"{CLI} pause --tenant {tenant} {PAUSE_AGAIN_FLAG} "
            "--reason 'triggers climbed again mid-resume' --apply"
        )

    def text(self, tenant: str) -> str:
        return (
            f"triggers climb again ({', '.join(self.why)}) while {len(self.resumed_group_ids):,} "
            f"of the episode's groups are back On and {self.still_paused:,} still paused: "
            f"pause those {len(self.resumed_group_ids):,} again with `{self.command(tenant)}`"
        )


def resumed_in_open_episodes(episodes: Iterable[LedgerEpisode]) -> frozenset[str]:
    """Objects an open episode paused that the ledger last recorded On: resumed from it."""
    return frozenset(
        o.id
        for e in episodes
        if e.open
        for o in e.objects
        if o.state is ProcessingState.ON and o.id in e.paused
    )


def mid_resume_storm(
    episode: PauseEpisode | None,
    groups: Sequence[GroupState],
    ledger: Sequence[LedgerEpisode],
    signals: Sequence[PauseSignal],
    readiness: Readiness,
) -> MidResumeStorm | None:
    if episode is None or not episode.group_ids:
        return None
    on = {g.id for g in groups if not g.paused}
    resumed = resumed_in_open_episodes(ledger) & on
    if not any(e.open for e in ledger):
        resumed = frozenset(
            g.id
            for g in groups
            if not g.paused and g.resumed_at is not None and g.resumed_at >= episode.started_at
        )
    if not resumed:
        return None
    why = [s.reason.value for s in signals if s.active]
    recovery = next(
        (c for c in readiness.conditions if c.condition is ResumeCondition.TRIGGER_RATE_RECOVERY),
        None,
    )
    if recovery is not None and recovery.status is ConditionStatus.BLOCKING:
        why.append(ResumeCondition.TRIGGER_RATE_RECOVERY.value)
    if not why:
        return None
    return MidResumeStorm(tuple(sorted(resumed)), len(episode.group_ids), tuple(why))
