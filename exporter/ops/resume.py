"""`resume`: the named objects (critical first) or the episode's non-critical ones, batch by
batch, the readiness gate checked before each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.plan import (
    ExclusionReason,
    ResumeBatch,
)
from exporter.domain.records import DirectoryObject
from exporter.ops import gate
from exporter.ops.engine import Applier, Change, Outcome
from exporter.ops.gate import ReadinessReading
from exporter.ops.lines import batch_lines, outcome_line
from exporter.ops.planning import (
    DEFERRED,
    ResumeRequest,
    ResumeView,
    context_lines,
    episode_view_json,
    read_readiness,
    readiness_json,
    resume_view,
)
from exporter.ops.preparation import Prepared, maintain_episodes, prepare
from exporter.ops.report import BatchLine, Report, Result, Status
from exporter.ops.runs import (
    RUN_STATUS,
    RunOptions,
    build_applier,
    final_status,
    run_note,
    stop_event,
)
from exporter.ops.session import OpsSession
from exporter.ops.targets import Inventory
from exporter.store.ledger import (
    Command,
    ObjectRef,
    OpStatus,
    PlannedOperation,
)

ON = ProcessingState.ON


@dataclass(frozen=True, slots=True)
class ResumeDecision:
    """What this run would resume, and whether the gate lets it."""

    view: ResumeView
    to_run: list[ResumeBatch]
    """This run's batches: the first, or every one with `all_batches`."""
    later: list[ResumeBatch]
    reading: ReadinessReading
    gate_decision: gate.GateDecision


async def resume(session: OpsSession, request: ResumeRequest, options: RunOptions) -> Report:
    """Resume the named objects (critical first), or the episode's non-critical ones. One batch
    per run unless `all_batches` (then batch by batch, `batch_interval` apart, re-checking
    readiness before each and stopping when it no longer holds)."""
    command = "resume --non-critical" if request.non_critical else "resume"
    report = Report(command, session.name, options.apply)
    prepared = await prepare(session, report, apply=options.apply)
    decision = await decide(session, prepared, request)
    report.episode = episode_view_json(decision.view)
    report.readiness.append(
        readiness_json(decision.reading, "before batch 1", decision.gate_decision)
    )
    if not options.apply or not decision.to_run or not decision.gate_decision.allowed:
        report_unchanged(report, decision, apply=options.apply)
        return report
    total = sum(len(b.groups) for b in decision.to_run)
    question = (
        f"Resume {total:,} dynamic group(s)/unit(s) in tenant {session.name!r} "
        f"({len(decision.to_run)} batch(es) of {len(decision.view.batches)})"
        + (" OVERRIDING the readiness check" if decision.gate_decision.forced else "")
        + "?"
    )
    if not options.confirm(question):
        report.status = Status.CANCELLED
        return report
    outcomes = await apply(session, prepared, decision, request, options, report)
    _defer(decision.later, report)
    context_lines(decision.view, report)
    # The episode may be over: look again with what this run did.
    done = {o.ref.id for o in outcomes if o.status is OpStatus.DONE}
    inventory = prepared.inventory
    updated = Inventory(
        {
            i: (DirectoryObject(o.kind, o.id, o.name, o.rule, ON) if i in done else o)
            for i, o in inventory.objects.items()
        },
        inventory.unlisted_kinds,
    )
    await maintain_episodes(session, updated, report, apply=True)
    return report


async def decide(session: OpsSession, prepared: Prepared, request: ResumeRequest) -> ResumeDecision:
    view = await resume_view(session, prepared, request)
    runs = len(view.batches) if request.all_batches else min(1, len(view.batches))
    reading = await read_readiness(session)
    return ResumeDecision(
        view=view,
        to_run=view.batches[:runs],
        later=view.batches[runs:],
        reading=reading,
        gate_decision=gate.decide(reading, force=request.force),
    )


def report_unchanged(report: Report, decision: ResumeDecision, *, apply: bool) -> None:
    """A dry run, nothing to resume, or the gate's refusal."""
    refused = apply and not decision.gate_decision.allowed
    for batch in decision.to_run:
        report.lines += batch_lines(
            batch,
            Result.NOT_ATTEMPTED if refused else Result.WOULD_CHANGE,
            "refused by the readiness check" if refused else None,
        )
        report.batches.append(
            BatchLine(
                batch.index,
                batch.critical,
                len(batch.groups),
                decision.reading.state.value,
                "refused" if refused else "planned",
            )
        )
    _defer(decision.later, report)
    context_lines(decision.view, report)
    if not decision.to_run:
        report.status = Status.NOTHING_TO_DO if apply else Status.DRY_RUN
    elif not decision.gate_decision.allowed:
        report.status = Status.REFUSED if apply else Status.DRY_RUN
        report.notes.append(
            decision.gate_decision.describe()
            + ("" if apply else " (this dry run would be refused)")
            + '; resume once it is ready, or override with --force --reason "..."'
        )
    else:
        report.status = Status.DRY_RUN


async def apply(
    session: OpsSession,
    prepared: Prepared,
    decision: ResumeDecision,
    request: ResumeRequest,
    options: RunOptions,
    report: Report,
) -> list[Outcome]:
    """Record the run, then each batch in turn (the gate checked again before every batch after
    the first), and finish the run (report.status, report.run_id)."""
    store, ledger, view = session.store, session.ledger, decision.view
    episode_id = prepared.open_episode.id if prepared.open_episode is not None else None
    run_id = await store.call(
        lambda: ledger.start_run(
            session.name,
            command=Command.RESUME,
            selection={
                **request.selection(),
                "batch_size": view.resume.batch_size,
                "all_batches": request.all_batches,
            },
            operator=session.operator,
            at=session.clock.now(),
            episode_id=episode_id,
            reason=request.reason,
            forced=decision.gate_decision.forced,
            readiness=decision.reading.state.value,
            continues=view.carried_from,
        )
    )
    report.run_id = run_id
    canary = [x for x in view.plan.excluded if x.reason is ExclusionReason.CANARY_GROUP]
    if canary:
        # The ledger says the canary group was left paused on purpose, not forgotten (#20).
        await store.call(
            lambda: ledger.plan_operations(
                run_id,
                [
                    PlannedOperation(
                        ObjectRef(
                            x.id, view.kinds.get(x.id, DirectoryObjectKind.GROUP), x.name or ""
                        ),
                        ON,
                        OpStatus.SKIPPED,
                        detail="excluded: the canary probe's group",
                    )
                    for x in canary
                ],
                at=session.clock.now(),
            )
        )
    stop = stop_event(options)
    applier = build_applier(session, options)
    outcomes: list[Outcome] = []
    final = Status.COMPLETED
    reading = decision.reading
    for position, batch in enumerate(decision.to_run):
        if position > 0:
            held, reading = await _gate_before(
                session, request, batch, stop, report, reading, view.resume.batch_interval
            )
            if held is not None:
                final = held
                _not_attempted(decision.to_run[position:], held, reading, report)
                break
        batch_outcomes, batch_status = await _run_batch(
            session, applier, run_id, batch, reading, episode_id, stop, options
        )
        outcomes += batch_outcomes
        report.lines += [
            outcome_line(o, batch=batch.index, critical=o.ref.id in view.critical)
            for o in batch_outcomes
        ]
        report.batches.append(
            BatchLine(
                batch.index,
                batch.critical,
                len(batch.groups),
                reading.state.value,
                batch_status.value,
            )
        )
        if batch_status is Status.FAILED:
            final = Status.FAILED
        if batch_status is Status.INTERRUPTED:
            final = Status.INTERRUPTED
            for rest in decision.to_run[position + 1 :]:
                report.lines += batch_lines(rest, Result.NOT_ATTEMPTED, "the run was interrupted")
            break
    report.status = final
    await store.call(
        lambda: ledger.finish_run(
            run_id, RUN_STATUS[final], at=session.clock.now(), note=run_note(outcomes)
        )
    )
    return outcomes


async def _gate_before(
    session: OpsSession,
    request: ResumeRequest,
    batch: ResumeBatch,
    stop: asyncio.Event,
    report: Report,
    reading: ReadinessReading,
    interval: float,
) -> tuple[Status | None, ReadinessReading]:
    """Wait the batch interval, then ask the gate again: (None, reading) to go on, or
    (INTERRUPTED or STOPPED, the reading that held the batch)."""
    if not await _wait(session, interval, stop):
        return Status.INTERRUPTED, reading
    reading = await read_readiness(session)
    decision = gate.decide(reading, force=request.force)
    report.readiness.append(readiness_json(reading, f"before batch {batch.index}", decision))
    if decision.allowed:
        return None, reading
    report.notes.append(
        f"stopped before batch {batch.index}: {decision.describe()}; run the "
        "command again once it is ready"
    )
    return Status.STOPPED, reading


def _not_attempted(
    batches: Sequence[ResumeBatch], held: Status, reading: ReadinessReading, report: Report
) -> None:
    why = (
        "the run was interrupted"
        if held is Status.INTERRUPTED
        else f"not resumed: readiness {reading.describe()}"
    )
    for rest in batches:
        report.lines += batch_lines(rest, Result.NOT_ATTEMPTED, why)
        report.batches.append(
            BatchLine(
                rest.index,
                rest.critical,
                len(rest.groups),
                reading.state.value if held is Status.STOPPED else None,
                "refused" if held is Status.STOPPED else "interrupted",
            )
        )


def _defer(batches: Sequence[ResumeBatch], report: Report) -> None:
    for batch in batches:
        report.lines += batch_lines(batch, Result.DEFERRED, DEFERRED)
        report.batches.append(
            BatchLine(batch.index, batch.critical, len(batch.groups), None, "deferred")
        )


async def _run_batch(
    session: OpsSession,
    applier: Applier,
    run_id: str,
    batch: ResumeBatch,
    reading: ReadinessReading,
    episode_id: str | None,
    stop: asyncio.Event,
    options: RunOptions,
) -> tuple[list[Outcome], Status]:
    store, ledger = session.store, session.ledger
    refs = [ObjectRef(g.id, g.kind, g.name) for g in batch.groups]
    now = session.clock.now()
    await store.call(
        lambda: ledger.plan_operations(
            run_id, [PlannedOperation(r, ON, batch=batch.index) for r in refs], at=now
        )
    )
    await store.call(
        lambda: ledger.start_batch(
            run_id,
            batch.index,
            critical=batch.critical,
            objects=len(refs),
            readiness=reading.state.value,
            at=now,
        )
    )
    options.on_total(len(refs), f"batch {batch.index}")
    outcomes = await applier.apply(
        run_id,
        [Change(r, ON) for r in refs],
        episode_id=episode_id,
        stop=stop,
        on_outcome=options.on_outcome,
    )
    status, _ = final_status(outcomes, stop)
    await store.call(
        lambda: ledger.finish_batch(
            run_id, batch.index, status=status.value, at=session.clock.now()
        )
    )
    return outcomes, status


async def _wait(session: OpsSession, seconds: float, stop: asyncio.Event) -> bool:
    """Sleep `seconds` of the tenant's clock; False if `stop` was set meanwhile."""
    if stop.is_set():
        return False
    sleeper = asyncio.ensure_future(session.clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return not stop.is_set()
