"""The console's data, assembled off the scrape path, and the cached page.

A scrape reads only the in-memory snapshot; the console reads the store, so it must never make
a scrape wait: its reads run on the store's thread (like a poll's), at most one at a time, and
the rendered page is reused for `min_interval` wall seconds however many browsers ask. The
charts come from the store's hourly buckets (the same rows the baseline and the `*_last_hour`
gauges are computed from), the baseline from `exporter.domain.baseline`, the paused-groups
history from the processing-state audit events; the lag line is the assessments' median,
sampled in memory (the store keeps lag samples for the lag window only).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exporter.clock import Clock, SystemClock
from exporter.config.models import Config, Tenant
from exporter.domain.assessment import TenantAssessment
from exporter.domain.baseline import Baseline, Measure
from exporter.domain.events import Series
from exporter.domain.groups import GroupState
from exporter.domain.history import HOUR, CountHistory, floor_to
from exporter.domain.plan import plan_resume
from exporter.domain.probe import ProbeOutcome
from exporter.http.console import (
    MAX_PAUSED_ROWS,
    HourCounts,
    Moment,
    PausedRow,
    PlannedBatch,
    TenantConsole,
    render_console,
)
from exporter.logs import get_logger
from exporter.runtime.snapshot import SnapshotHolder
from exporter.store.database import ObjectState, Store

log = get_logger(__name__)

WINDOW = 48 * HOUR
BASELINE_LOOKBACK = 29 * 86400
"""Hourly rows read before the window: the baseline looks back up to 4 weeks (hour of week)."""
MOMENT_GAP = 15 * 60
"""Processing-state changes closer than this (tenant clock) in one direction are one moment."""
LAG_POINTS = 2000
NEXT_BATCHES = 3


@dataclass(frozen=True, slots=True)
class TenantSource:
    tenant: Tenant
    now: Callable[[], float]
    """The tenant's clock (simulated in the demo)."""
    detail: Callable[[], str]
    """What the tenant is waiting for (its readiness detail)."""


def paused_history(
    states: Sequence[ObjectState],
    changes: Sequence[tuple[str, float, str | None]],
    window_start: float,
) -> tuple[tuple[tuple[float, int], ...], tuple[Moment, ...]]:
    """The number of paused groups over time, rebuilt backwards from the current states and
    the processing-state audit events since `window_start` (an event saying `Paused` at t means
    On before t, and the other way round; events that do not say are skipped), completed by
    the changes only the polls have seen yet, and the pause and resume moments (changes in one
    direction, closer than MOMENT_GAP, grouped)."""
    current = {s.id: s.state is not None and s.state.value == "Paused" for s in states}
    paused = sum(current.values())
    # The audit log arrives minutes late, the listings do not: a change the polls saw after the
    # group's last audit event (a resume the log does not hold yet) counts from the poll's time.
    last_event: dict[str, float] = {}
    for group_id, at, state in changes:
        if state in ("On", "Paused"):
            last_event[group_id] = at
    seen_by_polls = [
        (s.id, t, "Paused" if current[s.id] else "On")
        for s in states
        if (t := s.paused_since if current[s.id] else s.resumed_at) is not None
        and t > last_event.get(s.id, window_start)
    ]
    merged_changes = sorted([*changes, *seen_by_polls], key=lambda c: (c[1], c[0]))
    steps: list[tuple[float, int]] = []
    flips: list[tuple[float, str]] = []
    for group_id, at, state in reversed(merged_changes):
        if state not in ("On", "Paused") or group_id not in current:
            continue
        steps.append((at, paused))
        now_paused = state == "Paused"
        if current[group_id] != now_paused:
            continue  # a missed event: the states disagree; trust the listing
        current[group_id] = not now_paused
        paused += -1 if now_paused else 1
        flips.append((at, "pause" if now_paused else "resume"))
    steps.append((window_start, paused))
    steps.reverse()
    # Keep the last value at each instant (many groups change in one second).
    merged: dict[float, int] = {}
    for at, value in steps:
        merged[at] = value
    series = [(t, v) for t, v in sorted(merged.items())]
    compact = [p for i, p in enumerate(series) if i == 0 or p[1] != series[i - 1][1]]
    moments: list[Moment] = []
    for at, kind in sorted(flips):
        last = moments[-1] if moments else None
        if last is not None and last.kind == kind and at - last.at <= MOMENT_GAP:
            moments[-1] = Moment(last.at, kind, last.groups + 1)
        else:
            moments.append(Moment(at, kind, 1))
    return tuple(compact), tuple(moments)


def read_console(
    store: Store,
    tenant: Tenant,
    now: float,
    *,
    config: Config,
    assessment: TenantAssessment | None,
    lag: tuple[tuple[float, float], ...],
    detail: str,
    probe: tuple[tuple[float, float], ...] = (),
) -> TenantConsole:
    """On the store's thread."""
    name = tenant.name
    window_start = float(floor_to(now - WINDOW, HOUR) + HOUR)
    since = window_start - BASELINE_LOOKBACK
    until = now + HOUR
    wanted = (Series.TRIGGER_USER, Series.TRIGGER_DEVICE, Series.DYNAMIC_ADD, Series.DYNAMIC_REMOVE)
    rows = [
        (series.value, hour, count)
        for series in wanted
        for hour, count in store.hourly_counts(name, series, since, until)
    ]
    history = CountHistory.from_rows([], rows, store.coverage(name))
    floor = config.thresholds.baseline_floor_per_hour
    user_base = Baseline(history, Measure.USER_CHANGES, floor)
    device_base = Baseline(history, Measure.DEVICE_CHANGES, floor)
    covered_to = history.coverage_end
    hours = []
    for start in range(int(window_start), int(now) + 1, HOUR):
        partial = start + HOUR > now
        end = min(start + HOUR, covered_to) if covered_to is not None else start
        known = end > start and history.covers(start, end)

        def count(series: tuple[Series, ...], hour: int = start, ok: bool = known) -> int | None:
            return sum(history.hourly.get(s, {}).get(hour, 0) for s in series) if ok else None

        hours.append(
            HourCounts(
                start=start,
                user=count((Series.TRIGGER_USER,)),
                device=count((Series.TRIGGER_DEVICE,)),
                membership=count((Series.DYNAMIC_ADD, Series.DYNAMIC_REMOVE)),
                user_baseline=user_base.hour(start).expected,
                device_baseline=device_base.hour(start).expected,
                partial=partial,
            )
        )
    states = store.object_states(name)
    steps, moments = paused_history(states, store.state_changes(name, window_start), window_start)
    critical = {g: i for i, g in enumerate(tenant.critical_groups)}
    next_batches: tuple[PlannedBatch, ...] = ()
    if assessment is not None and assessment.episode is not None:
        # The same planner as the readiness API's summary and `resume`, on the same listing.
        groups = [
            GroupState(
                id=o.id,
                name=o.name,
                kind=o.kind,
                state=o.state,
                paused_since=o.paused_since,
                critical=o.id in critical,
                resumed_at=o.resumed_at,
            )
            for o in states
            if o.state is not None
        ]
        plan = plan_resume(
            assessment.episode,
            groups,
            config.resume,
            critical_priority=tenant.critical_groups,
            canary=tenant.probe.group_id if tenant.probe is not None else None,
        )
        next_batches = tuple(
            PlannedBatch(b.index, b.critical, len(b.groups), tuple(g.name for g in b.groups))
            for b in plan.batches[:NEXT_BATCHES]
        )
    paused = sorted(
        store.paused_objects(name),
        # Critical first; then the longest paused, those paused before the exporter first
        # listed them (time unknown, #13) first of all.
        key=lambda p: (
            p.id not in critical,
            critical.get(p.id, 0),
            p.paused_since is not None,
            p.paused_since or 0.0,
            p.name,
            p.id,
        ),
    )
    return TenantConsole(
        tenant=name,
        now=now,
        window_start=window_start,
        hours=tuple(hours),
        trigger_factor=config.thresholds.trigger_rate_factor,
        paused_steps=steps,
        lag=lag,
        moments=moments,
        paused=tuple(
            PausedRow(p.id, p.name, p.kind.value, p.id in critical, p.paused_since)
            for p in paused[:MAX_PAUSED_ROWS]
        ),
        paused_total=len(paused),
        next_batches=next_batches,
        assessment=assessment,
        detail=detail,
        probe=probe,
    )


class Console:
    """The console page of every tenant, rebuilt at most once per `min_interval` wall seconds
    and only when asked (nobody looking costs nothing but the lag sampling)."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        holder: SnapshotHolder,
        tenants: Sequence[TenantSource],
        min_interval: float = 1.0,
        wall: Clock | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._holder = holder
        self._tenants = tuple(tenants)
        self._min_interval = min_interval
        self._wall = wall or SystemClock()
        self._lag: dict[str, deque[tuple[float, float]]] = {
            t.tenant.name: deque(maxlen=LAG_POINTS) for t in self._tenants
        }
        self._page: str | None = None
        self._built_at = -math.inf
        self._building: asyncio.Task[str] | None = None

    def sample(self) -> None:
        """Record each tenant's latest median lag (cheap: memory only; call it often)."""
        for part in self._holder.current.tenants:
            a = part.assessment
            points = self._lag.get(part.tenant)
            if a is None or points is None or a.lag.median_seconds is None:
                continue
            if not points or points[-1][0] < a.evaluated_at:
                points.append((a.evaluated_at, a.lag.median_seconds))

    async def sampling(self, interval: float = 1.0) -> None:
        """Sample until cancelled (every `interval` wall seconds)."""
        while True:
            self.sample()
            await asyncio.sleep(interval)

    async def sections(self) -> str:
        """The console's HTML sections, from the cache when it is fresh enough."""
        if self._page is not None and self._wall.now() - self._built_at < self._min_interval:
            return self._page
        if self._building is None or self._building.done():
            self._building = asyncio.ensure_future(self._build())
        # Every request waiting meanwhile shares the one build (shielded: a browser that goes
        # away does not cancel the others' page).
        return await asyncio.shield(self._building)

    async def _build(self) -> str:
        self.sample()
        snapshot = self._holder.current
        parts = []
        for source in self._tenants:
            name = source.tenant.name
            part = snapshot.tenant(name)
            now = source.now()
            lag = tuple(self._lag[name])
            assessment = part.assessment if part is not None else None
            detail = source.detail()
            probe = tuple(
                (r.finished_at, r.latency)
                for r in (part.probe.rounds if part is not None and part.probe else ())
                if r.outcome is ProbeOutcome.DETECTED
                and r.finished_at is not None
                and r.latency is not None
            )
            parts.append(
                await self._store.run(
                    functools.partial(
                        read_console,
                        self._store,
                        source.tenant,
                        now,
                        config=self._config,
                        assessment=assessment,
                        lag=lag,
                        detail=detail,
                        probe=probe,
                    )
                )
            )
        # Rendering is ~10-25 ms of CPU: on a worker thread, a scrape arriving meanwhile is
        # answered between two GIL switches instead of after the whole page.
        page = await asyncio.get_running_loop().run_in_executor(None, render_console, parts)
        self._page, self._built_at = page, self._wall.now()
        return page
