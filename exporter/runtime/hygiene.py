"""Tenant hygiene in the running exporter: member counts read slowly with `$count` (within a
requests-per-minute budget, each group again after `member_count_refresh`), kept in the store,
and the candidates per reason (exporter.domain.hygiene) recomputed off the pollers' path for
`entra_dynamic_hygiene_candidates`. Headroom needs nothing here: the limit is configuration and
the counts are `entra_dynamic_groups`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from aiolimiter import AsyncLimiter

from exporter.clock import Clock, SystemClock
from exporter.config.models import Hygiene
from exporter.domain.events import DirectoryObjectKind
from exporter.domain.hygiene import (
    Headroom,
    HygieneObject,
    MemberCount,
    Reason,
    assess_hygiene,
)
from exporter.domain.records import DirectoryObject
from exporter.graph.client import GraphClient
from exporter.graph.errors import GraphError, GraphNotFoundError
from exporter.ingest.poller import STORAGE_ERRORS, report_storage_failure
from exporter.logs import get_logger
from exporter.store.database import Store

log = get_logger(__name__)

FAILURE_PAUSE = 60.0
"""Wall seconds before trying again after a failure (storage or Graph)."""

COUNT_RETRY_AFTER = 900.0
"""Wall seconds without $count requests after one failed for good (retries exhausted)."""


@dataclass(frozen=True, slots=True)
class HygieneSummary:
    """What the metrics show: candidates per reason (every reason present), objects not judged
    yet (inactive: history too short; empty: not counted yet), and the configured limit."""

    candidates: Mapping[Reason, int]
    not_judged: Mapping[Reason, int]
    object_limit: int
    history_days: float


class HygieneTracker:
    """Fed with each complete listing (like RuleUsageTracker); `run(graph)` is a task of the
    tenant."""

    def __init__(
        self,
        *,
        tenant: str,
        store: Store,
        settings: Hygiene,
        clock: Callable[[], Clock],
        recompute_every: float = 300.0,
        min_interval: float = 30.0,
    ) -> None:
        self.tenant = tenant
        self._store = store
        self._settings = settings
        self._clock = clock
        self._objects: dict[DirectoryObjectKind, tuple[DirectoryObject, ...]] = {}
        self._changed = asyncio.Event()
        self._wall = SystemClock()
        self._warned: dict[str, float] = {}
        self._recompute_every = recompute_every
        """Wall seconds between two computations of the candidates when nothing happens (the
        verdicts age with time alone)."""
        self._min_interval = min_interval
        """Wall seconds at least between two computations (polls end every minute)."""
        self._counting_resumes = float("-inf")
        self.summary: HygieneSummary | None = None
        self.counted = 0
        """$count requests that answered (since start)."""

    async def listed(self, kind: DirectoryObjectKind, objects: Iterable[DirectoryObject]) -> None:
        self._objects[kind] = tuple(objects)
        self._changed.set()

    def headroom(self) -> Headroom | None:
        """The listed dynamic groups and units against the limit; None until both kinds have
        been listed."""
        if len(self._objects) < len(DirectoryObjectKind):
            return None
        return Headroom(
            len(self._objects[DirectoryObjectKind.GROUP]),
            len(self._objects[DirectoryObjectKind.ADMINISTRATIVE_UNIT]),
            self._settings.object_limit,
        )

    def poke(self) -> None:
        """A poll ended: the history may have grown (a backfill reaching now makes inactive
        verdicts possible), so compute again soon (at most every `min_interval`)."""
        self._changed.set()

    async def run(
        self, graph: GraphClient, on_update: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        limiter = AsyncLimiter(self._settings.member_count_requests_per_minute, 60.0)
        await self._changed.wait()
        while True:
            self._changed.clear()
            try:
                await self._recompute(on_update)
                due = await self._count_due(graph, limiter)
            except Exception as exc:  # a full disk, Graph away: never the tenant's pollers too
                self._failed(exc)
                await asyncio.sleep(FAILURE_PAUSE)
                continue
            if due:
                continue  # counted some: show them
            # Nothing to count: wake for a new listing or poll, or to let verdicts age.
            computed = self._wall.now()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._recompute_every)
            await asyncio.sleep(max(0.0, self._min_interval - (self._wall.now() - computed)))

    def _failed(self, exc: Exception) -> None:
        """One warning per kind of failure per FAILURE_PAUSE at most; the traceback at debug."""
        now = self._wall.now()
        if isinstance(exc, STORAGE_ERRORS):  # warned once with the pollers' own warnings
            report_storage_failure(exc, tenant=self.tenant, collector="hygiene", now=now)
            return
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.debug("hygiene failed", tenant=self.tenant, exc_info=exc)
        if now - self._warned.get(text, float("-inf")) >= FAILURE_PAUSE:
            self._warned[text] = now
            log.warning("hygiene failed; retrying", tenant=self.tenant, error=text)

    async def _count_due(self, graph: GraphClient, limiter: AsyncLimiter) -> int:
        """Count the groups whose count is missing or older than the refresh period, oldest
        first, until `recompute_every` wall seconds have passed; how many were counted."""
        store = self._store
        known = await store.call(store.member_counts, self.tenant)
        now = self._clock().now()
        refresh = self._settings.member_count_refresh
        groups = self._objects.get(DirectoryObjectKind.GROUP, ())
        due = sorted(
            (known[g.id.lower()][1] if g.id.lower() in known else float("-inf"), g.id)
            for g in groups
            if g.id.lower() not in known or now - known[g.id.lower()][1] >= refresh
        )
        started = self._wall.now()
        if started < self._counting_resumes:
            return 0
        counted = 0
        for _, group_id in due:
            if self._wall.now() - started >= self._recompute_every or self._changed.is_set():
                break
            async with limiter:
                try:
                    members = await graph.count_members(group_id)
                except GraphNotFoundError:
                    continue  # deleted since the listing
                except GraphError as exc:
                    # Often a permission (GroupMember.Read.All): the requests metric and its
                    # alert say so; try again later rather than once a poll.
                    self._counting_resumes = self._wall.now() + COUNT_RETRY_AFTER
                    log.warning(
                        "member count failed; counting again later",
                        tenant=self.tenant,
                        error=str(exc),
                        retry_in_seconds=COUNT_RETRY_AFTER,
                    )
                    break
            await store.call(
                store.record_member_count, self.tenant, group_id, members, self._clock().now()
            )
            counted += 1
            self.counted += 1
        return counted

    async def _recompute(self, on_update: Callable[[], Awaitable[None]] | None) -> None:
        store = self._store
        tenant = self.tenant
        now = self._clock().now()

        def read() -> tuple[
            dict[str, float],
            tuple[float, float] | None,
            dict[str, tuple[int, float]],
            dict[str, float],
        ]:
            return (
                store.group_last_changes(tenant, float("-inf")),
                store.history(tenant),
                store.member_counts(tenant),
                store.first_seen(tenant),
            )

        last, history, counts, seen = await store.run(read)
        objects = [
            HygieneObject(kind.value, o.id, o.name, o.rule)
            for kind, listing in self._objects.items()
            for o in listing
        ]
        # CPU work (parsing every rule): not on the event loop.
        report = await asyncio.to_thread(
            assess_hygiene,
            objects,
            now=now,
            inactive_days=self._settings.inactive_days,
            last_changes=last if history is not None else None,
            history_start=history[0] if history else None,
            history_end=history[1] if history else None,
            member_counts={k: MemberCount(c, t) for k, (c, t) in counts.items()},
            first_seen=seen,
        )
        self.summary = HygieneSummary(
            MappingProxyType(report.by_reason()),
            MappingProxyType(dict(report.not_judged)),
            self._settings.object_limit,
            report.history_days,
        )
        if on_update is not None:
            await on_update()
