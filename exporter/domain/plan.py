"""The resume plan: which paused groups to switch back On, in which order and batches.

* Candidates: the episode's groups (paused now, part of the episode), plus any group named
  explicitly (`named`); with `named_only`, the named groups alone.
* Never planned unless named: groups paused before the episode began, groups whose pause time
  nothing records, the canary probe's group (`canary`), and (without an episode) every paused
  group. Each is listed as an exclusion
  with its reason. Named groups that are On already, or are not dynamic groups we know, are
  excluded too.
* Critical groups first, in batches of at most `max_critical_groups`, ordered by the configured
  priority (`critical_priority`, e.g. the tenant's `critical_groups` list), then by name, then
  id; then the others in batches of `batch_size`, ordered by name, then id.
* Estimated duration: from the first batch to the start of the last, `batch_interval` apart
  (a batch itself is a few PATCH requests: seconds). The operation re-checks readiness between
  batches and stops when it no longer holds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from exporter.domain.episode import PauseEpisode, detect_episode
from exporter.domain.events import DirectoryObjectKind
from exporter.domain.groups import GroupState, LedgerEpisode
from exporter.domain.settings import ResumeSettings, Thresholds


class ExclusionReason(StrEnum):
    PAUSED_BEFORE_EPISODE = "paused_before_episode"
    PAUSE_TIME_UNKNOWN = "pause_time_unknown"
    NO_PAUSE_EPISODE = "no_pause_episode"
    ALREADY_ON = "already_on"
    NOT_FOUND = "not_found"
    CANARY_GROUP = "canary_group"
    """The canary probe's group (#20): an instrument, not a workload; resumed only when named."""


@dataclass(frozen=True, slots=True)
class PlannedGroup:
    id: str
    name: str
    kind: DirectoryObjectKind
    critical: bool


@dataclass(frozen=True, slots=True)
class ResumeBatch:
    index: int
    """1-based."""
    critical: bool
    groups: tuple[PlannedGroup, ...]


@dataclass(frozen=True, slots=True)
class Exclusion:
    id: str
    name: str | None
    reason: ExclusionReason


@dataclass(frozen=True, slots=True)
class PlanSummary:
    critical_groups: int
    other_groups: int
    batches: int
    batch_size: int
    max_critical_groups: int
    batch_interval_seconds: float
    estimated_duration_seconds: float
    excluded: tuple[tuple[ExclusionReason, int], ...]
    """Every reason, in ExclusionReason order, with its count (0 included)."""


@dataclass(frozen=True, slots=True)
class ResumePlan:
    batches: tuple[ResumeBatch, ...]
    excluded: tuple[Exclusion, ...]
    summary: PlanSummary

    @property
    def group_ids(self) -> tuple[str, ...]:
        return tuple(g.id for b in self.batches for g in b.groups)


def plan_resume(
    episode: PauseEpisode | None,
    groups: Iterable[GroupState],
    resume: ResumeSettings,
    *,
    named: Collection[str] = (),
    named_only: bool = False,
    critical_priority: Sequence[str] = (),
    canary: str | None = None,
) -> ResumePlan:
    by_id = {g.id: g for g in groups}
    named_set = set(named)
    excluded: list[Exclusion] = []

    def exclude(group_id: str, reason: ExclusionReason) -> None:
        group = by_id.get(group_id)
        excluded.append(Exclusion(group_id, group.name if group else None, reason))

    chosen: set[str] = set()
    if not named_only:
        if episode is not None:
            chosen.update(episode.group_ids)
            if canary in chosen and canary not in named_set:
                chosen.discard(canary)
                exclude(canary, ExclusionReason.CANARY_GROUP)
            for group_id in episode.paused_before:
                if group_id not in named_set:
                    exclude(group_id, ExclusionReason.PAUSED_BEFORE_EPISODE)
            for group_id in episode.undetermined:
                if group_id not in named_set:
                    exclude(group_id, ExclusionReason.PAUSE_TIME_UNKNOWN)
        else:
            for g in by_id.values():
                if g.paused and g.id not in named_set:
                    exclude(g.id, ExclusionReason.NO_PAUSE_EPISODE)
    for group_id in named_set:
        group = by_id.get(group_id)
        if group is None:
            exclude(group_id, ExclusionReason.NOT_FOUND)
        elif not group.paused:
            exclude(group_id, ExclusionReason.ALREADY_ON)
        else:
            chosen.add(group_id)

    # The episode came from the same group states, but a caller may pass a stale episode.
    planned = [by_id[i] for i in chosen if i in by_id and by_id[i].paused]
    priority = {group_id: i for i, group_id in enumerate(critical_priority)}
    critical = sorted(
        (g for g in planned if g.critical),
        key=lambda g: (priority.get(g.id, len(priority)), g.name.casefold(), g.id),
    )
    others = sorted((g for g in planned if not g.critical), key=lambda g: (g.name.casefold(), g.id))

    batches: list[ResumeBatch] = []
    for is_critical, members, size in (
        (True, critical, resume.max_critical_groups),
        (False, others, resume.batch_size),
    ):
        for start in range(0, len(members), size):
            chunk = tuple(
                PlannedGroup(g.id, g.name, g.kind, g.critical)
                for g in members[start : start + size]
            )
            batches.append(ResumeBatch(len(batches) + 1, is_critical, chunk))

    excluded.sort(key=lambda x: (list(ExclusionReason).index(x.reason), x.id))
    summary = PlanSummary(
        critical_groups=len(critical),
        other_groups=len(others),
        batches=len(batches),
        batch_size=resume.batch_size,
        max_critical_groups=resume.max_critical_groups,
        batch_interval_seconds=resume.batch_interval,
        estimated_duration_seconds=max(0, len(batches) - 1) * resume.batch_interval,
        excluded=tuple(
            (reason, sum(1 for x in excluded if x.reason is reason)) for reason in ExclusionReason
        ),
    )
    return ResumePlan(tuple(batches), tuple(excluded), summary)


def episode_and_plan(
    groups: Sequence[GroupState],
    ledger: Sequence[LedgerEpisode],
    *,
    now: float,
    thresholds: Thresholds,
    resume: ResumeSettings,
    critical_priority: Sequence[str] = (),
    named: Collection[str] = (),
    canary: str | None = None,
) -> tuple[PauseEpisode | None, ResumePlan]:
    """The current pause episode and its resume plan: the one computation behind the
    exporter's readiness (no names) and the `plan`/`resume` commands (the groups named, or
    the episode's)."""
    episode = detect_episode(groups, ledger, now=now, thresholds=thresholds)
    plan = plan_resume(
        episode,
        groups,
        resume,
        named=named,
        named_only=bool(named),
        critical_priority=critical_priority,
        canary=canary,
    )
    return episode, plan
