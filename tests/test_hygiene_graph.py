"""Tenant hygiene over Graph: `$count` of members (ConsistencyLevel: eventual, as Graph wants)
and the property changes of trigger events, through the real SDK against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.events import ObjectType
from exporter.graph.client import GraphClient
from exporter.graph.credentials import StaticTokenCredential
from exporter.graph.hygiene import TriggerChangeSample, add_trigger_page, parse_member_count
from exporter.graph.retry import RetryPolicy, TransientError
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.faults import FaultSettings
from exporter.simulator.generate import HYGIENE_EXAMPLES

TENANT = {"tenant": {"users": 300, "devices": 60, "dynamic_groups": 40, "administrative_units": 2}}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(
        "steady", overrides=TENANT, speed=0, throttle=False, history_days=2
    ) as running:
        yield running


def client(sim: RunningSimulator) -> GraphClient:
    return GraphClient(
        root_url=sim.base_url,
        credential=StaticTokenCredential("any"),
        scopes=["https://graph.microsoft.com/.default"],
        audit_requests_per_10s=1000,
        retry=RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05),
    )


async def test_member_counts_are_the_simulated_members(sim: RunningSimulator) -> None:
    graph = client(sim)
    try:
        groups = [c for c in sim.tenant.directory.containers if c.kind.value == "group"]
        counts = {g.id: await graph.count_members(g.id) for g in groups}
    finally:
        await graph.close()
    assert counts == {g.id: len(g.members) for g in groups}
    assert 0 in counts.values()
    assert any(counts.values())
    assert graph.requests[("member_count", "200")] == len(groups)


async def test_count_without_consistency_level_is_a_400_like_graph(sim: RunningSimulator) -> None:
    group = next(c for c in sim.tenant.directory.containers if c.rule is not None)
    url = f"{sim.graph_url}/groups/{group.id}/members/$count"
    headers = {"Authorization": "Bearer any"}
    async with httpx.AsyncClient() as http:
        refused = await http.get(url, headers=headers)
        answered = await http.get(url, headers={**headers, "ConsistencyLevel": "eventual"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "Request_BadRequest"
    assert refused.json()["error"]["message"] == "$count is not currently supported."
    assert answered.status_code == 200
    assert answered.headers["content-type"].startswith("text/plain")
    assert answered.text == str(len(group.members))


async def test_trigger_changes_name_the_changed_properties(sim: RunningSimulator) -> None:
    graph = client(sim)
    now = sim.clock.now()
    try:
        sample = await graph.trigger_changes(now - 86400, now, max_events=10**6)
        capped = await graph.trigger_changes(now - 86400, now, max_events=1)
    finally:
        await graph.close()
    assert sample.complete
    assert sample.events > 1000
    assert sum(sample.counts.values()) == sample.events
    updated = {p for (kind, props), _ in sample.counts.items() if props for p in props}
    # The steady load's everyday user updates (exporter.simulator.generate.USER_UPDATE_WEIGHTS)
    assert {"jobTitle", "department", "city"} <= {p[:1].lower() + p[1:] for p in updated}
    assert {kind for kind, _ in sample.counts} == {ObjectType.USER, ObjectType.DEVICE}
    assert not capped.complete
    assert 1 <= capped.events <= 1000


@pytest.mark.parametrize(
    ("switches", "mode"),
    [
        (FaultSettings(refuse_or_filters=True), AuditQueryMode.TIME_ORDERED),
        (FaultSettings(refuse_orderby_with_or=True), AuditQueryMode.TIME_ORDERED),
    ],
)
async def test_the_trigger_sample_steps_down_like_the_audit_poller(
    sim: RunningSimulator, switches: FaultSettings, mode: AuditQueryMode
) -> None:
    """A Graph that refuses `or` (or `or` with $orderby) still gives the same sample: the
    time range only, newest first, triggers counted here (#13)."""
    graph = client(sim)
    now = sim.clock.now()
    try:
        narrow = await graph.trigger_changes(now - 86400, now, max_events=10**6)
        sim.tenant.faults.configure(switches)
        stepped = await graph.trigger_changes(now - 86400, now, max_events=10**6)
        time_only = await graph.trigger_changes(
            now - 86400, now, max_events=10**6, mode=AuditQueryMode.TIME_ONLY
        )
    finally:
        await graph.close()
    assert narrow.mode is AuditQueryMode.NARROW
    assert stepped.mode is mode
    assert time_only.mode is AuditQueryMode.TIME_ONLY
    for sample in (stepped, time_only):
        assert (sample.counts, sample.events, sample.oldest, sample.newest) == (
            narrow.counts,
            narrow.events,
            narrow.oldest,
            narrow.newest,
        )
    assert graph.requests[("directory_audits", "400")] == 1


def test_the_simulated_tenant_has_every_kind_of_example() -> None:
    rules = " ".join(e.rule for e in HYGIENE_EXAMPLES)
    assert "memberOf" in rules
    assert "-or" in rules
    assert "-in []" in rules


def test_trigger_pages_read_the_included_updated_properties() -> None:
    def event(activity: str, props: list[dict[str, object]] | None, when: str) -> object:
        target: dict[str, object] = {"id": "u1", "type": "User"}
        if props is not None:
            target["modifiedProperties"] = props
        return {
            "activityDisplayName": activity,
            "activityDateTime": when,
            "targetResources": [target],
        }

    included: dict[str, object] = {
        "displayName": "Included Updated Properties",
        "newValue": '"Department, City"',
    }
    page = {
        "value": [
            event("Update user", [{"displayName": "Department"}, included], "2026-01-02T00:00:00Z"),
            event(
                "Update user",
                [{"displayName": "JobTitle", "newValue": '["x"]'}],
                "2026-01-01T00:00:00Z",
            ),
            event(
                "Update user",
                [{"displayName": "Included Updated Properties", "newValue": '""'}],
                "2026-01-03T00:00:00Z",
            ),
            event("Update device", None, "2026-01-01T12:00:00Z"),
            event("Add user", [], "2026-01-01T06:00:00Z"),
            event("Add member to group", [], "2026-01-01T06:00:00Z"),  # not a trigger
            "not an event",
        ],
        "@odata.nextLink": "http://127.0.0.1/next",
    }
    sample = TriggerChangeSample()
    assert add_trigger_page(sample, orjson.dumps(page)) == "http://127.0.0.1/next"
    assert sample.counts == {
        (ObjectType.USER, frozenset({"Department", "City"})): 1,
        (ObjectType.USER, frozenset({"JobTitle"})): 1,  # no summary: the properties' own names
        (ObjectType.USER, frozenset()): 1,  # an update no rule can read
        (ObjectType.DEVICE, frozenset()): 1,
        (ObjectType.USER, None): 1,  # added: every user rule evaluates it
    }
    assert sample.events == 5
    assert (sample.oldest, sample.newest) == ("2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z")
    with pytest.raises(TransientError):
        add_trigger_page(sample, b"<html>")


@pytest.mark.parametrize(("body", "count"), [(b"0", 0), (b"42\n", 42)])
def test_member_count_bodies(body: bytes, count: int) -> None:
    assert parse_member_count(body) == count


@pytest.mark.parametrize("body", [None, b"", b"-1", b'{"value": 3}'])
def test_a_member_count_that_is_not_a_number_is_retried(body: bytes | None) -> None:
    with pytest.raises(TransientError):
        parse_member_count(body)
