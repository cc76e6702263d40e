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

LOGGED_BY_CORE_DIRECTORY = "Core Directory"

# `modifiedProperties[].displayName` on Update group / Update administrative unit for a rule edit
# and for pause/resume. Unverified names (graph-facts.md): detect state changes from the groups'
# settings as well, and use these to refine the time.
PROPERTY_MEMBERSHIP_RULE = "MembershipRule"
PROPERTY_PROCESSING_STATE = "MembershipRuleProcessingState"
# The member's modifiedProperties on Add/Remove member to/from group (names verified).
PROPERTY_GROUP_OBJECT_ID = "Group.ObjectID"
PROPERTY_GROUP_DISPLAY_NAME = "Group.DisplayName"
PROPERTY_GROUP_WELL_KNOWN_NAME = "Group.WellKnownObjectName"

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


class Series(StrEnum):
    """The counted series the store keeps in minute and hourly buckets (event time)."""

    DYNAMIC_ADD = "dynamic_add"
    DYNAMIC_REMOVE = "dynamic_remove"
    MANUAL_ADD = "manual_add"
    MANUAL_REMOVE = "manual_remove"
    TRIGGER_USER = "trigger_user"
    TRIGGER_DEVICE = "trigger_device"
    RULE_CHANGE = "rule_change"
    PROCESSING_STATE_CHANGE = "processing_state_change"
    GROUP_UPDATE_OTHER = "group_update_other"
    OTHER = "other"
