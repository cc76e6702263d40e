"""One watched tenant: its clock, credential, Graph client, limiter, pollers and snapshot part.

Tenants are independent: each has its own tasks, and anything that goes wrong in one (a
credential that cannot be built, Graph down, a crash in a poller) is recorded in its collector
statuses and logs, never raised into the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import replace

from exporter.clock import Clock, SystemClock, following_simulator
from exporter.config.models import Config, Tenant
from exporter.domain.assessment import TenantAssessment
from exporter.domain.events import DirectoryObjectKind
from exporter.domain.probe import ProbeRound
from exporter.domain.readiness import CollectorHealth
from exporter.domain.records import DirectoryObject
from exporter.domain.relevance import RuleProperties
from exporter.graph.budget import AppBudget
from exporter.graph.client import GraphClient
from exporter.graph.credentials import CredentialError, auth_summary
from exporter.graph.factory import build_graph_client, polling_retry_policy
from exporter.graph.retry import RetryPolicy
from exporter.http.app import TenantReadiness
from exporter.ingest.audit_poller import AuditPoller, BackfillProgress, CommitPages
from exporter.ingest.directory_pollers import CriticalStatusPoller, DirectoryPoller
from exporter.ingest.poller import CollectorStatus, Poller, run_poller
from exporter.logs import get_logger
from exporter.runtime.assessor import AssessmentInputs, AssessmentTiming, TenantAssessor
from exporter.runtime.hygiene import HygieneTracker
from exporter.runtime.observations import ObservationReader
from exporter.runtime.probe import KEPT_ROUNDS, CanaryProbe
from exporter.runtime.rule_usage import RuleUsageTracker
from exporter.runtime.snapshot import SnapshotHolder, build_tenant_snapshot, read_store_view
from exporter.store.database import Store
from exporter.store.errors import StoreError
from exporter.store.lag import ProcessingLagConsumer
from exporter.store.probe import canary_key

log = get_logger(__name__)

SNAPSHOT_INTERVAL = 5.0
"""Wall seconds between two snapshot refreshes (trailing-hour values move with time)."""
SNAPSHOT_TENANTS = 10
"""Up to this many tenants each refresh every SNAPSHOT_INTERVAL; beyond it the interval grows
with the number of tenants (each refresh reads the store), up to MAX_SNAPSHOT_INTERVAL: the
refreshes of a fleet cost what ten tenants' do (docs/scale.md)."""
MAX_SNAPSHOT_INTERVAL = 60.0


def snapshot_scale(tenants: int) -> float:
    """The factor of SNAPSHOT_INTERVAL for a process watching `tenants` tenants."""
    return min(MAX_SNAPSHOT_INTERVAL / SNAPSHOT_INTERVAL, max(1.0, tenants / SNAPSHOT_TENANTS))


RULES_CHECK_INTERVAL = 0.1
"""How often the audit poller's wait for the first listings looks again (wall seconds)."""


class TenantRunner:
    def __init__(
        self,
        config: Config,
        tenant: Tenant,
        *,
        store: Store,
        holder: SnapshotHolder,
        observations: ObservationReader,
        assessment_executor: Executor,
        lag: ProcessingLagConsumer | None = None,
        retry: RetryPolicy | None = None,
        on_progress: Callable[[str, BackfillProgress], None] | None = None,
        commit_pages: CommitPages | None = None,
        app_budget: AppBudget | None = None,
        snapshot_scale: float = 1.0,
    ) -> None:
        """`snapshot_scale`: the periodic snapshot refresh runs every SNAPSHOT_INTERVAL times
        this (`snapshot_scale(tenants)`); polls refresh it as they end, whatever it is."""
        self.config = config
        self.tenant = tenant
        self.name = tenant.name
        self._store = store
        self._holder = holder
        polling = config.polling
        self._retry = retry or polling_retry_policy(polling)
        self._on_progress = on_progress
        self._commit_pages = commit_pages
        self._app_budget = app_budget
        self._snapshot_scale = snapshot_scale
        self._wall = SystemClock()
        self.clock: Clock = self._wall
        self.graph: GraphClient | None = None
        self.audit: AuditPoller | None = None
        self.critical: CriticalStatusPoller | None = None
        self.probe: CanaryProbe | None = None
        self.statuses: dict[str, CollectorStatus] = {
            name: CollectorStatus(name)
            for name in ("audit", "groups", "administrative_units", "critical_status")
            if name != "critical_status" or tenant.critical_groups
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._resources = contextlib.AsyncExitStack()
        self._setup_error: str | None = None
        self._logged_readiness: tuple[bool, bool] = (False, True)
        """(ready, complete) as last logged; the start is "not ready", as /readyz answers."""
        self._lag = lag
        self._refresh_lock = asyncio.Lock()
        self._refresh_wanted = False
        self.rule_usage = RuleUsageTracker()
        self.hygiene = HygieneTracker(
            tenant=self.name, store=store, settings=config.hygiene, clock=lambda: self.clock
        )
        self.assessor = TenantAssessor(
            config=config,
            tenant=tenant,
            store=store,
            reader=observations,
            executor=assessment_executor,
            inputs=self._assessment_inputs,
            on_assessed=self._assessed,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._main(), name=f"tenant-{self.name}"))

    async def stop(self) -> None:
        """Cancel the pollers (a page being committed still commits), close Graph and the
        credential."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._resources.aclose()
        if self.graph is not None:
            await self.graph.close()
            self.graph = None

    async def _main(self) -> None:
        try:
            if self.tenant.clock == "simulator":
                self.clock = await self._follow_simulator_clock()
            self.graph = self._build_graph()
        except CredentialError as exc:
            self._setup_failed(str(exc))
            return
        log.info(
            "watching tenant",
            tenant=self.name,
            graph=self.graph.root_url,
            auth=auth_summary(self.tenant.auth),
            clock=self.tenant.clock,
        )
        polling = self.config.polling
        self.audit = AuditPoller(
            tenant=self.name,
            graph=self.graph,
            store=self._store,
            clock=self.clock,
            interval=polling.audit_interval,
            lateness=polling.lateness_allowance,
            backfill=polling.backfill_seconds,
            reconcile_interval=polling.reconcile_interval,
            reconcile_reach=polling.reconcile_reach,
            on_progress=self._progress,
            commit_pages=self._commit_pages,
            rules=self._audit_rules,
            on_present=self._poll_ended,
            on_backlog=None
            if self._app_budget is None
            else functools.partial(self._app_budget.note_backlog, self.name),
        )
        pollers: list[Poller] = [self.audit]
        for kind in DirectoryObjectKind:
            pollers.append(
                DirectoryPoller(
                    tenant=self.name,
                    kind=kind,
                    graph=self.graph,
                    store=self._store,
                    clock=self.clock,
                    interval=polling.groups_interval,
                    on_listing=self._listed,
                )
            )
        if self.tenant.critical_groups:
            self.critical = CriticalStatusPoller(
                tenant=self.name,
                group_ids=self.tenant.critical_groups,
                graph=self.graph,
                interval=polling.critical_status_interval,
            )
            pollers.append(self.critical)
        # A restarted exporter's first audit poll judges trigger relevance by the rules the last
        # run listed (the store keeps them) instead of waiting ~2 s for this run's listing of
        # 15,000 groups. Read before any poller starts: a listing of this run stored meanwhile
        # would pass for the last run's (one kind listed, the other taken as empty).
        last_run = await self._store.call(self._store.directory_objects, self.name)
        async with asyncio.TaskGroup() as group:
            for poller in pollers:
                group.create_task(
                    run_poller(
                        poller,
                        self.statuses[poller.name],
                        self.clock,
                        tenant=self.name,
                        on_poll_end=self._poll_ended,
                    )
                )
            if self.tenant.probe is not None:
                settings = self.tenant.probe.settings()
                canary = canary_key(settings.group_id, settings.object_id, settings.property)
                self.probe = CanaryProbe(
                    tenant=self.name,
                    settings=settings,
                    graph=self.graph,
                    clock=self.clock,
                    audit_change_since=self._canary_change_since,
                    on_update=self._probe_updated,
                    kept=await self._store.call(self._store.probe_rounds, self.name, canary),
                    keep=functools.partial(self._keep_probe_round, canary),
                )
                group.create_task(self.probe.run())
            group.create_task(self._refresh_forever())
            group.create_task(self.assessor.run())
            group.create_task(self.rule_usage.run(on_update=self.refresh_snapshot))
            if last_run:
                group.create_task(self.rule_usage.prime(last_run))
            group.create_task(self.hygiene.run(self.graph, on_update=self.refresh_snapshot))

    async def _canary_change_since(self, since: float) -> float | None:
        """The canary group's last dynamic membership change at or after `since`, as ingested
        from the audit log (the probe's exact detection, when the log is not late)."""
        probe = self.tenant.probe
        assert probe is not None
        store = self._store
        changes = await store.run(lambda: store.group_last_changes(self.name, since))
        return changes.get(probe.group_id)

    async def _keep_probe_round(self, canary: str, done: ProbeRound) -> None:
        """A round that cannot be kept is still measured: a restart would only lose it."""
        try:
            await self._store.call(
                self._store.keep_probe_round, self.name, canary, done, KEPT_ROUNDS
            )
        except StoreError as exc:
            log.warning("canary probe round not kept", tenant=self.name, error=str(exc))

    async def _probe_updated(self) -> None:
        self.assessor.request()
        await self.refresh_snapshot()

    async def _listed(self, kind: DirectoryObjectKind, objects: Sequence[DirectoryObject]) -> None:
        await self.rule_usage.listed(kind, objects)
        await self.hygiene.listed(kind, objects)

    async def _audit_rules(self, wait: float) -> RuleProperties | None:
        """The properties the tenant's rules read, for the relevance of the audit poller's
        triggers: waits up to `wait` seconds for both listings to be parsed (a backfill at
        first start must not count updates as of unknown relevance because it began first),
        but no longer than until a listing fails (a tenant whose listing fails still ingests,
        with what is known: the other kind's rules, or nothing and relevance unknown)."""
        tracker = self.rule_usage
        listings = [self.statuses[name] for name in ("groups", "administrative_units")]
        failures = [s.failures for s in listings]
        deadline = self._wall.now() + wait
        while (
            not tracker.complete
            and [s.failures for s in listings] == failures
            and self._wall.now() < deadline
        ):
            await self._wall.sleep(RULES_CHECK_INTERVAL)
        return tracker.properties

    def _build_graph(self) -> GraphClient:
        return build_graph_client(
            self.config, self.tenant, retry=self._retry, app_budget=self._app_budget
        )

    def _setup_failed(self, message: str) -> None:
        self._setup_error = message
        for status in self.statuses.values():
            status.success = False
            status.last_error = message
        log.error("tenant cannot start", tenant=self.name, error=message)

    # -- the simulator's clock -------------------------------------------------------------------

    async def _follow_simulator_clock(self) -> Clock:
        """Wait for a first reading of the simulator's clock, then keep following it until
        the runner stops."""
        return await self._resources.enter_async_context(
            following_simulator(
                self.tenant.graph_base_url or "", wait=True, wall_sleep=self._wall.sleep
            )
        )

    # -- snapshot and readiness -------------------------------------------------------------------

    def _progress(self, progress: BackfillProgress) -> None:
        if self._on_progress is not None:
            self._on_progress(self.name, progress)

    async def _refresh_forever(self) -> None:
        while True:
            await self._wall.sleep(SNAPSHOT_INTERVAL * self._snapshot_scale)
            await self.refresh_snapshot()

    async def _poll_ended(self) -> None:
        self.hygiene.poke()
        self.assessor.request()
        await self.refresh_snapshot()
        self._log_readiness_change()

    def _log_readiness_change(self) -> None:
        """One line when /readyz's answer for this tenant changes (ready, or complete), not on
        every poll: the detail (a backfill percentage) changes all the time."""
        now = self.readiness()
        if (now.ready, now.complete) == self._logged_readiness:
            return
        self._logged_readiness = (now.ready, now.complete)
        (log.info if now.ready else log.warning)(
            "exporter readiness changed",
            tenant=self.name,
            ready=now.ready,
            complete=now.complete,
            detail=now.detail,
        )

    def _assessment_inputs(self) -> AssessmentInputs:
        return AssessmentInputs(
            now=self.clock.now(),
            collectors=tuple(
                CollectorHealth(s.name, s.success is True, s.last_success)
                for s in self.statuses.values()
            ),
            critical_statuses=dict(self.critical.statuses) if self.critical is not None else {},
            probe_settings=self.probe.settings if self.probe is not None else None,
            probe_rounds=self.probe.status.rounds if self.probe is not None else (),
        )

    def _assessed(self, assessment: TenantAssessment, timing: AssessmentTiming) -> None:
        part = self._holder.current.tenant(self.name)
        if part is not None:
            self._holder.update(replace(part, assessment=assessment, assessment_timing=timing))

    async def refresh_snapshot(self) -> None:
        """Rebuild the snapshot; returns once a refresh that began after this call has ended.
        Calls made while one runs share the next (several poll ends at once, as at start-up,
        cost one more store read, not one each)."""
        self._refresh_wanted = True
        async with self._refresh_lock:
            if not self._refresh_wanted:
                return  # the refresh that just ended began after this call
            self._refresh_wanted = False
            try:
                await self._refresh_snapshot()
            except RuntimeError:  # the store is closing: the process is shutting down
                return

    async def _refresh_snapshot(self) -> None:
        now = self.clock.now()
        critical = frozenset(self.tenant.critical_groups)
        cap = self.config.metrics.per_group_series_cap
        store = self._store
        lag = self._lag
        view = await store.run(
            lambda: read_store_view(
                store, self.name, now, critical=critical, per_group_cap=cap, lag=lag
            )
        )
        audit = self.audit
        self._holder.update(
            build_tenant_snapshot(
                view,
                tenant=self.name,
                now=now,
                directory_polled=self.statuses["groups"].ever_succeeded,
                collectors=list(self.statuses.values()),
                backfill=audit.progress if audit is not None else None,
                graph_requests=self.graph.requests if self.graph is not None else {},
                critical_statuses=self.critical.statuses if self.critical is not None else {},
                assessment=self.assessor.latest,
                assessment_timing=self.assessor.timing,
                rules_using_operator=self.rule_usage.usage,
                hygiene=self.hygiene.summary,
                property_readers=self.rule_usage.property_readers,
                probe=self.probe.status if self.probe is not None else None,
            )
        )

    def readiness(self) -> TenantReadiness:
        """Ready once any poll has completed (a committed backfill page counts), so the
        exporter is ready while a long backfill makes progress."""
        if self._setup_error is not None:
            return TenantReadiness(False, self._setup_error)
        done = [s.name for s in self.statuses.values() if s.ever_succeeded]
        audit = self.audit
        if audit is not None and audit.progress is not None and not audit.caught_up:
            return TenantReadiness(
                bool(done),
                f"backfilling the audit log: {audit.progress.fraction:.0%}",
                complete=False,
            )
        if done:
            failing = [s for s in self.statuses.values() if s.success is False]
            if failing:
                return TenantReadiness(
                    True, f"{failing[0].name} failing: {failing[0].last_error or 'unknown error'}"
                )
            return TenantReadiness(True, "polling")
        errors = [s.last_error for s in self.statuses.values() if s.last_error]
        return TenantReadiness(False, errors[0] if errors else "first polls under way")


__all__ = ["TenantRunner"]
