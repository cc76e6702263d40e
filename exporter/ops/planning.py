"""What a resume would do, for `plan` and `resume` alike: the episode, the plan's batches (a
batch an interrupted run left half done first), what is held back or excluded, and the gate's
reading."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from exporter.domain.episode import PauseEpisode
from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.groups import GroupState
from exporter.domain.plan import (
    PlannedGroup,
    ResumeBatch,
    ResumePlan,
    episode_and_plan,
)
from exporter.domain.readiness import ReadinessState
from exporter.domain.settings import ResumeSettings
from exporter.ops.gate import GateDecision, ReadinessReading
from exporter.ops.lines import EXCLUSION_TEXT
from exporter.ops.preparation import Prepared, selection_key
from exporter.ops.report import Line, Report, Result, iso
from exporter.ops.session import OpsSession
from exporter.ops.targets import resolve

PAUSED = ProcessingState.PAUSED


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    ids: tuple[str, ...] = ()
    non_critical: bool = False
    batch_size: int | None = None
    batch_interval: float | None = None
    all_batches: bool = False
    force: bool = False
    reason: str | None = None

    def selection(self) -> dict[str, Any]:
        if self.non_critical:
            return {"mode": "non_critical"}
        return {"mode": "groups", "ids": sorted(self.ids)}


@dataclass
class ResumeView:
    plan: ResumePlan
    episode: PauseEpisode | None
    batches: list[ResumeBatch]
    """The batches a resume would run, in order (a carried-over batch first), renumbered."""
    held_back: list[ResumeBatch]
    """Critical batches a --non-critical resume leaves to `resume --group`."""
    carried_from: str | None
    critical: frozenset[str]
    resume: ResumeSettings
    kinds: dict[str, DirectoryObjectKind]


async def resume_view(
    session: OpsSession, prepared: Prepared, request: ResumeRequest
) -> ResumeView:
    inventory = prepared.inventory
    objects = dict(inventory.objects)
    named: list[str] = []
    if request.ids:
        for obj in await resolve(session.graph, inventory, request.ids, what="--group"):
            named.append(obj.id)
            objects.setdefault(obj.id, obj)  # read directly: the listing had not shown it
    critical = frozenset(session.tenant.critical_groups)
    paused_since = {
        p.id: p.paused_since
        for p in await session.store.call(session.store.paused_objects, session.name)
        if p.paused_since is not None  # unknown: never invented (#13)
    }
    groups = [
        GroupState(
            id=obj.id,
            name=obj.name,
            kind=obj.kind,
            state=obj.state,
            paused_since=paused_since.get(obj.id) if obj.state is PAUSED else None,
            critical=obj.id in critical,
        )
        for obj in objects.values()
        if obj.state is not None
    ]
    ledger_episodes = await session.store.call(session.ledger.episodes, session.name)
    resume = session.config.resume
    overrides: dict[str, Any] = {}
    if request.batch_size is not None:
        overrides["batch_size"] = request.batch_size
    if request.batch_interval is not None:
        overrides["batch_interval"] = request.batch_interval
    if overrides:
        resume = replace(resume, **overrides)
    episode, plan = episode_and_plan(
        groups,
        ledger_episodes,
        now=session.clock.now(),
        thresholds=session.config.thresholds,
        resume=resume,
        critical_priority=session.tenant.critical_groups,
        named=named,
        canary=session.tenant.probe.group_id if session.tenant.probe is not None else None,
    )
    batches = list(plan.batches)
    held_back: list[ResumeBatch] = []
    if request.non_critical:
        held_back = [b for b in batches if b.critical]
        batches = [b for b in batches if not b.critical]
    carried_from = None
    carried = prepared.recovery.carry_over.get(selection_key(request.selection()))
    if carried is not None:
        carried_from, refs = carried
        carried_ids = {r.id for r in refs}
        first = ResumeBatch(
            0,
            any(r.id in critical for r in refs),
            tuple(PlannedGroup(r.id, r.name, r.kind, r.id in critical) for r in refs),
        )
        rest = [
            ResumeBatch(b.index, b.critical, tuple(g for g in b.groups if g.id not in carried_ids))
            for b in batches
        ]
        batches = [first, *(b for b in rest if b.groups)]
    batches = [ResumeBatch(i, b.critical, b.groups) for i, b in enumerate(batches, start=1)]
    kinds = {i: o.kind for i, o in objects.items()}
    return ResumeView(plan, episode, batches, held_back, carried_from, critical, resume, kinds)


def context_lines(view: ResumeView, report: Report) -> None:
    """What a resume leaves out, and why: critical objects held back, exclusions."""
    for batch in view.held_back:
        report.lines += [
            Line(g.id, g.kind, g.name, Result.DEFERRED, HELD_BACK, None, True) for g in batch.groups
        ]
    for exclusion in view.plan.excluded:
        report.lines.append(
            Line(
                exclusion.id,
                view.kinds.get(exclusion.id, DirectoryObjectKind.GROUP),
                exclusion.name or "",
                Result.EXCLUDED,
                EXCLUSION_TEXT[exclusion.reason],
                None,
                exclusion.id in view.critical,
            )
        )
    if view.carried_from:
        report.notes.append(
            f"batch 1 finishes the batch that interrupted run {view.carried_from} left half done"
        )
    if view.held_back:
        count = sum(len(b.groups) for b in view.held_back)
        report.notes.append(
            f"{count} critical object(s) of the episode are still paused: resume them first "
            f"with resume --group (at most {view.resume.max_critical_groups} per batch: "
            "resume.max_critical_groups)"
        )


HELD_BACK = "critical: resume critical groups with resume --group first"


DEFERRED = "a later batch: run the command again (or use --all-batches)"


def episode_view_json(view: ResumeView) -> dict[str, Any] | None:
    episode = view.episode
    if episode is None:
        return None
    return {
        "id": ",".join(episode.ledger_episode_ids) or None,
        "source": episode.source.value,
        "new": False,
        "started_at": iso(episode.started_at),
        "started_by": episode.started_by,
        "reason": episode.reason,
        "objects": len(episode.group_ids),
        "paused_before": len(episode.paused_before),
        "undetermined": len(episode.undetermined),
    }


async def read_readiness(session: OpsSession) -> ReadinessReading:
    if session.readiness is None:
        return ReadinessReading(
            ReadinessState.CANNOT_TELL, "no exporter to ask (give --exporter.url)", ""
        )
    return await session.readiness.read(session.name)


def readiness_json(reading: ReadinessReading, when: str, decision: GateDecision) -> dict[str, Any]:
    return {
        "when": when,
        "state": reading.state.value,
        "detail": reading.detail,
        "source": reading.source,
        "allowed": decision.allowed,
        "forced": decision.forced,
    }
