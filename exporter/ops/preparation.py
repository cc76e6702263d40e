"""What every ops command does first: list the tenant's objects, settle interrupted runs, and
bring the open episodes up to date.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.graph.errors import GraphError, GraphNotFoundError
from exporter.logs import get_logger
from exporter.ops.ledger_check import ledger_disagreement
from exporter.ops.report import Report, iso
from exporter.ops.session import OpsError, OpsSession
from exporter.ops.targets import Inventory, load_inventory
from exporter.store.ledger import (
    Command,
    EpisodeRecord,
    ObjectRef,
    OpStatus,
    Role,
)

PAUSED = ProcessingState.PAUSED


log = get_logger(__name__)

EVENTUAL_GRACE = 600.0
"""The listings are eventually consistent queries: an object this tool paused less than this
long ago and listed as On is taken to be a stale listing, not a resume by someone else."""


RECOVERY_READS = 8
"""Concurrent direct reads when checking an interrupted run's requests."""


@dataclass
class Recovery:
    carry_over: dict[str, tuple[str, list[ObjectRef]]] = field(default_factory=dict)
    """Resume selection key -> (interrupted run, objects of its unfinished batch still paused)."""


@dataclass
class Prepared:
    inventory: Inventory
    recovery: Recovery
    open_episode: EpisodeRecord | None


async def prepare(session: OpsSession, report: Report, *, apply: bool) -> Prepared:
    inventory = await load_inventory(session.graph)
    for kind, problem in inventory.unlisted_kinds.items():
        report.notes.append(f"{plural(kind)} were not listed and are left alone: {problem}")
    recovery = await _recover(session, inventory, report, apply=apply)
    episode = await maintain_episodes(session, inventory, report, apply=apply)
    disagreement = ledger_disagreement(
        inventory,
        open_episode=episode is not None,
        store_path=session.config.store.path,
        min_objects=session.config.thresholds.episode_min_groups,
    )
    if disagreement is not None:
        report.notes.append(disagreement)
        log.warning("the ledger disagrees with Graph", tenant=session.name, detail=disagreement)
    return Prepared(inventory, recovery, episode)


async def _recover(
    session: OpsSession, inventory: Inventory, report: Report, *, apply: bool
) -> Recovery:
    ledger, store = session.ledger, session.store
    recovery = Recovery()
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
                    key = selection_key(run.selection)
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


async def maintain_episodes(
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


def selection_key(selection: Mapping[str, Any]) -> str:
    if selection.get("mode") == "non_critical":
        return "non_critical"
    return "groups:" + ",".join(sorted(selection.get("ids") or ()))


def plural(kind: DirectoryObjectKind) -> str:
    return "groups" if kind is DirectoryObjectKind.GROUP else "administrative units"
