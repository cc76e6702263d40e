"""directoryAudit JSON, assembled from pre-encoded pieces.

Pages are served as bytes joined from events that are already JSON, so the hot path is
`b"".join`: the envelope and the membership-change targets are templates (serialized once by
orjson with slots, split into literal pieces), and the values that fill them (ids, names,
actors) are encoded once and cached by their owners. Layout facts: graph-facts.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from exporter.domain import events

_SLOT = re.compile(rb'"<<slot(\d+)>>"')
EMPTY_LIST = b"[]"


def slot(number: int) -> str:
    return f"<<slot{number}>>"


class Template:
    """A JSON document with holes; `render(values)` fills hole i with the JSON bytes values[i].
    Compiled to one bytes `%` format, so filling it is a single C call."""

    def __init__(self, skeleton: Any) -> None:
        pieces = _SLOT.split(orjson.dumps(skeleton).replace(b"%", b"%%"))
        self.order = tuple(int(pieces[i]) for i in range(1, len(pieces), 2))
        self.in_order = self.order == tuple(range(len(self.order)))
        self.format = b"%s".join(pieces[0::2])

    def render(self, values: Sequence[bytes]) -> bytes:
        if self.in_order:
            return self.format % tuple(values)
        return self.format % tuple(values[i] for i in self.order)


@lru_cache(maxsize=4096)
def enc(value: str | None) -> bytes:
    """JSON encoding of a (frequently repeated) string or null."""
    return orjson.dumps(value)


def enc_list_value(value: Any) -> bytes:
    """`["Sales"]`-style modifiedProperties values (Entra writes attribute values as JSON arrays
    inside a string)."""
    if value is None:
        return _EMPTY_LIST_VALUE
    if isinstance(value, str | bool | int):
        return _enc_scalar_list_value(value)
    return enc_quoted_json([value])


@lru_cache(maxsize=8192)
def _enc_scalar_list_value(value: str | bool | int) -> bytes:
    return enc_quoted_json([value])


_EMPTY_LIST_VALUE = b'"[]"'


def enc_quoted_json(value: Any) -> bytes:
    """A JSON string whose content is JSON: modifiedProperties values such as
    `"\\"f3bccb88-...\\""` (a quoted GUID) or `"[\\"Sales\\"]"`."""
    return orjson.dumps(orjson.dumps(value).decode())


ENVELOPE = Template(
    {
        "id": slot(0),
        "category": slot(1),
        "correlationId": slot(2),
        "result": "success",
        "resultReason": "",
        "activityDisplayName": slot(3),
        "activityDateTime": slot(4),
        "loggedByService": events.LOGGED_BY_CORE_DIRECTORY,
        "operationType": slot(5),
        "initiatedBy": slot(6),
        "targetResources": slot(7),
        "additionalDetails": slot(8),
    }
)


SELF_SERVICE_ENVELOPE = Template(
    {
        "id": slot(0),
        "category": slot(1),
        "correlationId": slot(2),
        "result": "success",
        "resultReason": "",
        "activityDisplayName": slot(3),
        "activityDateTime": slot(4),
        "loggedByService": events.LOGGED_BY_SELF_SERVICE,
        "operationType": slot(5),
        "initiatedBy": slot(6),
        "targetResources": slot(7),
        "additionalDetails": slot(8),
    }
)
_ENVELOPES = {
    events.LOGGED_BY_CORE_DIRECTORY: ENVELOPE,
    events.LOGGED_BY_SELF_SERVICE: SELF_SERVICE_ENVELOPE,
}


class MembershipLayout(NamedTuple):
    """How Entra lays out one membership-change event (#13: real events differ in these)."""

    group_first: bool = False
    """Graph's own directoryAudit example lists the group target first, other samples the
    member: consumers must find targets by type."""
    logged_by: str = events.LOGGED_BY_CORE_DIRECTORY
    """Self-service group management by the same app logs under its own service."""


MEMBER_FIRST = MembershipLayout()
GROUP_FIRST = MembershipLayout(group_first=True)
SELF_SERVICE = MembershipLayout(logged_by=events.LOGGED_BY_SELF_SERVICE)


def _membership_event(add: bool, unit: bool, layout: MembershipLayout = MEMBER_FIRST) -> Template:
    """A whole Add/Remove member event (group or administrative unit) as one template.

    Slots: 0 id, 1 correlationId, 2 activityDateTime, 3 initiatedBy, 4 member id, 5 member
    displayName, 6 member type, 7 member userPrincipalName, 8 container id (JSON-quoted), 9
    container displayName (JSON-quoted), 10 container id. The group target's displayName is
    null (as Entra often writes it); its groupType is `unknownFutureValue` when it comes first
    (as in Graph's example)."""
    prefix = "AdministrativeUnit" if unit else "Group"

    def side(value_slot: str | None) -> dict[str, str | None]:
        if add:
            return {"oldValue": None, "newValue": value_slot}
        return {"oldValue": value_slot, "newValue": None}

    if unit:
        activity = events.ADD_AU_MEMBER if add else events.REMOVE_AU_MEMBER
        category = events.CATEGORY_AU
    else:
        activity = events.ADD_MEMBER if add else events.REMOVE_MEMBER
        category = events.CATEGORY_GROUP_MANAGEMENT
    return Template(
        {
            "id": slot(0),
            "category": category,
            "correlationId": slot(1),
            "result": "success",
            "resultReason": "",
            "activityDisplayName": activity,
            "activityDateTime": slot(2),
            "loggedByService": layout.logged_by,
            "operationType": "Assign" if add else "Unassign",
            "initiatedBy": slot(3),
            "targetResources": _ordered_targets(
                {
                    "id": slot(4),
                    "displayName": slot(5),
                    "type": slot(6),
                    "userPrincipalName": slot(7),
                    "groupType": None,
                    "modifiedProperties": [
                        {"displayName": f"{prefix}.ObjectID", **side(slot(8))},
                        {"displayName": f"{prefix}.DisplayName", **side(slot(9))},
                        {"displayName": f"{prefix}.WellKnownObjectName", **side(None)},
                    ],
                },
                {
                    "id": slot(10),
                    "displayName": None,
                    "type": prefix,
                    "userPrincipalName": None,
                    "groupType": None
                    if unit
                    else "unknownFutureValue"
                    if layout.group_first
                    else "azureAD",
                    "modifiedProperties": [],
                },
                group_first=layout.group_first,
            ),
            "additionalDetails": [],
        }
    )


def _ordered_targets(
    member: dict[str, Any], group: dict[str, Any], *, group_first: bool
) -> list[dict[str, Any]]:
    return [group, member] if group_first else [member, group]


# (add?, administrative unit?, layout) -> template
_MEMBERSHIP_EVENTS = {
    (add, unit, layout): _membership_event(add, unit, layout)
    for add in (True, False)
    for unit in (True, False)
    for layout in (MEMBER_FIRST, GROUP_FIRST, SELF_SERVICE)
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who `initiatedBy` names: an app (service principal) or a user."""

    kind: str  # "app" | "user"
    id: str | None  # appId for apps (sometimes null in real events), object id for users
    display_name: str
    principal: str  # servicePrincipalId for apps, userPrincipalName for users
    ip_address: str = ""

    def initiated_by(self) -> bytes:
        return _initiated_by(self)

    @property
    def app_display_name(self) -> str | None:
        return self.display_name if self.kind == "app" else None


@lru_cache(maxsize=1024)
def _initiated_by(actor: Actor) -> bytes:
    if actor.kind == "app":
        body: dict[str, Any] = {
            "user": None,
            "app": {
                "appId": actor.id,
                "displayName": actor.display_name,
                "servicePrincipalId": actor.principal,
                "servicePrincipalName": None,
            },
        }
    else:
        body = {
            "user": {
                "id": actor.id,
                "displayName": None,
                "userPrincipalName": actor.principal,
                "ipAddress": actor.ip_address,
                "userType": None,
                "homeTenantId": None,
                "homeTenantName": None,
            },
            "app": None,
        }
    return orjson.dumps(body)


DYNAMIC_PROCESSING_ACTOR = Actor(
    kind="app",
    id=sorted(events.DYNAMIC_PROCESSING_APP_IDS)[1],
    display_name=events.DYNAMIC_PROCESSING_APP,
    principal="5a4b8e8c-1b17-4c8d-9a3b-6a2f7a1f0c11",
)
DYNAMIC_PROCESSING_ACTORS: tuple[Actor, ...] = (
    DYNAMIC_PROCESSING_ACTOR,
    DYNAMIC_PROCESSING_ACTOR,
    Actor(
        kind="app",
        id=sorted(events.DYNAMIC_PROCESSING_APP_IDS)[0],
        display_name=events.DYNAMIC_PROCESSING_APP,
        principal="5a4b8e8c-1b17-4c8d-9a3b-6a2f7a1f0c11",
    ),
    Actor(
        kind="app",
        id=None,
        display_name=events.DYNAMIC_PROCESSING_APP,
        principal="5a4b8e8c-1b17-4c8d-9a3b-6a2f7a1f0c11",
    ),
)
"""The dynamic-processing app as the log names it: under either of its two appIds, and
sometimes with a null appId (the display name only)."""


def offset_form(bits: int) -> bool:
    """Whether an event's time is written `+00:00` rather than `Z`: one in sixteen (bits 8-11
    of the event's variant bits)."""
    return (bits >> 8) & 15 == 0


def membership_layout(bits: int) -> MembershipLayout:
    """The layout of a dynamic membership change, from random bits: one in eight lists the
    group first."""
    return GROUP_FIRST if bits & 7 == 0 else MEMBER_FIRST


class MemberRef(NamedTuple):
    """A user or device as the audit log names it, pre-encoded. (A NamedTuple: built for
    every history event served, and a frozen dataclass costs several times more to build.)"""

    id: bytes
    type: bytes  # "User" | "Device"
    display_name: bytes  # null for users (as Entra writes them), the name for devices
    user_principal_name: bytes  # null for devices


class ContainerRef(NamedTuple):
    """A group or administrative unit, pre-encoded."""

    id: bytes
    id_quoted: bytes
    display_name: bytes
    display_name_quoted: bytes
    administrative_unit: bool


def membership_template(
    *, add: bool, administrative_unit: bool = False, layout: MembershipLayout = MEMBER_FIRST
) -> Template:
    """The template of an Add/Remove member event (slots as in `_membership_event`; a group
    listed first puts its slot before the member's, which `Template.render` takes care of)."""
    return _MEMBERSHIP_EVENTS[(add, administrative_unit, layout)]


def render_membership_change(
    *,
    event_id: bytes,
    correlation_id: bytes,
    timestamp: bytes,
    add: bool,
    actor: bytes,
    member: MemberRef,
    container: ContainerRef,
    layout: MembershipLayout = MEMBER_FIRST,
) -> bytes:
    return _MEMBERSHIP_EVENTS[(add, container.administrative_unit, layout)].render(
        (
            event_id,
            correlation_id,
            timestamp,
            actor,
            member.id,
            member.display_name,
            member.type,
            member.user_principal_name,
            container.id_quoted,
            container.display_name_quoted,
            container.id,
        )
    )


class PropertyChange(NamedTuple):
    name: str
    old: bytes  # encoded JSON (usually a quoted JSON array, or null)
    new: bytes


_PROPERTY = b'{"displayName":%s,"oldValue":%s,"newValue":%s}'
_SUMMARY = b'{"displayName":"Included Updated Properties","oldValue":null,"newValue":%s}'


def _modified_properties(changes: Sequence[PropertyChange], include_summary: bool) -> bytes:
    items = [_PROPERTY % (enc(c.name), c.old, c.new) for c in changes]
    if include_summary:
        items.append(_SUMMARY % enc_quoted_json(", ".join(c.name for c in changes)))
    return b"[" + b",".join(items) + b"]"


_TARGET = (
    b'[{"id":%s,"displayName":%s,"type":%s,"userPrincipalName":%s,"groupType":%s,'
    b'"modifiedProperties":%s}]'
)


def render_object_event(
    *,
    event_id: bytes,
    correlation_id: bytes,
    timestamp: bytes,
    activity: str,
    category: str,
    operation: str,
    actor: bytes,
    target_id: bytes,
    target_type: str,
    target_display_name: bytes,
    target_user_principal_name: bytes,
    changes: Sequence[PropertyChange],
    group_type: str | None = None,
    additional_details: Sequence[tuple[str, str]] = (),
    logged_by: str = events.LOGGED_BY_CORE_DIRECTORY,
) -> bytes:
    """Add/Update/Delete user or device, Update group, Update administrative unit; Microsoft 365
    group expiration (`Delete group` by Core Directory, `Autorenew group` by Self-service Group
    Management)."""
    target = _TARGET % (
        target_id,
        target_display_name,
        enc(target_type),
        target_user_principal_name,
        enc(group_type),
        _modified_properties(changes, include_summary=bool(changes)),
    )
    details = (
        orjson.dumps([{"key": key, "value": value} for key, value in additional_details])
        if additional_details
        else EMPTY_LIST
    )
    return _ENVELOPES[logged_by].render(
        (
            event_id,
            enc(category),
            correlation_id,
            enc(activity),
            timestamp,
            enc(operation),
            actor,
            target,
            details,
        )
    )


_BASE36 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_BASE36_PAIRS = [a + b for a in _BASE36 for b in _BASE36]


def audit_id(correlation_id: str, salt: int) -> str:
    """`Directory_<correlationId>_<5 chars>_<8 digits>`, the shape of real directoryAudit ids,
    from 64 random bits."""
    chars = (
        _BASE36_PAIRS[salt % 1296] + _BASE36_PAIRS[(salt >> 11) % 1296] + _BASE36[(salt >> 22) % 36]
    )
    return f"Directory_{correlation_id}_{chars}_{(salt >> 32) % 100_000_000}"


def identity(bits128: int, salt: int) -> tuple[bytes, bytes]:
    """(id, correlationId) of one event, JSON-encoded, from 128 + 64 random bits."""
    correlation = guid_from_int(bits128)
    return (
        b'"' + audit_id(correlation, salt).encode() + b'"',
        b'"' + correlation.encode() + b'"',
    )


def guid_from_int(value: int) -> str:
    """A version-4-shaped GUID string from 128 random bits."""
    text = "%032x" % (value & _GUID_MASK | _GUID_BITS)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# version 4 (bits 76-79 = 0100), variant 10 (bits 62-63)
_GUID_MASK = ((1 << 128) - 1) & ~(0xF << 76) & ~(0x3 << 62)
_GUID_BITS = (0x4 << 76) | (0x2 << 62)
