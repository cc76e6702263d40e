"""The Graph paths of the simulator (aiohttp): status codes, error bodies and headers as the
real service sends them, plus authentication, the audit log's throttle and injected faults."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from exporter.domain.rules import RuleSyntaxError
from exporter.logs import get_logger
from exporter.simulator import objects_api
from exporter.simulator.access import (
    AUDIT_READ,
    GROUP_READ,
    GROUP_WRITE,
    UNIT_READ,
    UNIT_WRITE,
    AuthSettings,
    TokenGrant,
    authenticate,
    require,
)
from exporter.simulator.audit_api import audit_page, parse_audit_request
from exporter.simulator.directory_api import (
    GROUPS,
    UNITS,
    Collection,
    count_members,
    find_object,
    get_object,
    list_members,
    list_page,
    parse_list_request,
    parse_patch,
)
from exporter.simulator.errors import (
    GraphError,
    error_body,
    server_error,
    throttled,
    unknown_segment,
)
from exporter.simulator.faults import FaultKind, FaultPlan
from exporter.simulator.tenant import SimulatedTenant
from exporter.simulator.throttle import SlidingWindowLimiter, ThrottleSettings

GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
AUDIT_PATH = "/v1.0/auditLogs/directoryAudits"
DIAGNOSTIC = (
    '{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"5","ScaleUnit":"000",'
    '"RoleInstance":"SIM"}}'
)

log = get_logger(__name__)


@dataclass(eq=False)
class SimulatorState:
    tenant: SimulatedTenant
    limiter: SlidingWindowLimiter = field(
        default_factory=lambda: SlidingWindowLimiter(ThrottleSettings())
    )
    auth: AuthSettings = field(default_factory=AuthSettings)
    requests: dict[str, int] = field(default_factory=dict)
    path_prefix: str = ""
    """Where this tenant is mounted when one process serves many (`exporter.simulator.fleet`):
    `/tenants/NAME`; empty for a lone tenant."""
    app_limiter: SlidingWindowLimiter | None = None
    """The app-wide audit limit shared by every tenant of the process (Graph: 122 per 10 s per
    app across all tenants); None for a lone tenant."""


STATE: web.AppKey[SimulatorState] = web.AppKey("simulator_state", SimulatorState)
# Who is calling and what faults apply, set by the middleware for the handler (each request runs
# in its own task, so a context variable is per request).
_GRANT: contextvars.ContextVar[TokenGrant] = contextvars.ContextVar("graph_grant")
_PLAN: contextvars.ContextVar[FaultPlan] = contextvars.ContextVar("graph_fault_plan")


def _base_url(request: web.Request) -> str:
    """The server's own address as the client reached it: nextLinks must lead back here."""
    return f"{request.scheme}://{request.host}{request.app[STATE].path_prefix}"


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, headers={"Content-Type": GRAPH_JSON})


def _reset_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER 0: close() sends RST instead of FIN, as a middlebox dropping the flow does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@web.middleware
async def graph_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    state = request.app[STATE]
    path = request.path.removeprefix(state.path_prefix)
    if path.startswith("/_sim"):
        return await handler(request)
    tenant = state.tenant
    request_id = str(uuid.uuid4())
    client_request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    is_audit = path.rstrip("/") == AUDIT_PATH
    route = request.match_info.route.resource
    key = route.canonical if route is not None else request.path
    state.requests[key] = state.requests.get(key, 0) + 1
    plan = FaultPlan()
    response: web.StreamResponse
    try:
        _GRANT.set(authenticate(state.auth, request.headers))
        plan = tenant.faults.plan(is_audit=is_audit)
        _PLAN.set(plan)
        if plan.delay_seconds:
            await asyncio.sleep(plan.delay_seconds)
        if plan.fail is FaultKind.RESET:
            _reset_connection(request)
            # aiohttp's attempt to send this finds the connection gone and gives up quietly
            return web.Response(status=500)
        if plan.fail is FaultKind.THROTTLE:
            raise throttled(plan.retry_after)
        if plan.fail in (FaultKind.ERROR_500, FaultKind.ERROR_503, FaultKind.ERROR_504):
            raise server_error(int(plan.fail.value.removeprefix("error_")))
        if is_audit and request.method == "GET":
            wait = _admit(state)
            if wait is not None:
                raise throttled(wait)
        response = await handler(request)
    except GraphError as exc:
        body = error_body(
            exc.code,
            exc.message,
            now=tenant.clock.now(),
            request_id=request_id,
            client_request_id=client_request_id,
            inner=exc.inner,
        )
        response = _json(body, exc.status)
        response.headers.update(exc.headers)
    response.headers["request-id"] = request_id
    response.headers["client-request-id"] = client_request_id
    response.headers["x-ms-ags-diagnostic"] = DIAGNOSTIC
    response.headers["OData-Version"] = "4.0"
    if plan.truncate and isinstance(response, web.Response) and response.body:
        return await _send_truncated(request, response)
    return response


def _admit(state: SimulatorState) -> float | None:
    """Both of Graph's audit limits: the tenant's and, when the process serves a fleet, the
    app's across tenants. A request either limit refuses counts against neither; the wait is
    the longer of the two."""
    own = state.limiter.wait()
    shared = state.app_limiter.wait() if state.app_limiter is not None else None
    if own is None and shared is None:
        state.limiter.admit()
        if state.app_limiter is not None:
            state.app_limiter.admit()
        return None
    if own is not None:
        state.limiter.refused += 1
    if shared is not None and state.app_limiter is not None:
        state.app_limiter.refused += 1
    return max(own or 0.0, shared or 0.0)


async def _send_truncated(request: web.Request, response: web.Response) -> web.StreamResponse:
    body = response.body
    assert isinstance(body, bytes)
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: max(1, len(body) // 2)])
    _reset_connection(request)
    return stream  # finishing it fails on the closed connection, which aiohttp takes quietly


def _grant(request: web.Request) -> TokenGrant:
    return _GRANT.get()


async def directory_audits(request: web.Request) -> web.StreamResponse:
    require(_grant(request), AUDIT_READ)
    state = request.app[STATE]
    tenant = state.tenant
    now = tenant.clock.now()
    switches = tenant.faults.settings
    parsed = parse_audit_request(
        request.query,
        now=now,
        retention_seconds=tenant.retention_seconds,
        apps=tenant.apps,
        refuse_or=switches.enabled and switches.refuse_or_filters,
        refuse_orderby_with_or=switches.enabled and switches.refuse_orderby_with_or,
    )
    plan = _PLAN.get()
    body, _ = audit_page(
        tenant,
        parsed,
        base_url=_base_url(request),
        visible_by=now,
        duplicate_events=plan.duplicate_events,
    )
    return _json(body)


def _collection_routes(
    collection: Collection, read: frozenset[str], write: frozenset[str]
) -> list[web.RouteDef]:
    async def list_objects(request: web.Request) -> web.StreamResponse:
        require(_grant(request), read)
        version = request.match_info["version"]
        parsed = parse_list_request(
            collection, request.query, request.headers, beta=version == "beta"
        )
        tenant = request.app[STATE].tenant
        return _json(
            list_page(collection, tenant, parsed, base_url=_base_url(request), version=version)
        )

    async def get_one(request: web.Request) -> web.StreamResponse:
        require(_grant(request), read)
        version = request.match_info["version"]
        tenant = request.app[STATE].tenant
        return _json(
            get_object(
                collection,
                tenant,
                request.match_info["id"],
                request.query,
                base_url=_base_url(request),
                version=version,
            )
        )

    async def member_count(request: web.Request) -> web.StreamResponse:
        require(_grant(request), read)
        tenant = request.app[STATE].tenant
        body = count_members(
            collection, tenant, request.match_info["id"], request.query, request.headers
        )
        return web.Response(body=body, content_type="text/plain")

    async def members(request: web.Request) -> web.StreamResponse:
        require(_grant(request), read)
        tenant = request.app[STATE].tenant
        return _json(
            list_members(
                collection,
                tenant,
                request.match_info["id"],
                request.query,
                base_url=_base_url(request),
                version=request.match_info["version"],
            )
        )

    async def patch_one(request: web.Request) -> web.StreamResponse:
        grant = _grant(request)
        require(grant, write)
        tenant = request.app[STATE].tenant
        container = find_object(collection, tenant, request.match_info["id"])
        patch = parse_patch(collection, container, await request.read())
        actor = grant.actor()
        tenant.catch_up()
        if patch.rule is not None:
            try:
                tenant.edit_rule(container, patch.rule, actor)
            except (RuleSyntaxError, ValueError) as exc:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Invalid value specified for property 'membershipRule' of resource "
                    f"'{collection.resource}': {str(exc).splitlines()[0]}",
                ) from None
        if patch.display_name is not None:
            container.rename(patch.display_name)
        if patch.description_set:
            container.description = patch.description
        if patch.state is not None:
            tenant.set_processing_state(container, patch.state, actor)
        return web.Response(status=204)

    base = f"/{{version:v1.0|beta}}/{collection.segment}"
    return [
        web.get(base, list_objects),
        web.get(base + "/{id}", get_one),
        web.get(base + "/{id}/members/$count", member_count),
        web.get(base + "/{id}/members", members),
        web.patch(base + "/{id}", patch_one),
    ]


def _object_routes(resource: objects_api.Resource) -> list[web.RouteDef]:
    """Users or devices: listing, delta query, PATCH of attributes (objects_api)."""

    async def list_objects(request: web.Request) -> web.StreamResponse:
        require(_grant(request), resource.read)
        tenant = request.app[STATE].tenant
        tenant.catch_up()
        return _json(
            objects_api.list_page(
                resource,
                tenant,
                request.query,
                base_url=_base_url(request),
                version=request.match_info["version"],
            )
        )

    async def delta(request: web.Request) -> web.StreamResponse:
        require(_grant(request), resource.read)
        tenant = request.app[STATE].tenant
        tenant.catch_up()
        return _json(
            objects_api.delta_page(
                resource,
                tenant,
                request.query,
                request.headers,
                base_url=_base_url(request),
                version=request.match_info["version"],
            )
        )

    async def patch_one(request: web.Request) -> web.StreamResponse:
        grant = _grant(request)
        require(grant, resource.write)
        tenant = request.app[STATE].tenant
        table = tenant.directory.tables[str(resource.object_type)]
        index = objects_api.find_index(resource, tenant, request.match_info["id"])
        values = objects_api.parse_patch(resource, table, await request.read())
        tenant.catch_up()
        tenant.apply_object_changes(
            str(resource.object_type), {table.ids[index]: values}, actor=grant.actor()
        )
        return web.Response(status=204)

    async def check_member_groups(request: web.Request) -> web.StreamResponse:
        require(_grant(request), GROUP_READ | resource.read)
        tenant = request.app[STATE].tenant
        index = objects_api.find_index(resource, tenant, request.match_info["id"])
        raw = await request.read()
        tenant.catch_up()
        return _json(objects_api.check_member_groups(resource, tenant, index, raw))

    base = f"/{{version:v1.0|beta}}/{resource.segment}"
    return [
        web.get(base, list_objects),
        web.get(base + "/delta", delta),
        web.patch(base + "/{id}", patch_one),
        web.post(base + "/{id}/checkMemberGroups", check_member_groups),
    ]


async def unknown_path(request: web.Request) -> web.StreamResponse:
    tail = request.match_info.get("tail", "")
    segment = tail.split("/")[0] if tail else request.path
    raise unknown_segment(segment)


def graph_routes() -> list[web.RouteDef]:
    return [
        web.get(AUDIT_PATH, directory_audits),
        *_collection_routes(GROUPS, GROUP_READ, GROUP_WRITE),
        *_collection_routes(UNITS, UNIT_READ, UNIT_WRITE),
        *_object_routes(objects_api.USERS),
        *_object_routes(objects_api.DEVICES),
        web.route("*", "/{version:v1.0|beta}/{tail:.*}", unknown_path),
    ]
