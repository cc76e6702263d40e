"""The canary probe, run: flip the canary's property, watch its membership, time the change.

One round (`CanaryProbe.round`): read the canary group (a paused group is reported `paused`: the
probe asked processing for nothing), read whether the canary is a member, PATCH the property to
the value that should move it in (or out), then every `check_interval` look for the change, in
the audit events already ingested (the canary group's last dynamic change in the store, exact to
the event's time) or by reading the membership (`checkMemberGroups`, exact to one check
interval) when the audit log is late. Not seen within `timeout`: `timed_out`, unless the group
was paused meanwhile. Rounds start every `interval` (from the start of the previous one).

The last `KEPT_ROUNDS` rounds are kept (the exporter keeps them in its store, `keep`): a
restarted probe continues the streak readiness counts and first watches the round it left in
flight (its flip was made; flipping again would measure the wrong change). Counters and the
latency histogram start again with the process, as Prometheus expects of counters.
What the rounds mean is the domain's (exporter/domain/probe.py).
"""

from __future__ import annotations

import contextlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from exporter.clock import Clock
from exporter.domain.events import ObjectType as EventObjectType
from exporter.domain.events import ProcessingState
from exporter.domain.lag import LagHistogram, LagSample
from exporter.domain.probe import (
    ProbeEvidence,
    ProbeOutcome,
    ProbeRound,
    ProbeSettings,
    probe_evidence,
)
from exporter.graph.client import GraphClient
from exporter.graph.errors import GraphError
from exporter.graph.objects import graph_field
from exporter.logs import get_logger

log = get_logger(__name__)

KEPT_ROUNDS = 64

KeepRound = Callable[[ProbeRound], Awaitable[None]]
"""Keep a round that started or ended (the exporter writes it to its store)."""

AuditChangeSince = Callable[[float], Awaitable[float | None]]
"""(round start) -> activityDateTime of the canary group's last dynamic membership change at or
after it, as ingested from the audit log, or None."""


@dataclass(frozen=True, slots=True)
class ProbeStatus:
    """The probe as the snapshot, the collector, the console and readiness see it."""

    settings: ProbeSettings
    rounds_started: int = 0
    outcomes: Mapping[ProbeOutcome, int] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(ProbeOutcome, 0))
    )
    latency: LagHistogram = field(default_factory=LagHistogram)
    rounds: tuple[ProbeRound, ...] = ()
    """Oldest first, the last KEPT_ROUNDS."""
    last_error: str | None = None

    @property
    def in_flight(self) -> ProbeRound | None:
        return next((r for r in reversed(self.rounds) if r.in_flight), None)

    def evidence(self, now: float) -> ProbeEvidence:
        return probe_evidence(self.rounds, self.settings, now)


def property_body(settings: ProbeSettings, value: str) -> dict[str, Any]:
    """The PATCH body that sets the probe's property, in Graph's names
    (`extensionAttribute15` lives in `onPremisesExtensionAttributes`)."""
    where = graph_field(settings.object_type, settings.property)
    return {where.name: value} if where.key is None else {where.name: {where.key: value}}


class CanaryProbe:
    def __init__(
        self,
        *,
        tenant: str,
        settings: ProbeSettings,
        graph: GraphClient,
        clock: Clock,
        audit_change_since: AuditChangeSince | None = None,
        on_update: Callable[[], Awaitable[None]] | None = None,
        kept: Sequence[ProbeRound] = (),
        keep: KeepRound | None = None,
    ) -> None:
        """`kept`: the rounds a previous run kept, oldest first (`keep` wrote them)."""
        self.tenant = tenant
        self.settings = settings
        self._graph = graph
        self._clock = clock
        self._audit_change_since = audit_change_since
        self._on_update = on_update
        self._rounds: deque[ProbeRound] = deque(kept, maxlen=KEPT_ROUNDS)
        self._keep = keep
        self._outcomes: Counter[ProbeOutcome] = Counter()
        self._started = 0
        self._latency = LagHistogram()
        self._last_error: str | None = None
        self.wake_at: float | None = None
        """The clock time the probe sleeps until; None while it works (tests wait on it)."""
        self.status = ProbeStatus(settings, rounds=tuple(self._rounds))

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        left = self._rounds[-1] if self._rounds else None
        if left is not None and left.in_flight:
            await self._watch(left)
            await self._sleep(left.started_at + self.settings.interval - self._clock.now())
        while True:
            begun = self._clock.now()
            await self.round()
            await self._sleep(begun + self.settings.interval - self._clock.now())

    async def round(self) -> ProbeRound:
        """One round, to its end."""
        s = self.settings
        number = (self._rounds[-1].number + 1) if self._rounds else 1
        try:
            if await self._group_paused():
                return await self._finish(
                    ProbeRound(number, self._clock.now(), True), ProbeOutcome.PAUSED
                )
            entering = not await self._graph.is_member(str(s.object_type), s.object_id, s.group_id)
            started = self._clock.now()
            value = s.match_value if entering else s.other_value
            await self._graph.update_object(
                str(s.object_type), s.object_id, property_body(s, value)
            )
        except GraphError as exc:
            return await self._finish(
                ProbeRound(number, self._clock.now(), True), ProbeOutcome.FAILED, str(exc)
            )
        self._started += 1
        current = ProbeRound(number, started, entering)
        self._rounds.append(current)
        await self._kept(current)
        await self._publish()
        return await self._watch(current)

    async def _watch(self, current: ProbeRound) -> ProbeRound:
        s = self.settings
        deadline = current.started_at + s.timeout
        while True:
            await self._sleep(min(s.check_interval, deadline - self._clock.now()))
            now = self._clock.now()
            try:
                seen_at = await self._seen_at(current, now)
            except GraphError as exc:
                # A failed look is not a failed round: the next check looks again.
                self._note_error(str(exc))
                seen_at = None
            if seen_at is not None:
                return await self._finish(
                    replace(current, latency=max(0.0, seen_at - current.started_at)),
                    ProbeOutcome.DETECTED,
                    at=seen_at,
                )
            if now >= deadline:
                paused = False
                with contextlib.suppress(GraphError):
                    paused = await self._group_paused()
                return await self._finish(
                    current, ProbeOutcome.PAUSED if paused else ProbeOutcome.TIMED_OUT
                )

    async def _seen_at(self, current: ProbeRound, now: float) -> float | None:
        """When the round's membership change happened, if it has: the audit event's time when
        the audit log already has it, else now when a membership read shows it."""
        if self._audit_change_since is not None:
            logged = await self._audit_change_since(current.started_at)
            if logged is not None:
                return logged
        s = self.settings
        member = await self._graph.is_member(str(s.object_type), s.object_id, s.group_id)
        return now if member == current.entering else None

    async def _group_paused(self) -> bool:
        group = await self._graph.get_group(self.settings.group_id)
        return group.state is ProcessingState.PAUSED

    async def _finish(
        self,
        current: ProbeRound,
        outcome: ProbeOutcome,
        error: str | None = None,
        *,
        at: float | None = None,
    ) -> ProbeRound:
        done = replace(
            current,
            outcome=outcome,
            finished_at=self._clock.now() if at is None else at,
            detail=error or "",
        )
        if self._rounds and self._rounds[-1].number == done.number:
            self._rounds[-1] = done
        else:
            self._rounds.append(done)
        await self._kept(done)
        self._outcomes[outcome] += 1
        if outcome is ProbeOutcome.DETECTED and done.latency is not None:
            self._latency = self._latency.add(
                [
                    LagSample(
                        done.finished_at or 0.0,
                        done.latency,
                        EventObjectType(str(self.settings.object_type)),
                    )
                ]
            )
            self._last_error = None
        if error is not None:
            self._note_error(error)
        elif outcome is ProbeOutcome.TIMED_OUT:
            log.warning(
                "canary probe round timed out",
                tenant=self.tenant,
                round=done.number,
                timeout=self.settings.timeout,
            )
        elif outcome is ProbeOutcome.PAUSED:
            log.info("canary group paused: probe round not measured", tenant=self.tenant)
        else:
            log.debug(
                "canary probe round", tenant=self.tenant, outcome=outcome, latency=done.latency
            )
        await self._publish()
        return done

    async def _kept(self, current: ProbeRound) -> None:
        if self._keep is not None:
            await self._keep(current)

    def _note_error(self, error: str) -> None:
        if error != self._last_error:
            log.error("canary probe", tenant=self.tenant, error=error)
        self._last_error = error

    async def _publish(self) -> None:
        self.status = ProbeStatus(
            settings=self.settings,
            rounds_started=self._started,
            outcomes=MappingProxyType({o: self._outcomes[o] for o in ProbeOutcome}),
            latency=self._latency,
            rounds=tuple(self._rounds),
            last_error=self._last_error,
        )
        if self._on_update is not None:
            await self._on_update()

    async def _sleep(self, seconds: float) -> None:
        self.wake_at = self._clock.now() + max(0.0, seconds)
        try:
            await self._clock.sleep(max(0.0, seconds))
        finally:
            self.wake_at = None


__all__ = ["CanaryProbe", "ProbeStatus", "property_body"]
