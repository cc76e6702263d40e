"""Dynamic groups and administrative units as the domain sees them (filled by the store from the
groups poller), and the pause ledger's episodes (written by the pause/resume operations)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
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
    observed_at: float | None = None
    """When a poll last saw it (the store's `last_seen`): a change the ledger records after
    that is newer than this state (`reconcile_with_ledger`)."""

    @property
    def paused(self) -> bool:
        return self.state is ProcessingState.PAUSED


@dataclass(frozen=True, slots=True)
class LedgerObject:
    """What the ledger knows of one object's state: this tool paused it (confirmed by Graph),
    adopted it as paused, or resumed it or found it On, at `at`."""

    id: str
    state: ProcessingState
    at: float
    exact: bool = True
    """`at` is when it changed; False when it is only when it was seen so (an adopted pause
    whose time is unknown, an object already paused when the episode began)."""


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
    objects: tuple[LedgerObject, ...] = ()
    """The state of each object as last recorded (objects whose PATCH outcome is not known
    yet are left out)."""

    @property
    def open(self) -> bool:
        return self.ended_at is None


def reconcile_with_ledger(
    groups: Iterable[GroupState], ledger: Iterable[LedgerEpisode]
) -> tuple[GroupState, ...]:
    """The groups as of the latest news: where the ledger records a state newer than the last
    poll that saw the group (pause --apply, adopt, a resume batch between two group polls), the
    ledger's state wins. Without this the exporter would call a tenant `not_paused` for up to a
    groups interval after a pause, and a pipeline gating on it would resume at once.

    A tie goes to the ledger: it records what Graph confirmed to this tool, the poll may have
    listed the object just before."""
    latest: dict[str, LedgerObject] = {}
    for episode in ledger:
        for o in episode.objects:
            known = latest.get(o.id)
            if known is None or o.at > known.at:
                latest[o.id] = o
    result = []
    for g in groups:
        news = latest.get(g.id)
        if news is None or (g.observed_at is not None and news.at < g.observed_at):
            result.append(g)
        elif news.state is ProcessingState.PAUSED and not g.paused:
            since = news.at if news.exact else None
            result.append(replace(g, state=news.state, paused_since=since, resumed_at=None))
        elif news.state is ProcessingState.ON and g.paused:
            result.append(replace(g, state=news.state, paused_since=None, resumed_at=news.at))
        else:
            result.append(g)
    return tuple(result)
