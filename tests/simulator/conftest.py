"""Shared pieces for the simulator's tests: a small tenant on a frozen clock, the real
msgraph-sdk pointed at it, and a brute-force view of every event for comparisons."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from azure.core.credentials import AccessToken
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import RetryHandler
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]

from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.tenant import SimulatedTenant
from exporter.simulator.timefmt import MICROS

START = 1_767_600_000.0  # 2026-01-05T08:00:00Z, a Monday morning
SMALL: dict[str, Any] = {
    "tenant": {
        "users": 300,
        "devices": 60,
        "dynamic_groups": 16,
        "administrative_units": 2,
        "static_groups": 3,
        "critical_groups": 2,
        "paused_groups": 1,
    },
    "history": {"days": 1},
    "load": {"user_updates_per_hour": 60, "device_updates_per_hour": 20},
}
SCOPES = ["https://graph.microsoft.com/.default"]
AUTH = {"Authorization": "Bearer test-token"}


class FakeCredential:
    """An azure-identity-shaped async credential: the SDK asks it for a token."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, 4_102_444_800)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


def graph_client(
    sim: RunningSimulator, *, token: str = "test-token", retries: bool = True
) -> GraphServiceClient:
    """The real SDK against the simulator. Without `retries` the retry handler is left out, so a
    429 reaches the caller as an ODataError instead of being retried."""
    auth = AzureIdentityAuthenticationProvider(FakeCredential(token), scopes=SCOPES)
    if retries:
        adapter = GraphRequestAdapter(auth)
    else:
        middleware = [
            m
            for m in KiotaClientFactory.get_default_middleware(None)
            if not isinstance(m, RetryHandler)
        ]
        adapter = GraphRequestAdapter(
            auth, client=GraphClientFactory.create_with_custom_middleware(middleware)
        )
    adapter.base_url = sim.graph_url
    return GraphServiceClient(request_adapter=adapter)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(
        "steady", overrides=SMALL, seed=1, start=START, speed=0, throttle=False
    ) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def get_json(client: httpx.AsyncClient, url: str, **kwargs: Any) -> Any:
    response = await client.get(url, **kwargs)
    assert response.status_code == 200, response.text
    return orjson.loads(response.content)


async def page_through(
    client: httpx.AsyncClient, url: str, params: dict[str, str], headers: dict[str, str] = AUTH
) -> list[dict[str, Any]]:
    """Every item of a listing, following @odata.nextLink verbatim."""
    body = await get_json(client, url, params=params, headers=headers)
    items: list[dict[str, Any]] = list(body["value"])
    while "@odata.nextLink" in body:
        body = await get_json(client, body["@odata.nextLink"], headers=headers)
        items.extend(body["value"])
    return items


def every_event(tenant: SimulatedTenant, visible_by: float) -> list[dict[str, Any]]:
    """Brute force: every event written and visible by `visible_by`, decoded, in time order
    (history from its streams one by one, then the live log)."""
    visible_us = round(visible_by * MICROS)
    found: list[tuple[int, dict[str, Any]]] = []
    history = tenant.history
    if history is not None:
        for h in range(history.hours):
            for k, n in enumerate(history.counts[h]):
                for j in range(n):
                    t, bits = history._time_bits(h, k, j, n)
                    if t >= history.end_us or history.visible_us(h, k, j, t) > visible_us:
                        continue
                    found.append((t, orjson.loads(history.render(h, k, j, t, bits))))
    live = tenant.live
    for i, payload in enumerate(live.payloads):
        if live.visible[i] <= visible_us:
            found.append((live.times[i], orjson.loads(payload)))
    found.sort(key=lambda pair: pair[0])
    return [event for _, event in found]
