"""The audit log's throttle (real time) and the injectable faults."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from exporter.simulator.app import RunningSimulator

from .conftest import AUTH, get_json, page_through


async def _audit(http: httpx.AsyncClient, sim: RunningSimulator, **params: str) -> httpx.Response:
    return await http.get(sim.graph_url + "/auditLogs/directoryAudits", params=params, headers=AUTH)


async def test_throttle_refuses_over_the_limit_and_admits_after_retry_after(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    settings = await http.put(
        sim.base_url + "/_sim/throttle",
        json={"enabled": True, "requests": 3, "window_seconds": 0.6},
    )
    assert settings.json() == {"enabled": True, "requests": 3, "window_seconds": 0.6}
    for _ in range(3):
        assert (await _audit(http, sim, **{"$top": "1"})).status_code == 200
    refused = await _audit(http, sim, **{"$top": "1"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "TooManyRequests"
    wait = float(refused.headers["Retry-After"])
    assert 0 < wait <= 0.6
    groups = await http.get(sim.graph_url + "/groups", headers=AUTH)
    assert groups.status_code == 200  # the limit is the audit log's
    await asyncio.sleep(wait + 0.02)
    assert (await _audit(http, sim, **{"$top": "1"})).status_code == 200
    await http.put(sim.base_url + "/_sim/throttle", json={"enabled": False})
    for _ in range(12):
        assert (await _audit(http, sim, **{"$top": "1"})).status_code == 200


async def _faults(http: httpx.AsyncClient, sim: RunningSimulator, **settings: object) -> None:
    response = await http.put(sim.base_url + "/_sim/faults", json=settings)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("rate", "status", "code"),
    [
        ("error_500_rate", 500, "InternalServerError"),
        ("error_503_rate", 503, "ServiceUnavailable"),
        ("error_504_rate", 504, "GatewayTimeout"),
    ],
)
async def test_server_errors(
    sim: RunningSimulator, http: httpx.AsyncClient, rate: str, status: int, code: str
) -> None:
    await _faults(http, sim, **{rate: 1.0})
    response = await _audit(http, sim)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    # scope "audit" (the default) leaves the other paths alone; "all" does not
    assert (await http.get(sim.graph_url + "/groups", headers=AUTH)).status_code == 200
    await _faults(http, sim, **{rate: 1.0, "scope": "all"})
    assert (await http.get(sim.graph_url + "/groups", headers=AUTH)).status_code == status
    await _faults(http, sim, enabled=False, **{rate: 1.0})
    assert (await _audit(http, sim)).status_code == 200


async def test_throttle_bursts_carry_a_fractional_retry_after(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await _faults(
        http,
        sim,
        throttle_burst_rate=1.0,
        throttle_burst_length=2,
        throttle_retry_after_seconds=2.128,
    )
    response = await _audit(http, sim)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2.128"


async def test_resets_and_truncated_bodies_are_transport_errors(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await _faults(http, sim, reset_rate=1.0)
    with pytest.raises(httpx.TransportError):
        await _audit(http, sim)
    await _faults(http, sim, truncate_rate=1.0)
    with pytest.raises(httpx.TransportError):
        await _audit(http, sim)
    await _faults(http, sim)
    assert (await _audit(http, sim)).status_code == 200


async def test_slow_responses(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    await _faults(http, sim, slow_rate=1.0, slow_seconds=0.3)
    started = time.monotonic()
    assert (await _audit(http, sim, **{"$top": "1"})).status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_duplicated_events_across_pages(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    url = sim.graph_url + "/auditLogs/directoryAudits"
    params = {"$top": "50", "$orderby": "activityDateTime asc"}
    clean = [e["id"] for e in await page_through(http, url, params)]
    await _faults(http, sim, duplicate_rate=1.0, duplicate_max_events=3)
    noisy = [e["id"] for e in await page_through(http, url, params)]
    assert len(noisy) > len(clean)
    assert set(noisy) == set(clean)
    assert len(set(clean)) == len(clean)


async def test_late_events_appear_much_later_than_usual(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await _faults(http, sim, late_rate=1.0, late_min_seconds=7200, late_max_seconds=7200)
    start = sim.clock.now()
    await sim.advance(3600)
    truth = sim.base_url + "/_sim/truth/audit"
    written = await get_json(http, truth, params={"since": str(start)})
    visible = await get_json(http, truth, params={"since": str(start), "visible": "true"})
    assert written["total"] > 0
    assert visible["total"] == 0
    await sim.advance(2 * 3600 + 900)  # the 2 h, plus the usual delay of at most 15 min
    later = await get_json(
        http, truth, params={"since": str(start), "before": str(start + 3600), "visible": "true"}
    )
    assert later["total"] == written["total"]
    status = await get_json(http, sim.base_url + "/_sim/status")
    assert status["faults_injected"]["late"] >= written["total"]


async def test_fault_settings_are_validated(sim: RunningSimulator, http: httpx.AsyncClient) -> None:
    response = await http.put(sim.base_url + "/_sim/faults", json={"error_500_rate": 2})
    assert response.status_code == 400
    assert "error_500_rate" in response.json()["error"]
    response = await http.put(sim.base_url + "/_sim/faults", json={"eror_500_rate": 0.1})
    assert response.status_code == 400
