"""pause, pause --adopt, resume and plan: what each decides and does, with the ledger.

Every command starts the same way (`_prepare`):

1. list the tenant's dynamic groups and units (the actual state, from Graph);
2. settle any run that was interrupted (a crash, a kill, Ctrl-C): each operation it had
   committed as `sending` is checked against Graph with a direct read and recorded as done or
   not applied; the rest of that run is superseded. A resume batch left half done is finished
   first by the next resume of the same kind;
3. bring the open episodes up to date: objects they paused that someone else has resumed are
   noted, and an episode with nothing of its own left paused is ended.

Dry runs do steps 1 and the reads of 2-3 without writing anything. `--apply` holds the tenant's
ops lock for the whole command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from exporter.domain.episode import PauseEpisode, detect_episode
from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.groups import GroupState
from exporter.domain.plan import (
    ExclusionReason,
    PlannedGroup,
    ResumeBatch,
    ResumePlan,
    plan_resume,
)
from exporter.domain.readiness import ReadinessState
from exporter.domain.records import DirectoryObject
from exporter.domain.settings import ResumeSettings
from exporter.graph.errors import GraphError, GraphNotFoundError
from exporter.logs import get_logger
from exporter.ops.engine import Applier, Change, Outcome
from exporter.ops.gate import GateDecision, ReadinessReading, decide
from exporter.ops.report import BatchLine, Line, Report, Result, Status, iso
from exporter.ops.session import OpsError, OpsSession
from exporter.ops.targets import Inventory, TargetError, load_inventory, resolve
from exporter.store.ledger import (
    Command,
    EpisodeRecord,
    ObjectRef,
    OpStatus,
    Origin,
    PlannedOperation,
    Role,
    RunStatus,
)

log = get_logger(__name__)

PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON
EVENTUAL_GRACE = 600.0
"""The listings are eventually consistent queries: an object this tool paused less than this
long ago and listed as On is taken to be a stale listing, not a resume by someone else."""
RECOVERY_READS = 8
"""Concurrent direct reads when checking an interrupted run's requests."""

EXCLUSION_TEXT = {
    ExclusionReason.PAUSED_BEFORE_EPISODE: "paused before the episode began (name it to resume)",
    ExclusionReason.PAUSE_TIME_UNKNOWN: "nothing records when it was paused (name it to resume)",
    ExclusionReason.NO_PAUSE_EPISODE: "no pause episode: adopt one (pause --adopt) or name it",
    ExclusionReason.ALREADY_ON: "already On",
    ExclusionReason.NOT_FOUND: "not a dynamic group or unit of this tenant",
}


@dataclass(frozen=True, slots=True)
class RunOptions:
    apply: bool = False
    parallel: int = 4
    confirm: Callable[[str], bool] = lambda _question: True
    """Asked once before anything changes (the CLI prompts on a terminal unless --yes)."""
    on_outcome: Callable[[Outcome], None] = lambda _outcome: None
    on_total: Callable[[int, str], None] = lambda _total, _what: None
    """A batch of `total` changes is about to start (for a progress bar)."""
    stop: asyncio.Event | None = None
    """Set (first Ctrl-C) to stop after the requests in flight; their outcomes are recorded."""


@dataclass(frozen=True, slots=True)
class PauseRequest:
    all: bool = False
    ids: tuple[str, ...] = ()
    except_ids: tuple[str, ...] = ()
    except_critical: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AdoptRequest:
    ids: tuple[str, ...] = ()
    except_ids: tuple[str, ...] = ()
    reason: str | None = None
    started_at: float | None = None


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
class _Recovery:
    carry_over: dict[str, tuple[str, list[ObjectRef]]] = field(default_factory=dict)
    """Resume selection key -> (interrupted run, objects of its unfinished batch still paused)."""


@dataclass
class _Prepared:
    inventory: Inventory
    recovery: _Recovery
    open_episode: EpisodeRecord | None


# -- shared preparation ---------------------------------------------------------------------------


async def _prepare(session: OpsSession, report: Report, *, apply: bool) -> _Prepared:
    inventory = await load_inventory(session.graph)
    for kind, problem in inventory.unlisted_kinds.items():
        report.notes.append(f"{_plural(kind)} were not listed and are left alone: {problem}")
    recovery = await _recover(session, inventory, report, apply=apply)
    episode = await _maintain_episodes(session, inventory, report, apply=apply)
    return _Prepared(inventory, recovery, episode)


async def _recover(
    session: OpsSession, inventory: Inventory, report: Report, *, apply: bool
) -> _Recovery:
    ledger, store = session.ledger, session.store
    recovery = _Recovery()
    runs = await store.call(ledger.unfinished_runs, session.name)
    for run in runs:
        sending = await store.call(ledger.operations, run.id, [OpStatus.SENDING])
        planned = await store.call(ledger.operations, run.id, [OpStatus.PLANNED])
        if not apply:
            report.notes.append(
                f"run {run.id} ({run.command.value}, {iso(run.started_at)}, {run.operator}) did "
                f"not finish: {len(sending)} request(s) with unknown outcome, {len(planned)} not "
                "sent; the next --apply checks them against Graph first"
            )
            continue
        states = await _read_states(session, [op.object for op in sending])
        confirmed = not_applied = 0
        for op in sending:
            state = states[op.object.id]
            if state is op.target:
                status, detail = OpStatus.DONE, "confirmed against Graph after the interruption"
                confirmed += 1
            elif state is None:
                status, detail = OpStatus.SKIPPED, "no longer exists in the tenant"
            else:
                status, detail = OpStatus.SUPERSEDED, "not applied before the interruption"
                not_applied += 1
            await store.call(
                lambda op=op, status=status, detail=detail, run=run: ledger.record_outcome(
                    op.run_id,
                    op.object.id,
                    op.target,
                    status,
                    at=session.clock.now(),
                    detail=detail,
                    tenant=session.name,
                    episode_id=run.episode_id,
                )
            )
        if run.command is Command.RESUME:
            leftovers = await store.call(
                ledger.operations, run.id, [OpStatus.PLANNED, OpStatus.SUPERSEDED]
            )
            unfinished = [op for op in leftovers if op.batch is not None]
            if unfinished:
                last = max(op.batch for op in unfinished if op.batch is not None)
                still_paused = [
                    op.object
                    for op in unfinished
                    if op.batch == last
                    and (obj := inventory.objects.get(op.object.id)) is not None
                    and obj.state is PAUSED
                ]
                if still_paused:
                    key = _selection_key(run.selection)
                    recovery.carry_over[key] = (run.id, still_paused)
        settled = await store.call(
            lambda run=run: ledger.supersede(
                run.id, at=session.clock.now(), note="interrupted; its open requests were checked"
            )
        )
        report.notes.append(
            f"interrupted run {run.id} ({run.command.value}) settled: {confirmed} request(s) "
            f"confirmed, {not_applied} not applied, {settled} left to this run"
        )
    return recovery


async def _read_states(
    session: OpsSession, refs: Sequence[ObjectRef]
) -> dict[str, ProcessingState | None]:
    """Direct (strongly consistent) reads; None for objects that no longer exist. Any other
    failure stops the command: nothing is decided on a guess."""
    limit = asyncio.Semaphore(RECOVERY_READS)

    async def read(ref: ObjectRef) -> ProcessingState | None:
        async with limit:
            try:
                if ref.kind is DirectoryObjectKind.GROUP:
                    obj = await session.graph.get_group(ref.id)
                else:
                    obj = await session.graph.get_administrative_unit(ref.id)
            except GraphNotFoundError:
                return None
            except GraphError as exc:
                raise OpsError(
                    f"cannot check the state of {ref.id}, which an interrupted run may have "
                    f"changed: {exc}; nothing was changed, try again"
                ) from None
            return obj.state

    states = await asyncio.gather(*(read(ref) for ref in refs))
    return {ref.id: state for ref, state in zip(refs, states, strict=True)}


async def _maintain_episodes(
    session: OpsSession, inventory: Inventory, report: Report, *, apply: bool
) -> EpisodeRecord | None:
    """Note objects resumed by others, end episodes with nothing of their own left paused;
    return the open episode a new pause joins (the earliest)."""
    ledger, store = session.ledger, session.store
    now = session.clock.now()
    remaining: list[EpisodeRecord] = []
    for episode in await store.call(ledger.open_episodes, session.name):
        objects = await store.call(ledger.episode_objects, episode.id)
        found_on: list[str] = []
        still_paused = 0
        for obj in objects:
            if obj.role is not Role.PAUSED or obj.resumed_at is not None:
                continue
            listed = inventory.objects.get(obj.id)
            if obj.pending or (listed is not None and listed.state is PAUSED):
                still_paused += 1
            elif obj.kind in inventory.unlisted_kinds:
                still_paused += 1  # cannot tell: keep the episode
            elif (
                listed is not None
                and obj.paused_at is not None
                and (now - obj.paused_at < EVENTUAL_GRACE)
            ):
                still_paused += 1  # a stale listing right after our pause
            else:
                found_on.append(obj.id)
        if apply and found_on:
            await store.call(
                lambda e=episode, ids=found_on: ledger.note_found_on(e.id, ids, at=now)
            )
        if still_paused:
            remaining.append(episode)
            continue
        if apply:
            await store.call(
                lambda e=episode: ledger.end_episode(
                    e.id, at=now, note="nothing it paused is still paused"
                )
            )
            report.notes.append(
                f"episode {episode.id} (started {iso(episode.started_at)} by "
                f"{episode.started_by}) ended: nothing it paused is still paused"
            )
        else:
            report.notes.append(
                f"episode {episode.id} has nothing of its own left paused; the next --apply ends it"
            )
    return remaining[0] if remaining else None


def _episode_json(episode: EpisodeRecord | None, *, new: bool = False) -> dict[str, Any] | None:
    if episode is None:
        return None
    return {
        "id": episode.id,
        "source": "ledger",
        "origin": episode.origin.value,
        "new": new,
        "started_at": iso(episode.started_at),
        "started_by": episode.started_by,
        "reason": episode.reason,
        "ended_at": iso(episode.ended_at),
    }


def _stop_event(options: RunOptions) -> asyncio.Event:
    return options.stop if options.stop is not None else asyncio.Event()


def _applier(session: OpsSession, options: RunOptions) -> Applier:
    return Applier(
        tenant=session.name,
        graph=session.graph,
        store=session.store,
        ledger=session.ledger,
        clock=session.clock,
        parallel=options.parallel,
    )


def _line(
    obj: DirectoryObject | ObjectRef,
    result: Result,
    detail: str | None = None,
    *,
    batch: int | None = None,
    critical: bool = False,
) -> Line:
    return Line(obj.id, obj.kind, obj.name, result, detail, batch, critical)


def _outcome_line(outcome: Outcome, *, batch: int | None = None, critical: bool = False) -> Line:
    result = {
        OpStatus.DONE: Result.CHANGED,
        OpStatus.FAILED: Result.FAILED,
        OpStatus.SKIPPED: Result.SKIPPED,
        OpStatus.PLANNED: Result.NOT_ATTEMPTED,
    }.get(outcome.status, Result.SKIPPED)
    return _line(outcome.ref, result, outcome.detail, batch=batch, critical=critical)


def _final_status(outcomes: Iterable[Outcome], stop: asyncio.Event) -> tuple[Status, RunStatus]:
    statuses = [o.status for o in outcomes]
    if stop.is_set() and OpStatus.PLANNED in statuses:
        return Status.INTERRUPTED, RunStatus.INTERRUPTED
    if OpStatus.FAILED in statuses:
        return Status.FAILED, RunStatus.FAILED
    return Status.COMPLETED, RunStatus.COMPLETED


def _run_note(outcomes: Sequence[Outcome]) -> str:
    done = sum(o.status is OpStatus.DONE for o in outcomes)
    failed = sum(o.status is OpStatus.FAILED for o in outcomes)
    return f"{done} changed, {failed} failed, {len(outcomes) - done - failed} other"


def _plural(kind: DirectoryObjectKind) -> str:
    return "groups" if kind is DirectoryObjectKind.GROUP else "administrative units"


# -- pause ----------------------------------------------------------------------------------------


async def pause(session: OpsSession, request: PauseRequest, options: RunOptions) -> Report:
    """Pause all dynamic groups and units, or the named ones, or all except some. Objects
    already paused are left alone and, when this starts an episode, recorded as paused before
    it (a later resume never switches them On unless they are named)."""
    command = "pause --all" if request.all else "pause"
    report = Report(command, session.name, options.apply)
    prepared = await _prepare(session, report, apply=options.apply)
    inventory = prepared.inventory
    graph = session.graph

    except_ids = list(request.except_ids)
    critical = set(session.tenant.critical_groups)
    if request.except_critical:
        except_ids += [g for g in session.tenant.critical_groups if g not in except_ids]
    excluded = await resolve(graph, inventory, except_ids, what="--except")
    excluded_ids = {o.id for o in excluded}
    if request.all:
        selected = [o for o in inventory.objects.values() if o.id not in excluded_ids]
    else:
        selected = await resolve(graph, inventory, request.ids, what="--group")
    selected.sort(key=lambda o: (o.kind.value, o.name.casefold(), o.id))

    to_pause = [o for o in selected if o.state is ON]
    already = [o for o in selected if o.state is PAUSED]
    for obj in excluded:
        why = (
            "excluded: a critical group (--except-critical)"
            if request.except_critical and obj.id in critical and obj.id not in request.except_ids
            else "excluded (--except)"
        )
        report.lines.append(_line(obj, Result.EXCLUDED, why, critical=obj.id in critical))
    for obj in already:
        report.lines.append(
            _line(obj, Result.UNCHANGED, "already paused", critical=obj.id in critical)
        )
    episode = prepared.open_episode
    report.episode = _episode_json(episode)
    if episode is None and to_pause:
        report.episode = {"id": None, "source": "ledger", "new": True, "reason": request.reason}

    if not options.apply or not to_pause:
        report.lines += [
            _line(o, Result.WOULD_CHANGE, "On -> Paused", critical=o.id in critical)
            for o in to_pause
        ]
        report.status = Status.DRY_RUN if options.apply is False else Status.NOTHING_TO_DO
        if not options.apply and episode is not None and to_pause:
            report.notes.append(f"this pause joins the open episode {episode.id}")
        return report

    if episode is None and not request.reason:
        raise OpsError(
            "--reason is required to begin a pause episode: say why, it is recorded in the ledger"
        )
    question = (
        f"Pause {len(to_pause):,} dynamic group(s)/unit(s) in tenant {session.name!r}"
        + (f", joining episode {episode.id}" if episode else ", beginning a pause episode")
        + "?"
    )
    if not options.confirm(question):
        report.status = Status.CANCELLED
        return report

    store, ledger, now = session.store, session.ledger, session.clock.now()
    new = episode is None
    if episode is None:
        already_paused = [inventory.ref(o.id) for o in inventory.with_state(PAUSED)]
        episode_id = await store.call(
            lambda: ledger.start_episode(
                session.name,
                at=now,
                by=session.operator,
                reason=request.reason or "",
                origin=Origin.PAUSE,
                already_paused=already_paused,
            )
        )
        episode = await store.call(ledger.episode, episode_id)
        assert episode is not None
    report.episode = _episode_json(episode, new=new)
    selection = {
        "mode": "all" if request.all else "groups",
        "ids": list(request.ids),
        "except": list(request.except_ids),
        "except_critical": request.except_critical,
    }
    episode_id = episode.id
    run_id = await store.call(
        lambda: ledger.start_run(
            session.name,
            command=Command.PAUSE,
            selection=selection,
            operator=session.operator,
            at=now,
            episode_id=episode_id,
            reason=request.reason,
        )
    )
    report.run_id = run_id
    refs = {o.id: ObjectRef(o.id, o.kind, o.name) for o in [*selected, *excluded]}
    await store.call(
        lambda: ledger.plan_operations(
            run_id,
            [PlannedOperation(refs[o.id], PAUSED) for o in to_pause]
            + [
                PlannedOperation(refs[o.id], PAUSED, OpStatus.UNCHANGED, detail="already paused")
                for o in already
            ]
            + [
                PlannedOperation(refs[o.id], PAUSED, OpStatus.SKIPPED, detail="excluded")
                for o in excluded
            ],
            at=now,
        )
    )
    stop = _stop_event(options)
    options.on_total(len(to_pause), "pausing")
    outcomes = await _applier(session, options).apply(
        run_id,
        [Change(refs[o.id], PAUSED) for o in to_pause],
        episode_id=episode_id,
        stop=stop,
        on_outcome=options.on_outcome,
    )
    report.lines += [_outcome_line(o, critical=o.ref.id in critical) for o in outcomes]
    report.status, run_status = _final_status(outcomes, stop)
    await store.call(
        lambda: ledger.finish_run(
            run_id, run_status, at=session.clock.now(), note=_run_note(outcomes)
        )
    )
    return report


# -- adopt ----------------------------------------------------------------------------------------


async def adopt(session: OpsSession, request: AdoptRequest, options: RunOptions) -> Report:
    """Record a pause made elsewhere (Microsoft's scripts, the portal) as an episode, without
    changing anything in the tenant: the objects adopted become the episode's own (a resume
    resumes them); the other paused objects are recorded as paused before it."""
    report = Report("pause --adopt", session.name, options.apply)
    prepared = await _prepare(session, report, apply=options.apply)
    inventory = prepared.inventory
    critical = set(session.tenant.critical_groups)
    excluded = await resolve(session.graph, inventory, request.except_ids, what="--except")
    excluded_ids = {o.id for o in excluded}
    paused = inventory.with_state(PAUSED)
    if request.ids:
        named = await resolve(session.graph, inventory, request.ids, what="--group")
        chosen = [o for o in named if o.state is PAUSED]
        report.lines += [
            _line(o, Result.SKIPPED, "not paused: nothing to adopt", critical=o.id in critical)
            for o in named
            if o.state is not PAUSED
        ]
    else:
        chosen = [o for o in paused if o.id not in excluded_ids]
    report.lines += [
        _line(o, Result.EXCLUDED, "excluded (--except): recorded as paused before the episode")
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
                    _line(obj, Result.UNCHANGED, f"already recorded in episode {episode.id}")
                )
        chosen = [o for o in chosen if o.id not in known]
    paused_since = {
        p.id: p.paused_since
        for p in await session.store.call(session.store.paused_objects, session.name)
        if p.paused_since is not None  # unknown: never invented (#13)
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
    report.episode = _episode_json(episode)
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
                _line(
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
    report.episode = _episode_json(episode, new=new)
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
        _line(ref, Result.ADOPTED, "recorded as the episode's own", critical=ref.id in critical)
        for ref, _ in adopted
    ]
    report.status = Status.COMPLETED
    return report


# -- resume and plan ------------------------------------------------------------------------------


@dataclass
class _ResumeView:
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


async def _resume_view(
    session: OpsSession, prepared: _Prepared, request: ResumeRequest
) -> _ResumeView:
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
    episode = detect_episode(
        groups, ledger_episodes, now=session.clock.now(), thresholds=session.config.thresholds
    )
    resume = session.config.resume
    overrides: dict[str, Any] = {}
    if request.batch_size is not None:
        overrides["batch_size"] = request.batch_size
    if request.batch_interval is not None:
        overrides["batch_interval"] = request.batch_interval
    if overrides:
        resume = replace(resume, **overrides)
    plan = plan_resume(
        episode,
        groups,
        resume,
        named=named,
        named_only=bool(named),
        critical_priority=session.tenant.critical_groups,
    )
    batches = list(plan.batches)
    held_back: list[ResumeBatch] = []
    if request.non_critical:
        held_back = [b for b in batches if b.critical]
        batches = [b for b in batches if not b.critical]
    carried_from = None
    carried = prepared.recovery.carry_over.get(_selection_key(request.selection()))
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
    return _ResumeView(plan, episode, batches, held_back, carried_from, critical, resume, kinds)


def _selection_key(selection: Mapping[str, Any]) -> str:
    if selection.get("mode") == "non_critical":
        return "non_critical"
    return "groups:" + ",".join(sorted(selection.get("ids") or ()))


def _batch_lines(batch: ResumeBatch, result: Result, detail: str | None) -> list[Line]:
    return [
        Line(g.id, g.kind, g.name, result, detail, batch.index, g.critical) for g in batch.groups
    ]


def _context_lines(view: _ResumeView, report: Report) -> None:
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


def _episode_view_json(view: _ResumeView) -> dict[str, Any] | None:
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


async def _read_readiness(session: OpsSession) -> ReadinessReading:
    if session.readiness is None:
        return ReadinessReading(
            ReadinessState.CANNOT_TELL, "no exporter to ask (give --exporter.url)", ""
        )
    return await session.readiness.read(session.name)


def _readiness_json(reading: ReadinessReading, when: str, decision: GateDecision) -> dict[str, Any]:
    return {
        "when": when,
        "state": reading.state.value,
        "detail": reading.detail,
        "source": reading.source,
        "allowed": decision.allowed,
        "forced": decision.forced,
    }


async def plan(session: OpsSession, request: ResumeRequest) -> Report:
    """What a resume would do, batch by batch (read-only: no lock, no ledger writes)."""
    report = Report("plan", session.name, False)
    prepared = await _prepare(session, report, apply=False)
    view = await _resume_view(session, prepared, request)
    interval = view.resume.batch_interval
    for batch in view.batches:
        report.lines += _batch_lines(batch, Result.PLANNED, None)
        report.batches.append(
            BatchLine(
                batch.index,
                batch.critical,
                len(batch.groups),
                None,
                "planned",
                (batch.index - 1) * interval,
            )
        )
    _context_lines(view, report)
    report.episode = _episode_view_json(view)
    reading = await _read_readiness(session)
    report.readiness.append(_readiness_json(reading, "now", decide(reading, force=request.force)))
    summary = view.plan.summary
    report.plan = {
        "critical_groups": sum(len(b.groups) for b in view.batches if b.critical),
        "other_groups": sum(len(b.groups) for b in view.batches if not b.critical),
        "batches": len(view.batches),
        "batch_size": summary.batch_size,
        "max_critical_groups": summary.max_critical_groups,
        "batch_interval_seconds": interval,
        "estimated_duration_seconds": max(0, len(view.batches) - 1) * interval,
        "excluded": {reason.value: n for reason, n in summary.excluded},
        "held_back_critical": sum(len(b.groups) for b in view.held_back),
    }
    report.status = Status.DRY_RUN
    return report


async def resume(session: OpsSession, request: ResumeRequest, options: RunOptions) -> Report:
    """Resume the named objects (critical first), or the episode's non-critical ones. One batch
    per run unless `all_batches` (then batch by batch, `batch_interval` apart, re-checking
    readiness before each and stopping when it no longer holds)."""
    command = "resume --non-critical" if request.non_critical else "resume"
    report = Report(command, session.name, options.apply)
    prepared = await _prepare(session, report, apply=options.apply)
    view = await _resume_view(session, prepared, request)
    report.episode = _episode_view_json(view)
    runs = len(view.batches) if request.all_batches else min(1, len(view.batches))
    to_run, later = view.batches[:runs], view.batches[runs:]

    reading = await _read_readiness(session)
    decision = decide(reading, force=request.force)
    report.readiness.append(_readiness_json(reading, "before batch 1", decision))
    if not options.apply or not to_run or not decision.allowed:
        refused = options.apply and not decision.allowed
        for batch in to_run:
            report.lines += _batch_lines(
                batch,
                Result.NOT_ATTEMPTED if refused else Result.WOULD_CHANGE,
                "refused by the readiness check" if refused else None,
            )
            report.batches.append(
                BatchLine(
                    batch.index,
                    batch.critical,
                    len(batch.groups),
                    reading.state.value,
                    "refused" if refused else "planned",
                )
            )
        _defer(later, report)
        _context_lines(view, report)
        if not to_run:
            report.status = Status.NOTHING_TO_DO if options.apply else Status.DRY_RUN
        elif not decision.allowed:
            report.status = Status.REFUSED if options.apply else Status.DRY_RUN
            report.notes.append(
                decision.describe()
                + ("" if options.apply else " (this dry run would be refused)")
                + '; resume once it is ready, or override with --force --reason "..."'
            )
        else:
            report.status = Status.DRY_RUN
        return report

    total = sum(len(b.groups) for b in to_run)
    question = (
        f"Resume {total:,} dynamic group(s)/unit(s) in tenant {session.name!r} "
        f"({len(to_run)} batch(es) of {len(view.batches)})"
        + (" OVERRIDING the readiness check" if decision.forced else "")
        + "?"
    )
    if not options.confirm(question):
        report.status = Status.CANCELLED
        return report

    store, ledger = session.store, session.ledger
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
            forced=decision.forced,
            readiness=reading.state.value,
            continues=view.carried_from,
        )
    )
    report.run_id = run_id
    stop = _stop_event(options)
    applier = _applier(session, options)
    outcomes: list[Outcome] = []
    final = Status.COMPLETED
    for position, batch in enumerate(to_run):
        if position > 0:
            if not await _wait(session, view.resume.batch_interval, stop):
                final = Status.INTERRUPTED
            else:
                reading = await _read_readiness(session)
                decision = decide(reading, force=request.force)
                report.readiness.append(
                    _readiness_json(reading, f"before batch {batch.index}", decision)
                )
                if not decision.allowed:
                    final = Status.STOPPED
                    report.notes.append(
                        f"stopped before batch {batch.index}: {decision.describe()}; run the "
                        "command again once it is ready"
                    )
            if final in (Status.INTERRUPTED, Status.STOPPED):
                why = (
                    "the run was interrupted"
                    if final is Status.INTERRUPTED
                    else f"not resumed: readiness {reading.describe()}"
                )
                for rest in to_run[position:]:
                    report.lines += _batch_lines(rest, Result.NOT_ATTEMPTED, why)
                    report.batches.append(
                        BatchLine(
                            rest.index,
                            rest.critical,
                            len(rest.groups),
                            reading.state.value if final is Status.STOPPED else None,
                            "refused" if final is Status.STOPPED else "interrupted",
                        )
                    )
                break
        batch_outcomes, batch_status = await _run_batch(
            session, applier, run_id, batch, reading, episode_id, stop, options
        )
        outcomes += batch_outcomes
        report.lines += [
            _outcome_line(o, batch=batch.index, critical=o.ref.id in view.critical)
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
            for rest in to_run[position + 1 :]:
                report.lines += _batch_lines(rest, Result.NOT_ATTEMPTED, "the run was interrupted")
            break
    _defer(later, report)
    _context_lines(view, report)
    report.status = final
    await store.call(
        lambda: ledger.finish_run(
            run_id, RUN_STATUS[final], at=session.clock.now(), note=_run_note(outcomes)
        )
    )
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
    await _maintain_episodes(session, updated, report, apply=True)
    return report


RUN_STATUS = {
    Status.COMPLETED: RunStatus.COMPLETED,
    Status.FAILED: RunStatus.FAILED,
    Status.STOPPED: RunStatus.STOPPED,
    Status.INTERRUPTED: RunStatus.INTERRUPTED,
}


def _defer(batches: Sequence[ResumeBatch], report: Report) -> None:
    for batch in batches:
        report.lines += _batch_lines(batch, Result.DEFERRED, DEFERRED)
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
    status, _ = _final_status(outcomes, stop)
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


__all__ = [
    "AdoptRequest",
    "PauseRequest",
    "ResumeRequest",
    "RunOptions",
    "TargetError",
    "adopt",
    "pause",
    "plan",
    "resume",
]
