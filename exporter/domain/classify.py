"""Classification of directory audit events (DESIGN section 4). Pure and deterministic.

* `Add member to group` / `Remove member from group` done by the dynamic-processing app (and no
  user) are dynamic membership changes; done by anyone else they are manual ones. The same app
  acts for self-service groups and group expiry, but those are other activities.
* Membership changes of administrative units are ingested but counted as `other`: the metric
  vocabulary (and the simulator's ground truth) counts group membership only, for now.
* `Add/Update/Delete user|device` are triggers of re-evaluation, by object type.
* `Update group` / `Update administrative unit` are rule changes, processing-state changes or
  other updates, told apart by the modified property names. Those names are unverified, so the
  match is lenient (case, separators and prefixes such as `Group.` are ignored, and Entra's
  `Included Updated Properties` list is read too); an update that matches nothing is counted as
  `group_update_other`, never dropped.
* An event whose result is not `success` changed nothing: it is counted as `other`.
"""

from __future__ import annotations

import re

import orjson

from exporter.domain.attribution import property_key
from exporter.domain.events import (
    ADD_AU_MEMBER,
    ADD_MEMBER,
    DYNAMIC_PROCESSING_APP,
    DYNAMIC_PROCESSING_APP_IDS,
    REMOVE_AU_MEMBER,
    REMOVE_MEMBER,
    TRIGGER_ACTIVITIES,
    UPDATE_ADMINISTRATIVE_UNIT,
    UPDATE_GROUP,
    ObjectType,
    ProcessingState,
    Series,
)
from exporter.domain.records import AuditRecord, ClassifiedEvent, ModifiedProperty

_RULE = "membershiprule"
_PROCESSING_STATE = "membershipruleprocessingstate"
_INCLUDED_UPDATED_PROPERTIES = "includedupdatedproperties"
_NOT_ALNUM = re.compile(r"[^a-z0-9]")

_MEMBER_TYPES = {"user": ObjectType.USER, "device": ObjectType.DEVICE}
_TRIGGER_SERIES: dict[str, Series] = {
    activity: Series.TRIGGER_USER if object_type == "user" else Series.TRIGGER_DEVICE
    for activity, (object_type, _action) in TRIGGER_ACTIVITIES.items()
}
_GROUP_UPDATES = frozenset({UPDATE_GROUP, UPDATE_ADMINISTRATIVE_UNIT})
MEMBERSHIP_ACTIVITIES = frozenset({ADD_MEMBER, REMOVE_MEMBER, ADD_AU_MEMBER, REMOVE_AU_MEMBER})
"""Activities whose record carries a member and a container (group or administrative unit)."""


def classify(record: AuditRecord) -> ClassifiedEvent:
    activity = record.activity
    result = record.result
    if result != "success" and result.lower() != "success":
        return ClassifiedEvent(record.id, record.time, Series.OTHER, None, None, None)
    if activity in (ADD_MEMBER, REMOVE_MEMBER):
        add = activity == ADD_MEMBER
        if is_dynamic_processing(record):
            series = Series.DYNAMIC_ADD if add else Series.DYNAMIC_REMOVE
        else:
            series = Series.MANUAL_ADD if add else Series.MANUAL_REMOVE
        target_type = record.target_type or ""
        member_type = _MEMBER_TYPES.get(target_type) or _MEMBER_TYPES.get(target_type.lower())
        return ClassifiedEvent(
            record.id, record.time, series, record.group_id, record.target_id, None, member_type
        )
    trigger = _TRIGGER_SERIES.get(activity)
    if trigger is not None:
        object_type = ObjectType.USER if trigger is Series.TRIGGER_USER else ObjectType.DEVICE
        return ClassifiedEvent(
            record.id,
            record.time,
            trigger,
            None,
            record.target_id,
            None,
            object_type,
            record.initiator,
            tuple(property_key(object_type.value, p) for p in updated_properties(record.modified))
            if record.modified
            else (),
        )
    if activity in _GROUP_UPDATES:
        series, state = classify_group_update(record.modified)
        return ClassifiedEvent(record.id, record.time, series, record.group_id, None, state)
    return ClassifiedEvent(record.id, record.time, Series.OTHER, None, None, None)


def is_dynamic_processing(record: AuditRecord) -> bool:
    if record.by_user:
        return False
    app_id = record.app_id
    if app_id is not None and (
        app_id in DYNAMIC_PROCESSING_APP_IDS or app_id.lower() in DYNAMIC_PROCESSING_APP_IDS
    ):
        return True
    return record.app_name == DYNAMIC_PROCESSING_APP


def classify_group_update(
    modified: tuple[ModifiedProperty, ...],
) -> tuple[Series, ProcessingState | None]:
    """(rule change | processing-state change | other update, the new state if readable).

    An update that changes the rule counts as a rule change even if it also sets the state:
    rule edits are what start re-evaluation storms."""
    names: set[str] = set()
    state: ProcessingState | None = None
    for prop in modified:
        name = normalise_property_name(prop.name)
        if name == _INCLUDED_UPDATED_PROPERTIES:
            listed = decode_value(prop.new_value) or ""
            names.update(normalise_property_name(part) for part in listed.split(","))
            continue
        names.add(name)
        if name.endswith(_PROCESSING_STATE):
            state = parse_processing_state(decode_value(prop.new_value))
    if any(n.endswith(_RULE) for n in names):
        return Series.RULE_CHANGE, state
    if state is not None or any(n.endswith(_PROCESSING_STATE) for n in names):
        return Series.PROCESSING_STATE_CHANGE, state
    return Series.GROUP_UPDATE_OTHER, None


def updated_properties(modified: tuple[ModifiedProperty, ...]) -> tuple[str, ...]:
    """The property names a user or device update lists in "Included Updated Properties"
    (comma-separated, as the audit log spells them); none when it lists nothing."""
    for prop in modified:
        if normalise_property_name(prop.name) == _INCLUDED_UPDATED_PROPERTIES:
            listed = decode_value(prop.new_value) or ""
            return tuple(part.strip() for part in listed.split(",") if part.strip())
    return ()


def normalise_property_name(name: str) -> str:
    return _NOT_ALNUM.sub("", name.lower())


def decode_value(raw: str | None) -> str | None:
    """Audit values are JSON-encoded (`"\\"Paused\\""`, sometimes `"[\\"Paused\\"]"`); plain
    text is taken as it is."""
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def parse_processing_state(value: str | None) -> ProcessingState | None:
    if value is None:
        return None
    for state in ProcessingState:
        if value.strip().lower() == state.value.lower():
            return state
    return None
