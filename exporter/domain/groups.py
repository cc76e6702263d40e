"""Dynamic groups and administrative units as the domain sees them (filled by the store from the
groups poller), and the pause ledger's episodes (written by the pause/resume operations)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from exporter.domain.events import DirectoryObjectKind, ProcessingState


class MembershipProcessingStatus(StrEnum):
    """beta `membershipRuleProcessingStatus.status` (polled for critical groups only)."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class CriticalStatus:
    status: MembershipProcessingStatus
    last_membership_updated: float | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class GroupState:
    """One dynamic group or dynamic administrative unit, as last polled."""

    id: str
    name: str
    kind: DirectoryObjectKind
    state: ProcessingState
    paused_since: float | None = None
    """When it was paused, if known (an observed transition or its audit event). Leave None
    rather than guess: a guess such as "first seen paused" would make long-parked groups look
    like part of the current episode."""
    critical: bool = False
    status: CriticalStatus | None = None
    """Critical groups only; Graph returns null while a group is paused."""
    resumed_at: float | None = None
    """While On: when it was seen resumed (On after Paused), if it was; a resumed group needs
    its full re-evaluation before changes flow, so a stall is not called right after it."""

    @property
    def paused(self) -> bool:
        return self.state is ProcessingState.PAUSED


@dataclass(frozen=True, slots=True)
class LedgerEpisode:
    """A pause episode this tool started, as the ledger records it."""

    id: str
    started_at: float
    started_by: str
    reason: str
    paused: tuple[str, ...]
    """Objects this episode paused."""
    already_paused: tuple[str, ...]
    """Objects that were paused when the episode began: never resumed by the plan."""
    ended_at: float | None = None

    @property
    def open(self) -> bool:
        return self.ended_at is None
