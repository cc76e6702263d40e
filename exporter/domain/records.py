"""The small immutable records `exporter.graph` produces from Graph JSON; nothing else sees JSON.

Audit records are NamedTuples on purpose: they are built once per event on the ingestion hot
path (tens of thousands per second), and a NamedTuple is immutable, slot-sized and about five
times cheaper to construct than a frozen dataclass. The rarer records are frozen slotted
dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from exporter.domain.events import DirectoryObjectKind, ObjectType, ProcessingState, Series
from exporter.domain.groups import MembershipProcessingStatus


class ModifiedProperty(NamedTuple):
    name: str
    old_value: str | None
    new_value: str | None


class AuditRecord(NamedTuple):
    """One directory audit event, reduced to what classification and counting need."""

    id: str
    time: float
    """activityDateTime, epoch seconds."""
    activity: str
    result: str
    """success, failure, timeout, ... ("success" when Graph omits it)."""
    app_id: str | None
    app_name: str | None
    by_user: bool
    """initiatedBy.user is present: a person did it."""
    target_type: str | None
    """The member's type for membership changes (User, Device, ...), else targetResources[0]'s."""
    target_id: str | None
    """The member for membership changes (the target that is not the group, found by type),
    targetResources[0].id otherwise."""
    group_id: str | None
    """The group (or administrative unit) concerned: for membership changes the target of type
    Group (else the target that is not the member, else Group.ObjectID from the member's
    modifiedProperties), targetResources[0].id for group and administrative-unit updates."""
    modified: tuple[ModifiedProperty, ...]
    """modifiedProperties of the updated group, unit, user or device (empty for other
    activities)."""
    logged_by: str | None = None
    """loggedByService: Core Directory, Self-service Group Management, ... (None if absent)."""
    initiator: str | None = None
    """Who did it: initiatedBy.user.userPrincipalName, else initiatedBy.app.displayName."""


class MalformedEvent(NamedTuple):
    """An event that could not be read. It is counted by reason, once per content (`id` is a
    digest of the event's JSON, whatever the window that served it) and otherwise skipped."""

    id: str
    time: float | None
    reason: str


class ClassifiedEvent(NamedTuple):
    id: str
    time: float
    series: Series
    group_id: str | None
    """For membership changes and group updates."""
    object_id: str | None
    """The member (membership changes) or the changed object (triggers)."""
    processing_state: ProcessingState | None
    """For processing-state changes whose new value could be read."""
    object_type: ObjectType | None = None
    """User or device: the member (membership changes; None when it is neither) or the changed
    object (triggers). The lag estimator pairs them."""
    initiator: str | None = None
    """Triggers: who made the change (storm attribution)."""
    properties: tuple[str, ...] = ()
    """Triggers: the properties Entra lists as changed ("Included Updated Properties"), spelt
    as rules read them: `user.extensionAttribute3`."""


@dataclass(frozen=True, slots=True)
class DirectoryObject:
    """A dynamic group or dynamic administrative unit."""

    kind: DirectoryObjectKind
    id: str
    name: str
    rule: str
    state: ProcessingState | None
    """None when Graph reports a value other than On or Paused (counted as unknown)."""


@dataclass(frozen=True, slots=True)
class ProcessingStatus:
    """Beta `membershipRuleProcessingStatus` of one group (null while paused)."""

    group_id: str
    status: MembershipProcessingStatus | None
    """None when Graph returns no status (paused) or one this version does not know."""
    last_membership_updated: float | None
    error_message: str | None
