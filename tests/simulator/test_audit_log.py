"""GET /v1.0/auditLogs/directoryAudits over HTTP: filters against a brute-force reading of every
event, paging, ordering, retention and Graph's 400s."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from exporter.domain import events
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.timefmt import graph_timestamp_seconds

from .conftest import AUTH, SMALL, START, every_event, page_through

Predicate = Any


def _iso(seconds: float) -> str:
    return graph_timestamp_seconds(round(seconds * 1_000_000))


def _filters() -> list[tuple[str, Predicate]]:
    lo, hi = _iso(START - 6 * 3600), _iso(START + 1800)
    add, remove, update = events.ADD_MEMBER, events.REMOVE_MEMBER, "Update user"
    app = events.DYNAMIC_PROCESSING_APP

    def app_name(e: dict[str, Any]) -> str | None:
        initiator = e["initiatedBy"].get("app")
        return None if initiator is None else initiator["displayName"]

    return [
        (
            f"activityDateTime ge {lo} and activityDateTime le {hi}",
            lambda e: lo <= e["activityDateTime"][:19] + "Z" <= hi,
        ),
        (
            f"activityDateTime ge {lo} and (activityDisplayName eq '{add}' or "
            f"activityDisplayName eq '{remove}')",
            lambda e: e["activityDateTime"] >= lo and e["activityDisplayName"] in (add, remove),
        ),
        (
            "startswith(activityDisplayName, 'Update')",
            lambda e: e["activityDisplayName"].startswith("Update"),
        ),
        (
            f"initiatedBy/app/displayName eq '{app}' and activityDisplayName eq '{add}'",
            lambda e: app_name(e) == app and e["activityDisplayName"] == add,
        ),
        (
            f"(activityDisplayName eq '{update}' and activityDateTime le {hi}) or "
            f"activityDisplayName eq '{remove}'",
            lambda e: (
                (e["activityDisplayName"] == update and e["activityDateTime"][:19] + "Z" <= hi)
                or e["activityDisplayName"] == remove
            ),
        ),
        (
            "loggedByService eq 'Core Directory' and initiatedBy/user/userPrincipalName eq "
            "'admin1@contoso.example'",
            lambda e: (
                (e["initiatedBy"].get("user") or {}).get("userPrincipalName")
                == "admin1@contoso.example"
            ),
        ),
    ]


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_every_supported_filter_returns_exactly_the_matching_events(
    sim: RunningSimulator, http: httpx.AsyncClient, order: str
) -> None:
    await sim.advance(3600)
    everything = every_event(sim.tenant, sim.clock.now())
    url = sim.graph_url + "/auditLogs/directoryAudits"
    for text, predicate in _filters():
        served = await page_through(
            http, url, {"$filter": text, "$top": "97", "$orderby": f"activityDateTime {order}"}
        )
        expected = {e["id"] for e in everything if predicate(e)}
        ids = [e["id"] for e in served]
        assert expected, text
        assert len(ids) == len(set(ids)), text
        assert set(ids) == expected, text
        times = [e["activityDateTime"] for e in served]
        assert times == sorted(times, reverse=order == "desc"), text


async def test_events_are_visible_only_after_their_delay(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await sim.advance(1800)
    url = sim.graph_url + "/auditLogs/directoryAudits"
    since = f"activityDateTime ge {_iso(START)}"
    seen_now = await page_through(http, url, {"$filter": since})
    written = list(sim.tenant.live.times)
    assert len(seen_now) < len(written)
    assert all(e["activityDateTime"] <= _iso(sim.clock.now()) for e in seen_now)
    await sim.advance(15 * 60)
    seen_later = await page_through(
        http, url, {"$filter": f"{since} and activityDateTime le {_iso(START + 1800)}"}
    )
    assert len(seen_later) == sum(1 for t in written if t <= (START + 1800) * 1_000_000)


async def test_paging_defaults_newest_first_and_links_back_to_this_server(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    response = await http.get(
        sim.graph_url + "/auditLogs/directoryAudits", params={"$top": "5"}, headers=AUTH
    )
    body = orjson.loads(response.content)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["request-id"]
    assert body["@odata.context"] == f"{sim.base_url}/v1.0/$metadata#auditLogs/directoryAudits"
    assert body["@odata.nextLink"].startswith(sim.graph_url + "/auditLogs/directoryAudits?")
    times = [e["activityDateTime"] for e in body["value"]]
    assert len(times) == 5
    assert times == sorted(times, reverse=True)
    following = orjson.loads((await http.get(body["@odata.nextLink"], headers=AUTH)).content)
    assert following["value"][0]["activityDateTime"] <= times[-1]


async def test_dynamic_membership_events_have_the_layout_graph_facts_describe(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await sim.advance(3600)
    served = await page_through(
        http,
        sim.graph_url + "/auditLogs/directoryAudits",
        {"$filter": f"activityDisplayName eq '{events.REMOVE_MEMBER}'", "$top": "1000"},
    )
    dynamic = [e for e in served if e["initiatedBy"]["app"] is not None]
    assert dynamic
    containers = sim.tenant.directory.by_id
    app_ids: set[str | None] = set()
    group_first = 0
    for event in dynamic:
        assert event["category"] == events.CATEGORY_GROUP_MANAGEMENT
        # Self-service group management acts as the same app, logged by its own service (#13).
        assert event["loggedByService"] in (
            events.LOGGED_BY_CORE_DIRECTORY,
            events.LOGGED_BY_SELF_SERVICE,
        )
        assert event["operationType"] == "Unassign"
        assert event["initiatedBy"]["user"] is None
        assert event["initiatedBy"]["app"]["displayName"] == events.DYNAMIC_PROCESSING_APP
        app_ids.add(event["initiatedBy"]["app"]["appId"])
        # Targets by type, in either order (Graph's own example lists the group first).
        targets = event["targetResources"]
        [group] = [t for t in targets if t["type"] == "Group"]
        [member] = [t for t in targets if t["type"] != "Group"]
        group_first += targets[0] is group
        assert group["displayName"] is None
        assert group["groupType"] in ("azureAD", "unknownFutureValue")
        assert member["type"] in ("User", "Device")
        properties = {p["displayName"]: p for p in member["modifiedProperties"]}
        object_id = properties[events.PROPERTY_GROUP_OBJECT_ID]
        assert object_id["newValue"] is None
        assert orjson.loads(object_id["oldValue"]) == group["id"]
        name = orjson.loads(properties[events.PROPERTY_GROUP_DISPLAY_NAME]["oldValue"])
        assert containers[group["id"]].display_name == name
        assert events.PROPERTY_GROUP_WELL_KNOWN_NAME in properties
    assert app_ids == {*events.DYNAMIC_PROCESSING_APP_IDS, None}  # both appIds, and none
    assert 0 < group_first < len(dynamic)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"$filter": "category eq 'GroupManagement'"}, "category"),
        ({"$filter": "activityDateTime gt 2026-01-05T00:00:00Z"}, "gt"),
        ({"$filter": "not (activityDisplayName eq 'Add user')"}, "not"),
        ({"$filter": "activityDisplayName eq"}, "Syntax error"),
        ({"$filter": "activityDateTime ge '2026-01-05'"}, "DateTimeOffset"),
        ({"$top": "1001"}, "$top"),
        ({"$orderby": "id"}, "$orderby"),
        ({"$select": "id"}, "$select"),
        ({"$skiptoken": "bm9wZQ"}, "skiptoken"),
    ],
)
async def test_what_graph_refuses_is_a_400_in_graphs_shape(
    sim: RunningSimulator, http: httpx.AsyncClient, params: dict[str, str], fragment: str
) -> None:
    response = await http.get(
        sim.graph_url + "/auditLogs/directoryAudits",
        params=params,
        headers={**AUTH, "client-request-id": "abc-123"},
    )
    assert response.status_code == 400
    error = orjson.loads(response.content)["error"]
    assert error["code"] == "BadRequest"
    assert fragment in error["message"]
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    assert error["innerError"]["client-request-id"] == "abc-123"
    assert response.headers["client-request-id"] == "abc-123"
    assert response.headers["request-id"] == error["innerError"]["request-id"]


async def test_a_start_older_than_retention_is_a_400(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    url = sim.graph_url + "/auditLogs/directoryAudits"
    old = _iso(START - 30 * 86400 - 60)
    response = await http.get(url, params={"$filter": f"activityDateTime ge {old}"}, headers=AUTH)
    assert response.status_code == 400
    assert "Minimum allowed time for activityDateTime" in response.json()["error"]["message"]
    inside = _iso(START - 30 * 86400 + 60)
    ok = await http.get(url, params={"$filter": f"activityDateTime ge {inside}"}, headers=AUTH)
    assert ok.status_code == 200


async def test_requests_without_a_bearer_token_are_401(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    response = await http.get(sim.graph_url + "/auditLogs/directoryAudits")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


async def test_the_same_seed_writes_the_same_log_and_another_seed_does_not() -> None:
    async def log(seed: int) -> list[bytes]:
        async with running_simulator(
            "steady", overrides=SMALL, seed=seed, start=START, speed=0, throttle=False
        ) as sim:
            await sim.advance(3 * 3600)
            async with httpx.AsyncClient() as http:
                served = await page_through(
                    http,
                    sim.graph_url + "/auditLogs/directoryAudits",
                    {"$orderby": "activityDateTime asc", "$top": "1000"},
                )
            return [orjson.dumps(e) for e in served]

    first, second, other = await log(5), await log(5), await log(6)
    assert len(first) > 100
    assert first == second
    assert first != other
