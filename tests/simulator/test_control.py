"""The /_sim control API: clock, status, scenario, auth."""

from __future__ import annotations

import asyncio

import httpx

from exporter.simulator.app import RunningSimulator, running_simulator

from .conftest import AUTH, SMALL, START, get_json


async def test_clock_advance_and_speed(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    clock = await get_json(http, sim.base_url + "/_sim/clock")
    assert clock == {"now": START, "speed": 0.0}
    raw = (await http.get(sim.base_url + "/_sim/clock")).content
    assert b'"speed":0.0' in raw  # floats, as FollowingClock's contract says
    advanced = (await http.post(sim.base_url + "/_sim/clock/advance", json={"seconds": 600})).json()
    assert advanced["now"] == START + 600
    status = await get_json(http, sim.base_url + "/_sim/status")
    assert status["simulated_until"] == START + 600
    backwards = await http.post(sim.base_url + "/_sim/clock/advance", json={"seconds": -1})
    assert backwards.status_code == 400
    fast = (await http.post(sim.base_url + "/_sim/clock/speed", json={"speed": 3600})).json()
    assert fast["speed"] == 3600
    await asyncio.sleep(0.3)
    moved = await get_json(http, sim.base_url + "/_sim/clock")
    assert moved["now"] > START + 600 + 300
    await asyncio.sleep(0.2)  # the engine follows the running clock by itself
    assert (await get_json(http, sim.base_url + "/_sim/status"))["simulated_until"] > START + 900


async def test_status_scenario_and_groups(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    status = await get_json(http, sim.base_url + "/_sim/status")
    assert status["users"] == SMALL["tenant"]["users"]
    assert status["history"]["end"] == START
    scenario = await get_json(http, sim.base_url + "/_sim/scenario")
    assert scenario["seed"] == 1
    explicit = sum(1 for g in sim.tenant.scenario.tenant.groups if g.critical)
    assert len(scenario["critical_groups"]) == SMALL["tenant"]["critical_groups"] + explicit
    critical = await get_json(http, sim.base_url + "/_sim/groups", params={"critical": "true"})
    assert {g["id"] for g in critical["groups"]} == set(scenario["critical_groups"])
    missing = await http.get(sim.base_url + "/_sim/groups/nope")
    assert missing.status_code == 404


async def test_bulk_updates_and_load(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    response = await http.post(
        sim.base_url + "/_sim/updates",
        json={"object_type": "user", "set": {"department": "Legal"}, "where": {"country": "US"}},
    )
    assert response.status_code == 200
    touched = response.json()["objects"]
    assert touched > 0
    await sim.advance(1200)
    truth = await get_json(http, sim.base_url + "/_sim/truth/audit", params={"since": str(START)})
    assert truth["series"]["trigger_user"] >= touched
    bad = await http.post(sim.base_url + "/_sim/updates", json={"set": {"nope": 1}})
    assert bad.status_code == 400
    assert (await http.post(sim.base_url + "/_sim/load", json={"factor": 0})).status_code == 200
    before = (await get_json(http, sim.base_url + "/_sim/status"))["live_events"]
    await sim.advance(3600)
    after = (await get_json(http, sim.base_url + "/_sim/status"))["live_events"]
    # no everyday load any more: only the queue finishing what was pending
    assert after - before < 200


async def test_tokens_can_be_set_at_runtime(http: httpx.AsyncClient) -> None:
    async with running_simulator("steady", overrides=SMALL, start=START, speed=0) as sim:
        await http.put(
            sim.base_url + "/_sim/auth",
            json={
                "tokens": {
                    "ops": {"permissions": ["Group.ReadWrite.All"], "app_display_name": "Ops"}
                }
            },
        )
        assert (await http.get(sim.graph_url + "/groups", headers=AUTH)).status_code == 401
        ops = {"Authorization": "Bearer ops"}
        assert (await http.get(sim.graph_url + "/groups", headers=ops)).status_code == 200
        audit = await http.get(sim.graph_url + "/auditLogs/directoryAudits", headers=ops)
        assert audit.status_code == 403
