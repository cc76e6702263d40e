"""Users and devices from Graph, as the rule evaluator reads them, for the impact preflight.

* Only what the rules read is asked for: `$select` of the Graph properties behind the rules'
  property names (a rule's `user.extensionAttribute3` is Graph's
  `onPremisesExtensionAttributes.extensionAttribute3`, `device.deviceOSType` is
  `operatingSystem`, ...). `GRAPH_FIELDS` is that mapping, in one place.
* One mechanism for both reads: a delta query. Its first round (`/users/delta?$select=...`)
  pages through every object and ends with an `@odata.deltaLink`; following that link later
  returns only what changed since (Graph keeps delta tokens 7 days). A 410 Gone, or a link
  for a different `$select`, means a full read again.
* Pages are read one at a time (`Prefer: odata.maxpagesize=999`), so a full read of 200,000
  users is about 200 requests: far inside the directory's budget of resource units per 10 s,
  and a 429 is answered by the client's Retry-After handling.
* `memberOf` is not a property Graph can `$select`: rules reading it are evaluated with the
  value the store has (none), and the command says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from exporter.domain.rules import ObjectType, PropertyKind, property_kind
from exporter.graph.errors import GraphRequestError, GraphResponseError

if TYPE_CHECKING:
    from exporter.graph.client import GraphClient

PAGE_SIZE: Final = 999


@dataclass(frozen=True, slots=True)
class GraphField:
    """Where Graph keeps a rule's property: `name`, or `name`.`key` of a complex property."""

    name: str
    key: str | None = None


def _extension_attributes(container: str) -> dict[str, GraphField]:
    return {
        f"extensionAttribute{n}": GraphField(container, f"extensionAttribute{n}")
        for n in range(1, 16)
    }


GRAPH_FIELDS: Final[Mapping[ObjectType, Mapping[str, GraphField]]] = {
    ObjectType.USER: {
        "objectId": GraphField("id"),
        "mailNickName": GraphField("mailNickname"),
        **_extension_attributes("onPremisesExtensionAttributes"),
    },
    ObjectType.DEVICE: {
        "objectId": GraphField("id"),
        "deviceOSType": GraphField("operatingSystem"),
        "deviceOSVersion": GraphField("operatingSystemVersion"),
        "deviceManufacturer": GraphField("manufacturer"),
        "deviceModel": GraphField("model"),
        "deviceTrustType": GraphField("trustType"),
        "devicePhysicalIds": GraphField("physicalIds"),
        "deviceManagementAppId": GraphField("mdmAppId"),
        **_extension_attributes("extensionAttributes"),
    },
}
"""Rule property name -> Graph property, where they differ (elsewhere they are the same)."""
NOT_SELECTABLE: Final = frozenset({"memberOf", "manager"})
"""Rule inputs that are relationships in Graph, not properties: no `$select` reads them."""
NAME_FIELD: Final = {ObjectType.USER: "userPrincipalName", ObjectType.DEVICE: "displayName"}
"""Always read: how people name the object (and the key a bulk-update CSV may use)."""
RESOURCE: Final = {ObjectType.USER: "users", ObjectType.DEVICE: "devices"}


def graph_field(object_type: ObjectType, name: str) -> GraphField:
    return GRAPH_FIELDS[object_type].get(name) or GraphField(name)


def selectable(object_type: ObjectType, properties: Iterable[str]) -> list[str]:
    """The rule properties Graph can return, sorted, with the object's name field."""
    wanted = {NAME_FIELD[object_type]}
    for name in properties:
        if name in NOT_SELECTABLE or property_kind(object_type, name) is PropertyKind.UNKNOWN:
            continue
        wanted.add(name)
    return sorted(wanted)


def select_clause(object_type: ObjectType, properties: Iterable[str]) -> str:
    """`$select` for these rule properties: `id` and the Graph properties behind them."""
    names = ["id"]
    for name in properties:
        field = graph_field(object_type, name).name
        if field not in names:
            names.append(field)
    return ",".join(names)


def decode_object(
    object_type: ObjectType, raw: Mapping[str, Any], properties: Iterable[str]
) -> tuple[str, dict[str, Any]]:
    """(id lower-cased, rule property -> value) of one Graph object; only keys Graph sent, so
    that a delta's partial object updates only what it carries."""
    object_id = raw.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise ValueError("an object without an id")
    values: dict[str, Any] = {}
    for name in properties:
        field = graph_field(object_type, name)
        if field.name not in raw:
            continue
        value = raw[field.name]
        if field.key is not None:
            value = value.get(field.key) if isinstance(value, dict) else None
        values[name] = value
    return object_id.lower(), values


@dataclass(frozen=True, slots=True)
class ObjectPage:
    objects: list[tuple[str, dict[str, Any]]]
    removed: list[str]
    next_link: str | None
    delta_link: str | None


def parse_object_page(
    body: bytes | None, object_type: ObjectType, properties: Iterable[str], endpoint: str
) -> ObjectPage:
    try:
        document = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        raise GraphResponseError(
            f"{endpoint}: the response is not JSON", endpoint=endpoint
        ) from None
    value = document.get("value") if isinstance(document, dict) else None
    if not isinstance(value, list):
        raise GraphResponseError(f"{endpoint}: the response has no value list", endpoint=endpoint)
    names = list(properties)
    objects: list[tuple[str, dict[str, Any]]] = []
    removed: list[str] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise GraphResponseError(f"{endpoint}: an object without an id", endpoint=endpoint)
        if "@removed" in item:
            removed.append(item["id"].lower())
            continue
        objects.append(decode_object(object_type, item, names))
    next_link = document.get("@odata.nextLink")
    delta_link = document.get("@odata.deltaLink")
    return ObjectPage(
        objects,
        removed,
        next_link if isinstance(next_link, str) else None,
        delta_link if isinstance(delta_link, str) else None,
    )


@dataclass(frozen=True, slots=True)
class DeltaRead:
    """What a read brought: every object (`full`) or the changes since the last delta link."""

    full: bool
    objects: list[tuple[str, dict[str, Any]]]
    removed: list[str]
    delta_link: str
    requests: int


class DeltaExpired(Exception):
    """Graph no longer knows the delta token (410 Gone): read everything again."""


async def read_objects(
    graph: GraphClient,
    object_type: ObjectType,
    properties: Iterable[str],
    delta_link: str | None = None,
) -> DeltaRead:
    """Every object (delta_link None), or the changes since `delta_link`. DeltaExpired when
    Graph answers 410 to the link; the caller reads everything again."""
    names = list(properties)
    full = delta_link is None
    url = (
        f"{graph.root_url}/v1.0/{RESOURCE[object_type]}/delta"
        f"?$select={select_clause(object_type, names)}"
        if delta_link is None
        else delta_link
    )
    objects: list[tuple[str, dict[str, Any]]] = []
    removed: list[str] = []
    requests = 0
    endpoint = f"{RESOURCE[object_type]}/delta"

    def parse(body: bytes | None) -> ObjectPage:
        return parse_object_page(body, object_type, names, endpoint)

    while True:
        requests += 1
        try:
            page = await graph.object_delta_page(url, object_type, parse)
        except GraphRequestError as exc:
            if exc.status == 410 and not full:
                raise DeltaExpired(str(exc)) from None
            raise
        objects.extend(page.objects)
        removed.extend(page.removed)
        if page.next_link is not None:
            url = page.next_link
            continue
        if page.delta_link is None:
            raise GraphResponseError(
                f"{RESOURCE[object_type]}/delta: the last page has no @odata.deltaLink",
                endpoint=RESOURCE[object_type],
            )
        return DeltaRead(full, objects, removed, page.delta_link, requests)
