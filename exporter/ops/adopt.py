"""`pause --adopt`: record a pause made elsewhere (Microsoft's scripts, the portal) as an episode,
changing nothing in the tenant."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.domain.events import ProcessingState
from exporter.logs import get_logger
from exporter.ops.lines import episode_json, object_line
from exporter.ops.preparation import prepare
from exporter.ops.report import Report, Result, Status, iso
from exporter.ops.runs import RunOptions
from exporter.ops.session import OpsError, OpsSession
from exporter.ops.targets import resolve
from exporter.store.ledger import (
    Command,
    OpStatus,
    Origin,
    PlannedOperation,
    RunStatus,
)

log = get_logger(__name__)

PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON


@dataclass(frozen=True, slots=True)
class AdoptRequest:
    ids: tuple[str, ...] = ()
    except_ids: tuple[str, ...] = ()
    reason: str | None = None
    started_at: float | None = None


async def adopt(session: OpsSession, request: AdoptRequest, options: RunOptions) -> Report:
    """Record a pause made elsewhere (Microsoft's scripts, the portal) as an episode, without
    changing anything in the tenant: the objects adopted become the episode's own (a resume
    resumes them); the other paused objects are recorded as paused before it."""
    report = Report("pause --adopt", session.name, options.apply)
    prepared = await prepare(session, report, apply=options.apply)
    inventory = prepared.inventory
    critical = set(session.tenant.critical_groups)
    excluded = await resolve(session.graph, inventory, request.except_ids, what="--except")
    excluded_ids = {o.id for o in excluded}
    paused = inventory.with_state(PAUSED)
    if request.ids:
        named = await resolve(session.graph, inventory, request.ids, what="--group")
        chosen = [o for o in named if o.state is PAUSED]
        report.lines += [
            object_line(
                o, Result.SKIPPED, "not paused: nothing to adopt", critical=o.id in critical
            )
            for o in named
            if o.state is not PAUSED
        ]
    else:
        chosen = [o for o in paused if o.id not in excluded_ids]
    report.lines += [
        object_line(
            o, Result.EXCLUDED, "excluded (--except): recorded as paused before the episode"
        )
        for o in excluded
    ]
    chosen.sort(key=lambda o: (o.kind.value, o.name.casefold(), o.id))
    chosen_ids = {o.id for o in chosen}

    episode = prepared.open_episode
    known: set[str] = set()
    if episode is not None:
        known = {o.id for o in await session.store.call(session.ledger.episode_objects, episode.id)}
        for obj in chosen:
            if obj.id in known:
                report.lines.append(
                    object_line(obj, Result.UNCHANGED, f"already recorded in episode {episode.id}")
                )
        chosen = [o for o in chosen if o.id not in known]
    paused_since = {
        p.id: p.paused_since
        for p in await session.store.call(session.store.paused_objects, session.name)
    }
    started_at = request.started_at
    start_note = "given with --started-at"
    if started_at is None:
        known_times = [paused_since[o.id] for o in chosen if o.id in paused_since]
        if known_times:
            started_at = min(known_times)
            start_note = "the earliest pause the exporter observed among the adopted objects"
        else:
            started_at = session.clock.now()
            start_note = (
                "now: no pause time is known (pass --started-at to say when the pause began; "
                "the minimum pause before resuming counts from it)"
            )
    report.episode = episode_json(episode)
    if episode is None and chosen:
        report.episode = {
            "id": None,
            "source": "ledger",
            "origin": Origin.ADOPT.value,
            "new": True,
            "started_at": iso(started_at),
            "started_by": session.operator,
            "reason": request.reason,
        }
        report.notes.append(f"the episode would start at {iso(started_at)}: {start_note}")
    if not options.apply or not chosen:
        result = Result.WOULD_ADOPT if not options.apply else Result.ADOPTED
        if options.apply:
            report.status = Status.NOTHING_TO_DO
        else:
            report.lines += [
                object_line(
                    o,
                    result,
                    "paused: would be recorded as the episode's own",
                    critical=o.id in critical,
                )
                for o in chosen
            ]
        return report
    if episode is None and not request.reason:
        raise OpsError("--reason is required to adopt a pause: say why the groups were paused")
    question = f"Record {len(chosen):,} paused object(s) as " + (
        f"part of episode {episode.id}?" if episode else "a new pause episode?"
    )
    if not options.confirm(question):
        report.status = Status.CANCELLED
        return report

    store, ledger, now = session.store, session.ledger, session.clock.now()
    adopted = [(inventory.ref(o.id), paused_since.get(o.id)) for o in chosen]
    if episode is None:
        others = [inventory.ref(o.id) for o in paused if o.id not in chosen_ids]
        start = started_at
        episode_id = await store.call(
            lambda: ledger.start_episode(
                session.name,
                at=start,
                by=session.operator,
                reason=request.reason or "",
                origin=Origin.ADOPT,
                already_paused=others,
                adopted=adopted,
            )
        )
        report.notes.append(f"the episode starts at {iso(started_at)}: {start_note}")
        new = True
    else:
        episode_id = episode.id
        await store.call(lambda: ledger.adopt_into(episode_id, adopted))
        new = False
    episode = await store.call(ledger.episode, episode_id)
    report.episode = episode_json(episode, new=new)
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
    report.lines += [
        object_line(
            ref, Result.ADOPTED, "recorded as the episode's own", critical=ref.id in critical
        )
        for ref, _ in adopted
    ]
    report.status = Status.COMPLETED
    return report
