"""Groups, administrative units and the beta processing status: raw bytes -> records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from exporter.domain.classify import parse_processing_state
from exporter.domain.events import DirectoryObjectKind
from exporter.domain.groups import MembershipProcessingStatus
from exporter.domain.records import DirectoryObject, ProcessingStatus
from exporter.graph.audit import parse_time
from exporter.graph.errors import GraphResponseError
from exporter.graph.retry import TransientError

DYNAMIC_MEMBERSHIP = "DynamicMembership"
GROUP_FIELDS = (
    "id",
    "displayName",
    "groupTypes",
    "membershipRule",
    "membershipRuleProcessingState",
)
ADMINISTRATIVE_UNIT_FIELDS = (
    "id",
    "displayName",
    "membershipType",
    "membershipRule",
    "membershipRuleProcessingState",
)


@dataclass(frozen=True, slots=True)
class DirectoryPage:
    objects: list[DirectoryObject]
    skipped: int
    """Entries without an id, or not dynamic (a server that ignored the filter)."""
    next_link: str | None


def load_json(body: bytes | None) -> Any:
    if not body:
        raise TransientError("empty response body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise TransientError("truncated or invalid JSON body") from None


def parse_directory_page(
    body: bytes | None, kind: DirectoryObjectKind, endpoint: str
) -> DirectoryPage:
    document = load_json(body)
    items = document.get("value") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise GraphResponseError(
            "Graph returned a page without a 'value' list", endpoint=endpoint, status=200
        )
    objects: list[DirectoryObject] = []
    skipped = 0
    for item in items:
        obj = read_directory_object(item, kind)
        if obj is None:
            skipped += 1
        else:
            objects.append(obj)
    next_link = document.get("@odata.nextLink")
    return DirectoryPage(
        objects, skipped, next_link if isinstance(next_link, str) and next_link else None
    )


def read_directory_object(item: Any, kind: DirectoryObjectKind) -> DirectoryObject | None:
    if not isinstance(item, dict):
        return None
    object_id = item.get("id")
    if not isinstance(object_id, str) or not object_id:
        return None
    if kind is DirectoryObjectKind.GROUP:
        types = item.get("groupTypes")
        if not isinstance(types, list) or DYNAMIC_MEMBERSHIP not in types:
            return None
    else:
        membership_type = item.get("membershipType")
        if not isinstance(membership_type, str) or membership_type.lower() != "dynamic":
            return None
    name = item.get("displayName")
    rule = item.get("membershipRule")
    state = item.get("membershipRuleProcessingState")
    return DirectoryObject(
        kind=kind,
        id=object_id.lower(),
        name=name if isinstance(name, str) else "",
        rule=rule if isinstance(rule, str) else "",
        state=parse_processing_state(state if isinstance(state, str) else None),
    )


def parse_directory_object(
    body: bytes | None, kind: DirectoryObjectKind, endpoint: str
) -> DirectoryObject:
    """One object; unlike listings, a non-dynamic object is still returned (state None)."""
    document = load_json(body)
    obj = read_directory_object(document, kind)
    if obj is not None:
        return obj
    if isinstance(document, dict) and isinstance(document.get("id"), str):
        name = document.get("displayName")
        rule = document.get("membershipRule")
        state = document.get("membershipRuleProcessingState")
        return DirectoryObject(
            kind=kind,
            id=document["id"].lower(),
            name=name if isinstance(name, str) else "",
            rule=rule if isinstance(rule, str) else "",
            state=parse_processing_state(state if isinstance(state, str) else None),
        )
    raise GraphResponseError(
        "Graph returned an object without an id", endpoint=endpoint, status=200
    )


# Graph's strings are read here and nowhere else; a status Graph adds later reads as unknown.
_PROCESSING_STATUSES = {s.value: s for s in MembershipProcessingStatus}


def parse_processing_status(body: bytes | None, group_id: str) -> ProcessingStatus:
    document = load_json(body)
    status = document.get("membershipRuleProcessingStatus") if isinstance(document, dict) else None
    if not isinstance(status, dict):
        return ProcessingStatus(group_id, None, None, None)
    value = status.get("status")
    error = status.get("errorMessage")
    return ProcessingStatus(
        group_id=group_id,
        status=_PROCESSING_STATUSES.get(value) if isinstance(value, str) else None,
        last_membership_updated=parse_time(status.get("lastMembershipUpdated")),
        error_message=error if isinstance(error, str) and error else None,
    )
