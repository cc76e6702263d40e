"""Groups, administrative units and the beta processing status over HTTP."""

from __future__ import annotations

import httpx
import pytest

from exporter.domain.events import ProcessingState
from exporter.simulator.app import RunningSimulator
from exporter.simulator.tenant import OPERATOR_ACTOR

from .conftest import AUTH, get_json, page_through

EVENTUAL = {**AUTH, "ConsistencyLevel": "eventual"}
DYNAMIC = "groupTypes/any(c:c eq 'DynamicMembership')"


async def test_groups_filter_select_top_and_count(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    url = sim.graph_url + "/groups"
    params = {"$filter": DYNAMIC, "$count": "true", "$select": "id,displayName", "$top": "4"}
    body = await get_json(http, url, params=params, headers=EVENTUAL)
    dynamic = [
        c for c in sim.tenant.directory.containers if c.rule is not None and c.kind == "group"
    ]
    assert body["@odata.count"] == len(dynamic)
    assert body["@odata.context"].endswith("$metadata#groups(id,displayName)")
    assert all(set(g) == {"id", "displayName"} for g in body["value"])
    listed = await page_through(http, url, params, headers=EVENTUAL)
    assert [g["id"] for g in listed] == [c.id for c in dynamic]
    everything = await page_through(http, url, {"$top": "999"})
    assert len(everything) == sum(1 for c in sim.tenant.directory.containers if c.kind == "group")
    static = [g for g in everything if g["groupTypes"] == []]
    assert static
    assert all(g["membershipRuleProcessingState"] is None for g in static)


async def test_paused_filter_follows_pause_and_resume(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    url = sim.graph_url + "/groups"
    params = {"$filter": f"{DYNAMIC} and membershipRuleProcessingState eq 'Paused'", "$top": "999"}
    before = {g["id"] for g in await page_through(http, url, params)}
    assert before == {
        c.id for c in sim.tenant.directory.containers if c.rule is not None and c.paused
    }
    target = next(c for c in sim.tenant.directory.containers if c.rule is not None and not c.paused)
    response = await http.patch(
        f"{url}/{target.id}", content=b'{"membershipRuleProcessingState": "Paused"}', headers=AUTH
    )
    assert response.status_code == 204
    assert response.content == b""
    after = {g["id"] for g in await page_through(http, url, params)}
    assert after == before | {target.id}


@pytest.mark.parametrize(
    ("params", "headers", "code", "fragment"),
    [
        ({"$filter": DYNAMIC, "$count": "true"}, AUTH, "Request_BadRequest", "$count"),
        ({"$top": "1000"}, AUTH, "Request_BadRequest", "Invalid page size"),
        ({"$select": "id,nope"}, AUTH, "Request_BadRequest", "'nope'"),
        (
            {"$filter": "membershipRuleProcessingState ne 'On'"},
            AUTH,
            "Request_UnsupportedQuery",
            "ne",
        ),
        ({"$filter": "mail eq 'x'"}, AUTH, "Request_UnsupportedQuery", "mail"),
    ],
)
async def test_group_queries_graph_refuses(
    sim: RunningSimulator,
    http: httpx.AsyncClient,
    params: dict[str, str],
    headers: dict[str, str],
    code: str,
    fragment: str,
) -> None:
    response = await http.get(sim.graph_url + "/groups", params=params, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert fragment in error["message"]


async def test_ne_is_allowed_as_an_advanced_query(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    params = {
        "$filter": f"{DYNAMIC} and membershipRuleProcessingState ne 'Paused'",
        "$count": "true",
    }
    body = await get_json(http, sim.graph_url + "/groups", params=params, headers=EVENTUAL)
    assert body["@odata.count"] == sum(
        1
        for c in sim.tenant.directory.containers
        if c.rule is not None and c.kind == "group" and not c.paused
    )


async def test_one_group_and_its_errors(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    target = next(c for c in sim.tenant.directory.containers if c.rule is not None)
    url = f"{sim.graph_url}/groups/{target.id}"
    group = await get_json(http, url, headers=AUTH)
    assert group["id"] == target.id
    assert group["groupTypes"] == ["DynamicMembership"]
    assert target.rule is not None
    assert group["membershipRule"] == target.rule.text
    assert group["@odata.context"].endswith("$metadata#groups/$entity")
    missing = await http.get(
        f"{sim.graph_url}/groups/00000000-0000-4000-8000-000000000000", headers=AUTH
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"
    invalid = await http.get(f"{sim.graph_url}/groups/not-a-guid", headers=AUTH)
    assert invalid.status_code == 400
    bad_state = await http.patch(
        url, content=b'{"membershipRuleProcessingState": "Off"}', headers=AUTH
    )
    assert bad_state.status_code == 400
    assert "membershipRuleProcessingState" in bad_state.json()["error"]["message"]
    bad_rule = await http.patch(
        url, content=b'{"membershipRule": "user.department -eq"}', headers=AUTH
    )
    assert bad_rule.status_code == 400
    read_only = await http.patch(url, content=b'{"id": "x"}', headers=AUTH)
    assert read_only.status_code == 400
    not_json = await http.patch(url, content=b"{", headers=AUTH)
    assert not_json.status_code == 400
    unknown_path = await http.get(f"{sim.graph_url}/nothingHere", headers=AUTH)
    assert unknown_path.status_code == 400
    assert "nothingHere" in unknown_path.json()["error"]["message"]
    patch_missing = await http.patch(
        f"{sim.graph_url}/groups/00000000-0000-4000-8000-000000000000",
        content=b'{"membershipRuleProcessingState": "Paused"}',
        headers=AUTH,
    )
    assert patch_missing.status_code == 404


async def test_dynamic_administrative_units(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    url = sim.graph_url + "/directory/administrativeUnits"
    params = {"$filter": "membershipType eq 'Dynamic'", "$count": "true"}
    body = await get_json(http, url, params=params, headers=EVENTUAL)
    units = [c for c in sim.tenant.directory.containers if c.kind == "administrative_unit"]
    assert body["@odata.count"] == len(units) > 0
    unit = body["value"][0]
    assert unit["membershipType"] == "Dynamic"
    assert unit["membershipRuleProcessingState"] == "On"
    response = await http.patch(
        f"{url}/{unit['id']}", content=b'{"membershipRuleProcessingState": "Paused"}', headers=AUTH
    )
    assert response.status_code == 204
    assert sim.tenant.directory.by_id[unit["id"]].state is ProcessingState.PAUSED
    await sim.advance(1200)
    update = await page_through(
        http,
        sim.graph_url + "/auditLogs/directoryAudits",
        {"$filter": "activityDisplayName eq 'Update administrative unit'"},
    )
    assert [e["targetResources"][0]["id"] for e in update] == [unit["id"]]
    group_path = await http.get(f"{sim.graph_url}/groups/{unit['id']}", headers=AUTH)
    assert group_path.status_code == 404


async def test_beta_processing_status(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    tenant = sim.tenant
    target = next(c for c in tenant.directory.containers if c.rule is not None and not c.paused)
    url = f"{sim.base_url}/beta/groups/{target.id}"
    params = {"$select": "membershipRuleProcessingStatus"}

    async def status() -> object:
        body = await get_json(http, url, params=params, headers=AUTH)
        assert set(body) == {"@odata.context", "membershipRuleProcessingStatus"}
        return body["membershipRuleProcessingStatus"]

    first = await status()
    assert isinstance(first, dict)
    assert first["status"] == "Succeeded"
    assert first["errorMessage"] is None
    v1 = await get_json(http, f"{sim.graph_url}/groups/{target.id}", headers=AUTH)
    assert "membershipRuleProcessingStatus" not in v1
    refused = await http.get(f"{sim.graph_url}/groups/{target.id}", params=params, headers=AUTH)
    assert refused.status_code == 400
    tenant.set_processing_state(target, ProcessingState.PAUSED, OPERATOR_ACTOR)
    assert await status() is None
    tenant.set_processing_state(target, ProcessingState.ON, OPERATOR_ACTOR)
    running = await status()
    assert isinstance(running, dict)
    assert running["status"] == "Running"
    await sim.advance(3600)
    done = await status()
    assert isinstance(done, dict)
    assert done["status"] == "Succeeded"
    tenant.set_processing_error(target, "A guest could not be added.")
    failed = await status()
    assert isinstance(failed, dict)
    assert failed["status"] == "Failed"
    assert failed["errorMessage"] == "A guest could not be added."
    assert isinstance(failed["lastMembershipUpdated"], str)
