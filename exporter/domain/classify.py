"""Classification of directory audit events (DESIGN section 4). Pure and deterministic.

* `Add member to group` / `Remove member from group` done by the dynamic-processing app (and no
  user) are dynamic membership changes; done by anyone else they are manual ones. The same app
  acts for self-service groups and group expiry, but those are other activities.
* Membership changes of administrative units are ingested but counted as `other`: the metric
  vocabulary (and the simulator's ground truth) counts group membership only, for now.
* A membership change by the dynamic-processing app logged by another service than Core
  Directory (self-service group management) is `approval_management_other`. One logged by Core
  Directory is classified dynamic here, provisionally: the store keeps it dynamic only if the
  group was a dynamic group at the event's time (`exporter.store.database`).
* `Add/Update/Delete user|device` are triggers of re-evaluation, by object type and relevance
  (`exporter.domain.relevance`): adds and deletes are always relevant.
* `Update group` / `Update administrative unit` are rule changes, processing-state changes or
  other updates, told apart by the modified property names. Those names are unverified, so the
  match is lenient (case, separators and prefixes such as `Group.` are ignored, and Entra's
  `Included Updated Properties` list is read too); an update that matches nothing is counted as
  `group_update_other`, never dropped.
* Microsoft 365 group expiration by the same app (`Autorenew group`, `Delete group`, ...; not
  ingested) is `approval_management_other` too, never dynamic.
* An event whose result is not `success` changed nothing: it is counted as `other`.
"""

from __future__ import annotations

import orjson

from exporter.domain.attribution import property_key
from exporter.domain.events import (
    ADD_AU_MEMBER,
    ADD_MEMBER,
    DYNAMIC_PROCESSING_APP,
    DYNAMIC_PROCESSING_APP_IDS,
    GROUP_EXPIRY_ACTIVITIES,
    LOGGED_BY_CORE_DIRECTORY,
    REMOVE_AU_MEMBER,
    REMOVE_MEMBER,
    TRIGGER_ACTIVITIES,
    TRIGGER_SERIES_BY_RELEVANCE,
    UPDATE_ADMINISTRATIVE_UNIT,
    UPDATE_GROUP,
    ObjectType,
    ProcessingState,
    Relevance,
    Series,
)
from exporter.domain.records import AuditRecord, ClassifiedEvent, ModifiedProperty
from exporter.domain.relevance import (
    RuleProperties,
    listed_properties,
    normalise_name,
    relevance_of_listed,
)

_RULE = "membershiprule"
_PROCESSING_STATE = "membershipruleprocessingstate"
_INCLUDED_UPDATED_PROPERTIES = "includedupdatedproperties"
_CORE_DIRECTORY = LOGGED_BY_CORE_DIRECTORY.lower()

_MEMBER_TYPES = {"user": ObjectType.USER, "device": ObjectType.DEVICE}
_TRIGGERS: dict[str, tuple[ObjectType, bool]] = {
    # activity -> (object type, is an update: its relevance depends on what changed)
    activity: (ObjectType(object_type), action == "update")
    for activity, (object_type, action) in TRIGGER_ACTIVITIES.items()
}
_GROUP_UPDATES = frozenset({UPDATE_GROUP, UPDATE_ADMINISTRATIVE_UNIT})
MEMBERSHIP_ACTIVITIES = frozenset({ADD_MEMBER, REMOVE_MEMBER, ADD_AU_MEMBER, REMOVE_AU_MEMBER})
"""Activities whose record carries a member and a container (group or administrative unit)."""


def classify(record: AuditRecord, rules: RuleProperties | None = None) -> ClassifiedEvent:
    """`rules`: the properties the tenant's dynamic rules read (None before they are known:
    updates are then of unknown relevance)."""
    activity = record.activity
    result = record.result
    if result != "success" and result.lower() != "success":
        return ClassifiedEvent(record.id, record.time, Series.OTHER, None, None, None)
    if activity in (ADD_MEMBER, REMOVE_MEMBER):
        add = activity == ADD_MEMBER
        if not is_dynamic_processing(record):
            series = Series.MANUAL_ADD if add else Series.MANUAL_REMOVE
        elif is_logged_by_core_directory(record):
            series = Series.DYNAMIC_ADD if add else Series.DYNAMIC_REMOVE
        else:
            series = Series.APPROVAL_MANAGEMENT_OTHER
        target_type = record.target_type or ""
        member_type = _MEMBER_TYPES.get(target_type) or _MEMBER_TYPES.get(target_type.lower())
        return ClassifiedEvent(
            record.id, record.time, series, record.group_id, record.target_id, None, member_type
        )
    trigger = _TRIGGERS.get(activity)
    if trigger is not None:
        object_type, is_update = trigger
        listed = listed_properties(record.modified)
        relevance = relevance_of_listed(object_type, listed, rules) if is_update else Relevance.RULE
        return ClassifiedEvent(
            record.id,
            record.time,
            TRIGGER_SERIES_BY_RELEVANCE[object_type][relevance],
            None,
            record.target_id,
            None,
            object_type,
            record.initiator,
            tuple(property_key(object_type.value, p) for p in listed or ()),
        )
    if activity in _GROUP_UPDATES:
        series, state = classify_group_update(record.modified)
        return ClassifiedEvent(record.id, record.time, series, record.group_id, None, state)
    if activity in GROUP_EXPIRY_ACTIVITIES and is_dynamic_processing(record):
        return ClassifiedEvent(
            record.id, record.time, Series.APPROVAL_MANAGEMENT_OTHER, None, None, None
        )
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


def is_logged_by_core_directory(record: AuditRecord) -> bool:
    """Dynamic processing logs under Core Directory. An event without `loggedByService` (never
    seen from Graph) is given the benefit of the doubt: the group check still applies."""
    logged_by = record.logged_by
    return logged_by is None or logged_by.lower() == _CORE_DIRECTORY


def classify_group_update(
    modified: tuple[ModifiedProperty, ...],
) -> tuple[Series, ProcessingState | None]:
    """(rule change | processing-state change | other update, the new state if readable).

    An update that changes the rule counts as a rule change even if it also sets the state:
    rule edits are what start re-evaluation storms."""
    names = {normalise_property_name(name) for name in updated_property_names(modified)}
    state: ProcessingState | None = None
    for prop in modified:
        if normalise_property_name(prop.name).endswith(_PROCESSING_STATE):
            state = parse_processing_state(decode_value(prop.new_value))
    if any(n.endswith(_RULE) for n in names):
        return Series.RULE_CHANGE, state
    if state is not None or any(n.endswith(_PROCESSING_STATE) for n in names):
        return Series.PROCESSING_STATE_CHANGE, state
    return Series.GROUP_UPDATE_OTHER, None


def updated_property_names(modified: tuple[ModifiedProperty, ...]) -> list[str]:
    """The names of the properties an update changed, as Entra spells them: those listed in
    `Included Updated Properties` (a list of names, not a property of its own) and every other
    modified property's."""
    listed = listed_properties(modified) or ()
    return [*listed, *(p.name for p in modified if p.name and not _is_the_list(p))]


def _is_the_list(prop: ModifiedProperty) -> bool:
    return normalise_property_name(prop.name) == _INCLUDED_UPDATED_PROPERTIES


def normalise_property_name(name: str) -> str:
    return normalise_name(name)


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
