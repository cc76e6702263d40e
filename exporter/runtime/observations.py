"""What the store (and the pollers' memory) knows about one tenant, as the domain's
`TenantObservations` (docs/signals.md, "Inputs").

`ObservationReader.read()` runs on the store's thread (`await store.run(...)`): it reads the
bucket tables, the directory objects, the lag samples and the pause ledger in one go. What only
the pollers hold in memory (collector health, the critical groups' beta status) is copied on the
event loop first and passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from exporter.config.models import Tenant
from exporter.domain.assessment import TenantObservations
from exporter.domain.groups import (
    CriticalStatus,
    GroupState,
    LedgerEpisode,
)
from exporter.domain.queue import measured_capacity
from exporter.domain.readiness import CollectorHealth
from exporter.domain.records import ProcessingStatus
from exporter.domain.settings import Thresholds
from exporter.store.count_cache import CountHistoryReader
from exporter.store.database import HOUR_RETENTION, Store
from exporter.store.lag import ProcessingLagConsumer


class LedgerSource(Protocol):
    """The pause ledger (`exporter.store.ledger.Ledger`): the episodes this tool recorded."""

    def episodes(self, tenant: str) -> tuple[LedgerEpisode, ...]:
        """Synchronous, on the store's thread."""
        ...


def critical_status(status: ProcessingStatus | None) -> CriticalStatus | None:
    """Graph's beta status as the domain reads it; None while unknown (paused, unreadable, a
    value Graph may add later)."""
    if status is None or status.status is None:
        return None
    return CriticalStatus(status.status, status.last_membership_updated, status.error_message)


class ObservationReader:
    def __init__(
        self,
        store: Store,
        *,
        thresholds: Thresholds,
        lag: ProcessingLagConsumer | None,
        ledger: LedgerSource | None,
    ) -> None:
        self._store = store
        self.counts = CountHistoryReader(store)
        self._thresholds = thresholds
        self._lag = lag
        self._ledger = ledger

    def ledger_episodes(self, tenant: str) -> tuple[LedgerEpisode, ...]:
        """On the store's thread. Cheap: the ledger is cached until the database changes."""
        return () if self._ledger is None else self._ledger.episodes(tenant)

    def read(
        self,
        tenant: Tenant,
        now: float,
        *,
        collectors: Sequence[CollectorHealth],
        critical_statuses: Mapping[str, ProcessingStatus],
    ) -> TenantObservations:
        """On the store's thread."""
        store, name = self._store, tenant.name
        since = now - HOUR_RETENTION
        critical = frozenset(tenant.critical_groups)
        groups = tuple(
            GroupState(
                id=o.id,
                name=o.name,
                kind=o.kind,
                state=o.state,
                paused_since=o.paused_since,
                critical=o.id in critical,
                status=critical_status(critical_statuses.get(o.id)) if o.id in critical else None,
                resumed_at=o.resumed_at,
                observed_at=o.last_seen,
            )
            for o in store.object_states(name)
            # A state Graph reported as neither On nor Paused cannot be judged either way.
            if o.state is not None
        )
        audit = store.audit_state(name)
        lag_samples = (
            ()
            if self._lag is None
            else self._lag.recent_samples(store.db, name, now - self._thresholds.lag_window)
        )
        history = self.counts.read(name, since, now)
        waiting = None if self._lag is None else self._lag.waiting_triggers(store.db, name, now)
        if self._lag is not None and waiting is not None:
            rate = measured_capacity(waiting, history, now=now)
            if rate is not None:
                self._lag.record_capacity(store.db, name, rate, now)
        return TenantObservations(
            tenant=name,
            history=history,
            groups=groups,
            group_last_change=store.group_last_changes(name, since),
            ledger=self.ledger_episodes(name),
            collectors=tuple(collectors),
            audit_watermark=audit.watermark if audit is not None else None,
            lag_samples=lag_samples,
            critical_priority=tenant.critical_groups,
            waiting=waiting,
        )
