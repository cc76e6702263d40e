"""Groups and administrative units as Graph returns them: listing with `$filter`, `$select`,
`$top`, `$count` (an advanced query: it needs `ConsistencyLevel: eventual`), paging; one object;
PATCH of the processing state and the rule."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.simulator import odata
from exporter.simulator.errors import GraphError, bad_request, unsupported_query
from exporter.simulator.model import Container
from exporter.simulator.tenant import SimulatedTenant
from exporter.simulator.timefmt import MICROS, graph_timestamp_seconds

MAX_TOP = 999
DEFAULT_TOP = 100

Getter = Callable[[Container, SimulatedTenant], Any]


def _created(c: Container, t: SimulatedTenant) -> str:
    return graph_timestamp_seconds(round(c.created * MICROS))


def _security_identifier(c: Container, t: SimulatedTenant) -> str:
    parts = [int(c.id.replace("-", "")[i : i + 8], 16) for i in range(0, 32, 8)]
    return "S-1-12-1-" + "-".join(str(p) for p in parts)


GROUP_PROPERTIES: dict[str, Getter] = {
    "id": lambda c, t: c.id,
    "deletedDateTime": lambda c, t: None,
    "classification": lambda c, t: None,
    "createdDateTime": _created,
    "creationOptions": lambda c, t: [],
    "description": lambda c, t: c.description,
    "displayName": lambda c, t: c.display_name,
    "expirationDateTime": lambda c, t: None,
    "groupTypes": lambda c, t: ["DynamicMembership"] if c.rule is not None else [],
    "isAssignableToRole": lambda c, t: None,
    "mail": lambda c, t: None,
    "mailEnabled": lambda c, t: False,
    "mailNickname": lambda c, t: (
        c.id[:8] + "-" + "".join(ch for ch in c.display_name if ch.isalnum())[:40]
    ),
    "membershipRule": lambda c, t: None if c.rule is None else c.rule.text,
    "membershipRuleProcessingState": lambda c, t: None if c.rule is None else c.state.value,
    "onPremisesDomainName": lambda c, t: None,
    "onPremisesLastSyncDateTime": lambda c, t: None,
    "onPremisesNetBiosName": lambda c, t: None,
    "onPremisesSamAccountName": lambda c, t: None,
    "onPremisesSecurityIdentifier": lambda c, t: None,
    "onPremisesSyncEnabled": lambda c, t: None,
    "preferredDataLocation": lambda c, t: None,
    "preferredLanguage": lambda c, t: None,
    "proxyAddresses": lambda c, t: [],
    "renewedDateTime": _created,
    "resourceBehaviorOptions": lambda c, t: [],
    "resourceProvisioningOptions": lambda c, t: [],
    "securityEnabled": lambda c, t: True,
    "securityIdentifier": _security_identifier,
    "theme": lambda c, t: None,
    "visibility": lambda c, t: None,
    "onPremisesProvisioningErrors": lambda c, t: [],
    "serviceProvisioningErrors": lambda c, t: [],
}
# Returned only when asked for, and only by beta.
BETA_ONLY: dict[str, Getter] = {
    "membershipRuleProcessingStatus": lambda c, t: t.processing_status(c),
}
UNIT_PROPERTIES: dict[str, Getter] = {
    "id": lambda c, t: c.id,
    "deletedDateTime": lambda c, t: None,
    "description": lambda c, t: c.description,
    "displayName": lambda c, t: c.display_name,
    "isMemberManagementRestricted": lambda c, t: None,
    "membershipRule": lambda c, t: None if c.rule is None else c.rule.text,
    "membershipRuleProcessingState": lambda c, t: None if c.rule is None else c.state.value,
    "membershipType": lambda c, t: "Dynamic" if c.rule is not None else None,
    "visibility": lambda c, t: None,
}


@dataclass(frozen=True, slots=True)
class Collection:
    """groups or administrativeUnits."""

    kind: DirectoryObjectKind
    segment: str  # "groups" | "directory/administrativeUnits"
    context: str  # "groups" | "directory/administrativeUnits"
    type_name: str  # "group" | "administrativeUnit"
    resource: str  # "Group" | "AdministrativeUnit" (error messages)
    properties: dict[str, Getter]

    def members(self, tenant: SimulatedTenant) -> list[Container]:
        return [c for c in tenant.directory.containers if c.kind is self.kind]

    def property_names(self, beta: bool) -> dict[str, str]:
        names = dict(self.properties)
        if beta and self.kind is DirectoryObjectKind.GROUP:
            names.update(BETA_ONLY)
        return {name.lower(): name for name in names}

    def getter(self, name: str) -> Getter:
        return self.properties.get(name) or BETA_ONLY[name]


GROUPS = Collection(
    DirectoryObjectKind.GROUP, "groups", "groups", "group", "Group", GROUP_PROPERTIES
)
UNITS = Collection(
    DirectoryObjectKind.ADMINISTRATIVE_UNIT,
    "directory/administrativeUnits",
    "directory/administrativeUnits",
    "administrativeUnit",
    "AdministrativeUnit",
    UNIT_PROPERTIES,
)


def parse_select(collection: Collection, text: str | None, *, beta: bool) -> list[str] | None:
    if text is None:
        return None
    known = collection.property_names(beta)
    selected: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        canonical = known.get(name.lower())
        if canonical is None:
            raise bad_request(
                f"Could not find a property named '{name}' on type "
                f"'microsoft.graph.{collection.type_name}'."
            )
        if canonical not in selected:
            selected.append(canonical)
    return selected


def render_object(
    collection: Collection, container: Container, tenant: SimulatedTenant, select: list[str] | None
) -> dict[str, Any]:
    names = select if select is not None else list(collection.properties)
    return {name: collection.getter(name)(container, tenant) for name in names}


# -- filters ----------------------------------------------------------------------------------

Predicate = Callable[[Container], bool]


class _FilterCompiler:
    def __init__(self, collection: Collection, advanced: bool) -> None:
        self.collection = collection
        self.advanced = advanced

    def _needs_advanced(self, what: str) -> None:
        if not self.advanced:
            raise unsupported_query(
                f"Operator '{what}' is not supported because the required parameters might be "
                "missing. Try adding $count with a value of true and set the ConsistencyLevel "
                "header to eventual."
            )

    def _unsupported(self, name: str) -> GraphError:
        return unsupported_query(
            f"Unsupported or invalid query filter clause specified for property '{name}' of "
            f"resource '{self.collection.resource}'."
        )

    def compile(self, node: odata.Node) -> Predicate:
        if isinstance(node, odata.And):
            parts = [self.compile(item) for item in node.items]
            return lambda c: all(p(c) for p in parts)
        if isinstance(node, odata.Or):
            parts = [self.compile(item) for item in node.items]
            return lambda c: any(p(c) for p in parts)
        if isinstance(node, odata.Not):
            self._needs_advanced("not")
            inner = self.compile(node.item)
            return lambda c: not inner(c)
        if isinstance(node, odata.Lambda):
            return self._lambda(node)
        if isinstance(node, odata.Call):
            return self._call(node)
        return self._comparison(node)

    def _lambda(self, node: odata.Lambda) -> Predicate:
        body = node.body
        if (
            self.collection.kind is not DirectoryObjectKind.GROUP
            or node.collection.name != "groupTypes"
            or node.quantifier != "any"
            or not isinstance(body, odata.Comparison)
            or body.prop.path != (node.variable,)
            or body.op != "eq"
            or body.value.kind != "string"
        ):
            raise self._unsupported(node.collection.name)
        wanted = str(body.value.value).lower()
        getter = self.collection.getter("groupTypes")
        return lambda c: any(t.lower() == wanted for t in getter(c, _NO_TENANT))

    def _call(self, node: odata.Call) -> Predicate:
        name = node.prop.name
        if node.function != "startswith":
            self._needs_advanced(node.function)
        if (
            name not in ("displayName", "description", "mailNickname")
            or node.value.kind != "string"
        ):
            raise self._unsupported(name)
        getter = self.collection.getter(name)
        text = str(node.value.value).lower()
        method = {
            "startswith": str.startswith,
            "endswith": str.endswith,
            "contains": str.__contains__,
        }[node.function]
        return lambda c: isinstance(v := getter(c, _NO_TENANT), str) and method(v.lower(), text)

    def _comparison(self, node: odata.Comparison) -> Predicate:
        name = node.prop.name
        canonical = {n.lower(): n for n in self.collection.properties}.get(name.lower())
        filterable = {
            "id",
            "displayName",
            "description",
            "membershipRuleProcessingState",
            "membershipRule",
            "membershipType",
            "mailEnabled",
            "securityEnabled",
            "mailNickname",
        }
        if canonical is None or canonical not in filterable or node.op not in ("eq", "ne"):
            raise self._unsupported(name)
        if node.op == "ne":
            self._needs_advanced("ne")
        getter = self.collection.getter(canonical)
        value = node.value.value
        if node.value.kind in ("string", "guid"):
            text = str(value)
            if canonical == "membershipRuleProcessingState" and text not in ("On", "Paused"):
                return (lambda c: False) if node.op == "eq" else (lambda c: True)
            lowered = text.lower()

            def matches(c: Container) -> bool:
                v = getter(c, _NO_TENANT)
                return isinstance(v, str) and v.lower() == lowered

        elif node.value.kind in ("bool", "null"):

            def matches(c: Container) -> bool:
                return bool(getter(c, _NO_TENANT) == value)

        else:
            raise self._unsupported(name)
        return matches if node.op == "eq" else (lambda c: not matches(c))


class _NoTenant:
    """Filterable properties never need the tenant."""


_NO_TENANT: Any = _NoTenant()


@dataclass(frozen=True, slots=True)
class ListRequest:
    predicate: Predicate | None
    select: list[str] | None
    top: int
    count: bool
    order_by_name: bool | None  # None: creation order; True asc; False desc
    after: int  # position already served
    carried: tuple[tuple[str, str], ...]


def parse_list_request(
    collection: Collection, params: Mapping[str, str], headers: Mapping[str, str], *, beta: bool
) -> ListRequest:
    eventual = headers.get("ConsistencyLevel", "").strip().lower() == "eventual"
    allowed = {"$filter", "$select", "$top", "$count", "$skiptoken", "$orderby"}
    for key in params:
        if key.startswith("$") and key not in allowed:
            raise bad_request(f"Query option '{key}' is not supported here by the simulator.")
    count = False
    if "$count" in params:
        value = params["$count"].lower()
        if value not in ("true", "false"):
            raise bad_request(f"Invalid value '{params['$count']}' for $count.")
        count = value == "true"
        if count and not eventual:
            raise bad_request("$count is not currently supported.")
    top = DEFAULT_TOP
    if "$top" in params:
        try:
            top = int(params["$top"])
        except ValueError:
            top = -1
        if not 1 <= top <= MAX_TOP:
            raise bad_request(
                f"Invalid page size specified: '{params['$top']}'. Must be between 1 and "
                f"{MAX_TOP} inclusive."
            )
    predicate = None
    if "$filter" in params:
        try:
            tree = odata.parse_filter(params["$filter"])
        except odata.FilterSyntaxError as exc:
            raise bad_request(str(exc)) from None
        predicate = _FilterCompiler(collection, advanced=eventual and count).compile(tree)
    order: bool | None = None
    if "$orderby" in params:
        parts = params["$orderby"].split()
        if (
            not parts
            or parts[0] != "displayName"
            or len(parts) > 2
            or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc"))
        ):
            raise bad_request(f"Sorting by '{params['$orderby']}' is not supported.")
        order = not (len(parts) == 2 and parts[1].lower() == "desc")
    after = -1
    if "$skiptoken" in params:
        after = _decode_position(params["$skiptoken"])
    carried = tuple(
        (key, params[key])
        for key in ("$filter", "$select", "$top", "$count", "$orderby")
        if key in params
    )
    select = parse_select(collection, params.get("$select"), beta=beta)
    return ListRequest(predicate, select, top, count, order, after, carried)


def _encode_position(position: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode().rstrip("=")


def _decode_position(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.startswith("pos:") or not text[4:].lstrip("-").isdigit():
        raise bad_request("Invalid $skiptoken.")
    return int(text[4:])


def list_page(
    collection: Collection,
    tenant: SimulatedTenant,
    request: ListRequest,
    *,
    base_url: str,
    version: str,
) -> bytes:
    """Creation order pages by container index (stable while states change); displayName
    order pages by offset."""
    candidates = collection.members(tenant)
    if request.predicate is not None:
        candidates = [c for c in candidates if request.predicate(c)]
    if request.order_by_name is not None:
        candidates.sort(key=lambda c: c.display_name.lower(), reverse=not request.order_by_name)
        start = request.after + 1
        window = candidates[start : start + request.top + 1]
        last_position = start + min(len(window), request.top) - 1
    else:
        remaining = [c for c in candidates if c.index > request.after]
        window = remaining[: request.top + 1]
        last_position = window[min(len(window), request.top) - 1].index if window else request.after
    page = window[: request.top]
    context = f"{base_url}/{version}/$metadata#{collection.context}"
    if request.select is not None:
        context += "(" + ",".join(request.select) + ")"
    body: dict[str, Any] = {"@odata.context": context}
    if request.count:
        body["@odata.count"] = len(candidates)
    if len(window) > request.top:
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in request.carried)
        token = _encode_position(last_position)
        separator = "&" if query else ""
        body["@odata.nextLink"] = (
            f"{base_url}/{version}/{collection.segment}?{query}{separator}$skiptoken={token}"
        )
    body["value"] = [render_object(collection, c, tenant, request.select) for c in page]
    return orjson.dumps(body)


def find_object(collection: Collection, tenant: SimulatedTenant, object_id: str) -> Container:
    from exporter.simulator.errors import not_found

    if not _is_guid(object_id):
        raise bad_request(f"Invalid object identifier '{object_id}'.")
    container = tenant.directory.by_id.get(object_id.lower())
    if container is None or container.kind is not collection.kind:
        raise not_found(object_id)
    return container


def get_object(
    collection: Collection,
    tenant: SimulatedTenant,
    object_id: str,
    params: Mapping[str, str],
    *,
    base_url: str,
    version: str,
) -> bytes:
    for key in params:
        if key.startswith("$") and key != "$select":
            raise bad_request(f"Query option '{key}' is not supported here by the simulator.")
    container = find_object(collection, tenant, object_id)
    select = parse_select(collection, params.get("$select"), beta=version == "beta")
    context = f"{base_url}/{version}/$metadata#{collection.context}"
    if select is not None:
        context += "(" + ",".join(select) + ")"
    body = {
        "@odata.context": context + "/$entity",
        **render_object(collection, container, tenant, select),
    }
    return orjson.dumps(body)


def count_members(
    collection: Collection,
    tenant: SimulatedTenant,
    object_id: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
) -> bytes:
    """`GET /groups/{id}/members/$count`: the member count as plain text. Like Graph, an
    advanced query: without `ConsistencyLevel: eventual` it is a 400."""
    if headers.get("ConsistencyLevel", "").strip().lower() != "eventual":
        # Graph's words for an advanced query asked without the header (as for $count=true).
        raise bad_request("$count is not currently supported.")
    for key in params:
        raise bad_request(f"Query option '{key}' is not supported here by the simulator.")
    container = find_object(collection, tenant, object_id)
    return str(len(container.members)).encode()


WRITABLE = ("membershipRuleProcessingState", "membershipRule", "displayName", "description")


@dataclass(frozen=True, slots=True)
class Patch:
    state: ProcessingState | None = None
    rule: str | None = None
    display_name: str | None = None
    description: str | None = None
    description_set: bool = False


def parse_patch(collection: Collection, container: Container, raw: bytes) -> Patch:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format.",
        )
    known = {name.lower(): name for name in collection.properties}
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        canonical = known.get(key.lower())
        if canonical is None:
            raise bad_request(
                f"Invalid property '{key}' for resource 'microsoft.graph.{collection.type_name}'."
            )
        if canonical not in WRITABLE:
            raise bad_request(f"Property '{canonical}' is read-only and cannot be set.")
        fields[canonical] = value

    def invalid(name: str) -> GraphError:
        return bad_request(
            f"Invalid value specified for property '{name}' of resource '{collection.resource}'."
        )

    state = None
    if "membershipRuleProcessingState" in fields:
        value = fields["membershipRuleProcessingState"]
        if value not in ("On", "Paused") or container.rule is None:
            raise invalid("membershipRuleProcessingState")
        state = ProcessingState(value)
    rule = fields.get("membershipRule")
    if "membershipRule" in fields and (not isinstance(rule, str) or container.rule is None):
        raise invalid("membershipRule")
    name = fields.get("displayName")
    if "displayName" in fields and (not isinstance(name, str) or not name.strip()):
        raise invalid("displayName")
    description = fields.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid("description")
    return Patch(state, rule, name, description, "description" in fields)


def _is_guid(text: str) -> bool:
    parts = text.split("-")
    return (
        len(text) == 36
        and [len(p) for p in parts] == [8, 4, 4, 4, 12]
        and all(ch in "0123456789abcdefABCDEF" for p in parts for ch in p)
    )


MEMBERS_PAGE_DEFAULT = 100
MEMBERS_PAGE_MAX = 999


def list_members(
    collection: Collection,
    tenant: SimulatedTenant,
    object_id: str,
    params: Mapping[str, str],
    *,
    base_url: str,
    version: str,
) -> bytes:
    """`GET /groups/{id}/members?$select=id`: the direct members' ids (users or devices, with
    their `@odata.type`), `$top` 1 to 999 (default 100), paged by `$skiptoken`. Only `id` can be
    selected here (the impact preflight's memberOf cascade reads no more)."""
    for key in params:
        if key not in ("$select", "$top", "$skiptoken"):
            raise bad_request(f"Query option '{key}' is not supported here by the simulator.")
    if params.get("$select", "id").strip().lower() != "id":
        raise bad_request("The simulator selects only 'id' of a group's members.")
    top = MEMBERS_PAGE_DEFAULT
    if "$top" in params:
        text = params["$top"]
        if not text.isdigit() or not 1 <= int(text) <= MEMBERS_PAGE_MAX:
            raise bad_request("Invalid page size specified.")
        top = int(text)
    container = find_object(collection, tenant, object_id)
    start = _decode_position(params["$skiptoken"]) if "$skiptoken" in params else 0
    table = tenant.directory.tables[container.member_type]
    members = sorted(container.members)
    page = members[start : start + top]
    odata_type = f"#microsoft.graph.{container.member_type}"
    body: dict[str, Any] = {
        "@odata.context": f"{base_url}/{version}/$metadata#directoryObjects(id)",
        "value": [{"@odata.type": odata_type, "id": table.ids[m]} for m in page],
    }
    if start + top < len(members):
        body["@odata.nextLink"] = (
            f"{base_url}/{version}/{collection.segment}/{container.id}/members?$select=id"
            f"&$top={top}&$skiptoken={_encode_position(start + top)}"
        )
    return orjson.dumps(body)
