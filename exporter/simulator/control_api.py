"""`/_sim/`: ground truth and control, outside the Graph paths (no auth, no throttle, no
faults). Documented endpoint by endpoint in docs/simulator.md."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from exporter.domain.events import ProcessingState
from exporter.domain.rules import RuleSyntaxError
from exporter.simulator.access import AuthSettings
from exporter.simulator.faults import FaultSettings
from exporter.simulator.graph_api import STATE
from exporter.simulator.model import Container
from exporter.simulator.tenant import OPERATOR_ACTOR, SimulatedTenant
from exporter.simulator.throttle import ThrottleSettings
from exporter.simulator.truth import audit_counts, queue_truth

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def _handler(function: Callable[[web.Request], Coroutine[Any, Any, Any]]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            result = await function(request)
        except ControlError as exc:
            return _reply({"error": str(exc)}, exc.status)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(body)"
            return _reply({"error": f"{where}: {first['msg']}"}, 400)
        except (ValueError, RuleSyntaxError) as exc:
            return _reply({"error": str(exc).splitlines()[0]}, 400)
        if isinstance(result, web.StreamResponse):
            return result
        return _reply(result)

    return handle


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ControlError(400, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ControlError(400, "the request body must be a JSON object")
    return body


def _float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ControlError(400, f"{name} must be a number, got {value!r}") from None


def _optional_float(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    return None if value is None or value == "" else _float(value, name)


def _tenant(request: web.Request) -> SimulatedTenant:
    return request.app[STATE].tenant


def _container(request: web.Request) -> Container:
    try:
        return _tenant(request).find(request.match_info["id"])
    except ValueError as exc:
        raise ControlError(404, str(exc)) from None


def container_summary(tenant: SimulatedTenant, container: Container) -> dict[str, Any]:
    return {
        "id": container.id,
        "displayName": container.display_name,
        "kind": container.kind.value,
        "dynamic": container.rule is not None,
        "membershipRule": None if container.rule is None else container.rule.text,
        "state": None if container.rule is None else container.state.value,
        "critical": container.critical,
        "memberType": container.member_type,
        "members": len(container.members),
        "status": tenant.processing_status(container),
        "pausedByScenario": container.index in tenant.paused_by_timeline,
    }


async def get_clock(request: web.Request) -> Any:
    clock = _tenant(request).clock
    return {"now": float(clock.now()), "speed": float(clock.speed)}


async def advance_clock(request: web.Request) -> Any:
    body = await _body(request)
    seconds = _float(body.get("seconds"), "seconds")
    if seconds < 0:
        raise ControlError(400, "seconds must be >= 0: a virtual clock only moves forward")
    tenant = _tenant(request)
    tenant.clock.advance(seconds)
    tenant.catch_up()
    return {"now": float(tenant.clock.now()), "speed": float(tenant.clock.speed)}


async def set_speed(request: web.Request) -> Any:
    body = await _body(request)
    speed = _float(body.get("speed"), "speed")
    tenant = _tenant(request)
    tenant.clock.set_speed(speed)
    return {"now": float(tenant.clock.now()), "speed": float(tenant.clock.speed)}


async def status(request: web.Request) -> Any:
    state = request.app[STATE]
    tenant = state.tenant
    dynamic = [c for c in tenant.directory.containers if c.rule is not None]
    return {
        "scenario": tenant.scenario.name,
        "seed": tenant.seed,
        "start": tenant.start,
        "clock": {"now": tenant.clock.now(), "speed": tenant.clock.speed},
        "simulated_until": tenant.now,
        "operator_actions": tenant.operator_actions,
        "users": len(tenant.directory.users),
        "devices": len(tenant.directory.devices),
        "dynamic_groups": sum(1 for c in dynamic if c.kind.value == "group"),
        "dynamic_administrative_units": sum(1 for c in dynamic if c.kind.value != "group"),
        "paused": sum(1 for c in dynamic if c.paused),
        "history": None
        if tenant.history is None
        else {
            "start": tenant.history.start_us / 1e6,
            "end": tenant.history.end_us / 1e6,
            "events": tenant.history.total(),
        },
        "live_events": len(tenant.live),
        "throttle": {
            "enabled": state.limiter.settings.enabled,
            "requests": state.limiter.settings.requests,
            "window_seconds": state.limiter.settings.window_seconds,
            "refused": state.limiter.refused,
        },
        "faults_injected": {k.value: v for k, v in tenant.faults.injected.items()},
        "graph_requests": state.requests,
    }


async def truth_audit(request: web.Request) -> Any:
    tenant = _tenant(request)
    visible_by = _optional_float(request, "visible_by")
    if visible_by is None:
        visible_by = _optional_float(request, "until")  # an alias
    if request.query.get("visible", "").lower() == "true" and visible_by is None:
        visible_by = tenant.clock.now()
    by = [b for b in request.query.get("by", "").split(",") if b]
    return audit_counts(
        tenant,
        since=_optional_float(request, "since"),
        before=_optional_float(request, "before"),
        visible_by=visible_by,
        by=by,
    )


async def truth_queue(request: web.Request) -> Any:
    return queue_truth(
        _tenant(request),
        since=_optional_float(request, "since"),
        before=_optional_float(request, "before"),
    )


async def list_groups(request: web.Request) -> Any:
    tenant = _tenant(request)
    query = request.query
    result = []
    for container in tenant.directory.containers:
        if query.get("dynamic") == "true" and container.rule is None:
            continue
        if "state" in query and (container.rule is None or container.state.value != query["state"]):
            continue
        if query.get("critical") == "true" and not container.critical:
            continue
        if "kind" in query and container.kind.value != query["kind"]:
            continue
        result.append(container_summary(tenant, container))
    return {"count": len(result), "groups": result}


async def get_group(request: web.Request) -> Any:
    tenant = _tenant(request)
    container = _container(request)
    summary = container_summary(tenant, container)
    if request.query.get("stale") == "true":
        summary["stale"] = tenant.stale_members(container)
    return summary


async def set_group_state(request: web.Request) -> Any:
    tenant = _tenant(request)
    container = _container(request)
    body = await _body(request)
    state = body.get("state")
    if state not in ("On", "Paused"):
        raise ControlError(400, "state must be 'On' or 'Paused'")
    changed = tenant.set_processing_state(container, ProcessingState(state), OPERATOR_ACTOR)
    return {"changed": changed, **container_summary(tenant, container)}


async def set_group_rule(request: web.Request) -> Any:
    tenant = _tenant(request)
    container = _container(request)
    body = await _body(request)
    rule = body.get("rule")
    if not isinstance(rule, str) or not rule.strip():
        raise ControlError(400, 'rule must be a membership rule, e.g. user.department -eq "Sales"')
    tenant.edit_rule(container, rule, OPERATOR_ACTOR)
    return container_summary(tenant, container)


async def set_processing_error(request: web.Request) -> Any:
    tenant = _tenant(request)
    container = _container(request)
    body = await _body(request)
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise ControlError(400, "message must be a string, or null to clear the error")
    tenant.set_processing_error(container, message)
    return container_summary(tenant, container)


async def start_storm(request: web.Request) -> Any:
    tenant = _tenant(request)
    body = await _body(request)
    allowed = {
        "objects",
        "attribute",
        "value",
        "over_seconds",
        "operator_actions",
        "pause_after_seconds",
        "resume_after_seconds",
        "batch_size",
        "batch_interval_seconds",
    }
    unknown = set(body) - allowed
    if unknown:
        raise ControlError(400, f"unknown storm setting(s): {', '.join(sorted(unknown))}")
    objects = int(
        _float(body.get("objects", max(1, len(tenant.directory.users) * 3 // 4)), "objects")
    )
    operator = bool(body.get("operator_actions", False))
    return tenant.start_storm(
        objects=objects,
        attribute=str(body.get("attribute", "extensionAttribute3")),
        value=str(body.get("value", "wave-5")),
        over_seconds=_float(body.get("over_seconds", 1200), "over_seconds"),
        pause_after_seconds=_float(body.get("pause_after_seconds", 7200), "pause_after_seconds")
        if operator
        else None,
        resume_after_seconds=_float(
            body.get("resume_after_seconds", 86400), "resume_after_seconds"
        ),
        batch_size=int(_float(body.get("batch_size", 100), "batch_size")),
        batch_interval_seconds=_float(
            body.get("batch_interval_seconds", 3600), "batch_interval_seconds"
        ),
    )


async def bulk_update(request: web.Request) -> Any:
    tenant = _tenant(request)
    body = await _body(request)
    values = body.get("set")
    if not isinstance(values, dict) or not values:
        raise ControlError(400, "set must be an object of attribute: value")
    object_type = body.get("object_type", "user")
    if object_type not in ("user", "device"):
        raise ControlError(400, "object_type must be 'user' or 'device'")
    touched = tenant.update_objects(
        object_type,
        values,
        count=None if body.get("count") is None else int(_float(body["count"], "count")),
        fraction=None if body.get("fraction") is None else _float(body["fraction"], "fraction"),
        where=body.get("where"),
        over_seconds=_float(body.get("over_seconds", 0), "over_seconds"),
    )
    return {"objects": touched}


async def set_load(request: web.Request) -> Any:
    body = await _body(request)
    factor = _float(body.get("factor"), "factor")
    if factor < 0:
        raise ControlError(400, "factor must be >= 0")
    tenant = _tenant(request)
    tenant.catch_up()
    tenant.set_load_factor(factor)
    return {"factor": factor}


async def get_faults(request: web.Request) -> Any:
    return _tenant(request).faults.settings.model_dump(mode="json")


async def put_faults(request: web.Request) -> Any:
    settings = FaultSettings.model_validate(await _body(request))
    _tenant(request).faults.configure(settings)
    return settings.model_dump(mode="json")


async def get_throttle(request: web.Request) -> Any:
    settings = request.app[STATE].limiter.settings
    return {
        "enabled": settings.enabled,
        "requests": settings.requests,
        "window_seconds": settings.window_seconds,
    }


async def put_throttle(request: web.Request) -> Any:
    body = await _body(request)
    unknown = set(body) - {"enabled", "requests", "window_seconds"}
    if unknown:
        raise ControlError(400, f"unknown throttle setting(s): {', '.join(sorted(unknown))}")
    current = request.app[STATE].limiter.settings
    settings = ThrottleSettings(
        enabled=bool(body.get("enabled", current.enabled)),
        requests=int(_float(body.get("requests", current.requests), "requests")),
        window_seconds=_float(body.get("window_seconds", current.window_seconds), "window_seconds"),
    )
    request.app[STATE].limiter.configure(settings)
    return await get_throttle(request)


async def get_auth(request: web.Request) -> Any:
    return request.app[STATE].auth.model_dump(mode="json")


async def put_auth(request: web.Request) -> Any:
    settings = AuthSettings.model_validate(await _body(request))
    request.app[STATE].auth = settings
    return settings.model_dump(mode="json")


async def scenario(request: web.Request) -> Any:
    tenant = _tenant(request)
    return {
        "name": tenant.scenario.name,
        "description": tenant.scenario.description,
        "seed": tenant.seed,
        "start": tenant.start,
        "operator_actions": tenant.operator_actions,
        "actions_done": tenant.actions_done,
        "critical_groups": [c.id for c in tenant.critical_groups()],
    }


def control_routes() -> list[web.RouteDef]:
    return [
        web.get("/_sim/clock", _handler(get_clock)),
        web.post("/_sim/clock/advance", _handler(advance_clock)),
        web.post("/_sim/clock/speed", _handler(set_speed)),
        web.get("/_sim/status", _handler(status)),
        web.get("/_sim/scenario", _handler(scenario)),
        web.get("/_sim/truth/audit", _handler(truth_audit)),
        web.get("/_sim/truth/queue", _handler(truth_queue)),
        web.get("/_sim/groups", _handler(list_groups)),
        web.get("/_sim/groups/{id}", _handler(get_group)),
        web.post("/_sim/groups/{id}/state", _handler(set_group_state)),
        web.post("/_sim/groups/{id}/rule", _handler(set_group_rule)),
        web.post("/_sim/groups/{id}/processing-error", _handler(set_processing_error)),
        web.post("/_sim/storm", _handler(start_storm)),
        web.post("/_sim/updates", _handler(bulk_update)),
        web.post("/_sim/load", _handler(set_load)),
        web.get("/_sim/faults", _handler(get_faults)),
        web.put("/_sim/faults", _handler(put_faults)),
        web.get("/_sim/throttle", _handler(get_throttle)),
        web.put("/_sim/throttle", _handler(put_throttle)),
        web.get("/_sim/auth", _handler(get_auth)),
        web.put("/_sim/auth", _handler(put_auth)),
    ]
