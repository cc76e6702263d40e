"""Running the domain's `assess_tenant` for one tenant after each poll, off the event loop.

An assessment reads the store (on the store's thread) and then evaluates (~60-90 ms of CPU for
15,000 groups) on a worker thread, so a scrape or an API request never waits for one: they read
the last result from the snapshot. Requests made while one runs coalesce into one more run.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace

from exporter.clock import Clock, SystemClock
from exporter.config.models import Config, Tenant
from exporter.domain.assessment import TenantAssessment, TenantObservations, assess_tenant
from exporter.domain.groups import LedgerEpisode
from exporter.domain.probe import ProbeRound, ProbeSettings
from exporter.domain.readiness import CollectorHealth
from exporter.domain.records import ProcessingStatus
from exporter.logs import get_logger
from exporter.runtime.observations import ObservationReader
from exporter.store.database import Store

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AssessmentInputs:
    """What only the pollers' memory holds, copied on the event loop."""

    now: float
    collectors: Sequence[CollectorHealth]
    critical_statuses: Mapping[str, ProcessingStatus]
    probe_settings: ProbeSettings | None = None
    probe_rounds: tuple[ProbeRound, ...] = ()


@dataclass(frozen=True, slots=True)
class AssessmentTiming:
    read_seconds: float
    """Reading the store (its thread)."""
    evaluate_seconds: float
    """assess_tenant (a worker thread)."""
    completed_wall: float
    """When it was done, on the system clock (staleness on accelerated clocks)."""


class TenantAssessor:
    def __init__(
        self,
        *,
        config: Config,
        tenant: Tenant,
        store: Store,
        reader: ObservationReader,
        executor: Executor,
        inputs: Callable[[], AssessmentInputs],
        on_assessed: Callable[[TenantAssessment, AssessmentTiming], None],
    ) -> None:
        self._config = config
        self._tenant = tenant
        self._store = store
        self._reader = reader
        self._executor = executor
        self._inputs = inputs
        self._on_assessed = on_assessed
        self._wanted = asyncio.Event()
        self._wall: Clock = SystemClock()
        self.latest: TenantAssessment | None = None
        self.timing: AssessmentTiming | None = None
        self.runs = 0
        self._requested = 0
        self._answered = 0
        self._lock = asyncio.Lock()
        self._ledger_seen: tuple[LedgerEpisode, ...] | None = None
        """The ledger as the latest assessment read it."""

    def request(self) -> None:
        """Ask for a fresh assessment (after a poll); returns at once."""
        self._requested += 1
        self._wanted.set()

    @property
    def pending(self) -> bool:
        """A request has not been answered by an assessment that began after it."""
        return self._answered < self._requested

    async def run(self) -> None:
        """Assess whenever asked, until cancelled. A failure is logged and the previous result
        kept: it ages, and the API calls it stale once it is too old to trust."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self.assess()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._store.closed:  # the process is shutting down
                    return
                log.exception("assessment failed", tenant=self._tenant.name)

    async def reflect_ledger(self) -> None:
        """Assess again now, and wait for it, if the pause ledger changed since the latest
        assessment read it: `pause --apply`, `adopt` and each resume batch write the ledger
        from their own process, and the readiness served right after must know (a groups poll
        may be minutes away). Costs one cached ledger read when nothing changed."""
        if self.latest is None:
            return  # no assessment yet: cannot_tell until the first one, which reads it
        ledger = await self._store.run(
            functools.partial(self._reader.ledger_episodes, self._tenant.name)
        )
        if ledger != self._ledger_seen:
            async with self._lock:
                if self._ledger_seen != ledger:  # not already read by an assessment just done
                    await self._assess_locked()

    async def assess(self) -> TenantAssessment:
        # One at a time: a slower, older assessment must not replace a newer one.
        async with self._lock:
            return await self._assess_locked()

    async def _assess_locked(self) -> TenantAssessment:
        answers = self._requested
        inputs = self._inputs()
        started = self._wall.now()
        observations = await self._store.run(
            functools.partial(
                self._reader.read,
                self._tenant,
                inputs.now,
                collectors=inputs.collectors,
                critical_statuses=inputs.critical_statuses,
            )
        )
        read = self._wall.now() - started
        if inputs.probe_settings is not None:
            observations = replace(
                observations,
                probe_settings=inputs.probe_settings,
                probe_rounds=inputs.probe_rounds,
            )
        loop = asyncio.get_running_loop()
        assessment, evaluate = await loop.run_in_executor(
            self._executor, self._evaluate, observations, inputs.now
        )
        timing = AssessmentTiming(read, evaluate, self._wall.now())
        log_changes(self.latest, assessment)
        self.latest, self.timing = assessment, timing
        self._ledger_seen = observations.ledger
        self.runs += 1
        self._answered = max(self._answered, answers)
        self._on_assessed(assessment, timing)
        return assessment

    def _evaluate(
        self, observations: TenantObservations, now: float
    ) -> tuple[TenantAssessment, float]:
        started = self._wall.now()
        assessment = assess_tenant(
            observations, thresholds=self._config.thresholds, resume=self._config.resume, now=now
        )
        return assessment, self._wall.now() - started


def log_changes(previous: TenantAssessment | None, current: TenantAssessment) -> None:
    """One log line per change, so that the log tells a storm's story without a dashboard: a
    pause-warranted reason turning on (warning) or off (info), and resume readiness changing
    state (info), each with what was observed against which threshold. Nothing is logged while
    nothing changes; the first assessment logs what is already on and the readiness it finds."""
    before = {s.reason: s.active for s in previous.pause_signals} if previous else {}
    for signal in current.pause_signals:
        if signal.active == before.get(signal.reason, False):
            continue
        (log.warning if signal.active else log.info)(
            "pause warranted" if signal.active else "pause no longer warranted",
            tenant=current.tenant,
            reason=signal.reason.value,
            observed=signal.observed,
            threshold=signal.threshold,
            unit=signal.unit,
            detail=signal.detail,
        )
    readiness = current.readiness
    if previous is not None and previous.readiness.state is readiness.state:
        return
    blocking = [c for c in readiness.conditions if c.blocks]
    log.info(
        "resume readiness changed",
        tenant=current.tenant,
        state=readiness.state.value,
        previous=previous.readiness.state.value if previous is not None else None,
        detail=readiness.detail,
        blocking={
            c.condition.value: {"observed": c.observed, "threshold": c.threshold, "unit": c.unit}
            for c in blocking
        },
    )
