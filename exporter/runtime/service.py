"""The exporter process: the store, one `TenantRunner` per tenant, the snapshot, the metrics
registry and readiness; and the order things stop in.

Shutdown (SIGTERM): the HTTP server stops accepting and drains (exporter.http.app), then every
tenant's pollers are cancelled (a page being committed still commits), Graph clients and
credentials are closed, then the audit commit process (after the commits it was sent), and last
the store, after any write already submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.clock import SystemClock
from exporter.config.models import Config
from exporter.config.sharding import select_shard
from exporter.config.web import WebConfig
from exporter.domain.attribution import cause_lines
from exporter.domain.hygiene import Headroom
from exporter.graph.budget import share_budgets
from exporter.graph.retry import RetryPolicy
from exporter.http.app import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TELEMETRY_PATH,
    Link,
    Listening,
    Readiness,
    create_app,
    log_listening,
    running,
    stop_on_signals,
)
from exporter.http.readiness_api import AssessmentView, readiness_routes
from exporter.http.runbook import RUNBOOK_ROUTE, anchor, runbook_routes
from exporter.http.telemetry import exporter_metrics_registry
from exporter.ingest.audit_poller import BackfillProgress
from exporter.ingest.commit.parent import CommitProcess
from exporter.logs import get_logger
from exporter.readiness.wire import READINESS_PATH
from exporter.runtime.app_budget import AppBudgetCollector
from exporter.runtime.collector import DEFAULT_BUILDERS, FamilyBuilder, SnapshotCollector
from exporter.runtime.console import Console, TenantSource
from exporter.runtime.observations import ObservationReader
from exporter.runtime.snapshot import SnapshotHolder
from exporter.runtime.tenant_runner import TenantRunner, snapshot_scale
from exporter.runtime.tenant_time import TenantTimeCollector
from exporter.store.database import PageConsumer, Store
from exporter.store.lag import ProcessingLagConsumer
from exporter.store.ledger import Ledger
from exporter.store.lock import StoreLock

log = get_logger(__name__)
_FROZEN = False
READINESS_LINK = Link(
    READINESS_PATH.lstrip("/"),
    READINESS_PATH,
    "resume readiness per tenant, JSON (what check-resume reads; ?tenant=NAME for one)",
)
RUNBOOK = RUNBOOK_ROUTE.lstrip("/")
RUNBOOK_LINKS = (
    Link(RUNBOOK, RUNBOOK_ROUTE, "the alerts' runbook: what each alert means and what to do"),
    # The sections on-call opens most, the same ones the alerts' runbook_url names.
    Link(
        f"{RUNBOOK}#{anchor('EntraDynamicPauseWarranted')}",
        f"{RUNBOOK_ROUTE}#{anchor('EntraDynamicPauseWarranted')}",
        "a pause is warranted: how to plan and apply it",
    ),
    Link(
        f"{RUNBOOK}#{anchor('EntraDynamicResumeReady')}",
        f"{RUNBOOK_ROUTE}#{anchor('EntraDynamicResumeReady')}",
        "ready to resume: critical groups first, then batches",
    ),
)


class Exporter:
    def __init__(
        self,
        config: Config,
        *,
        consumers: Sequence[PageConsumer] = (),
        builders: Sequence[FamilyBuilder] = DEFAULT_BUILDERS,
        retry: RetryPolicy | None = None,
        on_progress: Callable[[str, BackfillProgress], None] | None = None,
    ) -> None:
        """Pause episodes come from the ops ledger in the same store (what `pause` recorded),
        and are inferred from the groups' states when it has none. With `shard` configured,
        only this replica's tenants are watched (`exporter.config.sharding`)."""
        config = select_shard(config)
        if config.shard.count > 1:
            log.info(
                "watching one shard of the tenants",
                shard=f"{config.shard.index}/{config.shard.count}",
                tenants=len(config.tenants),
                app_audit_requests_per_10s=config.polling.app_audit_requests_per_10s,
            )
        self.config = config
        thresholds = config.thresholds
        self.lag = ProcessingLagConsumer(
            horizon=thresholds.lag_trigger_horizon, sample_window=thresholds.lag_window
        )
        self.store = Store(config.store.path, (self.lag, *consumers))
        self.store_lock = (
            None if str(config.store.path) == ":memory:" else StoreLock(self.store.path)
        )
        """One writer per store: held from start() to stop() (StoreLockedError otherwise)."""
        self.commits: CommitProcess | None = None
        if config.store.commit_process:
            if consumers:
                raise ValueError(
                    "extra page consumers run in this process: set store.commit_process: false"
                )
            self.commits = CommitProcess(
                str(config.store.path),
                lag_horizon=self.lag.horizon,
                lag_window=self.lag.sample_window,
            )
        self.ledger = Ledger(self.store)
        # One worker for every tenant's evaluations: they are CPU work, and the machine may
        # have few cores; the event loop and the store keep theirs.
        self._assess_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assess")
        observations = ObservationReader(
            self.store, thresholds=thresholds, lag=self.lag, ledger=self.ledger
        )
        self.holder = SnapshotHolder([t.name for t in config.tenants])
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(SnapshotCollector(lambda: self.holder.current, builders))
        self.app_budgets = share_budgets(
            config.tenants,
            config.polling.app_audit_requests_per_10s,
            config.polling.audit_requests_per_10s,
        )
        """tenant name -> the app-wide audit budget it shares with the other tenants of its app."""
        if self.app_budgets:
            self.registry.register(AppBudgetCollector(self.app_budgets))
        self.runners = [
            TenantRunner(
                config,
                tenant,
                store=self.store,
                holder=self.holder,
                observations=observations,
                assessment_executor=self._assess_executor,
                lag=self.lag,
                retry=retry,
                on_progress=on_progress,
                commit_pages=self.commits.commit_audit_pages if self.commits else None,
                app_budget=self.app_budgets.get(tenant.name),
                snapshot_scale=snapshot_scale(len(config.tenants)),
            )
            for tenant in config.tenants
        ]
        self.tenant_time = CollectorRegistry(auto_describe=True)
        """Each tenant's clock, rendered on every scrape (exporter.runtime.tenant_time)."""
        self.tenant_time.register(TenantTimeCollector(self._tenant_clocks))
        self._started = False
        self._wall = SystemClock()
        self.console = Console(
            config=config,
            store=self.store,
            holder=self.holder,
            tenants=[_console_source(r) for r in self.runners],
        )
        self._console_sampling: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.store_lock is not None:
            self.store_lock.acquire()
        try:
            await self.store.open()
        except BaseException:
            if self.store_lock is not None:
                self.store_lock.release()
            raise
        if self.commits is not None:
            # After the store is open: the schema is created (or migrated) by this process.
            await self.commits.start()
        # Everything alive now (msgraph alone imports ~3,600 modules) lives as long as the
        # process: moved out of the collector's sight, every later collection is cheap. Measured
        # here, this halves the cost of decoding an audit page (15 -> 7.5 ms per 1,000 events).
        global _FROZEN
        if not _FROZEN:  # once per process: what is frozen is never collected
            gc.freeze()
            _FROZEN = True
        self._started = True
        for runner in self.runners:
            await runner.start()
        self._console_sampling = asyncio.create_task(self.console.sampling())
        log.info("exporter started", tenants=[r.name for r in self.runners])

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._console_sampling is not None:
            self._console_sampling.cancel()
        await asyncio.gather(*(runner.stop() for runner in self.runners))
        self._assess_executor.shutdown(wait=True)
        if self.commits is not None:
            await self.commits.close()
        await self.store.close()
        if self.store_lock is not None:
            self.store_lock.release()
        log.info("exporter stopped")

    def readiness(self) -> Readiness:
        snapshot = self.holder.current
        tenants = {}
        for runner in self.runners:
            part = snapshot.tenant(runner.name)
            causes = part.trigger_causes if part is not None else None
            tenants[runner.name] = replace(runner.readiness(), causes=cause_lines(causes))
        return Readiness.of(tenants)

    async def current_readiness_views(self) -> list[AssessmentView]:
        """readiness_views() once every tenant's assessment reflects the pause ledger as it is
        now (what /api/v1/readiness answers with)."""
        await asyncio.gather(*(runner.assessor.reflect_ledger() for runner in self.runners))
        return self.readiness_views()

    def readiness_views(self) -> list[AssessmentView]:
        """Each tenant's latest assessment for /api/v1/readiness (in memory, on the loop)."""
        snapshot = self.holder.current
        wall = self._wall.now()
        views = []
        for runner in self.runners:
            part = snapshot.tenant(runner.name)
            timing = part.assessment_timing if part is not None else None
            views.append(
                AssessmentView(
                    tenant=runner.name,
                    assessment=part.assessment if part is not None else None,
                    now=runner.clock.now(),
                    max_age=self.config.thresholds.collector_max_age,
                    pending=runner.readiness().detail,
                    wall_age=None if timing is None else wall - timing.completed_wall,
                    trigger_causes=part.trigger_causes if part is not None else None,
                )
            )
        return views

    def app(
        self,
        web_config: WebConfig | None = None,
        links: Sequence[Link] = (),
        *,
        telemetry_path: str = DEFAULT_TELEMETRY_PATH,
        exporter_metrics: bool = True,
        console_refresh: float = 30.0,
    ) -> web.Application:
        commits = self.commits
        own = (
            exporter_metrics_registry(lambda: commits.pid if commits is not None else None)
            if exporter_metrics
            else None
        )
        return create_app(
            registry=self.registry,
            readiness=self.readiness,
            extra_routes=[*readiness_routes(self.current_readiness_views), *runbook_routes()],
            web_config=web_config,
            links=[READINESS_LINK, *RUNBOOK_LINKS, *links],
            exposition_key=lambda: self.holder.current,
            exporter_metrics=own,
            telemetry_path=telemetry_path,
            headroom=self._headroom,
            console=self.console.sections,
            console_refresh=console_refresh,
            every_scrape=self.tenant_time,
        )

    def _tenant_clocks(self) -> dict[str, float]:
        # Read late: a runner's clock is replaced when it starts following a simulator.
        return {runner.name: runner.clock.now() for runner in self.runners}

    def _headroom(self) -> dict[str, Headroom]:
        """Each tenant's dynamic groups and units against Entra's limit (landing page)."""
        found = {r.name: r.hygiene.headroom() for r in self.runners}
        return {name: h for name, h in found.items() if h is not None}


def _console_source(runner: TenantRunner) -> TenantSource:
    # The runner's clock is replaced when it starts following a simulator: read it late.
    return TenantSource(
        runner.tenant, lambda: runner.clock.now(), lambda: runner.readiness().detail
    )


async def run_exporter(
    config: Config,
    *,
    listen_address: str,
    web_config: WebConfig | None,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[Listening], None] | None = None,
    on_progress: Callable[[str, BackfillProgress], None] | None = None,
    retry: RetryPolicy | None = None,
    telemetry_path: str = DEFAULT_TELEMETRY_PATH,
    exporter_metrics: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`), then shut down in order."""
    stop = stop or asyncio.Event()
    exporter = Exporter(config, on_progress=on_progress, retry=retry)
    app = exporter.app(web_config, telemetry_path=telemetry_path, exporter_metrics=exporter_metrics)
    # Bind first: a port in use or a host that does not resolve fails (ListenError, one line)
    # before the store is opened or a poller starts. On the way out the server stops first
    # (draining in-flight scrapes), then the exporter (the stack unwinds in reverse).
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(exporter.stop)
        listening = await stack.enter_async_context(
            running(
                app,
                listen_address,
                header_read_timeout=config.web.header_read_timeout,
                announce=False,  # after the store opened: a storage error stays one line
            )
        )
        await exporter.start()
        log_listening(listening)
        if on_listening is not None:
            on_listening(listening)
        with stop_on_signals(stop):
            await stop.wait()
        log.info("shutting down", timeout_seconds=DEFAULT_SHUTDOWN_TIMEOUT)
