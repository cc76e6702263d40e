"""The Graph client over real HTTP against the simulator: listings, single-object operations for
ops (get, PATCH the processing state, beta status), and errors that name what to fix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.records import ProcessingStatus
from exporter.graph.client import GraphClient
from exporter.graph.credentials import StaticTokenCredential
from exporter.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphNotFoundError,
    GraphUnavailableError,
)
from exporter.graph.retry import RetryPolicy
from exporter.ingest.directory_pollers import CRITICAL_STATUS_CONCURRENCY, CriticalStatusPoller
from exporter.ingest.poller import CollectorStatus
from exporter.simulator.access import TokenGrant
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.faults import FaultScope, FaultSettings

SCOPES = ["https://graph.microsoft.com/.default"]
FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05)
SMALL = {"tenant": {"users": 200, "devices": 40, "dynamic_groups": 12, "administrative_units": 2}}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(
        "steady", overrides=SMALL, speed=0, throttle=False, history_days=1
    ) as running:
        yield running


def client(sim: RunningSimulator, token: str = "any") -> GraphClient:
    return GraphClient(
        root_url=sim.base_url,
        credential=StaticTokenCredential(token),
        scopes=SCOPES,
        audit_requests_per_10s=1000,
        retry=FAST,
    )


async def test_listings_and_single_object_operations(sim: RunningSimulator) -> None:
    graph = client(sim)
    try:
        groups = await graph.list_dynamic_groups()
        units = await graph.list_dynamic_administrative_units()
        expected_groups = [
            c
            for c in sim.tenant.directory.containers
            if c.rule is not None and c.kind is DirectoryObjectKind.GROUP
        ]
        assert sorted(g.id for g in groups) == sorted(c.id.lower() for c in expected_groups)
        assert len(units) == 2
        assert all(u.kind is DirectoryObjectKind.ADMINISTRATIVE_UNIT for u in units)

        target = groups[0]
        assert await graph.get_group(target.id) == target
        await graph.set_processing_state(
            DirectoryObjectKind.GROUP, target.id, ProcessingState.PAUSED
        )
        paused = await graph.get_group(target.id)
        assert paused.state is ProcessingState.PAUSED
        status = await graph.get_processing_status(target.id)
        assert status.group_id == target.id

        unit = units[0]
        await graph.set_processing_state(
            DirectoryObjectKind.ADMINISTRATIVE_UNIT, unit.id, ProcessingState.PAUSED
        )
        assert (await graph.get_administrative_unit(unit.id)).state is ProcessingState.PAUSED

        with pytest.raises(GraphNotFoundError):
            await graph.get_group("00000000-0000-4000-8000-000000000000")
        assert graph.requests[("group_update", "204")] == 1
        assert graph.requests[("group", "404")] == 1
    finally:
        await graph.close()


async def test_missing_permissions_are_named(sim: RunningSimulator) -> None:
    sim.set_tokens(
        {
            "reader": TokenGrant(permissions=("Group.Read.All",)),
            "auditor": TokenGrant(permissions=("AuditLog.Read.All", "Directory.Read.All")),
        }
    )
    reader, auditor, stranger = client(sim, "reader"), client(sim, "auditor"), client(sim, "nope")
    try:
        now = sim.clock.now()
        with pytest.raises(GraphAuthError, match=r"grant the app AuditLog\.Read\.All"):
            async for _ in reader.audit_pages(now - 3600, now):
                pass
        groups = await auditor.list_dynamic_groups()
        with pytest.raises(GraphAuthError, match=r"Group\.ReadWrite\.All"):
            await auditor.set_processing_state(
                DirectoryObjectKind.GROUP, groups[0].id, ProcessingState.PAUSED
            )
        with pytest.raises(GraphAuthError, match="rejected the credentials") as info:
            await stranger.list_dynamic_groups()
        assert "nope" not in str(info.value)
        assert reader.requests[("directory_audits", "403")] == 1
    finally:
        for graph in (reader, auditor, stranger):
            await graph.close()


async def test_persistent_server_errors_give_up_after_the_retries(sim: RunningSimulator) -> None:
    sim.set_faults(FaultSettings(scope=FaultScope.ALL, error_503_rate=1.0))
    graph = client(sim)
    try:
        with pytest.raises(GraphUnavailableError, match="after 3 attempts: HTTP 503"):
            await graph.list_dynamic_groups()
        assert graph.requests[("groups", "503")] == 3
    finally:
        await graph.close()


async def test_the_sdk_retry_handler_is_not_in_the_chain(sim: RunningSimulator) -> None:
    # One 429 with a fractional Retry-After: the SDK's handler would wait 3 s + backoff and
    # retry itself (a second count); ours waits 0.2 s, exactly once.
    sim.set_faults(
        FaultSettings(
            throttle_burst_rate=1.0, throttle_burst_length=1, throttle_retry_after_seconds=0.2
        )
    )
    graph = GraphClient(
        root_url=sim.base_url,
        credential=StaticTokenCredential("any"),
        scopes=SCOPES,
        retry=RetryPolicy(attempts=1, throttled_attempts=1),
    )
    try:
        now = sim.clock.now()
        with pytest.raises(GraphUnavailableError, match="HTTP 429"):
            async for _ in graph.audit_pages(now - 600, now):
                pass
        assert graph.requests[("directory_audits", "429")] == 1
    finally:
        await graph.close()


class InFlight:
    """The real client, counting how many status reads are under way at once."""

    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph
        self.now = 0
        self.most = 0
        self.list_dynamic_groups = graph.list_dynamic_groups
        self.list_dynamic_administrative_units = graph.list_dynamic_administrative_units

    async def get_processing_status(self, group_id: str) -> ProcessingStatus:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await self.graph.get_processing_status(group_id)
        finally:
            self.now -= 1


async def test_critical_statuses_are_read_concurrently_and_failures_named_in_order(
    sim: RunningSimulator,
) -> None:
    graph = client(sim)
    try:
        groups = sorted(g.id for g in await graph.list_dynamic_groups())
        unknown = ["00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"]
        configured = [groups[0], unknown[1], *groups[1:], unknown[0]]
        counting = InFlight(graph)
        poller = CriticalStatusPoller(tenant="t", group_ids=configured, graph=counting, interval=60)
        sim.set_faults(FaultSettings(scope=FaultScope.ALL, slow_rate=1.0, slow_seconds=0.05))
        with pytest.raises(GraphError) as raised:
            await poller.poll(CollectorStatus("critical_status"))
    finally:
        await graph.close()
    assert list(poller.statuses) == [g for g in configured if g in groups], "configured order"
    assert str(raised.value).startswith(f"2 of {len(configured)} critical groups unreadable")
    assert f"first: {unknown[1]}" in str(raised.value), "the first failing one as configured"
    assert counting.most == CRITICAL_STATUS_CONCURRENCY > 1, "read a few at a time"
