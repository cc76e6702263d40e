"""`pause`: decide what to pause (all, the named, all except some; already paused objects are
left alone and recorded as paused before a new episode), apply it as a ledger run, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exporter.domain.events import ProcessingState
from exporter.domain.midresume import resumed_in_open_episodes
from exporter.domain.records import DirectoryObject
from exporter.ops.engine import Change, Outcome
from exporter.ops.lines import episode_json, object_line, outcome_line
from exporter.ops.preparation import Prepared, prepare
from exporter.ops.report import Report, Result, Status
from exporter.ops.runs import RunOptions, build_applier, final_status, run_note, stop_event
from exporter.ops.session import OpsError, OpsSession
from exporter.ops.targets import resolve
from exporter.store.ledger import (
    Command,
    EpisodeRecord,
    ObjectRef,
    OpStatus,
    Origin,
    PlannedOperation,
)

PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON


@dataclass(frozen=True, slots=True)
class PauseRequest:
    all: bool = False
    ids: tuple[str, ...] = ()
    except_ids: tuple[str, ...] = ()
    except_critical: bool = False
    reason: str | None = None
    resumed: bool = False
    """The open episode's objects a resume switched back On (a storm mid-resume, #23)."""

    def selection(self) -> dict[str, Any]:
        """As the ledger records the run's selection."""
        return {
            "mode": "all" if self.all else "resumed" if self.resumed else "groups",
            "ids": list(self.ids),
            "except": list(self.except_ids),
            "except_critical": self.except_critical,
        }


@dataclass(frozen=True, slots=True)
class PauseDecision:
    """What a pause would do, decided from the tenant's listing before anything changes."""

    to_pause: list[DirectoryObject]
    already: list[DirectoryObject]
    """Selected but paused already: left alone."""
    excluded: list[DirectoryObject]
    critical: frozenset[str]
    episode: EpisodeRecord | None
    """The open episode this pause joins; None: it begins one."""
    canary: list[DirectoryObject] = field(default_factory=list)
    """The canary probe's group, which `--all` leaves On (#20): name it to pause it."""

    def ref(self, obj: DirectoryObject) -> ObjectRef:
        return ObjectRef(obj.id, obj.kind, obj.name)


async def pause(session: OpsSession, request: PauseRequest, options: RunOptions) -> Report:
    """Pause all dynamic groups and units, or the named ones, or all except some. Objects
    already paused are left alone and, when this starts an episode, recorded as paused before
    it (a later resume never switches them On unless they are named)."""
    report = Report("pause --all" if request.all else "pause", session.name, options.apply)
    prepared = await prepare(session, report, apply=options.apply)
    decision = await decide(session, prepared, request)
    report_decision(report, decision, request)
    if request.resumed and not decision.to_pause:
        report.notes.append(
            "--resumed: no object of an open pause episode is back On; nothing to pause again"
        )
    if not options.apply or not decision.to_pause:
        report_dry_run(report, decision, apply=options.apply)
        return report
    if decision.episode is None and not request.reason:
        raise OpsError(
            "--reason is required to begin a pause episode: say why, it is recorded in the ledger"
        )
    question = (
        f"Pause {len(decision.to_pause):,} dynamic group(s)/unit(s) in tenant {session.name!r}"
        + (
            f", joining episode {decision.episode.id}"
            if decision.episode
            else ", beginning a pause episode"
        )
        + "?"
    )
    if not options.confirm(question):
        report.status = Status.CANCELLED
        return report
    outcomes = await apply(session, prepared, decision, request, options, report)
    report.lines += [outcome_line(o, critical=o.ref.id in decision.critical) for o in outcomes]
    return report


async def decide(session: OpsSession, prepared: Prepared, request: PauseRequest) -> PauseDecision:
    inventory = prepared.inventory
    except_ids = list(request.except_ids)
    if request.except_critical:
        except_ids += [g for g in session.tenant.critical_groups if g not in except_ids]
    excluded = await resolve(session.graph, inventory, except_ids, what="--except")
    excluded_ids = {o.id for o in excluded}
    canary: list[DirectoryObject] = []
    if request.all:
        probe = session.tenant.probe
        canary_id = probe.group_id if probe is not None else None
        # The canary must keep measuring while everything else is paused: that is what shows
        # the queue draining (and lets readiness use the probe's evidence).
        if (
            canary_id is not None
            and canary_id in inventory.objects
            and canary_id not in excluded_ids
        ):
            canary.append(inventory.objects[canary_id])
            excluded_ids.add(canary_id)
        selected = [o for o in inventory.objects.values() if o.id not in excluded_ids]
    elif request.resumed:
        episodes = await session.store.call(session.ledger.episodes, session.name)
        back_on = resumed_in_open_episodes(episodes)
        selected = [o for o in inventory.objects.values() if o.id in back_on]
    else:
        selected = await resolve(session.graph, inventory, request.ids, what="--group")
    selected.sort(key=lambda o: (o.kind.value, o.name.casefold(), o.id))
    return PauseDecision(
        to_pause=[o for o in selected if o.state is ON],
        already=[o for o in selected if o.state is PAUSED],
        excluded=excluded,
        critical=frozenset(session.tenant.critical_groups),
        episode=prepared.open_episode,
        canary=canary,
    )


def report_decision(report: Report, decision: PauseDecision, request: PauseRequest) -> None:
    critical = decision.critical
    for obj in decision.excluded:
        why = (
            "excluded: a critical group (--except-critical)"
            if request.except_critical and obj.id in critical and obj.id not in request.except_ids
            else "excluded (--except)"
        )
        report.lines.append(object_line(obj, Result.EXCLUDED, why, critical=obj.id in critical))
    for obj in decision.canary:
        report.lines.append(
            object_line(
                obj,
                Result.EXCLUDED,
                "excluded: the canary probe's group (name it with --group to pause it)",
                critical=obj.id in critical,
            )
        )
    for obj in decision.already:
        report.lines.append(
            object_line(obj, Result.UNCHANGED, "already paused", critical=obj.id in critical)
        )
    report.episode = episode_json(decision.episode)
    if decision.episode is None and decision.to_pause:
        report.episode = {"id": None, "source": "ledger", "new": True, "reason": request.reason}


def report_dry_run(report: Report, decision: PauseDecision, *, apply: bool) -> None:
    report.lines += [
        object_line(o, Result.WOULD_CHANGE, "On -> Paused", critical=o.id in decision.critical)
        for o in decision.to_pause
    ]
    report.status = Status.NOTHING_TO_DO if apply else Status.DRY_RUN
    if not apply and decision.episode is not None and decision.to_pause:
        report.notes.append(f"this pause joins the open episode {decision.episode.id}")


async def apply(
    session: OpsSession,
    prepared: Prepared,
    decision: PauseDecision,
    request: PauseRequest,
    options: RunOptions,
    report: Report,
) -> list[Outcome]:
    """Begin or join the episode, record the run and its planned operations, send the PATCHes,
    and finish the run with its outcome (report.status, report.run_id, report.episode)."""
    store, ledger, now = session.store, session.ledger, session.clock.now()
    episode = decision.episode
    if episode is None:
        already_paused = [
            prepared.inventory.ref(o.id) for o in prepared.inventory.with_state(PAUSED)
        ]
        new_id = await store.call(
            lambda: ledger.start_episode(
                session.name,
                at=now,
                by=session.operator,
                reason=request.reason or "",
                origin=Origin.PAUSE,
                already_paused=already_paused,
            )
        )
        episode = await store.call(ledger.episode, new_id)
        assert episode is not None
    report.episode = episode_json(episode, new=decision.episode is None)
    episode_id = episode.id
    run_id = await store.call(
        lambda: ledger.start_run(
            session.name,
            command=Command.PAUSE,
            selection=request.selection(),
            operator=session.operator,
            at=now,
            episode_id=episode_id,
            reason=request.reason,
        )
    )
    report.run_id = run_id
    ref = decision.ref
    await store.call(
        lambda: ledger.plan_operations(
            run_id,
            [PlannedOperation(ref(o), PAUSED) for o in decision.to_pause]
            + [
                PlannedOperation(ref(o), PAUSED, OpStatus.UNCHANGED, detail="already paused")
                for o in decision.already
            ]
            + [
                PlannedOperation(ref(o), PAUSED, OpStatus.SKIPPED, detail="excluded")
                for o in decision.excluded
            ]
            + [
                PlannedOperation(
                    ref(o), PAUSED, OpStatus.SKIPPED, detail="excluded: the canary probe's group"
                )
                for o in decision.canary
            ],
            at=now,
        )
    )
    stop = stop_event(options)
    options.on_total(len(decision.to_pause), "pausing")
    outcomes = await build_applier(session, options).apply(
        run_id,
        [Change(ref(o), PAUSED) for o in decision.to_pause],
        episode_id=episode_id,
        stop=stop,
        on_outcome=options.on_outcome,
    )
    report.status, run_status = final_status(outcomes, stop)
    await store.call(
        lambda: ledger.finish_run(
            run_id, run_status, at=session.clock.now(), note=run_note(outcomes)
        )
    )
    return outcomes
