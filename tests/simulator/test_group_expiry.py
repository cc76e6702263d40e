"""Microsoft 365 group expiration by the dynamic-processing app (#13): the simulator writes it at
a low rate, laid out as the audit corpus says, and it never counts as dynamic processing."""

from __future__ import annotations

import orjson

from exporter.domain.classify import classify
from exporter.domain.events import (
    AUTORENEW_GROUP,
    DELETE_GROUP,
    INGESTED_ACTIVITIES,
    LOGGED_BY_CORE_DIRECTORY,
    LOGGED_BY_SELF_SERVICE,
    Series,
)
from exporter.graph.audit import parse_audit_page
from exporter.simulator.app import running_simulator
from exporter.simulator.scenarios import LoadModel
from exporter.simulator.truth import audit_counts
from tests.simulator.conftest import every_event

QUIET = {
    "tenant": {"users": 200, "devices": 40, "dynamic_groups": 10},
    "load": {
        "user_updates_per_hour": 0,
        "device_updates_per_hour": 0,
        "manual_changes_per_hour": 0,
    },
}


def test_the_default_rate_is_a_few_a_day() -> None:
    assert 2 <= LoadModel().group_expiries_per_hour * 24 <= 12


async def test_expiry_events_are_the_apps_and_never_dynamic() -> None:
    overrides = {**QUIET, "load": {**QUIET["load"], "group_expiries_per_hour": 30}}
    async with running_simulator("steady", overrides=overrides, speed=0, history_days=0) as sim:
        start = sim.clock.now()
        await sim.advance(2 * 3600)
        now = sim.clock.now()
        events = [
            e
            for e in every_event(sim.tenant, now + 3600)
            if e["activityDisplayName"] in (AUTORENEW_GROUP, DELETE_GROUP)
        ]
        truth = audit_counts(sim.tenant, since=start, visible_by=now + 3600)
        ingested = audit_counts(
            sim.tenant, since=start, visible_by=now + 3600, only=INGESTED_ACTIVITIES
        )
    renewed = [e for e in events if e["activityDisplayName"] == AUTORENEW_GROUP]
    deleted = [e for e in events if e["activityDisplayName"] == DELETE_GROUP]
    assert deleted
    assert len(renewed) > len(deleted)
    assert {e["loggedByService"] for e in renewed} == {LOGGED_BY_SELF_SERVICE}
    assert {e["loggedByService"] for e in deleted} == {LOGGED_BY_CORE_DIRECTORY}
    assert {e["targetResources"][0]["groupType"] for e in events} == {"unifiedGroups"}
    page = parse_audit_page(orjson.dumps({"value": events}), "expiry")
    kinds = {classify(r).series for r in page.records}
    assert kinds == {Series.APPROVAL_MANAGEMENT_OTHER}
    series = Series.APPROVAL_MANAGEMENT_OTHER.value
    assert truth["series"][series] - ingested["series"][series] == len(events)
    assert truth["series"]["dynamic_add"] == ingested["series"]["dynamic_add"]
