"""Sending the PATCHes: intent before, outcome after, a few at a time, never fatal to the rest.

For each object the intent (`sending`) is committed to the ledger before its PATCH and the
outcome after it, so a crash at any instant leaves at most the requests in flight unsettled,
and the next run checks exactly those against Graph instead of sending anything twice.

The Graph client already retries each request (429 with Retry-After however Graph writes it,
5xx, resets, timeouts; docs/architecture.md "Graph clients"). What outlasts those retries is
tried once more after the pass, then reported as failed; the other objects go on regardless.
A 403 names the permission to grant and stops further attempts on objects of that kind only
(groups need Group.ReadWrite.All, units AdministrativeUnit.ReadWrite.All): thousands of
identical refusals would only bury the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from exporter.clock import Clock, SystemClock
from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.graph.client import GraphClient
from exporter.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphNotFoundError,
    GraphUnavailableError,
    RequestCounts,
)
from exporter.logs import get_logger
from exporter.store.database import Store
from exporter.store.ledger import Ledger, ObjectRef, OpStatus

log = get_logger(__name__)

RETRY_PAUSE_SECONDS = 2.0
"""Wall time before the second attempt at objects whose first one outlasted the client's
retries (Graph was unavailable for a while)."""


@dataclass(frozen=True, slots=True)
class Change:
    ref: ObjectRef
    target: ProcessingState


@dataclass(frozen=True, slots=True)
class Outcome:
    ref: ObjectRef
    target: ProcessingState
    status: OpStatus
    """DONE, FAILED, SKIPPED, or PLANNED when the run stopped before trying it."""
    detail: str | None = None
    attempts: int = 0
    """Times this run sent it (a second pass retries what outlasted the client's retries)."""
    requests: int = 0
    """HTTP requests those attempts took, the Graph client's retries included."""
    throttled: int = 0
    """Of those, answered 429 (and retried after Retry-After)."""


class Applier:
    def __init__(
        self,
        *,
        tenant: str,
        graph: GraphClient,
        store: Store,
        ledger: Ledger,
        clock: Clock,
        parallel: int = 4,
        retry_pause: float = RETRY_PAUSE_SECONDS,
    ) -> None:
        self._tenant = tenant
        self._graph = graph
        self._store = store
        self._ledger = ledger
        self._clock = clock
        self._parallel = max(1, parallel)
        self._retry_pause = retry_pause
        self._wall = SystemClock()
        self.blocked: dict[DirectoryObjectKind, str] = {}
        """Kinds no longer attempted, with the permission error that stopped them."""

    async def apply(
        self,
        run_id: str,
        changes: Sequence[Change],
        *,
        episode_id: str | None,
        stop: asyncio.Event,
        on_outcome: Callable[[Outcome], None] = lambda _: None,
    ) -> list[Outcome]:
        """Every change is tried (unless `stop` is set first); returns one outcome per change,
        in the order given."""
        outcomes: dict[str, Outcome] = {}
        attempts: dict[str, int] = {}
        costs: dict[str, RequestCounts] = {}
        transient: dict[str, str] = {}

        def outcome(change: Change, status: OpStatus, detail: str | None) -> Outcome:
            cost = costs.get(change.ref.id, RequestCounts())
            return Outcome(
                change.ref,
                change.target,
                status,
                detail,
                attempts.get(change.ref.id, 0),
                cost.requests,
                cost.throttled,
            )

        async def attempt(change: Change) -> None:
            ref = change.ref
            blocked = self.blocked.get(ref.kind)
            if blocked is not None:
                await self._settle(
                    run_id,
                    outcome(change, OpStatus.SKIPPED, f"not attempted: {blocked}"),
                    episode_id,
                )
                outcomes[ref.id] = outcome(change, OpStatus.SKIPPED, blocked)
                on_outcome(outcomes[ref.id])
                return
            attempts[ref.id] = attempts.get(ref.id, 0) + 1
            await self._store.call(
                lambda: self._ledger.intend(
                    run_id, ref, change.target, at=self._clock.now(), episode_id=episode_id
                )
            )
            status, detail, cost = await self._patch(change)
            costs.setdefault(ref.id, RequestCounts()).add(cost)
            if status is None:  # outcome unknown: Graph stayed unavailable
                transient[ref.id] = detail or "Graph unavailable"
                return
            transient.pop(ref.id, None)
            outcomes[ref.id] = outcome(change, status, detail)
            await self._settle(run_id, outcomes[ref.id], episode_id)
            on_outcome(outcomes[ref.id])

        await self._run_pass(list(changes), attempt, stop)
        retry = [c for c in changes if c.ref.id in transient]
        if retry and not stop.is_set():
            log.info("retrying objects Graph did not accept", objects=len(retry))
            await self._wall.sleep(self._retry_pause)
            await self._run_pass(retry, attempt, stop)
        for change in changes:
            ref = change.ref
            if ref.id in outcomes:
                continue
            if ref.id in transient:
                detail = f"failed after {attempts[ref.id]} tries: {transient[ref.id]}"
                outcomes[ref.id] = outcome(change, OpStatus.FAILED, detail)
                await self._settle(run_id, outcomes[ref.id], episode_id)
            else:
                outcomes[ref.id] = outcome(
                    change, OpStatus.PLANNED, "not attempted: the run was stopped"
                )
            on_outcome(outcomes[ref.id])
        return [outcomes[c.ref.id] for c in changes]

    async def _run_pass(
        self,
        changes: list[Change],
        attempt: Callable[[Change], Awaitable[None]],
        stop: asyncio.Event,
    ) -> None:
        queue: asyncio.Queue[Change] = asyncio.Queue()
        for change in changes:
            queue.put_nowait(change)

        async def worker() -> None:
            while not stop.is_set():
                try:
                    change = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await attempt(change)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self._parallel, len(changes))):
                group.create_task(worker())

    async def _patch(self, change: Change) -> tuple[OpStatus | None, str | None, RequestCounts]:
        """The PATCH's status (None: unknown, Graph stayed unavailable), why, and its cost."""
        ref = change.ref
        try:
            cost = await self._graph.set_processing_state(ref.kind, ref.id, change.target)
        except GraphNotFoundError as exc:
            return OpStatus.SKIPPED, "no longer exists in the tenant", _cost(exc)
        except GraphAuthError as exc:
            self.blocked.setdefault(ref.kind, str(exc))
            return OpStatus.FAILED, str(exc), _cost(exc)
        except GraphUnavailableError as exc:
            return None, str(exc), _cost(exc)
        except GraphError as exc:
            return OpStatus.FAILED, str(exc), _cost(exc)
        return OpStatus.DONE, None, cost

    async def _settle(self, run_id: str, outcome: Outcome, episode_id: str | None) -> None:
        await self._store.call(
            lambda: self._ledger.record_outcome(
                run_id,
                outcome.ref.id,
                outcome.target,
                outcome.status,
                at=self._clock.now(),
                detail=outcome.detail,
                tenant=self._tenant,
                episode_id=episode_id,
                requests=outcome.requests,
                throttled=outcome.throttled,
            )
        )


def _cost(error: GraphError) -> RequestCounts:
    return error.counts if error.counts is not None else RequestCounts(requests=1)


__all__ = ["Applier", "Change", "Outcome"]
