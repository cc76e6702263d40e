"""`pause --adopt`: record a pause made elsewhere (Microsoft's scripts, the portal) as an episode,
changing nothing in the tenant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from exporter.domain.events import ProcessingState
from exporter.domain.records import DirectoryObject
from exporter.ops.lines import episode_json, object_line
from exporter.ops.preparation import Prepared, prepare
from exporter.ops.report import Report, Result, Status, iso
from exporter.ops.runs import RunOptions
from exporter.ops.session import OpsError, OpsSession
from exporter.ops.targets import resolve
from exporter.store.ledger import (
    Command,
    EpisodeRecord,
    ObjectRef,
    OpStatus,
    Origin,
    PlannedOperation,
    RunStatus,
)

PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON


@dataclass(frozen=True, slots=True)
class AdoptRequest:
    ids: tuple[str, ...] = ()
    except_ids: tuple[str, ...] = ()
    reason: str | None = None
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class AdoptDecision:
    """What adopting would record, decided from the listing and the ledger."""

    chosen: list[DirectoryObject]
    """Paused objects to record as the episode's own."""
    not_paused: list[DirectoryObject]
    """Named but not paused: nothing to adopt."""
    excluded: list[DirectoryObject]
    known: list[DirectoryObject]
    """Already recorded in the open episode."""
    others: list[ObjectRef]
    """Paused but not chosen: recorded as paused before a new episode."""
    paused_since: Mapping[str, float]
    started_at: float
    start_note: str
    """Why the episode starts when it does."""
    critical: frozenset[str]
    episode: EpisodeRecord | None


async def adopt(session: OpsSession, request: AdoptRequest, options: RunOptions) -> Report:
    """Record a pause made elsewhere (Microsoft's scripts, the portal) as an episode, without
    changing anything in the tenant: the objects adopted become the episode's own (a resume
    resumes them); the other paused objects are recorded as paused before it."""
    report = Report("pause --adopt", session.name, options.apply)
    prepared = await prepare(session, report, apply=options.apply)
    decision = await decide(session, prepared, request)
    report_decision(report, decision, session, request)
    if not options.apply or not decision.chosen:
        if options.apply:
            report.status = Status.NOTHING_TO_DO
        else:
            report.lines += [
                object_line(
                    o,
                    Result.WOULD_ADOPT,
                    "paused: would be recorded as the episode's own",
                    critical=o.id in decision.critical,
                )
                for o in decision.chosen
            ]
        return report
    if decision.episode is None and not request.reason:
        raise OpsError("--reason is required to adopt a pause: say why the groups were paused")
    question = f"Record {len(decision.chosen):,} paused object(s) as " + (
        f"part of episode {decision.episode.id}?" if decision.episode else "a new pause episode?"
    )
    if not options.confirm(question):
        report.status = Status.CANCELLED
        return report
    adopted = await apply(session, prepared, decision, request, report)
    report.lines += [
        object_line(
            ref,
            Result.ADOPTED,
            "recorded as the episode's own",
            critical=ref.id in decision.critical,
        )
        for ref, _ in adopted
    ]
    report.status = Status.COMPLETED
    return report


async def decide(session: OpsSession, prepared: Prepared, request: AdoptRequest) -> AdoptDecision:
    inventory = prepared.inventory
    excluded = await resolve(session.graph, inventory, request.except_ids, what="--except")
    excluded_ids = {o.id for o in excluded}
    paused = inventory.with_state(PAUSED)
    not_paused: list[DirectoryObject] = []
    if request.ids:
        named = await resolve(session.graph, inventory, request.ids, what="--group")
        chosen = [o for o in named if o.state is PAUSED]
        not_paused = [o for o in named if o.state is not PAUSED]
    else:
        chosen = [o for o in paused if o.id not in excluded_ids]
    chosen.sort(key=lambda o: (o.kind.value, o.name.casefold(), o.id))
    chosen_ids = {o.id for o in chosen}
    episode = prepared.open_episode
    known: list[DirectoryObject] = []
    if episode is not None:
        recorded = {
            o.id for o in await session.store.call(session.ledger.episode_objects, episode.id)
        }
        known = [o for o in chosen if o.id in recorded]
        chosen = [o for o in chosen if o.id not in recorded]
    paused_since = {
        p.id: p.paused_since
        for p in await session.store.call(session.store.paused_objects, session.name)
        if p.paused_since is not None  # unknown: never invented (#13)
    }
    started_at = request.started_at
    start_note = "given with --started-at"
    if started_at is None:
        known_times = [t for o in chosen if (t := paused_since.get(o.id)) is not None]
        if known_times:
            started_at = min(known_times)
            start_note = "the earliest pause the exporter observed among the adopted objects"
        else:
            started_at = session.clock.now()
            start_note = (
                "now: no pause time is known (pass --started-at to say when the pause began; "
                "the minimum pause before resuming counts from it)"
            )
    return AdoptDecision(
        chosen=chosen,
        not_paused=not_paused,
        excluded=excluded,
        known=known,
        others=[inventory.ref(o.id) for o in paused if o.id not in chosen_ids],
        paused_since=paused_since,
        started_at=started_at,
        start_note=start_note,
        critical=frozenset(session.tenant.critical_groups),
        episode=episode,
    )


def report_decision(
    report: Report, decision: AdoptDecision, session: OpsSession, request: AdoptRequest
) -> None:
    critical = decision.critical
    report.lines += [
        object_line(o, Result.SKIPPED, "not paused: nothing to adopt", critical=o.id in critical)
        for o in decision.not_paused
    ]
    report.lines += [
        object_line(
            o, Result.EXCLUDED, "excluded (--except): recorded as paused before the episode"
        )
        for o in decision.excluded
    ]
    if decision.episode is not None:
        report.lines += [
            object_line(o, Result.UNCHANGED, f"already recorded in episode {decision.episode.id}")
            for o in decision.known
        ]
    report.episode = episode_json(decision.episode)
    if decision.episode is None and decision.chosen:
        report.episode = {
            "id": None,
            "source": "ledger",
            "origin": Origin.ADOPT.value,
            "new": True,
            "started_at": iso(decision.started_at),
            "started_by": session.operator,
            "reason": request.reason,
        }
        report.notes.append(
            f"the episode would start at {iso(decision.started_at)}: {decision.start_note}"
        )


async def apply(
    session: OpsSession,
    prepared: Prepared,
    decision: AdoptDecision,
    request: AdoptRequest,
    report: Report,
) -> list[tuple[ObjectRef, float | None]]:
    """Begin or join the episode with the chosen objects as its own, and record the run
    (report.run_id, report.episode). Nothing is sent to Graph."""
    store, ledger, now = session.store, session.ledger, session.clock.now()
    inventory = prepared.inventory
    adopted = [(inventory.ref(o.id), decision.paused_since.get(o.id)) for o in decision.chosen]
    if decision.episode is None:
        episode_id = await store.call(
            lambda: ledger.start_episode(
                session.name,
                at=decision.started_at,
                by=session.operator,
                reason=request.reason or "",
                origin=Origin.ADOPT,
                already_paused=decision.others,
                adopted=adopted,
            )
        )
        report.notes.append(
            f"the episode starts at {iso(decision.started_at)}: {decision.start_note}"
        )
    else:
        episode_id = decision.episode.id
        await store.call(lambda: ledger.adopt_into(episode_id, adopted))
    episode = await store.call(ledger.episode, episode_id)
    report.episode = episode_json(episode, new=decision.episode is None)
    run_id = await store.call(
        lambda: ledger.start_run(
            session.name,
            command=Command.ADOPT,
            selection={"ids": list(request.ids), "except": list(request.except_ids)},
            operator=session.operator,
            at=now,
            episode_id=episode_id,
            reason=request.reason,
        )
    )
    await store.call(
        lambda: ledger.plan_operations(
            run_id,
            [
                PlannedOperation(ref, PAUSED, OpStatus.UNCHANGED, detail="adopted")
                for ref, _ in adopted
            ],
            at=now,
        )
    )
    await store.call(
        lambda: ledger.finish_run(
            run_id, RunStatus.COMPLETED, at=now, note=f"{len(adopted)} adopted"
        )
    )
    report.run_id = run_id
    return adopted
