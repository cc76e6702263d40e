"""The real msgraph-sdk against the simulator over HTTP: what the exporter and the ops tools
will do against Graph, and the errors they must handle."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.serialization.parsable_factory import ParsableFactory
from msgraph.generated.audit_logs.directory_audits.directory_audits_request_builder import (
    DirectoryAuditsRequestBuilder,
)
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.models.group import Group
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from exporter.simulator.access import TokenGrant
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.throttle import ThrottleSettings
from exporter.simulator.truth import audit_counts

from .conftest import SMALL, START, graph_client

ERRORS: dict[str, type[ParsableFactory]] = {"XXX": ODataError}
DYNAMIC = "groupTypes/any(c:c eq 'DynamicMembership')"


def _advanced(top: int, extra_filter: str = "") -> RequestConfiguration[Any]:
    parameters = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        filter=DYNAMIC + extra_filter,
        count=True,
        select=["id", "displayName", "membershipRule", "membershipRuleProcessingState"],
        top=top,
    )
    config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=parameters)
    config.headers.add("ConsistencyLevel", "eventual")
    return config


async def test_lists_every_dynamic_group_with_the_advanced_query_headers(
    sim: RunningSimulator,
) -> None:
    client = graph_client(sim)
    page = await client.groups.get(request_configuration=_advanced(top=5))
    assert page is not None
    assert page.value is not None
    expected = [
        c for c in sim.tenant.directory.containers if c.rule is not None and c.kind == "group"
    ]
    assert page.odata_count == len(expected)
    names = [g.display_name for g in page.value]
    while page.odata_next_link:
        assert page.odata_next_link.startswith(sim.base_url)
        page = await client.groups.with_url(page.odata_next_link).get(
            request_configuration=_advanced(top=5)
        )
        assert page is not None
        assert page.value is not None
        names.extend(g.display_name for g in page.value)
    assert names == [c.display_name for c in expected]


async def test_pages_through_the_audit_log_to_the_end_as_raw_bytes(sim: RunningSimulator) -> None:
    await sim.advance(2 * 3600)
    client = graph_client(sim)
    builder = client.audit_logs.directory_audits
    parameters = DirectoryAuditsRequestBuilder.DirectoryAuditsRequestBuilderGetQueryParameters(
        orderby=["activityDateTime asc"], top=1000
    )
    info = builder.to_get_request_information(RequestConfiguration(query_parameters=parameters))
    ids: list[str] = []
    times: list[str] = []
    pages = 0
    while True:
        adapter: Any = client.request_adapter  # typed as returning None by kiota's stubs
        raw = await adapter.send_primitive_async(info, "bytes", ERRORS)
        assert isinstance(raw, bytes)
        body = orjson.loads(raw)
        pages += 1
        ids.extend(event["id"] for event in body["value"])
        times.extend(event["activityDateTime"] for event in body["value"])
        link = body.get("@odata.nextLink")
        if not link:
            break
        info = builder.with_url(link).to_get_request_information()
    truth = audit_counts(sim.tenant, visible_by=sim.clock.now())
    assert pages > 1
    assert len(ids) == len(set(ids)) == truth["total"]
    assert times == sorted(times)


async def test_patch_pauses_a_group_and_a_get_sees_it(sim: RunningSimulator) -> None:
    client = graph_client(sim)
    target = next(c for c in sim.tenant.directory.containers if c.rule is not None and not c.paused)
    body = Group()
    body.membership_rule_processing_state = "Paused"
    await client.groups.by_group_id(target.id).patch(body)
    group = await client.groups.by_group_id(target.id).get()
    assert group is not None
    assert group.membership_rule_processing_state == "Paused"
    paused = await client.groups.get(
        request_configuration=_advanced(
            top=999, extra_filter=" and membershipRuleProcessingState eq 'Paused'"
        )
    )
    assert paused is not None
    assert paused.value is not None
    assert target.id in {g.id for g in paused.value}


async def test_a_filter_graph_does_not_support_is_a_400_odata_error(sim: RunningSimulator) -> None:
    client = graph_client(sim)
    parameters = DirectoryAuditsRequestBuilder.DirectoryAuditsRequestBuilderGetQueryParameters(
        filter="category eq 'GroupManagement'"
    )
    with pytest.raises(ODataError) as caught:
        await client.audit_logs.directory_audits.get(
            RequestConfiguration(query_parameters=parameters)
        )
    assert caught.value.response_status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "BadRequest"
    assert "category" in (caught.value.error.message or "")


async def test_count_without_consistency_level_is_a_400(sim: RunningSimulator) -> None:
    client = graph_client(sim)
    parameters = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        filter=DYNAMIC, count=True
    )
    with pytest.raises(ODataError) as caught:
        await client.groups.get(RequestConfiguration(query_parameters=parameters))
    assert caught.value.response_status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "Request_BadRequest"


async def test_an_unknown_token_is_a_401_and_a_missing_permission_a_403() -> None:
    tokens = {
        "reader": TokenGrant(permissions=("Group.Read.All",), app_display_name="Reader app"),
    }
    async with running_simulator(
        "steady", overrides=SMALL, seed=1, start=START, speed=0, throttle=False, tokens=tokens
    ) as sim:
        with pytest.raises(ODataError) as unknown:
            await graph_client(sim, token="stolen").groups.get()
        assert unknown.value.response_status_code == 401
        assert unknown.value.error is not None
        assert unknown.value.error.code == "InvalidAuthenticationToken"

        reader = graph_client(sim, token="reader")
        groups = await reader.groups.get()
        assert groups is not None
        assert groups.value
        with pytest.raises(ODataError) as audit:
            await reader.audit_logs.directory_audits.get()
        assert audit.value.response_status_code == 403
        assert audit.value.error is not None
        assert audit.value.error.code == "Authorization_RequestDenied"
        body = Group()
        body.membership_rule_processing_state = "Paused"
        target = groups.value[0].id
        assert target is not None
        with pytest.raises(ODataError) as patch:
            await reader.groups.by_group_id(target).patch(body)
        assert patch.value.response_status_code == 403


async def test_the_sixth_audit_request_in_ten_seconds_is_a_429_with_retry_after() -> None:
    async with running_simulator(
        "steady",
        overrides=SMALL,
        seed=1,
        start=START,
        speed=0,
        throttle=ThrottleSettings(requests=5, window_seconds=10),
    ) as sim:
        client = graph_client(sim, retries=False)
        parameters = DirectoryAuditsRequestBuilder.DirectoryAuditsRequestBuilderGetQueryParameters(
            top=1
        )
        config = RequestConfiguration(query_parameters=parameters)
        for _ in range(5):
            await client.audit_logs.directory_audits.get(config)
        with pytest.raises(ODataError) as caught:
            await client.audit_logs.directory_audits.get(config)
        assert caught.value.response_status_code == 429
        assert caught.value.error is not None
        assert caught.value.error.code == "TooManyRequests"
        headers = {k.lower(): v for k, v in (caught.value.response_headers or {}).items()}
        retry_after = float(headers["retry-after"])
        assert 0 < retry_after <= 10
        # groups are not behind the audit log's limit
        assert await client.groups.get() is not None
