"""`GraphClient`: msgraph-sdk with our own throttling, retries, error mapping and request counts.

* The SDK's GraphServiceClient and request adapter make every request (auth, base URL per
  cloud, URL templates, ODataError mapping). Its middleware is the default chain **without**
  the RetryHandler, so retries do not stack: ours (`retry.py`) honour fractional Retry-After
  and retry transport errors and truncated bodies too.
* Bulk listings are fetched as raw bytes (`send_primitive_async(..., "bytes", ...)`) and parsed
  with orjson (`audit.py`, `directory.py`): the SDK's typed models decode ~100 events/s.
* Audit-log requests pass a per-tenant limiter (Graph allows 5 per 10 s per app per tenant),
  spaced evenly rather than in bursts, so that a healthy run never meets a 429 whatever window
  Graph counts in.
* Tenants that share an app registration also share its app-wide audit budget
  (`exporter.graph.budget`), where live polls go before backfills.
* Every HTTP exchange is counted by endpoint and status code (`transport_error` when there was
  no response), in the middleware, so retries and re-authentications count too.
* Errors leave as `GraphError` subclasses whose messages name what to fix (the permission for
  a 401/403) and never include a token, a secret or a response body.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import orjson
from aiolimiter import AsyncLimiter
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import (
    AnonymousAuthenticationProvider,
    AuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_abstractions.request_option import RequestOption
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import BaseMiddleware, RetryHandler
from kiota_http.middleware.middleware import REQUEST_OPTIONS_KEY
from msgraph.generated.audit_logs.directory_audits.directory_audits_request_builder import (
    DirectoryAuditsRequestBuilder,
)
from msgraph.generated.directory.administrative_units.administrative_units_request_builder import (
    AdministrativeUnitsRequestBuilder,
)
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.groups.item.members.members_request_builder import MembersRequestBuilder
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]
from msgraph_core.middleware import GraphTelemetryHandler  # type: ignore[import-untyped]
from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception_type

from exporter.clock import Clock, SystemClock
from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.events import (
    INGESTED_ACTIVITIES,
    TRIGGER_ACTIVITIES,
    DirectoryObjectKind,
    ProcessingState,
)
from exporter.domain.records import DirectoryObject, ProcessingStatus
from exporter.graph.audit import (
    AuditDocument,
    AuditPage,
    format_time,
    load_audit_document,
    read_audit_page,
)
from exporter.graph.budget import AppBudget, AuditPriority
from exporter.graph.directory import (
    ADMINISTRATIVE_UNIT_FIELDS,
    GROUP_FIELDS,
    DirectoryPage,
    parse_directory_object,
    parse_directory_page,
    parse_processing_status,
)
from exporter.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphNotFoundError,
    GraphRequestError,
    GraphResponseError,
    GraphUnavailableError,
    RequestCounts,
    refuses_query,
)
from exporter.graph.guards import (
    DEFAULT_MAX_BODY_BYTES,
    BodyCapHandler,
    BodyTooLargeError,
    same_origin,
)
from exporter.graph.hygiene import TriggerChangeSample, add_trigger_page, parse_member_count
from exporter.graph.retry import RETRYABLE_STATUS, RetryPolicy, TransientError, parse_retry_after
from exporter.logs import get_logger

_T = TypeVar("_T")
log = get_logger(__name__)
ERROR_MAP: dict[str, Any] = {"XXX": ODataError}
AUDIT_PAGE_SIZE = 1000
DIRECTORY_PAGE_SIZE = 999
TRANSPORT_ERROR = "transport_error"
LIMITER_SLACK = 1.05


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    """The `endpoint` label of entra_dynamic_graph_requests_total."""
    what: str
    permission: str
    """What a 403 means the app lacks."""
    audit: bool = False
    """Subject to the audit-log rate limit."""


DIRECTORY_AUDITS = Endpoint(
    "directory_audits",
    "reading the directory audit log",
    "AuditLog.Read.All and Directory.Read.All",
    audit=True,
)
GROUPS = Endpoint("groups", "listing dynamic groups", "Group.Read.All (or Directory.Read.All)")
ADMINISTRATIVE_UNITS = Endpoint(
    "administrative_units",
    "listing dynamic administrative units",
    "AdministrativeUnit.Read.All (or Directory.Read.All)",
)
GROUP = Endpoint("group", "reading a group", "Group.Read.All (or Directory.Read.All)")
ADMINISTRATIVE_UNIT = Endpoint(
    "administrative_unit",
    "reading an administrative unit",
    "AdministrativeUnit.Read.All (or Directory.Read.All)",
)
GROUP_PROCESSING_STATUS = Endpoint(
    "group_status",
    "reading a group's processing status (beta)",
    "Group.Read.All (or Directory.Read.All)",
)
GROUP_UPDATE = Endpoint(
    "group_update",
    "changing a group's membershipRuleProcessingState",
    "Group.ReadWrite.All (and, for delegated use, the Groups Administrator role)",
)
MEMBER_COUNT = Endpoint(
    "member_count",
    "counting a group's members ($count, ConsistencyLevel: eventual)",
    "Group.Read.All (or GroupMember.Read.All, Directory.Read.All)",
)
MEMBERS = Endpoint(
    "members",
    "reading a group's members",
    "GroupMember.Read.All (or Group.Read.All, Directory.Read.All)",
)
USERS = Endpoint("users", "reading users (delta query)", "User.Read.All (or Directory.Read.All)")
DEVICES = Endpoint(
    "devices", "reading devices (delta query)", "Device.Read.All (or Directory.Read.All)"
)
ADMINISTRATIVE_UNIT_UPDATE = Endpoint(
    "administrative_unit_update",
    "changing an administrative unit's membershipRuleProcessingState",
    "AdministrativeUnit.ReadWrite.All",
)
USER_UPDATE = Endpoint(
    "user_update", "changing the canary user's property (the probe)", "User.ReadWrite.All"
)
DEVICE_UPDATE = Endpoint(
    "device_update", "changing the canary device's property (the probe)", "Device.ReadWrite.All"
)
MEMBER_GROUPS = Endpoint(
    "check_member_groups",
    "reading the canary's group membership (checkMemberGroups)",
    "GroupMember.Read.All (or Group.Read.All, Directory.Read.All)",
)


class _EndpointOption(RequestOption):
    KEY = "entra_dg.endpoint"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    @staticmethod
    def get_key() -> str:
        return _EndpointOption.KEY


class _CountingHandler(BaseMiddleware):
    """First in the chain: counts every exchange by endpoint and status code."""

    def __init__(self, counts: Counter[tuple[str, str]]) -> None:
        super().__init__()
        self._counts = counts

    async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> Any:
        options = request.extensions.get(REQUEST_OPTIONS_KEY) or {}
        option = options.get(_EndpointOption.KEY)
        name = option.endpoint.name if isinstance(option, _EndpointOption) else "other"
        try:
            response = await super().send(request, transport)
        except httpx.RequestError:
            self._counts[(name, TRANSPORT_ERROR)] += 1
            raise
        self._counts[(name, str(response.status_code))] += 1
        return response


def _http_client(
    timeout: float, counts: Counter[tuple[str, str]], max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
        http2=True,
        follow_redirects=False,
    )
    middleware: list[BaseMiddleware] = [_CountingHandler(counts), BodyCapHandler(max_body_bytes)]
    middleware += [
        m
        for m in KiotaClientFactory.get_default_middleware(None)
        if not isinstance(m, RetryHandler)
    ]
    middleware.append(GraphTelemetryHandler())
    wrapped: httpx.AsyncClient = GraphClientFactory.create_with_custom_middleware(
        middleware, client=client
    )
    return wrapped


class GraphClient:
    """One tenant's view of Graph. Owns its HTTP client and credential; `close()` them."""

    def __init__(
        self,
        *,
        root_url: str,
        credential: AsyncTokenCredential | None,
        scopes: list[str],
        audit_requests_per_10s: float = 5.0,
        retry: RetryPolicy | None = None,
        request_timeout: float = 60.0,
        wall_clock: Clock | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        app_budget: AppBudget | None = None,
        tenant: str = "",
    ) -> None:
        """`app_budget`: the app-wide audit budget this tenant (`tenant`, its name) shares with
        the others on its app registration, which then keeps its per-tenant limit too; None
        when it has the app to itself."""
        self.root_url = root_url.rstrip("/")
        self.requests: Counter[tuple[str, str]] = Counter()
        """(endpoint, status code) -> requests made; read by the snapshot."""
        self._credential = credential
        self._retry = retry or RetryPolicy()
        self._wall = wall_clock or SystemClock()
        # One request per (10 s / rate), evenly spaced, no burst, with a little slack: a
        # sliding window counted where the requests arrive sees them with network jitter.
        self._audit_limiter = AsyncLimiter(1, 10.0 / audit_requests_per_10s * LIMITER_SLACK)
        self._app_budget = app_budget
        self.tenant = tenant
        self._http = _http_client(request_timeout, self.requests, max_body_bytes)
        auth: AuthenticationProvider
        if credential is None:
            auth = AnonymousAuthenticationProvider()
        else:
            host = urlsplit(self.root_url).hostname or ""
            auth = AzureIdentityAuthenticationProvider(
                credential, scopes=scopes, allowed_hosts=[host]
            )
        self._adapter = GraphRequestAdapter(auth, client=self._http)
        self._adapter.base_url = f"{self.root_url}/v1.0"
        self.sdk = GraphServiceClient(request_adapter=self._adapter)
        """The SDK client, for typed single-object calls that need nothing else."""

    async def close(self) -> None:
        await self._http.aclose()
        if self._credential is not None:
            await self._credential.close()

    # -- audit log ----------------------------------------------------------------------------

    async def audit_pages(
        self,
        start: float,
        end: float,
        mode: AuditQueryMode = AuditQueryMode.NARROW,
        priority: AuditPriority = AuditPriority.LIVE,
    ) -> AsyncGenerator[AuditPage, None]:
        """Events with start <= activityDateTime <= end, oldest first, one page at a time.

        In the narrow mode only the activities the exporter ingests are asked for (server-side
        `$filter`); the other modes ask for the time range only (`AuditQueryMode`). The
        next page is requested as soon as this one's link is known, so that Graph prepares it
        while this one's events are read, classified and committed."""

        def load(body: bytes | None) -> AuditDocument:
            return load_audit_document(body, DIRECTORY_AUDITS.name)

        pending: asyncio.Task[AuditDocument] | None = asyncio.create_task(
            self._call(
                DIRECTORY_AUDITS,
                self._audit_request_factory(start, end, mode),
                load,
                priority=priority,
            )
        )
        try:
            while pending is not None:
                document = await pending
                pending = None
                if document.next_link is not None:
                    # Checked before this page is handed on: a page with a foreign link is not
                    # counted, and the window fails.
                    self._check_link(DIRECTORY_AUDITS, document.next_link)
                    pending = asyncio.create_task(
                        self._call(
                            DIRECTORY_AUDITS,
                            _link_factory(document.next_link),
                            load,
                            priority=priority,
                        )
                    )
                yield read_audit_page(document)
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, GraphError):
                    await pending

    def audit_filter(
        self, start: float, end: float, mode: AuditQueryMode = AuditQueryMode.NARROW
    ) -> str:
        window = (
            f"activityDateTime ge {format_time(start)} and activityDateTime le {format_time(end)}"
        )
        if not mode.filters_activities:
            return window
        activities = " or ".join(
            f"activityDisplayName eq '{activity}'" for activity in INGESTED_ACTIVITIES
        )
        return f"{window} and ({activities})"

    def _audit_request_factory(
        self, start: float, end: float, mode: AuditQueryMode
    ) -> Callable[[], RequestInformation]:
        query = DirectoryAuditsRequestBuilder.DirectoryAuditsRequestBuilderGetQueryParameters(
            filter=self.audit_filter(start, end, mode),
            orderby=["activityDateTime asc"] if mode.ordered else None,
            top=AUDIT_PAGE_SIZE,
        )

        def build() -> RequestInformation:
            return self.sdk.audit_logs.directory_audits.to_get_request_information(
                RequestConfiguration(query_parameters=query)
            )

        return build

    # -- dynamic groups and administrative units ------------------------------------------------

    async def list_dynamic_groups(self) -> list[DirectoryObject]:
        query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
            filter="groupTypes/any(c:c eq 'DynamicMembership')",
            count=True,
            select=list(GROUP_FIELDS),
            top=DIRECTORY_PAGE_SIZE,
        )

        def build() -> RequestInformation:
            config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
            config.headers.add("ConsistencyLevel", "eventual")
            return self.sdk.groups.to_get_request_information(config)

        return await self._list_directory(GROUPS, build, DirectoryObjectKind.GROUP)

    async def list_dynamic_administrative_units(self) -> list[DirectoryObject]:
        query = (
            AdministrativeUnitsRequestBuilder.AdministrativeUnitsRequestBuilderGetQueryParameters(
                filter="membershipType eq 'Dynamic'",
                count=True,
                select=list(ADMINISTRATIVE_UNIT_FIELDS),
                top=DIRECTORY_PAGE_SIZE,
            )
        )

        def build() -> RequestInformation:
            config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
            config.headers.add("ConsistencyLevel", "eventual")
            return self.sdk.directory.administrative_units.to_get_request_information(config)

        return await self._list_directory(
            ADMINISTRATIVE_UNITS, build, DirectoryObjectKind.ADMINISTRATIVE_UNIT
        )

    async def _list_directory(
        self,
        endpoint: Endpoint,
        first: Callable[[], RequestInformation],
        kind: DirectoryObjectKind,
    ) -> list[DirectoryObject]:
        objects: list[DirectoryObject] = []
        build = first
        while True:
            page: DirectoryPage = await self._call(
                endpoint, build, lambda body: parse_directory_page(body, kind, endpoint.name)
            )
            if page.next_link is None:
                objects.extend(page.objects)
                return objects
            self._check_link(endpoint, page.next_link)
            objects.extend(page.objects)
            build = _link_factory(page.next_link, consistency_eventual=True)

    async def get_group(self, group_id: str) -> DirectoryObject:
        url = f"{self._adapter.base_url}/groups/{quote(group_id)}?$select={','.join(GROUP_FIELDS)}"
        return await self._call(
            GROUP,
            _link_factory(url),
            lambda body: parse_directory_object(body, DirectoryObjectKind.GROUP, GROUP.name),
        )

    async def get_administrative_unit(self, unit_id: str) -> DirectoryObject:
        url = (
            f"{self._adapter.base_url}/directory/administrativeUnits/{quote(unit_id)}"
            f"?$select={','.join(ADMINISTRATIVE_UNIT_FIELDS)}"
        )
        return await self._call(
            ADMINISTRATIVE_UNIT,
            _link_factory(url),
            lambda body: parse_directory_object(
                body, DirectoryObjectKind.ADMINISTRATIVE_UNIT, ADMINISTRATIVE_UNIT.name
            ),
        )

    async def set_processing_state(
        self, kind: DirectoryObjectKind, object_id: str, state: ProcessingState
    ) -> RequestCounts:
        """PATCH membershipRuleProcessingState (On or Paused) of a group or unit; Graph answers
        204. Needs Group.ReadWrite.All (AdministrativeUnit.ReadWrite.All for units). Returns
        the requests it took (retries and 429s included); a GraphError raised carries them
        as `.counts`, so an operator's report can say what throttling cost."""
        if kind is DirectoryObjectKind.GROUP:
            endpoint, path = GROUP_UPDATE, f"groups/{quote(object_id)}"
        else:
            endpoint, path = (
                ADMINISTRATIVE_UNIT_UPDATE,
                f"directory/administrativeUnits/{quote(object_id)}",
            )
        url = f"{self._adapter.base_url}/{path}"
        body = orjson.dumps({"membershipRuleProcessingState": state.value})

        def build() -> RequestInformation:
            request = RequestInformation(Method.PATCH)
            request.url = url
            request.headers.add("Accept", "application/json")
            request.set_stream_content(body, "application/json")
            return request

        counts = RequestCounts()
        try:
            await self._call(endpoint, build, lambda _body: None, expect_body=False, counts=counts)
        except GraphError as exc:
            exc.counts = counts
            raise
        return counts

    async def update_object(
        self, object_type: str, object_id: str, properties: dict[str, Any]
    ) -> None:
        """PATCH a user's or device's properties, given in Graph's names (the canary probe);
        Graph answers 204. Needs User.ReadWrite.All (Device.ReadWrite.All for a device)."""
        endpoint, segment = (
            (USER_UPDATE, "users") if object_type == "user" else (DEVICE_UPDATE, "devices")
        )
        url = f"{self._adapter.base_url}/{segment}/{quote(object_id)}"
        body = orjson.dumps(properties)

        def build() -> RequestInformation:
            request = RequestInformation(Method.PATCH)
            request.url = url
            request.headers.add("Accept", "application/json")
            request.set_stream_content(body, "application/json")
            return request

        await self._call(endpoint, build, lambda _body: None, expect_body=False)

    async def is_member(self, object_type: str, object_id: str, group_id: str) -> bool:
        """Whether the user or device is a member of the group, by `POST
        /{users|devices}/{id}/checkMemberGroups` (read as of now, not from the audit log)."""
        segment = "users" if object_type == "user" else "devices"
        url = f"{self._adapter.base_url}/{segment}/{quote(object_id)}/checkMemberGroups"
        body = orjson.dumps({"groupIds": [group_id]})

        def build() -> RequestInformation:
            request = RequestInformation(Method.POST)
            request.url = url
            request.headers.add("Accept", "application/json")
            request.set_stream_content(body, "application/json")
            return request

        def parse(raw: bytes | None) -> bool:
            try:
                value = orjson.loads(raw or b"null")["value"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise GraphResponseError(
                    f"Graph's answer for {MEMBER_GROUPS.what} has no value list",
                    endpoint=MEMBER_GROUPS.name,
                    status=200,
                ) from None
            if not isinstance(value, list):
                raise GraphResponseError(
                    f"Graph's answer for {MEMBER_GROUPS.what} has no value list",
                    endpoint=MEMBER_GROUPS.name,
                    status=200,
                )
            return group_id.lower() in {str(v).lower() for v in value}

        return await self._call(MEMBER_GROUPS, build, parse)

    async def get_processing_status(self, group_id: str) -> ProcessingStatus:
        """Beta `membershipRuleProcessingStatus` of one group (poll critical groups only)."""
        url = (
            f"{self.root_url}/beta/groups/{quote(group_id)}"
            "?$select=id,membershipRuleProcessingStatus"
        )
        return await self._call(
            GROUP_PROCESSING_STATUS,
            _link_factory(url),
            lambda body: parse_processing_status(body, group_id.lower()),
        )

    def _check_link(self, endpoint: Endpoint, link: str) -> None:
        """A next link is followed only on the configured Graph base's scheme, host and port:
        anywhere else would receive the bearer token, and its answers are not Graph's."""
        if not same_origin(link, self.root_url):
            raise GraphResponseError(
                f"Graph returned a next link for {endpoint.what} that leaves {self.root_url} "
                "(another scheme, host or port); not followed, and that page is not counted: "
                "check graph_base_url and any proxy in front of Graph",
                endpoint=endpoint.name,
                status=200,
            )

    # -- tenant hygiene -------------------------------------------------------------------------

    async def count_members(self, group_id: str) -> int:
        """`GET /groups/{id}/members/$count`: an advanced query, so `ConsistencyLevel:
        eventual` (Graph answers 400 without it); the count may lag the directory a little."""

        def build() -> RequestInformation:
            config: RequestConfiguration[Any] = RequestConfiguration()
            config.headers.add("ConsistencyLevel", "eventual")
            request = self.sdk.groups.by_group_id(
                group_id
            ).members.count.to_get_request_information(config)
            request.headers.add("Accept", "text/plain")
            return request

        return await self._call(MEMBER_COUNT, build, parse_member_count)

    async def member_ids(self, group_id: str) -> frozenset[str]:
        """`GET /groups/{id}/members?$select=id`, every page: the direct members' ids (lower
        case)."""
        query = MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(
            select=["id"], top=DIRECTORY_PAGE_SIZE
        )

        def first() -> RequestInformation:
            return self.sdk.groups.by_group_id(group_id).members.to_get_request_information(
                RequestConfiguration(query_parameters=query)
            )

        ids: set[str] = set()
        build = first
        while True:
            link = await self._call(MEMBERS, build, lambda body: _add_member_ids(ids, body))
            if link is None:
                return frozenset(ids)
            self._check_link(MEMBERS, link)
            build = _link_factory(link)

    async def trigger_changes(
        self,
        start: float,
        end: float,
        *,
        max_events: int,
        mode: AuditQueryMode = AuditQueryMode.NARROW,
    ) -> TriggerChangeSample:
        """Add/Update/Delete user and device events with start <= activityDateTime <= end,
        newest first, counted by the properties they changed; reading stops after
        `max_events` (the sample says so) because the audit log allows 5 requests per 10 s.

        Asked like the audit poller asks (`AuditQueryMode`): when Graph refuses the query (400
        to the first request), the next mode down is tried; the modes without the activity
        filter read every activity of the window and count the triggers here. The sample says
        which mode was answered."""
        while True:
            try:
                return await self._trigger_changes_in_mode(start, end, max_events, mode)
            except _FirstRequestRefused as refused:
                lower = mode.step_down()
                if lower is None:
                    raise refused.error from None
                log.warning(
                    "Graph refused the trigger-change query; asking with less and filtering here",
                    refused_mode=mode.value,
                    mode=lower.value,
                    error=str(refused.error),
                )
                mode = lower

    async def _trigger_changes_in_mode(
        self, start: float, end: float, max_events: int, mode: AuditQueryMode
    ) -> TriggerChangeSample:
        window = (
            f"activityDateTime ge {format_time(start)} and activityDateTime le {format_time(end)}"
        )
        activities = " or ".join(f"activityDisplayName eq '{a}'" for a in TRIGGER_ACTIVITIES)
        query = DirectoryAuditsRequestBuilder.DirectoryAuditsRequestBuilderGetQueryParameters(
            filter=f"{window} and ({activities})" if mode.filters_activities else window,
            # Newest first (Graph's default order too): a sample cut at max_events is the most
            # recent changes.
            orderby=["activityDateTime desc"] if mode.ordered else None,
            top=AUDIT_PAGE_SIZE,
        )

        def first() -> RequestInformation:
            return self.sdk.audit_logs.directory_audits.to_get_request_information(
                RequestConfiguration(query_parameters=query)
            )

        sample = TriggerChangeSample(mode=mode)
        try:
            link = await self._call(
                DIRECTORY_AUDITS, first, lambda body: add_trigger_page(sample, body)
            )
        except GraphError as exc:
            if refuses_query(exc):
                raise _FirstRequestRefused(exc) from None
            raise
        while True:
            if link is None:
                return sample
            if sample.events >= max_events:
                sample.complete = False
                return sample
            self._check_link(DIRECTORY_AUDITS, link)
            link = await self._call(
                DIRECTORY_AUDITS, _link_factory(link), lambda body: add_trigger_page(sample, body)
            )

    async def object_delta_page(
        self, url: str, object_type: str, parse: Callable[[bytes | None], _T]
    ) -> _T:
        """One page of `/users/delta` or `/devices/delta` (exporter.graph.objects reads them),
        at most 999 objects."""
        endpoint = USERS if object_type == "user" else DEVICES

        def build() -> RequestInformation:
            request = _link_factory(url)()
            request.headers.add("Prefer", "odata.maxpagesize=999")
            return request

        return await self._call(endpoint, build, parse)

    # -- the one request path ---------------------------------------------------------------------

    async def _call(
        self,
        endpoint: Endpoint,
        build: Callable[[], RequestInformation],
        parse: Callable[[bytes | None], _T],
        *,
        expect_body: bool = True,
        counts: RequestCounts | None = None,
        priority: AuditPriority = AuditPriority.BACKFILL,
    ) -> _T:
        """`priority`: an audit request's place in the app-wide budget (anything but a live
        poll's page waits behind the live polls)."""
        throttled = 0

        def stop(state: RetryCallState) -> bool:
            return self._retry.should_stop(state, throttled)

        def note_attempt(state: RetryCallState) -> None:
            nonlocal throttled
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            if isinstance(error, TransientError) and error.retry_after is not None:
                throttled += 1
            if counts is not None and isinstance(error, TransientError) and error.status == 429:
                counts.throttled += 1

        retrying = AsyncRetrying(
            stop=stop,
            wait=self._retry.wait_seconds,
            retry=retry_if_exception_type(TransientError),
            before_sleep=None,
            after=note_attempt,
            sleep=asyncio.sleep,
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if counts is not None:
                        counts.requests += 1
                    body = await self._attempt(endpoint, build, expect_body, priority)
                    return parse(body)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            reason = last.reason if isinstance(last, TransientError) else repr(last)
            status = last.status if isinstance(last, TransientError) else None
            raise GraphUnavailableError(
                f"Graph is unavailable for {endpoint.what} after "
                f"{exc.last_attempt.attempt_number} attempts: {reason}",
                endpoint=endpoint.name,
                status=status,
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(
        self,
        endpoint: Endpoint,
        build: Callable[[], RequestInformation],
        expect_body: bool,
        priority: AuditPriority,
    ) -> bytes | None:
        request = build()
        request.add_request_options([_EndpointOption(endpoint)])
        try:
            if endpoint.audit:
                if self._app_budget is not None:
                    # The shared budget keeps this tenant's own limit as well.
                    await self._app_budget.acquire(self.tenant, priority)
                    return await self._send(request, expect_body)
                async with self._audit_limiter:
                    return await self._send(request, expect_body)
            return await self._send(request, expect_body)
        except APIError as exc:
            raise self._map_api_error(endpoint, exc) from None
        except BodyTooLargeError as exc:
            raise GraphResponseError(
                f"Graph's answer for {endpoint.what} was not read: {exc} "
                "(polling.max_response_bytes)",
                endpoint=endpoint.name,
            ) from None
        except httpx.RequestError as exc:
            raise TransientError(f"{type(exc).__name__}: {_first_line(str(exc))}") from None
        except ServiceRequestError as exc:  # the login endpoint could not be reached
            raise TransientError(f"token request failed: {_first_line(str(exc))}") from None
        except ClientAuthenticationError as exc:
            raise GraphAuthError(
                f"cannot obtain a token for {endpoint.what}: {_first_line(exc.message)}; "
                "check tenant_id, client_id and the credential",
                endpoint=endpoint.name,
            ) from None

    async def _send(self, request: RequestInformation, expect_body: bool) -> bytes | None:
        if expect_body:
            body: bytes | None = await self._adapter.send_primitive_async(
                request, "bytes", ERROR_MAP
            )
            return body
        await self._adapter.send_no_response_content_async(request, ERROR_MAP)
        return None

    def _map_api_error(self, endpoint: Endpoint, exc: APIError) -> Exception:
        status = exc.response_status_code or 0
        code, message = _odata_error(exc)
        if status in RETRYABLE_STATUS:
            headers = dict(exc.response_headers or {})
            retry_after = parse_retry_after(headers, self._wall)
            return TransientError(
                f"HTTP {status}" + (f" {code}" if code else ""),
                status=status,
                retry_after=retry_after,
            )
        detail = f"HTTP {status}" + (f" {code}" if code else "")
        if status == 401:
            return GraphAuthError(
                f"Graph rejected the credentials for {endpoint.what} ({detail}); check tenant_id, "
                "client_id and the secret, certificate or identity",
                endpoint=endpoint.name,
                status=status,
                code=code,
            )
        if status == 403:
            return GraphAuthError(
                f"permission denied for {endpoint.what} ({detail}): grant the app "
                f"{endpoint.permission} (application permission, with admin consent)",
                endpoint=endpoint.name,
                status=status,
                code=code,
            )
        if status == 404:
            return GraphNotFoundError(
                f"not found while {endpoint.what} ({detail})",
                endpoint=endpoint.name,
                status=status,
                code=code,
            )
        if 500 <= status < 600:
            return TransientError(detail, status=status)
        return GraphRequestError(
            f"Graph refused {endpoint.what} ({detail})" + (f": {message}" if message else ""),
            endpoint=endpoint.name,
            status=status,
            code=code,
        )


def _add_member_ids(ids: set[str], body: bytes | None) -> str | None:
    """One page of a member listing into `ids`; its nextLink."""
    try:
        document = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        raise TransientError("a member listing that is not JSON") from None
    values = document.get("value") if isinstance(document, dict) else None
    if not isinstance(values, list):
        raise TransientError("a member listing without a value list")
    ids.update(
        str(item["id"]).lower() for item in values if isinstance(item, dict) and "id" in item
    )
    link = document.get("@odata.nextLink")
    return link if isinstance(link, str) and link else None


class _FirstRequestRefused(Exception):
    """Graph answered 400 to a query's first request: the query mode is not accepted."""

    def __init__(self, error: GraphError) -> None:
        super().__init__(str(error))
        self.error = error


def _link_factory(
    url: str, *, consistency_eventual: bool = False
) -> Callable[[], RequestInformation]:
    """A request for a URL given whole (an @odata.nextLink is followed verbatim)."""

    def build() -> RequestInformation:
        request = RequestInformation(Method.GET)
        request.url = url
        request.headers.add("Accept", "application/json")
        if consistency_eventual:
            request.headers.add("ConsistencyLevel", "eventual")
        return request

    return build


def _odata_error(exc: APIError) -> tuple[str | None, str | None]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    return (
        code if isinstance(code, str) and code else None,
        _first_line(message)[:200] if isinstance(message, str) and message else None,
    )


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


__all__ = [
    "ADMINISTRATIVE_UNITS",
    "ADMINISTRATIVE_UNIT_UPDATE",
    "DIRECTORY_AUDITS",
    "GROUPS",
    "GROUP_PROCESSING_STATUS",
    "GROUP_UPDATE",
    "GraphClient",
    "GraphError",
]
