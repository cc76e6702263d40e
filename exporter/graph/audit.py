"""Directory-audit pages: raw bytes -> `AuditRecord`s, without the SDK's typed models.

This is the ingestion hot path. A page is first decoded with msgspec into small structs that
hold only the fields the exporter reads (everything else is skipped without building Python
objects: 3x less CPU than decoding whole events with orjson, measured in bench/RESULTS.md).
That path takes well-formed pages only: a page where anything is unexpected (a field of the
wrong type, an event without id, time or group) is read again from orjson dicts by
`read_event`, which names what is wrong with each event. Both paths give the same records for
every page (tests/test_audit_decoding.py). An event that cannot be read becomes a
`MalformedEvent` (counted by reason and skipped), never an exception.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson

from exporter.domain.classify import MEMBERSHIP_ACTIVITIES, decode_value
from exporter.domain.events import (
    ADD_AU_MEMBER,
    ADD_MEMBER,
    PROPERTY_GROUP_OBJECT_ID,
    TARGET_TYPE_ADMINISTRATIVE_UNIT,
    TARGET_TYPE_GROUP,
    TRIGGER_ACTIVITIES,
    UPDATE_ADMINISTRATIVE_UNIT,
    UPDATE_GROUP,
)
from exporter.domain.records import AuditRecord, MalformedEvent, ModifiedProperty
from exporter.domain.relevance import normalise_name
from exporter.graph.errors import GraphResponseError
from exporter.graph.retry import TransientError

_MEMBERSHIP = MEMBERSHIP_ACTIVITIES
_ADDS = frozenset({ADD_MEMBER, ADD_AU_MEMBER})
_UPDATES = frozenset({UPDATE_GROUP, UPDATE_ADMINISTRATIVE_UNIT})
_OBJECT_UPDATES = frozenset(
    a for a, (_type, action) in TRIGGER_ACTIVITIES.items() if action == "update"
)
"""Update user / Update device: their modifiedProperties name the changed properties."""
_GROUP_OBJECT_ID = normalise_name(PROPERTY_GROUP_OBJECT_ID)
_CONTAINER_TYPES = frozenset({TARGET_TYPE_GROUP.lower(), TARGET_TYPE_ADMINISTRATIVE_UNIT.lower()})


@dataclass(frozen=True, slots=True)
class AuditPage:
    records: list[AuditRecord]
    malformed: list[MalformedEvent]
    next_link: str | None
    last_time: float | None
    """activityDateTime of the last readable event on the page."""
    ascending: bool
    """The readable events are in non-decreasing time order."""


# -- the typed fast path: only the fields read, nothing else built -----------------------------
# gc=False: these structs hold no cycles, so the collector need not track them.


class _App(msgspec.Struct, gc=False):
    appId: str | None = None
    displayName: str | None = None


class _User(msgspec.Struct, gc=False):
    id: str | None = None
    userPrincipalName: str | None = None
    displayName: str | None = None


class _InitiatedBy(msgspec.Struct, gc=False):
    app: _App | None = None
    user: _User | None = None


class _Target(msgspec.Struct, gc=False):
    id: str | None = None
    type: str | None = None
    modifiedProperties: msgspec.Raw = msgspec.Raw(b"null")
    """Left undecoded: read only for group updates (and membership events without a group)."""


class _Event(msgspec.Struct, gc=False):
    id: str | None = None
    activityDateTime: str | None = None
    activityDisplayName: str | None = None
    result: str | None = None
    loggedByService: str | None = None
    initiatedBy: _InitiatedBy | None = None
    targetResources: list[_Target] | None = None


class _Page(msgspec.Struct, gc=False):
    value: list[_Event]
    nextLink: str | None = msgspec.field(default=None, name="@odata.nextLink")


_PAGE_DECODER = msgspec.json.Decoder(_Page)


@dataclass(frozen=True, slots=True)
class AuditDocument:
    """A page decoded but not yet read: its link is known before its events are."""

    items: list[Any]
    """Typed `_Event`s when `body` is set, else orjson dicts."""
    next_link: str | None
    body: bytes | None = None
    """The page, kept so that a typed page with a surprise in it can be read again as dicts."""


def load_audit_document(body: bytes | None, endpoint: str) -> AuditDocument:
    if not body:
        raise TransientError("empty response body")
    try:
        page = _PAGE_DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _load_untyped(body, endpoint)
    return AuditDocument(page.value, page.nextLink or None, body)


def _load_untyped(body: bytes, endpoint: str) -> AuditDocument:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise TransientError("truncated or invalid JSON body") from None
    items = document.get("value") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise GraphResponseError(
            "Graph returned a page without a 'value' list", endpoint=endpoint, status=200
        )
    next_link = document.get("@odata.nextLink")
    return AuditDocument(items, next_link if isinstance(next_link, str) and next_link else None)


def read_audit_page(document: AuditDocument) -> AuditPage:
    if document.body is not None:
        records = _read_typed(document.items)
        if records is not None:
            return _page(records, [], document.next_link)
        document = _load_untyped(document.body, "")
    records = []
    malformed: list[MalformedEvent] = []
    for item in document.items:
        event = read_event(item)
        if type(event) is AuditRecord:
            records.append(event)
        else:
            malformed.append(event)  # type: ignore[arg-type]
    return _page(records, malformed, document.next_link)


def _page(
    records: list[AuditRecord], malformed: list[MalformedEvent], next_link: str | None
) -> AuditPage:
    last_time: float | None = None
    ascending = True
    for record in records:
        if last_time is not None and record.time < last_time:
            ascending = False
        last_time = record.time
    return AuditPage(records, malformed, next_link, last_time, ascending)


def _read_typed(events: list[_Event]) -> list[AuditRecord] | None:
    """The records of a page of well-formed events; None as soon as one is not (its page is
    then read by `read_event`, which names the problem). Field for field what `read_event`
    does with a well-formed event."""
    records: list[AuditRecord] = []
    append = records.append
    for event in events:
        event_id = event.id
        activity = event.activityDisplayName
        if not event_id or not activity:
            return None
        time = parse_time(event.activityDateTime)
        if time is None:
            return None
        app_id = app_name = initiator = None
        by_user = False
        initiated = event.initiatedBy
        if initiated is not None:
            app = initiated.app
            if app is not None:
                app_id = app.appId
                app_name = initiator = app.displayName
            user = initiated.user
            if user is not None:
                by_user = bool(user.id or user.userPrincipalName or user.displayName)
                initiator = user.userPrincipalName or user.displayName or initiator
        targets = event.targetResources
        first = targets[0] if targets else None
        target_type = target_id = None
        group_id: str | None = None
        modified: tuple[ModifiedProperty, ...] = ()
        if activity in _MEMBERSHIP:
            member_at, group_at = _membership_targets([t.type for t in targets or ()])
            member = targets[member_at] if targets and member_at is not None else None
            if member is not None:
                target_type = member.type
                target_id = member.id or None
            if targets is not None and group_at is not None:
                group_id = targets[group_at].id or None
            if group_id is None and member is not None:
                group_id = _group_from_member(_target_dict(member), add=activity in _ADDS)
            if group_id is None:
                return None
            group_id = group_id.lower()
        elif first is not None:
            target_type = first.type
            target_id = first.id or None
            if activity in _UPDATES:
                if target_id is None:
                    return None
                group_id = target_id.lower()
                modified = _modified(_target_dict(first))
            elif activity in _OBJECT_UPDATES:
                modified = _modified(_target_dict(first))
        elif activity in _UPDATES:
            return None
        append(
            AuditRecord(
                event_id,
                time,
                activity,
                event.result or "success",
                app_id,
                app_name,
                by_user,
                target_type,
                target_id,
                group_id,
                modified,
                event.loggedByService,
                initiator,
            )
        )
    return records


class _Property(msgspec.Struct, gc=False):
    displayName: Any = None
    newValue: Any = None


_PROPERTIES_DECODER = msgspec.json.Decoder(list[_Property] | None)
_INCLUDED = "Included Updated Properties"


def _included_updated_properties(raw: msgspec.Raw) -> tuple[ModifiedProperty, ...]:
    """A user or device update's "Included Updated Properties" (what storm attribution
    reads), decoded without building the other properties: a storm is mostly such updates,
    and decoding each one's whole list as dicts cost ~8 µs per event."""
    try:
        props = _PROPERTIES_DECODER.decode(raw)
    except msgspec.ValidationError:  # not a list of objects: read it as the untyped path does
        return _included_in({"modifiedProperties": msgspec.json.decode(raw)})
    except msgspec.DecodeError:
        return ()
    for prop in props or ():
        if prop.displayName == _INCLUDED:
            return (ModifiedProperty(_INCLUDED, None, _str(prop.newValue)),)
    return ()


def _included_in(target: dict[str, Any] | None) -> tuple[ModifiedProperty, ...]:
    """`_included_updated_properties` of an untyped target."""
    props = target.get("modifiedProperties") if target else None
    if not isinstance(props, list):
        return ()
    for prop in props:
        if isinstance(prop, dict) and prop.get("displayName") == _INCLUDED:
            return (ModifiedProperty(_INCLUDED, None, _str(prop.get("newValue"))),)
    return ()


def _target_dict(target: _Target) -> dict[str, Any]:
    return {"modifiedProperties": msgspec.json.decode(target.modifiedProperties)}


def parse_audit_page(body: bytes | None, endpoint: str) -> AuditPage:
    return read_audit_page(load_audit_document(body, endpoint))


def read_event(item: Any) -> AuditRecord | MalformedEvent:
    # Hot path: plain dict lookups and inline type checks, no helper calls per field.
    if type(item) is not dict:
        return MalformedEvent(_digest(item), None, "not_an_object")
    get = item.get
    event_id = get("id")
    if type(event_id) is not str or not event_id:
        return MalformedEvent(_digest(item), None, "missing_id")
    time = parse_time(get("activityDateTime"))
    if time is None:
        return MalformedEvent(_digest(item), None, "bad_time")
    activity = get("activityDisplayName")
    if type(activity) is not str or not activity:
        return MalformedEvent(_digest(item), time, "missing_activity")
    result = get("result")
    initiated = get("initiatedBy")
    app_id = app_name = initiator = None
    by_user = False
    if type(initiated) is dict:
        app = initiated.get("app")
        if type(app) is dict:
            app_id = app.get("appId")
            app_name = app.get("displayName")
            if type(app_id) is not str:
                app_id = None
            if type(app_name) is not str:
                app_name = None
            initiator = app_name
        user = initiated.get("user")
        if type(user) is dict:
            by_user = bool(
                user.get("id") or user.get("userPrincipalName") or user.get("displayName")
            )
            initiator = (
                _str(user.get("userPrincipalName")) or _str(user.get("displayName")) or (initiator)
            )
    elif initiated is not None:
        return MalformedEvent(_digest(item), time, "bad_initiated_by")
    targets = get("targetResources")
    if targets is None:
        targets = ()
    elif type(targets) is not list:
        return MalformedEvent(_digest(item), time, "bad_target_resources")
    first = targets[0] if targets else None
    if first is not None and type(first) is not dict:
        return MalformedEvent(_digest(item), time, "bad_target_resources")
    target_type = target_id = None
    group_id: str | None = None
    modified: tuple[ModifiedProperty, ...] = ()
    if activity in _MEMBERSHIP:
        member_at, group_at = _membership_targets(
            [t.get("type") if type(t) is dict else None for t in targets]
        )
        member = targets[member_at] if member_at is not None else None
        if type(member) is dict:
            target_type = _type_of(member)
            target_id = _str(member.get("id"))
        else:
            member = None
        group = targets[group_at] if group_at is not None else None
        if type(group) is dict:
            group_id = _str(group.get("id"))
        if group_id is None and member is not None:
            group_id = _group_from_member(member, add=activity in _ADDS)
        if group_id is None:
            return MalformedEvent(_digest(item), time, "missing_group")
        group_id = group_id.lower()
    elif first is not None:
        target_type = _type_of(first)
        target_id = _str(first.get("id"))
        if activity in _UPDATES:
            if target_id is None:
                return MalformedEvent(_digest(item), time, "missing_target")
            group_id = target_id.lower()
            modified = _modified(first)
        elif activity in _OBJECT_UPDATES:
            modified = _modified(first)
    elif activity in _UPDATES:
        return MalformedEvent(_digest(item), time, "missing_target")
    logged_by = get("loggedByService")
    return AuditRecord(
        event_id,
        time,
        activity,
        result if type(result) is str and result else "success",
        app_id,
        app_name,
        by_user,
        target_type,
        target_id,
        group_id,
        modified,
        logged_by if type(logged_by) is str else None,
        initiator,
    )


def _type_of(target: dict[str, Any]) -> str | None:
    """`type` as the typed decoder reads it (any string, even empty)."""
    value = target.get("type")
    return value if type(value) is str else None


def _membership_targets(types: list[Any]) -> tuple[int | None, int | None]:
    """(index of the member, index of the group) among a membership change's targets, by
    `type`: Graph's own example lists the group first, other samples the member first. Without
    a target typed Group or AdministrativeUnit (untyped samples), the member is the first."""
    group_at = None
    for i, target_type in enumerate(types):
        if type(target_type) is str and target_type.lower() in _CONTAINER_TYPES:
            group_at = i
            break
    if group_at is None:
        return (0 if types else None), (1 if len(types) > 1 else None)
    member_at = 1 if group_at == 0 else 0
    return (member_at if member_at < len(types) else None), group_at


def parse_time(value: Any) -> float | None:
    """activityDateTime (ISO 8601, up to 7 fractional digits, `Z`) -> epoch seconds.

    Graph's form `YYYY-MM-DDTHH:MM:SS[.fffffff]Z` is read with the minute's epoch from a cache
    and the seconds as integer microseconds, which gives exactly the float `datetime` gives (the
    seen-ids keys of events stored before depend on it: tests/test_classify.py); anything else
    goes through `datetime.fromisoformat`."""
    if not isinstance(value, str):
        return None
    if len(value) >= 20 and value[-1] == "Z" and value[16] == ":":
        minute = _MINUTES.get(value[:16])
        seconds = value[17:19]
        fraction = value[20:-1]
        if (
            minute is not None
            and seconds.isdigit()
            and (value[19] == "Z" or (value[19] == "." and fraction.isdigit()))
            and seconds < "60"
        ):
            micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
            return (minute + int(seconds) * 1_000_000 + micros) / 1e6
        if minute is None and value[10:11] == "T":
            return _parse_time_slow(value, cache_minute=True)
    return _parse_time_slow(value, cache_minute=False)


_MINUTES: dict[str, int] = {}
"""`YYYY-MM-DDTHH:MM` -> its epoch in microseconds (UTC), for the minutes seen lately."""
_MINUTES_KEPT = 4096


def _parse_time_slow(value: str, *, cache_minute: bool) -> float | None:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if cache_minute and when.utcoffset() == timedelta(0):
        if len(_MINUTES) >= _MINUTES_KEPT:
            _MINUTES.clear()
        start = when.replace(second=0, microsecond=0) - _EPOCH
        _MINUTES[value[:16]] = (start.days * 86400 + start.seconds) * 1_000_000
        return parse_time(value)
    # In integer microseconds, as the fast path does: the same instant written `+00:00` (Event
    # Hub, Log Analytics) or `Z` (Graph) must give the same float (it keys the seen ids).
    delta = when - _EPOCH
    return ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds) / 1e6


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_time(epoch: float) -> str:
    """Epoch seconds -> the ISO form Graph's `$filter` takes (microseconds, UTC, `Z`)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _group_from_member(member: dict[str, Any], *, add: bool) -> str | None:
    props = member.get("modifiedProperties")
    if not isinstance(props, list):
        return None
    for prop in props:
        if not isinstance(prop, dict):
            continue
        name = prop.get("displayName")
        if isinstance(name, str) and normalise_name(name) == _GROUP_OBJECT_ID:
            raw = prop.get("newValue" if add else "oldValue")
            return decode_value(raw) if isinstance(raw, str) else None
    return None


def _modified(target: dict[str, Any] | None) -> tuple[ModifiedProperty, ...]:
    props = target.get("modifiedProperties") if target else None
    if not isinstance(props, list):
        return ()
    return tuple(
        ModifiedProperty(
            prop["displayName"], _str(prop.get("oldValue")), _str(prop.get("newValue"))
        )
        for prop in props
        if isinstance(prop, dict) and isinstance(prop.get("displayName"), str)
    )


def _digest(item: Any) -> str:
    """The key of a malformed event: its content, so that it is counted once however many
    overlapping windows (or restarts) serve it, while the same event served intact later is a
    different key and is counted as the event it is."""
    try:
        encoded = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: digest a cut-off copy
        encoded = orjson.dumps(_cut(item, _DIGEST_DEPTH), option=orjson.OPT_SORT_KEYS)
    return "digest:" + hashlib.blake2b(encoded, digest_size=16).hexdigest()


_DIGEST_DEPTH = 64
"""Real events are under ten levels deep; below this, a hostile one is summarised."""


def _cut(item: Any, depth: int) -> Any:
    """`item` with what lies below `depth` levels replaced by a marker (deterministic, so the
    same event always has the same digest)."""
    if depth <= 0:
        return "<nested too deep>"
    if isinstance(item, dict):
        return {str(k): _cut(v, depth - 1) for k, v in item.items()}
    if isinstance(item, list):
        return [_cut(v, depth - 1) for v in item]
    return item
