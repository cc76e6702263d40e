"""Users and devices as Graph serves them: `GET /users`, `/devices` (`$select`, `$top`, paging),
their delta queries (`/users/delta`, `/devices/delta`: `$select`, `Prefer:
odata.maxpagesize`, `$skiptoken` pages, an `@odata.deltaLink` whose `$deltatoken` returns what
changed since; `$deltatoken=latest`; tokens older than 7 days are 410 Gone), and `PATCH
/users/{id}`, `/devices/{id}` (attribute changes, which trigger processing as any update does),
and `POST /users/{id}/checkMemberGroups` (or devices: which of the given groups it is in).

Objects are rendered with Graph's property names (`exporter.graph.objects.GRAPH_FIELDS`:
`user.extensionAttribute3` is `onPremisesExtensionAttributes.extensionAttribute3`,
`device.deviceOSType` is `operatingSystem`). Delta pages carry every selected property of an
object that changed (Graph may send more than the changed ones; the reader merges).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import orjson

from exporter.domain.events import DirectoryObjectKind
from exporter.domain.rules import ObjectType
from exporter.graph.objects import GRAPH_FIELDS, GraphField
from exporter.simulator.errors import GraphError, bad_request, not_found
from exporter.simulator.model import ObjectTable
from exporter.simulator.tenant import SimulatedTenant

USER_READ: Final = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
USER_WRITE: Final = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
DEVICE_READ: Final = frozenset(
    {"Device.Read.All", "Device.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
DEVICE_WRITE: Final = frozenset({"Device.ReadWrite.All", "Directory.ReadWrite.All"})
MAX_TOP: Final = 999
DEFAULT_TOP: Final = 100
DEFAULT_DELTA_PAGE: Final = 200
DELTA_TOKEN_LIFETIME: Final = 7 * 86400.0
"""Graph keeps delta tokens 7 days (graph-facts.md); an older one is 410 Gone."""
# Columns of the simulator that are not Graph properties of the object.
_NOT_PROPERTIES: Final = frozenset({"memberOf"})


@dataclass(frozen=True, slots=True)
class Resource:
    object_type: ObjectType
    segment: str
    type_name: str
    read: frozenset[str]
    write: frozenset[str]


USERS: Final = Resource(ObjectType.USER, "users", "user", USER_READ, USER_WRITE)
DEVICES: Final = Resource(ObjectType.DEVICE, "devices", "device", DEVICE_READ, DEVICE_WRITE)


def graph_properties(resource: Resource, table: ObjectTable) -> dict[str, list[tuple[str, str]]]:
    """Graph property -> [(simulator column, key inside a complex property or "")]."""
    fields = GRAPH_FIELDS[resource.object_type]
    result: dict[str, list[tuple[str, str]]] = {"id": []}
    for column in table.columns:
        if column in _NOT_PROPERTIES:
            continue
        field = fields.get(column) or GraphField(column)
        result.setdefault(field.name, []).append((column, field.key or ""))
    return result


def parse_select(resource: Resource, table: ObjectTable, text: str | None) -> list[str]:
    known = {name.lower(): name for name in graph_properties(resource, table)}
    if text is None:
        return list(known.values())
    selected: list[str] = []
    for raw in text.split(","):
        canonical = known.get(raw.strip().lower())
        if canonical is None:
            raise bad_request(
                f"Could not find a property named '{raw.strip()}' on type "
                f"'microsoft.graph.{resource.type_name}'."
            )
        if canonical not in selected:
            selected.append(canonical)
    if "id" not in selected:
        selected.insert(0, "id")
    return selected


def render(
    resource: Resource, table: ObjectTable, indexes: list[int], select: list[str]
) -> list[dict[str, Any]]:
    sources = graph_properties(resource, table)
    return [_render_one(sources, table, index, select) for index in indexes]


def _render_one(
    sources: dict[str, list[tuple[str, str]]], table: ObjectTable, index: int, select: list[str]
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in select:
        if name == "id":
            body["id"] = table.ids[index]
            continue
        parts = sources[name]
        if len(parts) == 1 and not parts[0][1]:
            body[name] = table.columns[parts[0][0]][index]
        else:
            body[name] = {key: table.columns[column][index] for column, key in parts}
    return body


def _encode(state: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def _decode(token: str, what: str) -> dict[str, Any]:
    try:
        state = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        state = None
    if not isinstance(state, dict):
        raise bad_request(f"Invalid {what}.")
    return state


def list_page(
    resource: Resource,
    tenant: SimulatedTenant,
    params: Mapping[str, str],
    *,
    base_url: str,
    version: str,
) -> bytes:
    for key in params:
        if key.startswith("$") and key not in ("$select", "$top", "$skiptoken"):
            raise bad_request(f"Query option '{key}' is not supported here by the simulator.")
    table = tenant.directory.tables[str(resource.object_type)]
    select = parse_select(resource, table, params.get("$select"))
    top = DEFAULT_TOP
    if "$top" in params:
        top = int(params["$top"]) if params["$top"].isdigit() else -1
        if not 1 <= top <= MAX_TOP:
            raise bad_request(f"Invalid page size specified: '{params['$top']}'.")
    start = 0
    if "$skiptoken" in params:
        start = int(_decode(params["$skiptoken"], "$skiptoken").get("at", 0))
    end = min(len(table), start + top)
    body: dict[str, Any] = {
        "@odata.context": f"{base_url}/{version}/$metadata#{resource.segment}({','.join(select)})",
        "value": render(resource, table, list(range(start, end)), select),
    }
    if end < len(table):
        carried = "&".join(
            f"{k}={quote(params[k], safe='')}" for k in ("$select", "$top") if k in params
        )
        body["@odata.nextLink"] = (
            f"{base_url}/{version}/{resource.segment}?{carried}{'&' if carried else ''}"
            f"$skiptoken={_encode({'at': end})}"
        )
    return orjson.dumps(body)


def delta_page(
    resource: Resource,
    tenant: SimulatedTenant,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    base_url: str,
    version: str,
) -> bytes:
    """One page of a delta round. A round is (since, select): objects whose last change is
    after `since` (-1: every object), in index order; the last page's deltaLink starts the
    next round at the table's change number when this round began."""
    for key in params:
        if key.startswith("$") and key not in ("$select", "$skiptoken", "$deltatoken"):
            raise bad_request(f"Query option '{key}' is not supported here by the simulator.")
    table = tenant.directory.tables[str(resource.object_type)]
    now = tenant.clock.now()
    if "$skiptoken" in params:
        state = _decode(params["$skiptoken"], "$skiptoken")
    elif "$deltatoken" in params:
        if params["$deltatoken"] == "latest":
            state = {"since": table.version, "select": params.get("$select"), "latest": True}
        else:
            state = _decode(params["$deltatoken"], "$deltatoken")
            if now - float(state.get("issued", 0.0)) > DELTA_TOKEN_LIFETIME:
                raise GraphError(
                    410,
                    "syncStateNotFound",
                    "The delta token has expired or is no longer valid; a full resync is required.",
                )
    else:
        state = {"since": -1, "select": params.get("$select")}
    select_text = state.get("select")
    select = parse_select(resource, table, select_text if isinstance(select_text, str) else None)
    since = int(state.get("since", -1))
    until = int(state.get("until", table.version))
    after = int(state.get("after", -1))
    size = DEFAULT_DELTA_PAGE
    prefer = headers.get("Prefer", "")
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "odata.maxpagesize" and value.strip().isdigit():
            size = max(1, min(MAX_TOP, int(value)))
    versions = table.versions
    page: list[int] = []
    if not state.get("latest"):
        index = after + 1
        while index < len(table) and len(page) <= size:
            if versions[index] > since:
                page.append(index)
            index += 1
    more = len(page) > size
    page = page[:size]
    body: dict[str, Any] = {
        "@odata.context": f"{base_url}/{version}/$metadata#{resource.segment}({','.join(select)})",
        "value": render(resource, table, page, select),
    }
    base = f"{base_url}/{version}/{resource.segment}/delta"
    if more:
        token = _encode({"since": since, "until": until, "after": page[-1], "select": select_text})
        body["@odata.nextLink"] = f"{base}?$skiptoken={token}"
    else:
        token = _encode({"since": until, "select": select_text, "issued": now})
        body["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
    return orjson.dumps(body)


def parse_patch(resource: Resource, table: ObjectTable, raw: bytes) -> dict[str, Any]:
    """A PATCH body in Graph's names -> simulator column -> value."""
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise bad_request("Unable to read JSON request payload.")
    sources = {k.lower(): (k, v) for k, v in graph_properties(resource, table).items()}
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        found = sources.get(key.lower())
        if found is None or found[0] == "id":
            raise bad_request(
                f"Invalid property '{key}' for resource 'microsoft.graph.{resource.type_name}'."
            )
        name, parts = found
        if len(parts) == 1 and not parts[0][1]:
            values[parts[0][0]] = value
            continue
        if not isinstance(value, dict):
            raise bad_request(f"Invalid value specified for property '{name}'.")
        by_key = {k.lower(): column for column, k in parts}
        for sub, sub_value in value.items():
            column = by_key.get(sub.lower())
            if column is None:
                raise bad_request(f"Invalid property '{sub}' of '{name}'.")
            values[column] = sub_value
    return values


MAX_CHECKED_GROUPS: Final = 20
"""Graph's limit of group ids per checkMemberGroups request."""


def check_member_groups(
    resource: Resource, tenant: SimulatedTenant, index: int, raw: bytes
) -> bytes:
    """`POST /users/{id}/checkMemberGroups` (or devices): of the `groupIds` given, those the
    object is a member of, as the directory stands now (so the canary probe sees a membership
    change the moment processing applies it, before the audit log shows it)."""
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    ids = body.get("groupIds") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("Unable to read JSON request payload: groupIds must be a list of ids.")
    if len(ids) > MAX_CHECKED_GROUPS:
        raise bad_request(f"Too many group ids: at most {MAX_CHECKED_GROUPS} per request.")
    object_type = str(resource.object_type)
    found = []
    for group_id in ids:
        container = tenant.directory.by_id.get(group_id.lower())
        if (
            container is not None
            and container.kind is DirectoryObjectKind.GROUP
            and container.member_type == object_type
            and index in container.members
        ):
            found.append(container.id)
    return orjson.dumps(
        {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)",
            "value": found,
        }
    )


def find_index(resource: Resource, tenant: SimulatedTenant, object_id: str) -> int:
    table = tenant.directory.tables[str(resource.object_type)]
    index = table.index_of.get(object_id.lower())
    if index is None:
        raise not_found(object_id)
    return index
