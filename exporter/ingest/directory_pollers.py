"""Dynamic groups and dynamic administrative units (state per object, paused-since), and the
beta processing status of the critical groups only (it is per group: never poll all 15,000)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from exporter.clock import Clock
from exporter.domain.events import DirectoryObjectKind
from exporter.domain.records import DirectoryObject, ProcessingStatus
from exporter.graph.errors import GraphError
from exporter.ingest.poller import CollectorStatus
from exporter.store.database import Store

CRITICAL_STATUS_CONCURRENCY = 8


class DirectorySource(Protocol):
    async def list_dynamic_groups(self) -> list[DirectoryObject]: ...

    async def list_dynamic_administrative_units(self) -> list[DirectoryObject]: ...

    async def get_processing_status(self, group_id: str) -> ProcessingStatus: ...


class DirectoryPoller:
    """Lists one kind completely and stores it; a transition to Paused between two polls
    starts a pause (refined later by audit events, see `Store.paused_objects`)."""

    def __init__(
        self,
        *,
        tenant: str,
        kind: DirectoryObjectKind,
        graph: DirectorySource,
        store: Store,
        clock: Clock,
        interval: float,
        on_listing: Callable[[DirectoryObjectKind, list[DirectoryObject]], Awaitable[None]]
        | None = None,
    ) -> None:
        self.tenant = tenant
        self.kind = kind
        self.name = "groups" if kind is DirectoryObjectKind.GROUP else "administrative_units"
        self.interval = interval
        self._graph = graph
        self._store = store
        self._clock = clock
        self._on_listing = on_listing

    async def poll(self, status: CollectorStatus) -> None:
        if self.kind is DirectoryObjectKind.GROUP:
            objects = await self._graph.list_dynamic_groups()
        else:
            objects = await self._graph.list_dynamic_administrative_units()
        store = self._store
        await store.call(
            store.record_directory_poll, self.tenant, self.kind, objects, self._clock.now()
        )
        if self._on_listing is not None:
            await self._on_listing(self.kind, objects)


class CriticalStatusPoller:
    """Beta membershipRuleProcessingStatus of each configured critical group."""

    name = "critical_status"

    def __init__(
        self,
        *,
        tenant: str,
        group_ids: Sequence[str],
        graph: DirectorySource,
        interval: float,
    ) -> None:
        self.tenant = tenant
        self.interval = interval
        self._group_ids = tuple(group_ids)
        self._graph = graph
        self.statuses: dict[str, ProcessingStatus] = {}
        """group id -> its last status; a group whose last poll failed is absent."""

    async def poll(self, status: CollectorStatus) -> None:
        failures: dict[str, str] = {}
        statuses: dict[str, ProcessingStatus] = {}
        # A few at a time: 200 critical groups one after another kept a cold start waiting
        # seconds for the first complete exposition; Graph's directory reads allow far more.
        slots = asyncio.Semaphore(CRITICAL_STATUS_CONCURRENCY)

        async def read(group_id: str) -> None:
            async with slots:
                try:
                    statuses[group_id] = await self._graph.get_processing_status(group_id)
                except GraphError as exc:
                    failures[group_id] = str(exc)

        async with asyncio.TaskGroup() as group:
            for group_id in self._group_ids:
                group.create_task(read(group_id))
        self.statuses = {g: statuses[g] for g in self._group_ids if g in statuses}
        if failures:
            first = next(g for g in self._group_ids if g in failures)
            raise GraphError(
                f"{len(failures)} of {len(self._group_ids)} critical groups unreadable; "
                f"first: {first}: {failures[first]}",
                endpoint="group_status",
            )
