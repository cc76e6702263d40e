"""The vocabulary of the directory audit log as this project uses it.

Shared by the classifier (exporter side) and the simulator (which writes the events Entra
writes), so both sides agree on names by construction. Facts: ../shared/reference/graph-facts.md.
"""

from __future__ import annotations

from enum import StrEnum

# The service principal that performs dynamic membership changes. It also acts for self-service
# group management and Microsoft 365 group expiry, so classification looks at the activity too.
DYNAMIC_PROCESSING_APP = "Microsoft Approval Management"
DYNAMIC_PROCESSING_APP_IDS = frozenset(
    {"65d91a3d-ab74-42e6-8a2f-0add61688c74", "38049638-cc2c-4cde-abe4-4479d721ed44"}
)

ADD_MEMBER = "Add member to group"
REMOVE_MEMBER = "Remove member from group"
UPDATE_GROUP = "Update group"
UPDATE_ADMINISTRATIVE_UNIT = "Update administrative unit"
# Membership changes of dynamic administrative units (category AdministrativeUnit). Unverified:
# which actor Entra records for them; the simulator uses the dynamic-processing app.
ADD_AU_MEMBER = "Add member to administrative unit"
REMOVE_AU_MEMBER = "Remove member from administrative unit"

# `loggedByService`: dynamic processing logs under Core Directory; the same app's self-service
# group management logs under its own service (Microsoft 365 group expiry logs "Delete group").
LOGGED_BY_CORE_DIRECTORY = "Core Directory"
LOGGED_BY_SELF_SERVICE = "Self-service Group Management"

# Microsoft 365 group expiration, done by the same app (#13). Microsoft's "Microsoft Entra audit
# log activity reference" lists "Autorenew group" and "Renew group" under Self-service group
# management and "Delete group" under Core Directory (category GroupManagement for all three);
# which actor each names is not documented. Not ingested (nothing about dynamic processing):
# classified `approval_management_other` when the app did it, never dynamic.
DELETE_GROUP = "Delete group"
AUTORENEW_GROUP = "Autorenew group"
RENEW_GROUP = "Renew group"
GROUP_EXPIRY_ACTIVITIES = frozenset({DELETE_GROUP, AUTORENEW_GROUP, RENEW_GROUP})
GROUP_TYPE_MICROSOFT_365 = "unifiedGroups"
"""targetResources[].groupType of a Microsoft 365 group (Graph's enum: unifiedGroups, azureAD,
unknownFutureValue)."""

# targetResources[].type of the member and of the group of a membership change. Graph's own
# example lists the group first, every other sample the member: targets are found by type.
TARGET_TYPE_USER = "User"
TARGET_TYPE_DEVICE = "Device"
TARGET_TYPE_GROUP = "Group"
TARGET_TYPE_ADMINISTRATIVE_UNIT = "AdministrativeUnit"

# `modifiedProperties[].displayName` on Update group / Update administrative unit for a rule edit
# and for pause/resume. Unverified names (graph-facts.md): detect state changes from the groups'
# settings as well, and use these to refine the time.
PROPERTY_MEMBERSHIP_RULE = "MembershipRule"
PROPERTY_PROCESSING_STATE = "MembershipRuleProcessingState"
# The member's modifiedProperties on Add/Remove member to/from group (names verified).
PROPERTY_GROUP_OBJECT_ID = "Group.ObjectID"
PROPERTY_GROUP_DISPLAY_NAME = "Group.DisplayName"
PROPERTY_GROUP_WELL_KNOWN_NAME = "Group.WellKnownObjectName"
# On Update user / Update device (and Update group): the names of the properties that changed,
# comma-separated in one JSON string (possibly empty).
PROPERTY_INCLUDED_UPDATED_PROPERTIES = "Included Updated Properties"

TRIGGER_ACTIVITIES: dict[str, tuple[str, str]] = {
    # activity -> (object type, action)
    "Add user": ("user", "add"),
    "Update user": ("user", "update"),
    "Delete user": ("user", "delete"),
    "Add device": ("device", "add"),
    "Update device": ("device", "update"),
    "Delete device": ("device", "delete"),
}

# Every activity the exporter ingests; the audit poller asks Graph for these only.
INGESTED_ACTIVITIES: tuple[str, ...] = (
    ADD_MEMBER,
    REMOVE_MEMBER,
    ADD_AU_MEMBER,
    REMOVE_AU_MEMBER,
    UPDATE_GROUP,
    UPDATE_ADMINISTRATIVE_UNIT,
    *TRIGGER_ACTIVITIES,
)

CATEGORY_GROUP_MANAGEMENT = "GroupManagement"
CATEGORY_USER_MANAGEMENT = "UserManagement"
CATEGORY_DEVICE = "Device"
CATEGORY_AU = "AdministrativeUnit"


class ObjectType(StrEnum):
    USER = "user"
    DEVICE = "device"


class DirectoryObjectKind(StrEnum):
    GROUP = "group"
    ADMINISTRATIVE_UNIT = "administrative_unit"


class ProcessingState(StrEnum):
    ON = "On"
    PAUSED = "Paused"


class Relevance(StrEnum):
    """Whether a user or device change can matter to the tenant's dynamic rules."""

    RULE = "rule"
    """A changed property is read by a rule (or the object was added or deleted)."""
    OTHER = "other"
    """No changed property is read by any rule: it cannot change a membership."""
    UNKNOWN = "unknown"
    """The event names no changed properties."""


class Series(StrEnum):
    """The counted series the store keeps in minute and hourly buckets (event time)."""

    DYNAMIC_ADD = "dynamic_add"
    DYNAMIC_REMOVE = "dynamic_remove"
    MANUAL_ADD = "manual_add"
    MANUAL_REMOVE = "manual_remove"
    TRIGGER_USER = "trigger_user"
    """A user change rules read (relevance `rule`); the two below are the other relevances."""
    TRIGGER_USER_UNKNOWN = "trigger_user_unknown"
    TRIGGER_USER_OTHER = "trigger_user_other"
    TRIGGER_DEVICE = "trigger_device"
    TRIGGER_DEVICE_UNKNOWN = "trigger_device_unknown"
    TRIGGER_DEVICE_OTHER = "trigger_device_other"
    RULE_CHANGE = "rule_change"
    PROCESSING_STATE_CHANGE = "processing_state_change"
    GROUP_UPDATE_OTHER = "group_update_other"
    APPROVAL_MANAGEMENT_OTHER = "approval_management_other"
    """A membership change by the dynamic-processing app that is not dynamic processing:
    self-service group management, or a group that was not dynamic at the event's time; and the
    app's Microsoft 365 group expiration (not ingested)."""
    OTHER = "other"


TRIGGER_SERIES_BY_RELEVANCE: dict[ObjectType, dict[Relevance, Series]] = {
    ObjectType.USER: {
        Relevance.RULE: Series.TRIGGER_USER,
        Relevance.UNKNOWN: Series.TRIGGER_USER_UNKNOWN,
        Relevance.OTHER: Series.TRIGGER_USER_OTHER,
    },
    ObjectType.DEVICE: {
        Relevance.RULE: Series.TRIGGER_DEVICE,
        Relevance.UNKNOWN: Series.TRIGGER_DEVICE_UNKNOWN,
        Relevance.OTHER: Series.TRIGGER_DEVICE_OTHER,
    },
}
"""Every trigger series, by object type and relevance."""
TRIGGER_SERIES_RELEVANCE: dict[Series, tuple[ObjectType, Relevance]] = {
    series: (object_type, relevance)
    for object_type, by_relevance in TRIGGER_SERIES_BY_RELEVANCE.items()
    for relevance, series in by_relevance.items()
}
RELEVANT_TRIGGER_SERIES: dict[ObjectType, tuple[Series, ...]] = {
    object_type: (by_relevance[Relevance.RULE], by_relevance[Relevance.UNKNOWN])
    for object_type, by_relevance in TRIGGER_SERIES_BY_RELEVANCE.items()
}
"""The triggers that can start re-evaluation: rule-relevant ones and those whose changed
properties are unknown. The trigger-rate signal, its baseline, the recovery condition and the
lag estimator count these only."""
