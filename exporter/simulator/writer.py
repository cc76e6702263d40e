"""Writes the audit events Entra writes, as the simulated tenant changes, into the live log.

Each event gets a GUID correlation id, a `Directory_...` id, and a visibility time: its
activityDateTime plus a delay drawn from a log-normal distribution (typically a couple of
minutes, never more than ~15, as Microsoft describes), plus, for injected late events, much
more.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from exporter.domain import events
from exporter.domain.events import Series
from exporter.simulator.auditlog import ACTIVITY_CODE, SERIES_CODE, AppRegistry, LiveLog
from exporter.simulator.faults import FaultInjector
from exporter.simulator.render import (
    DYNAMIC_PROCESSING_ACTOR,
    DYNAMIC_PROCESSING_ACTORS,
    Actor,
    ContainerRef,
    MemberRef,
    MembershipLayout,
    PropertyChange,
    enc,
    identity,
    membership_layout,
    offset_form,
    render_membership_change,
    render_object_event,
)
from exporter.simulator.timefmt import MICROS, audit_timestamp


@dataclass(frozen=True, slots=True)
class DelayModel:
    """Visibility delay: log-normal around `median_seconds`, clipped to [min, max]."""

    median_seconds: float = 120.0
    sigma: float = 0.8
    min_seconds: float = 15.0
    max_seconds: float = 900.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_seconds <= self.median_seconds <= self.max_seconds:
            raise ValueError("visibility delay needs 0 <= min <= median <= max")
        if self.sigma < 0:
            raise ValueError("visibility delay sigma must be >= 0")

    def quantile(self, p: float) -> float:
        p = min(max(p, 1e-9), 1 - 1e-9)
        value = self.median_seconds * math.exp(self.sigma * NormalDist().inv_cdf(p))
        return min(self.max_seconds, max(self.min_seconds, value))

    def quantiles(self, count: int = 1024) -> list[float]:
        return [self.quantile((i + 0.5) / count) for i in range(count)]


class AuditWriter:
    def __init__(
        self,
        live: LiveLog,
        apps: AppRegistry,
        *,
        seed: int,
        delay: DelayModel,
        faults: FaultInjector,
    ) -> None:
        self.live = live
        self.apps = apps
        self.delay = delay
        self.faults = faults
        self._rng = random.Random(f"audit-{seed}")
        self._delays = delay.quantiles(4096)

    def _identity(self, rng: random.Random | None = None) -> tuple[bytes, bytes]:
        bits = (rng or self._rng).getrandbits(192)
        return identity(bits >> 64, bits & 0xFFFFFFFFFFFFFFFF)

    def _visible(self, time_us: int, rng: random.Random | None = None) -> int:
        delay = self._delays[(rng or self._rng).getrandbits(12)]
        delay += self.faults.late_extra_delay()
        return time_us + round(delay * MICROS)

    def membership_change(
        self,
        time_us: int,
        *,
        add: bool,
        actor: Actor,
        member: MemberRef,
        container: ContainerRef,
        container_index: int,
        series: Series,
        layout: MembershipLayout | None = None,
    ) -> None:
        """`layout` None: laid out as Entra varies them (the group first in some) and, for the
        dynamic-processing app, attributed to either of its appIds or to none; chosen from the
        event's id, so that the log stays a function of the seed."""
        event_id, correlation = self._identity()
        variant = zlib.crc32(event_id)
        if layout is None:
            layout = membership_layout(variant)
            if actor is DYNAMIC_PROCESSING_ACTOR:
                actor = DYNAMIC_PROCESSING_ACTORS[(variant >> 3) % len(DYNAMIC_PROCESSING_ACTORS)]
        payload = render_membership_change(
            event_id=event_id,
            correlation_id=correlation,
            timestamp=enc(audit_timestamp(time_us, offset_form=offset_form(variant))),
            add=add,
            actor=actor.initiated_by(),
            member=member,
            container=container,
            layout=layout,
        )
        if container.administrative_unit:
            activity = events.ADD_AU_MEMBER if add else events.REMOVE_AU_MEMBER
        else:
            activity = events.ADD_MEMBER if add else events.REMOVE_MEMBER
        self.live.append(
            time_us=time_us,
            visible_us=self._visible(time_us),
            activity=ACTIVITY_CODE[activity],
            app=self.apps.code(actor.app_display_name),
            series=SERIES_CODE[series],
            container=container_index,
            payload=payload,
        )

    def object_event(
        self,
        time_us: int,
        *,
        activity: str,
        category: str,
        operation: str,
        actor: Actor,
        target_id: bytes,
        target_type: str,
        target_display_name: bytes,
        target_user_principal_name: bytes,
        changes: Sequence[PropertyChange],
        series: Series,
        container_index: int = -1,
        group_type: str | None = None,
        logged_by: str = events.LOGGED_BY_CORE_DIRECTORY,
        rng: random.Random | None = None,
    ) -> None:
        """`rng`: draw the event's ids and visibility delay from this stream instead of the
        log's own, so that a kind of event added later changes no other event of a seed."""
        event_id, correlation = self._identity(rng)
        variant = zlib.crc32(event_id)
        payload = render_object_event(
            event_id=event_id,
            correlation_id=correlation,
            timestamp=enc(audit_timestamp(time_us, offset_form=offset_form(variant))),
            activity=activity,
            category=category,
            operation=operation,
            actor=actor.initiated_by(),
            target_id=target_id,
            target_type=target_type,
            target_display_name=target_display_name,
            target_user_principal_name=target_user_principal_name,
            changes=changes,
            group_type=group_type,
            logged_by=logged_by,
        )
        self.live.append(
            time_us=time_us,
            visible_us=self._visible(time_us, rng),
            activity=ACTIVITY_CODE[activity],
            app=self.apps.code(actor.app_display_name),
            series=SERIES_CODE[series],
            container=container_index,
            payload=payload,
        )
