"""Users and devices over HTTP: listing with $select and paging, delta rounds and tokens, PATCH."""

from __future__ import annotations

import httpx
import pytest

from exporter.domain.events import Series
from exporter.simulator.app import RunningSimulator
from exporter.simulator.truth import audit_counts

from .conftest import AUTH, get_json, page_through


async def test_users_and_devices_list_with_select_and_paging(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    users = sim.tenant.directory.users
    params = {"$select": "id,department,onPremisesExtensionAttributes", "$top": "70"}
    listed = await page_through(http, sim.graph_url + "/users", params)
    assert [u["id"] for u in listed] == users.ids
    first = listed[0]
    assert set(first) == {"id", "department", "onPremisesExtensionAttributes"}
    assert first["department"] == users.get(0, "department")
    assert first["onPremisesExtensionAttributes"]["extensionAttribute3"] == users.get(
        0, "extensionAttribute3"
    )
    devices = await page_through(
        http, sim.graph_url + "/devices", {"$select": "operatingSystem", "$top": "999"}
    )
    assert [d["operatingSystem"] for d in devices] == sim.tenant.directory.devices.columns[
        "deviceOSType"
    ]
    response = await http.get(
        sim.graph_url + "/users", params={"$select": "deviceOSType"}, headers=AUTH
    )
    assert response.status_code == 400
    assert "Could not find a property named 'deviceOSType'" in response.text


async def test_delta_rounds_return_what_changed_since_the_last_link(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    url = sim.graph_url + "/users/delta"
    prefer = {**AUTH, "Prefer": "odata.maxpagesize=120"}
    seen: list[str] = []
    body = await get_json(http, url, params={"$select": "id,city"}, headers=prefer)
    while "@odata.nextLink" in body:
        assert len(body["value"]) == 120
        seen += [u["id"] for u in body["value"]]
        body = await get_json(http, body["@odata.nextLink"], headers=prefer)
    seen += [u["id"] for u in body["value"]]
    users = sim.tenant.directory.users
    assert seen == users.ids
    delta_link = body["@odata.deltaLink"]
    quiet = await get_json(http, delta_link, headers=AUTH)
    assert quiet["value"] == []
    sim.tenant.apply_object_changes("user", {users.ids[7]: {"city": "Oslo"}})
    changed = await get_json(http, quiet["@odata.deltaLink"], headers=AUTH)
    assert changed["value"] == [{"id": users.ids[7], "city": "Oslo"}]  # the round's $select
    latest = await get_json(http, url, params={"$deltatoken": "latest"}, headers=AUTH)
    assert latest["value"] == []
    await sim.advance(8 * 86400)
    expired = await http.get(changed["@odata.deltaLink"], headers=AUTH)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "syncStateNotFound"


async def test_patch_changes_attributes_and_triggers_processing(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    users = sim.tenant.directory.users
    before = audit_counts(sim.tenant, visible_by=1e12)
    response = await http.patch(
        f"{sim.graph_url}/users/{users.ids[3]}",
        json={
            "department": "Legal",
            "onPremisesExtensionAttributes": {"extensionAttribute3": "w9"},
        },
        headers=AUTH,
    )
    assert response.status_code == 204
    assert users.get(3, "department") == "Legal"
    assert users.get(3, "extensionAttribute3") == "w9"
    after = audit_counts(sim.tenant, visible_by=1e12)
    key = Series.TRIGGER_USER.value
    assert after["series"].get(key, 0) == before["series"].get(key, 0) + 1
    for body, status in [({"id": "x"}, 400), ({"nosuch": 1}, 400)]:
        response = await http.patch(
            f"{sim.graph_url}/users/{users.ids[3]}", json=body, headers=AUTH
        )
        assert response.status_code == status
    missing = await http.patch(
        f"{sim.graph_url}/users/00000000-0000-0000-0000-000000000000",
        json={"city": "x"},
        headers=AUTH,
    )
    assert missing.status_code == 404


@pytest.mark.parametrize("token", ["garbage", "eyJ4Ijo"])
async def test_a_bad_delta_token_is_a_bad_request(
    sim: RunningSimulator, http: httpx.AsyncClient, token: str
) -> None:
    response = await http.get(
        sim.graph_url + "/users/delta", params={"$deltatoken": token}, headers=AUTH
    )
    assert response.status_code == 400
