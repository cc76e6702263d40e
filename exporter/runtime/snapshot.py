"""The immutable snapshot the Prometheus collector reads: pollers build a new one and swap it in.

A scrape never does I/O and never sees a half-updated state: `SnapshotHolder.current` is
replaced as a whole (one attribute assignment on the event loop). To export something more,
add a field with a default to `TenantSnapshot`, fill it in `build_tenant_snapshot` (or
`read_store_view` for what comes from the store), and add a family builder in
`exporter.runtime.collector`.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from exporter import __version__, source_revision
from exporter.domain.assessment import TenantAssessment
from exporter.domain.attribution import TriggerCauses, with_readers
from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.events import DirectoryObjectKind, Series
from exporter.domain.history import trailing_hour
from exporter.domain.lag import LagHistogram
from exporter.domain.records import ProcessingStatus
from exporter.ingest.audit_poller import BackfillProgress
from exporter.ingest.poller import CollectorStatus
from exporter.runtime.assessor import AssessmentTiming
from exporter.runtime.hygiene import HygieneSummary
from exporter.runtime.probe import ProbeStatus
from exporter.store.database import PausedObject, Store
from exporter.store.lag import ProcessingLagConsumer


@dataclass(frozen=True, slots=True)
class CollectorState:
    name: str
    success: bool | None
    duration: float | None
    last_success: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class PausedSeries:
    kind: DirectoryObjectKind
    id: str
    name: str
    critical: bool
    since: float | None
    """None: paused since before the exporter first listed it, time unknown."""


@dataclass(frozen=True, slots=True)
class GroupChange:
    group_id: str
    name: str
    critical: bool
    time: float


@dataclass(frozen=True, slots=True)
class CriticalStatus:
    group_id: str
    name: str
    status: ProcessingStatus


@dataclass(frozen=True, slots=True)
class StoreView:
    """What one tenant's snapshot reads from the store (in the store's thread)."""

    directory_counts: Mapping[tuple[DirectoryObjectKind, str], int]
    totals: Mapping[str, int]
    last_hour: Mapping[Series, int]
    groups_changed_last_hour: int
    paused: tuple[PausedSeries, ...]
    paused_not_exported: int
    last_changes: tuple[GroupChange, ...]
    watermark: float | None
    names: Mapping[str, str]
    """Names of the critical groups (for labels)."""
    lag_histogram: LagHistogram | None = None
    audit_query_mode: AuditQueryMode = AuditQueryMode.NARROW
    undecided_changes: int = 0
    trigger_causes: TriggerCauses | None = None


@dataclass(frozen=True, slots=True)
class TenantSnapshot:
    tenant: str
    taken_at: float
    """The tenant clock when the snapshot was built (epoch seconds)."""
    directory_counts: Mapping[tuple[DirectoryObjectKind, str], int] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """(kind, On | Paused | unknown) -> objects."""
    directory_polled: bool = False
    """At least one listing of groups has been stored (else the counts are unknown)."""
    totals: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    last_hour: Mapping[Series, int] = field(default_factory=lambda: MappingProxyType({}))
    groups_changed_last_hour: int = 0
    paused: tuple[PausedSeries, ...] = ()
    paused_not_exported: int = 0
    last_changes: tuple[GroupChange, ...] = ()
    """Last dynamic membership change per group (critical always, others up to the cap)."""
    collectors: tuple[CollectorState, ...] = ()
    watermark: float | None = None
    backfill: BackfillProgress | None = None
    graph_requests: Mapping[tuple[str, str], int] = field(
        default_factory=lambda: MappingProxyType({})
    )
    critical_statuses: tuple[CriticalStatus, ...] = ()
    assessment: TenantAssessment | None = None
    """The latest signals and resume readiness (`exporter.runtime.assessor`); None before the
    first."""
    assessment_timing: AssessmentTiming | None = None
    lag_histogram: LagHistogram | None = None
    """Cumulative processing-lag histogram; None when no lag estimator runs."""
    rules_using_operator: Mapping[str, int] | None = None
    """operator -> dynamic rules using it; None before the first listing."""
    audit_query_mode: AuditQueryMode = AuditQueryMode.NARROW
    """How the audit poller asks Graph (#13)."""
    undecided_changes: int = 0
    """Changes by the dynamic-processing app waiting for a group listing to say whether their
    group is dynamic (#13)."""
    hygiene: HygieneSummary | None = None
    """Dead-weight candidates per reason and the object limit; None before the first listing."""
    trigger_causes: TriggerCauses | None = None
    """The trailing hour's triggers by initiator and by changed property (top 5 each), the
    properties with the rules that read them once the rules are parsed."""
    probe: ProbeStatus | None = None
    """The canary probe's rounds and counts (#20); None without a probe."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    tenants: tuple[TenantSnapshot, ...] = ()
    version: str = __version__
    python_version: str = platform.python_version()
    revision: str = field(default_factory=source_revision)

    def tenant(self, name: str) -> TenantSnapshot | None:
        return next((t for t in self.tenants if t.tenant == name), None)


class SnapshotHolder:
    """The current snapshot; tenants replace their part, the whole object is swapped."""

    def __init__(self, tenant_names: Sequence[str]) -> None:
        self._order = tuple(tenant_names)
        self.current = Snapshot(tuple(TenantSnapshot(name, 0.0) for name in self._order))

    def update(self, part: TenantSnapshot) -> None:
        parts = {t.tenant: t for t in self.current.tenants}
        parts[part.tenant] = part
        self.current = replace(
            self.current, tenants=tuple(parts[name] for name in self._order if name in parts)
        )


def _longest_paused_first(p: PausedObject) -> tuple[bool, float, str]:
    """Unknown pause times first: those groups were paused before the exporter listed them."""
    return (p.paused_since is not None, p.paused_since or 0.0, p.id)


def read_store_view(
    store: Store,
    tenant: str,
    now: float,
    *,
    critical: frozenset[str],
    per_group_cap: int,
    lag: ProcessingLagConsumer | None = None,
) -> StoreView:
    """Runs in the store's thread (`await store.run(lambda: read_store_view(...))`)."""
    since, until = trailing_hour(now)
    paused_objects: list[PausedObject] = store.paused_objects(tenant)
    critical_paused = [p for p in paused_objects if p.id in critical]
    others = [p for p in paused_objects if p.id not in critical]
    exported = critical_paused + others[:per_group_cap]
    state = store.audit_state(tenant)
    changes = store.latest_group_changes(tenant, per_group_cap + len(critical), include=critical)
    critical_changes = [c for c in changes if c[0] in critical]
    other_changes = [c for c in changes if c[0] not in critical][:per_group_cap]
    exported_changes = sorted(critical_changes + other_changes, key=lambda c: (-c[1], c[0]))
    names = store.object_names(tenant, {c[0] for c in exported_changes} | critical)
    return StoreView(
        directory_counts=MappingProxyType(dict(store.directory_state_counts(tenant))),
        totals=MappingProxyType(store.totals(tenant)),
        last_hour=MappingProxyType(store.counts_between(tenant, since, until)),
        groups_changed_last_hour=store.groups_changed_between(tenant, since, until),
        paused=tuple(
            PausedSeries(p.kind, p.id, p.name, p.id in critical, p.paused_since)
            for p in sorted(exported, key=_longest_paused_first)
        ),
        paused_not_exported=len(others) - min(len(others), per_group_cap),
        last_changes=tuple(
            GroupChange(group_id, names.get(group_id, ""), group_id in critical, time)
            for group_id, time in exported_changes
        ),
        watermark=state.watermark if state else None,
        names=MappingProxyType({g: names.get(g, "") for g in critical}),
        lag_histogram=lag.histogram(store.db, tenant) if lag is not None else None,
        audit_query_mode=store.audit_query_mode(tenant),
        undecided_changes=store.undecided_count(tenant),
        trigger_causes=store.trigger_causes(tenant, since, until),
    )


def build_tenant_snapshot(
    view: StoreView,
    *,
    tenant: str,
    now: float,
    directory_polled: bool,
    collectors: Sequence[CollectorStatus],
    backfill: BackfillProgress | None,
    graph_requests: Mapping[tuple[str, str], int],
    critical_statuses: Mapping[str, ProcessingStatus],
    assessment: TenantAssessment | None = None,
    assessment_timing: AssessmentTiming | None = None,
    rules_using_operator: Mapping[str, int] | None = None,
    hygiene: HygieneSummary | None = None,
    property_readers: Mapping[str, int] | None = None,
    probe: ProbeStatus | None = None,
) -> TenantSnapshot:
    return TenantSnapshot(
        tenant=tenant,
        taken_at=now,
        directory_counts=view.directory_counts,
        directory_polled=directory_polled,
        totals=view.totals,
        last_hour=view.last_hour,
        groups_changed_last_hour=view.groups_changed_last_hour,
        paused=view.paused,
        paused_not_exported=view.paused_not_exported,
        last_changes=view.last_changes,
        collectors=tuple(
            CollectorState(c.name, c.success, c.duration, c.last_success, c.last_error)
            for c in collectors
        ),
        watermark=view.watermark,
        backfill=backfill,
        graph_requests=MappingProxyType(dict(graph_requests)),
        critical_statuses=tuple(
            CriticalStatus(group_id, view.names.get(group_id, ""), status)
            for group_id, status in sorted(critical_statuses.items())
        ),
        assessment=assessment,
        assessment_timing=assessment_timing,
        lag_histogram=view.lag_histogram,
        rules_using_operator=rules_using_operator,
        audit_query_mode=view.audit_query_mode,
        undecided_changes=view.undecided_changes,
        hygiene=hygiene,
        trigger_causes=None
        if view.trigger_causes is None
        else with_readers(view.trigger_causes, property_readers),
        probe=probe,
    )
