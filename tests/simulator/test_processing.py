"""Entra's sequential processing as the seeds describe it: bulk changes build a backlog and lag,
paused groups are skipped and catch up only after they are resumed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from exporter.domain import events
from exporter.domain.events import ProcessingState, Series
from exporter.simulator.app import RunningSimulator, merge_settings, running_simulator
from exporter.simulator.scenarios import Pause, Resume
from exporter.simulator.tenant import OPERATOR_ACTOR
from exporter.simulator.truth import audit_counts

from .conftest import AUTH, SMALL, START, every_event, get_json, page_through

WAVES: dict[str, Any] = merge_settings(
    SMALL,
    {
        "tenant": {
            "groups": [
                {"name": "Wave 1", "rule": 'user.extensionAttribute3 -eq "wave-1"'},
                {"name": "Wave 5", "rule": 'user.extensionAttribute3 -eq "wave-5"'},
                {
                    "name": "Wave 2 sales",
                    "rule": '(user.extensionAttribute3 -eq "wave-2") -and '
                    '(user.department -eq "Sales")',
                },
            ]
        },
        "processing": {"evaluations_per_hour": 2000, "pickup_delay": "60s"},
        "load": {"user_updates_per_hour": 20, "device_updates_per_hour": 5},
    },
)


async def _queue(http: httpx.AsyncClient, sim: RunningSimulator, **params: str) -> Any:
    return await get_json(http, sim.base_url + "/_sim/truth/queue", params=params)


async def _group(http: httpx.AsyncClient, sim: RunningSimulator, name: str) -> Any:
    group_id = sim.tenant.find(name).id
    return await get_json(http, f"{sim.base_url}/_sim/groups/{group_id}", params={"stale": "true"})


async def test_a_storm_builds_backlog_that_a_paused_group_does_not_work_off_until_resumed(
    http: httpx.AsyncClient,
) -> None:
    async with running_simulator(
        "steady", overrides=WAVES, seed=3, start=START, speed=0, throttle=False
    ) as sim:
        await sim.advance(3600)
        calm = await _queue(http, sim)
        assert calm["backlog"]["lag_seconds"] < 300
        wave1 = sim.tenant.find("Wave 1")
        response = await http.post(
            f"{sim.base_url}/_sim/groups/{wave1.id}/state", json={"state": "Paused"}
        )
        assert response.status_code == 200
        assert response.json()["state"] == "Paused"
        storm = await http.post(
            sim.base_url + "/_sim/storm", json={"objects": 250, "over_seconds": 600}
        )
        assert storm.status_code == 200
        assert storm.json()["objects"] == 250
        storm_start = sim.clock.now()

        await sim.advance(1200)
        during = await _queue(http, sim)
        assert during["backlog"]["items"] > 50
        assert during["backlog"]["lag_seconds"] > 600
        assert during["backlog"]["drain_seconds"] > 1800

        await sim.advance(6 * 3600)
        drained = await _queue(http, sim)
        assert drained["backlog"]["items"] < 5
        processed = await _queue(http, sim, since=str(storm_start))
        assert processed["membership_changes"]["p90"] > 1800  # the storm's changes lagged
        assert processed["membership_changes"]["count"] > 0
        # processed groups caught up; the paused one did not
        assert (await _group(http, sim, "Wave 5"))["stale"] == {"missing": 0, "extra": 0}
        stale = (await _group(http, sim, "Wave 1"))["stale"]
        assert stale["extra"] > 10
        removals_before = _removals(sim, wave1.id)

        await http.post(f"{sim.base_url}/_sim/groups/{wave1.id}/state", json={"state": "On"})
        resumed = await _queue(http, sim)
        assert resumed["backlog"]["full_reevaluations"] == 1
        await sim.advance(3 * 3600)
        assert (await _group(http, sim, "Wave 1"))["stale"] == {"missing": 0, "extra": 0}
        assert _removals(sim, wave1.id) - removals_before == stale["extra"]


def _removals(sim: RunningSimulator, group_id: str) -> int:
    index = sim.tenant.find(group_id).index
    counts = audit_counts(sim.tenant, since=START, by=["group"])
    group = counts["groups"].get(sim.tenant.directory.containers[index].id)
    return 0 if group is None else int(group["series"].get(Series.DYNAMIC_REMOVE.value, 0))


async def test_a_rule_edit_writes_update_group_and_reevaluates_the_group(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    target = sim.tenant.find("largest")
    before = len(target.members)
    response = await http.post(
        f"{sim.base_url}/_sim/groups/{target.id}/rule",
        json={"rule": 'user.country -eq "GB"'},
    )
    assert response.status_code == 200, response.text
    await sim.advance(2 * 3600)
    assert sim.tenant.stale_members(target) == {"missing": 0, "extra": 0}
    assert len(target.members) != before
    edits = await page_through(
        http,
        sim.graph_url + "/auditLogs/directoryAudits",
        {
            "$filter": f"activityDisplayName eq '{events.UPDATE_GROUP}' and "
            "activityDateTime ge 2026-01-05T08:00:00Z"
        },
    )
    rule_edits = [
        e
        for e in edits
        if any(
            p["displayName"] == events.PROPERTY_MEMBERSHIP_RULE
            for p in e["targetResources"][0]["modifiedProperties"]
        )
    ]
    assert len(rule_edits) == 1
    changed = rule_edits[0]["targetResources"][0]
    assert changed["id"] == target.id
    new_value = next(
        p for p in changed["modifiedProperties"] if p["displayName"] == "MembershipRule"
    )
    assert orjson.loads(new_value["newValue"]) == ['user.country -eq "GB"']
    invalid = await http.post(
        f"{sim.base_url}/_sim/groups/{target.id}/rule", json={"rule": "user.country -eq"}
    )
    assert invalid.status_code == 400


async def test_truth_counts_match_the_log_a_client_reads(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    sim.tenant.set_processing_state(
        sim.tenant.find("largest"), ProcessingState.PAUSED, OPERATOR_ACTOR
    )
    await sim.advance(2 * 3600)
    now = sim.clock.now()
    truth = await get_json(
        http,
        sim.base_url + "/_sim/truth/audit",
        params={"visible_by": str(now), "by": "hour,group"},
    )
    served = await page_through(http, sim.graph_url + "/auditLogs/directoryAudits", {}, AUTH)
    assert truth["total"] == len(served) == len(every_event(sim.tenant, now))
    mine: dict[str, int] = dict.fromkeys(truth["series"], 0)
    for event in served:
        mine[_classify(event, sim.tenant.directory.readers_of)] += 1
    assert mine == truth["series"]
    assert sum(h["total"] for h in truth["hours"]) == truth["total"]
    assert truth["series"][Series.PROCESSING_STATE_CHANGE.value] == 1
    written = await get_json(http, sim.base_url + "/_sim/truth/audit")
    assert written["total"] >= truth["total"]


def _classify(event: dict[str, Any], read_by_rules: Callable[[str, str], set[int]]) -> str:
    activity = event["activityDisplayName"]
    app = event["initiatedBy"].get("app")
    dynamic = app is not None and app["displayName"] == events.DYNAMIC_PROCESSING_APP
    if activity in (events.ADD_MEMBER, events.REMOVE_MEMBER):
        add = activity == events.ADD_MEMBER
        if dynamic and event["loggedByService"] != events.LOGGED_BY_CORE_DIRECTORY:
            return Series.APPROVAL_MANAGEMENT_OTHER.value  # self-service, by the same app
        if dynamic:
            return (Series.DYNAMIC_ADD if add else Series.DYNAMIC_REMOVE).value
        return (Series.MANUAL_ADD if add else Series.MANUAL_REMOVE).value
    if activity in events.TRIGGER_ACTIVITIES:
        object_type, action = events.TRIGGER_ACTIVITIES[activity]
        relevance = events.Relevance.RULE
        if action == "update":  # relevant if a rule reads a changed property (#13)
            [listed] = [
                p["newValue"]
                for p in event["targetResources"][0]["modifiedProperties"]
                if p["displayName"] == events.PROPERTY_INCLUDED_UPDATED_PROPERTIES
            ]
            changed = [n.strip() for n in orjson.loads(listed).split(",")]
            if not any(read_by_rules(object_type, n[:1].lower() + n[1:]) for n in changed):
                relevance = events.Relevance.OTHER
        by_relevance = events.TRIGGER_SERIES_BY_RELEVANCE[events.ObjectType(object_type)]
        return by_relevance[relevance].value
    if activity in (events.UPDATE_GROUP, events.UPDATE_ADMINISTRATIVE_UNIT):
        names = {p["displayName"] for p in event["targetResources"][0]["modifiedProperties"]}
        if events.PROPERTY_MEMBERSHIP_RULE in names:
            return Series.RULE_CHANGE.value
        if events.PROPERTY_PROCESSING_STATE in names:
            return Series.PROCESSING_STATE_CHANGE.value
        return Series.GROUP_UPDATE_OTHER.value
    if activity in events.GROUP_EXPIRY_ACTIVITIES and dynamic:
        return Series.APPROVAL_MANAGEMENT_OTHER.value  # Microsoft 365 group expiration (#13)
    return Series.OTHER.value


async def test_the_storm_scenario_pauses_and_resumes_only_when_operator_actions_are_on(
    http: httpx.AsyncClient,
) -> None:
    small_storm = {
        "tenant": {"users": 400, "devices": 50, "dynamic_groups": 30, "static_groups": 2},
        "history": {"days": 0},
        "processing": {"evaluations_per_hour": 4000},
    }
    for operator_actions in (True, False):
        async with running_simulator(
            "storm",
            overrides=small_storm,
            start=START,
            speed=0,
            throttle=False,
            operator_actions=operator_actions,
        ) as sim:
            timeline = sim.tenant.scenario.timeline
            pause = next(a for a in timeline if isinstance(a, Pause))
            critical, rest = (a for a in timeline if isinstance(a, Resume))
            await sim.advance(pause.at + 60)
            paused = await get_json(http, sim.base_url + "/_sim/groups", params={"state": "Paused"})
            preexisting = sim.tenant.scenario.tenant.paused_groups
            dynamic = sum(1 for c in sim.tenant.directory.containers if c.rule is not None)
            assert paused["count"] == (dynamic if operator_actions else preexisting)
            await sim.advance(critical.at - pause.at)
            mine = [
                c for c in sim.tenant.critical_groups() if c.index in sim.tenant.paused_by_timeline
            ]
            assert all(not c.paused for c in mine)
            assert len(mine) == (len(sim.tenant.critical_groups()) if operator_actions else 0)
            await sim.advance(rest.at - critical.at + rest.interval)  # two batches of 100
            still_paused = sum(
                1 for c in sim.tenant.directory.containers if c.rule is not None and c.paused
            )
            # groups paused before the episode stay paused: a resume is only for what it paused
            assert still_paused == preexisting
