"""Pre-written audit history, generated procedurally and deterministically on demand.

Thirty days at 20,000 membership changes per hour are ~15 million events: too many to hold.
Instead history is a set of *streams*, one per (hour, kind of event): stream (h, k) holds n(h, k)
events spread over the hour, event j at `hour + (j + u_j) * 3600 s / n` with u_j in [0, 1)
drawn from a hash of (seed, h, k, j). So any stream can be bisected by arithmetic, a page is a
merge of the few streams its filter selects, and every field of every event (ids, member,
group, visibility delay) is a pure function of (seed, h, k, j). Only the counts n(h, k) are
stored.

Triggers and membership changes are linked: the member of a dynamic change at time t is the
object of the latest trigger of its kind at or before t - D(h), D(h) a few minutes, so the
exporter's lag estimate sees sensible values on history too.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from exporter.domain import events
from exporter.domain.events import ObjectType, Relevance, Series
from exporter.simulator.auditlog import (
    ACTIVITY_CODE,
    SERIES_CODE,
    AppRegistry,
    EventMatcher,
    Scan,
    decoder,
)
from exporter.simulator.load import LoadShape
from exporter.simulator.model import MemberRefs
from exporter.simulator.render import (
    DYNAMIC_PROCESSING_ACTORS,
    GROUP_FIRST,
    MEMBER_FIRST,
    Actor,
    ContainerRef,
    PropertyChange,
    Template,
    enc,
    identity,
    membership_layout,
    membership_template,
    offset_form,
    render_object_event,
)
from exporter.simulator.timefmt import MICROS, audit_timestamp

HOUR_US = 3600 * MICROS
_MASK = (1 << 64) - 1
_ODD1, _ODD2, _ODD3, _ODD4 = (
    0x2545F4914F6CDD1D,
    0x9E3779B97F4A7C15,
    0xBF58476D1CE4E5B9,
    0x94D049BB133111EB,
)
_ODD5, _ODD6, _ODD7 = 0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB
_INV_2_53 = 2.0**-53


def _mix(x: int) -> int:
    """splitmix64's finalizer: a fast, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    activity: str
    series: Series
    object_type: str  # "user" | "device" | "group"


KINDS: tuple[Kind, ...] = (
    Kind("update_user", "Update user", Series.TRIGGER_USER, "user"),
    Kind("update_device", "Update device", Series.TRIGGER_DEVICE, "device"),
    Kind("add_user", "Add user", Series.TRIGGER_USER, "user"),
    Kind("add_device", "Add device", Series.TRIGGER_DEVICE, "device"),
    Kind("dynamic_add_user", events.ADD_MEMBER, Series.DYNAMIC_ADD, "user"),
    Kind("dynamic_remove_user", events.REMOVE_MEMBER, Series.DYNAMIC_REMOVE, "user"),
    Kind("dynamic_add_device", events.ADD_MEMBER, Series.DYNAMIC_ADD, "device"),
    Kind("dynamic_remove_device", events.REMOVE_MEMBER, Series.DYNAMIC_REMOVE, "device"),
    Kind("manual_add", events.ADD_MEMBER, Series.MANUAL_ADD, "user"),
    Kind("manual_remove", events.REMOVE_MEMBER, Series.MANUAL_REMOVE, "user"),
    Kind("update_group", events.UPDATE_GROUP, Series.GROUP_UPDATE_OTHER, "group"),
)
K_UPDATE_USER, K_UPDATE_DEVICE, K_ADD_USER, K_ADD_DEVICE = 0, 1, 2, 3
K_DYN_ADD_USER, K_DYN_REMOVE_USER, K_DYN_ADD_DEVICE, K_DYN_REMOVE_DEVICE = 4, 5, 6, 7
K_MANUAL_ADD, K_MANUAL_REMOVE, K_UPDATE_GROUP = 8, 9, 10
_KIND_COUNT = len(KINDS)
_DYNAMIC_KINDS = frozenset(
    {K_DYN_ADD_USER, K_DYN_REMOVE_USER, K_DYN_ADD_DEVICE, K_DYN_REMOVE_DEVICE}
)
_TRIGGER_OF = {
    K_DYN_ADD_USER: K_UPDATE_USER,
    K_DYN_REMOVE_USER: K_UPDATE_USER,
    K_DYN_ADD_DEVICE: K_UPDATE_DEVICE,
    K_DYN_REMOVE_DEVICE: K_UPDATE_DEVICE,
}


def _series(kind: Kind, world: HistoryWorld) -> Series:
    """The kind's ground truth; updates no rule reads are triggers of relevance `other`."""
    if kind.activity.startswith("Update ") and kind.object_type in ("user", "device"):
        relevance = (
            Relevance.RULE
            if world.updates_read_by_rules.get(kind.object_type, True)
            else Relevance.OTHER
        )
        return events.TRIGGER_SERIES_BY_RELEVANCE[ObjectType(kind.object_type)][relevance]
    return kind.series


def _is_add(k: int) -> bool:
    return KINDS[k].series in (Series.DYNAMIC_ADD, Series.MANUAL_ADD)


@dataclass(frozen=True, slots=True)
class HistoryRates:
    """Weekly-mean hourly rates of the baseline the history follows."""

    user_updates_per_hour: float
    device_updates_per_hour: float
    user_adds_per_hour: float
    device_adds_per_hour: float
    manual_changes_per_hour: float
    group_updates_per_hour: float
    dynamic_changes_per_user_update: float
    dynamic_changes_per_device_update: float
    dynamic_add_fraction: float = 0.5
    lag_min_seconds: float = 45.0
    lag_max_seconds: float = 360.0
    noise: float = 0.12


@dataclass(frozen=True, slots=True)
class HistoryWorld:
    """The directory objects history events name, pre-encoded, and how to describe triggers."""

    users: MemberRefs
    devices: MemberRefs
    user_groups: Sequence[tuple[int, ContainerRef]]  # (container index, ref) of dynamic groups
    device_groups: Sequence[tuple[int, ContainerRef]]
    static_groups: Sequence[tuple[int, ContainerRef]]
    admins: Sequence[Actor]
    user_update_actors: Sequence[Actor]
    device_update_actors: Sequence[Actor]
    # (object type, object index, 64 random bits) -> the modifiedProperties of an update
    describe_update: Callable[[str, int, int], list[PropertyChange]]
    # object type -> whether its updates change properties the rules read (trigger relevance)
    updates_read_by_rules: Mapping[str, bool] = field(default_factory=dict)


_BLOCK_EVENT_OVERHEAD = 120
"""Bytes a cached event costs beyond its payload (columns, list slot, bytes object header)."""


@dataclass(slots=True)
class _HourBlock:
    """Every event of one hour, rendered, in (time, kind, j) order: columns like the live log's."""

    times: array[int] = field(default_factory=lambda: array("q"))
    kinds: array[int] = field(default_factory=lambda: array("B"))
    js: array[int] = field(default_factory=lambda: array("l"))
    visible: array[int] = field(default_factory=lambda: array("q"))
    apps: array[int] = field(default_factory=lambda: array("H"))
    payloads: list[bytes] = field(default_factory=list)
    size: int = 0

    def after(self, cursor: tuple[int, int, int]) -> int:
        """Index of the first event strictly after the cursor (t, k, j)."""
        times, kinds, js = self.times, self.kinds, self.js
        i = bisect_left(times, cursor[0])
        while i < len(times) and (times[i], kinds[i], js[i]) <= cursor:
            i += 1
        return i

    def before(self, cursor: tuple[int, int, int]) -> int:
        """Index of the last event strictly before the cursor (-1: none)."""
        times, kinds, js = self.times, self.kinds, self.js
        i = bisect_right(times, cursor[0]) - 1
        while i >= 0 and (times[i], kinds[i], js[i]) >= cursor:
            i -= 1
        return i


class History:
    def __init__(
        self,
        *,
        seed: int,
        start_us: int,
        end_us: int,
        rates: HistoryRates,
        shape: LoadShape,
        world: HistoryWorld,
        apps: AppRegistry,
        delay_quantiles: Sequence[float],
        cache_bytes: int = 0,
    ) -> None:
        """`cache_bytes`: keep rendered hours (least recently used first out) up to this many
        bytes, so that pages read again are served at the live log's speed (0: no cache)."""
        if start_us % HOUR_US or end_us <= start_us:
            raise ValueError("history must start on a whole hour and end after it starts")
        self.cache_bytes = cache_bytes
        self._blocks: OrderedDict[int, _HourBlock] = OrderedDict()
        self._cached_bytes = 0
        self.start_us = start_us
        self.end_us = end_us
        self.world = world
        self._seed = _mix(seed & _MASK)
        self.hours = -(-(end_us - start_us) // HOUR_US)
        self._delay_table = [round(q * MICROS) for q in delay_quantiles]
        if len(self._delay_table) != 1024:
            raise ValueError("history needs 1024 delay quantiles")
        self.max_delay_us = max(self._delay_table)
        self._kind_activity = [ACTIVITY_CODE[k.activity] for k in KINDS]
        self._kind_series = [SERIES_CODE[_series(k, world)] for k in KINDS]
        self._apps = apps
        self._kind_actors: list[Sequence[Actor]] = [
            world.user_update_actors,
            world.device_update_actors,
            world.user_update_actors,
            world.device_update_actors,
            DYNAMIC_PROCESSING_ACTORS,
            DYNAMIC_PROCESSING_ACTORS,
            DYNAMIC_PROCESSING_ACTORS,
            DYNAMIC_PROCESSING_ACTORS,
            world.admins,
            world.admins,
            world.admins,
        ]
        self._kind_actor_bytes = [
            [a.initiated_by() for a in actors] for actors in self._kind_actors
        ]
        self._kind_app_codes = [
            [apps.code(actor.app_display_name) for actor in actors] for actors in self._kind_actors
        ]
        self._stream_seeds = [
            _mix(self._seed ^ (h << 5) ^ k ^ 0x5EED)
            for h in range(self.hours)
            for k in range(_KIND_COUNT)
        ]
        dynamic_groups = [*world.user_groups, *world.device_groups]
        self._pools: list[Sequence[tuple[int, ContainerRef]]] = [
            dynamic_groups,
            dynamic_groups,
            dynamic_groups,
            dynamic_groups,
            world.user_groups,
            world.user_groups,
            world.device_groups,
            world.device_groups,
            world.static_groups,
            world.static_groups,
            dynamic_groups,
        ]
        # (member first, group first) per kind: Entra lists the group first in some events.
        self._membership_formats: list[tuple[Template, Template] | None] = [
            (
                membership_template(add=_is_add(k), layout=MEMBER_FIRST),
                membership_template(add=_is_add(k), layout=GROUP_FIRST),
            )
            if KINDS[k].activity in (events.ADD_MEMBER, events.REMOVE_MEMBER)
            else None
            for k in range(_KIND_COUNT)
        ]
        users_ref, devices_ref = world.users.get, world.devices.get
        self._ref_of = [
            users_ref if KINDS[k].object_type == "user" else devices_ref for k in range(_KIND_COUNT)
        ]
        self.counts = self._plan_counts(rates, shape)
        self._lag_us = [
            round(
                (
                    rates.lag_min_seconds
                    + (rates.lag_max_seconds - rates.lag_min_seconds)
                    * (_mix(self._seed ^ (h * 977)) >> 11)
                    / 2**53
                )
                * MICROS
            )
            for h in range(self.hours)
        ]

    # -- planning -----------------------------------------------------------------------------

    def _plan_counts(self, rates: HistoryRates, shape: LoadShape) -> list[list[int]]:
        world = self.world
        counts: list[list[int]] = []
        for h in range(self.hours):
            t = (self.start_us + h * HOUR_US) / MICROS
            factor = shape.multiplier(t)

            def draw(mean: float, salt: int, h: int = h, factor: float = factor) -> int:
                if mean <= 0:
                    return 0
                u = (_mix(self._seed ^ (h << 8) ^ salt) >> 11) / 2**53
                # log-normal noise around the shaped mean (Box-Muller would need two draws;
                # the inverse of a logistic is close enough for a baseline's wiggle)
                u = min(max(u, 1e-9), 1 - 1e-9)
                z = math.log(u / (1 - u)) / 1.7
                return max(0, round(mean * factor * math.exp(rates.noise * z)))

            updates_user = draw(rates.user_updates_per_hour, 1)
            updates_device = draw(rates.device_updates_per_hour, 2)
            dyn_user = (
                updates_user * rates.dynamic_changes_per_user_update if world.user_groups else 0
            )
            dyn_device = (
                updates_device * rates.dynamic_changes_per_device_update
                if world.device_groups
                else 0
            )
            add = rates.dynamic_add_fraction
            manual = draw(rates.manual_changes_per_hour, 3) if world.static_groups else 0
            row = [0] * len(KINDS)
            row[K_UPDATE_USER] = updates_user if world.users else 0
            row[K_UPDATE_DEVICE] = updates_device if world.devices else 0
            row[K_ADD_USER] = draw(rates.user_adds_per_hour, 4) if world.users else 0
            row[K_ADD_DEVICE] = draw(rates.device_adds_per_hour, 5) if world.devices else 0
            row[K_DYN_ADD_USER] = round(dyn_user * add)
            row[K_DYN_REMOVE_USER] = round(dyn_user * (1 - add))
            row[K_DYN_ADD_DEVICE] = round(dyn_device * add)
            row[K_DYN_REMOVE_DEVICE] = round(dyn_device * (1 - add))
            row[K_MANUAL_ADD] = (manual + 1) // 2
            row[K_MANUAL_REMOVE] = manual // 2
            row[K_UPDATE_GROUP] = (
                draw(rates.group_updates_per_hour, 6)
                if world.user_groups or world.device_groups
                else 0
            )
            counts.append(row)
        return counts

    # -- stream arithmetic --------------------------------------------------------------------

    def _stream_seed(self, h: int, k: int) -> int:
        return self._stream_seeds[h * _KIND_COUNT + k]

    def _time_bits(self, h: int, k: int, j: int, n: int) -> tuple[int, int]:
        """Event j's time and its 64 random bits (the top 53 place it within its slot)."""
        bits = _mix(self._stream_seeds[h * _KIND_COUNT + k] ^ ((j * _ODD1) & _MASK))
        offset = int((j + (bits >> 11) * _INV_2_53) * HOUR_US / n)
        return self.start_us + h * HOUR_US + offset, bits

    def _time(self, h: int, k: int, j: int, n: int) -> int:
        return self._time_bits(h, k, j, n)[0]

    def _first_at_or_after(self, h: int, k: int, n: int, t_us: int) -> int:
        hour_start = self.start_us + h * HOUR_US
        if t_us <= hour_start:
            return 0
        j = min(n, max(0, ((t_us - hour_start) * n) // HOUR_US))
        while j > 0 and self._time(h, k, j - 1, n) >= t_us:
            j -= 1
        while j < n and self._time(h, k, j, n) < t_us:
            j += 1
        return j

    def _hour_of(self, t_us: int) -> int:
        return (t_us - self.start_us) // HOUR_US

    # -- events -------------------------------------------------------------------------------
    # Every field of an event derives from one 64-bit hash of (seed, h, k, j): its low 10 bits
    # pick the visibility delay, bits 10+ the actor, and multiplications by odd constants give
    # independent-looking values for the rest (member, group, ids).

    def _event_bits(self, h: int, k: int, j: int) -> int:
        return _mix(self._stream_seeds[h * _KIND_COUNT + k] ^ ((j * _ODD1) & _MASK))

    # (The bits also place the event in its slot: `_time_bits`.)

    def visible_us(self, h: int, k: int, j: int, t_us: int) -> int:
        return t_us + self._delay_table[self._event_bits(h, k, j) & 1023]

    def _app_code(self, k: int, bits: int) -> int:
        codes = self._kind_app_codes[k]
        return codes[(bits >> 10) % len(codes)] if codes else 0

    def _trigger_object(self, k: int, t_us: int) -> int | None:
        """The object of a trigger of kind k shortly before t: one whose slot ends before t, so
        the lag it implies is positive."""
        h = self._hour_of(t_us)
        for hour in (h, h - 1):
            if hour < 0 or hour >= self.hours:
                continue
            n = self.counts[hour][k]
            if n == 0:
                continue
            hour_start = self.start_us + hour * HOUR_US
            j = min(n, ((t_us - hour_start) * n) // HOUR_US) - 1
            if j >= 0:
                return self._object_index(self._event_bits(hour, k, j), k)
        return None

    def _object_index(self, bits: int, k: int) -> int:
        objects = self.world.users if KINDS[k].object_type == "user" else self.world.devices
        return ((bits * _ODD2) & _MASK) % len(objects)

    def container_index(self, h: int, k: int, j: int) -> int:
        return self._container(self._event_bits(h, k, j), k)[0]

    def _container(self, bits: int, k: int) -> tuple[int, ContainerRef]:
        pool = self._pools[k]
        return pool[((bits * _ODD3) & _MASK) % len(pool)]

    def render(self, h: int, k: int, j: int, t_us: int, bits: int | None = None) -> bytes:
        if bits is None:
            bits = self._event_bits(h, k, j)
        event_id, correlation = identity(
            (((bits * _ODD4) & _MASK) << 64) | ((bits * _ODD5) & _MASK), (bits * _ODD6) & _MASK
        )
        actors = self._kind_actor_bytes[k]
        actor = actors[(bits >> 10) % len(actors)]
        timestamp = (
            b'"' + audit_timestamp(t_us, offset_form=offset_form(bits >> 44)).encode() + b'"'
        )
        world = self.world
        kind = KINDS[k]
        formats = self._membership_formats[k]
        if formats is not None:
            template = formats[membership_layout(bits >> 40).group_first]
            # the hot path: most history events are membership changes
            member_index = None
            if k in _DYNAMIC_KINDS:
                member_index = self._trigger_object(_TRIGGER_OF[k], t_us - self._lag_us[h])
            if member_index is None:
                member_index = self._object_index(bits, k)
            member = self._ref_of[k](member_index)
            pool = self._pools[k]
            container = pool[((bits * _ODD3) & _MASK) % len(pool)][1]
            return template.render(
                (
                    event_id,
                    correlation,
                    timestamp,
                    actor,
                    member.id,
                    member.display_name,
                    member.type,
                    member.user_principal_name,
                    container.id_quoted,
                    container.display_name_quoted,
                    container.id,
                )
            )
        if k == K_UPDATE_GROUP:
            container = self._container(bits, k)[1]
            return render_object_event(
                event_id=event_id,
                correlation_id=correlation,
                timestamp=timestamp,
                activity=kind.activity,
                category=events.CATEGORY_GROUP_MANAGEMENT,
                operation="Update",
                actor=actor,
                target_id=container.id,
                target_type="Group",
                target_display_name=container.display_name,
                target_user_principal_name=b"null",
                changes=[
                    PropertyChange("Description", b'"[]"', enc('["reviewed"]')),
                ],
                group_type="azureAD",
            )
        index = self._object_index(bits, k)
        member = world.users[index] if kind.object_type == "user" else world.devices[index]
        is_add = k in (K_ADD_USER, K_ADD_DEVICE)
        changes = world.describe_update(kind.object_type, index, (bits * _ODD7) & _MASK)
        return render_object_event(
            event_id=event_id,
            correlation_id=correlation,
            timestamp=timestamp,
            activity=kind.activity,
            category=(
                events.CATEGORY_USER_MANAGEMENT
                if kind.object_type == "user"
                else events.CATEGORY_DEVICE
            ),
            operation="Add" if is_add else "Update",
            actor=actor,
            target_id=member.id,
            target_type="User" if kind.object_type == "user" else "Device",
            target_display_name=member.display_name,
            target_user_principal_name=member.user_principal_name,
            changes=changes,
        )

    # -- iteration ----------------------------------------------------------------------------

    def _iterate(
        self,
        kinds: Sequence[int],
        lo_us: int,
        hi_us: int,
        after: tuple[int, int, int] | None,
        descending: bool,
    ) -> Iterator[tuple[int, int, int, int, int]]:
        """(time, kind, j, hour, bits) of events with lo <= time <= hi, in (time, kind, j)
        order (or reversed), strictly after the cursor."""
        if not kinds or hi_us < lo_us:
            return
        first_hour = max(0, self._hour_of(lo_us))
        last_hour = min(self.hours - 1, self._hour_of(hi_us))
        if descending and after is not None:
            last_hour = min(last_hour, self._hour_of(after[0]))
        elif after is not None:
            first_hour = max(first_hour, self._hour_of(after[0]))
        hours = (
            range(last_hour, first_hour - 1, -1) if descending else range(first_hour, last_hour + 1)
        )
        time_bits = self._time_bits
        heappop, heapreplace = heapq.heappop, heapq.heapreplace
        for h in hours:
            row = self.counts[h]
            heap: list[tuple[int, int, int, int, int]] = []
            for k in kinds:
                n = row[k]
                if n == 0:
                    continue
                if descending:
                    j = self._first_at_or_after(h, k, n, hi_us + 1) - 1
                    if after is not None:
                        j = min(j, self._first_at_or_after(h, k, n, after[0] + 1) - 1)
                        while j >= 0 and (self._time(h, k, j, n), k, j) >= after:
                            j -= 1
                    if j >= 0:
                        t, bits = time_bits(h, k, j, n)
                        if t >= lo_us:
                            heap.append((-t, -k, -j, n, bits))
                else:
                    j = self._first_at_or_after(h, k, n, lo_us)
                    if after is not None:
                        j = max(j, self._first_at_or_after(h, k, n, after[0]))
                        while j < n and (self._time(h, k, j, n), k, j) <= after:
                            j += 1
                    if j < n:
                        t, bits = time_bits(h, k, j, n)
                        if t <= hi_us:
                            heap.append((t, k, j, n, bits))
            heapq.heapify(heap)
            if descending:
                while heap:
                    t, k, j, n, bits = heap[0]
                    yield -t, -k, -j, h, bits
                    j = -j - 1
                    if j >= 0 and (following := time_bits(h, -k, j, n))[0] >= lo_us:
                        heapreplace(heap, (-following[0], k, -j, n, following[1]))
                    else:
                        heappop(heap)
            else:
                while heap:
                    t, k, j, n, bits = heap[0]
                    yield t, k, j, h, bits
                    j += 1
                    if j < n and (following := time_bits(h, k, j, n))[0] <= hi_us:
                        heapreplace(heap, (following[0], k, j, n, following[1]))
                    else:
                        heappop(heap)

    def scan(
        self,
        matcher: EventMatcher,
        *,
        after: tuple[int, int, int] | None,
        descending: bool,
        visible_by_us: int,
        limit: int,
    ) -> Scan:
        kinds = [
            k
            for k in range(len(KINDS))
            if (matcher.activities is None or self._kind_activity[k] in matcher.activities)
            and (
                matcher.apps is None
                or any(code in matcher.apps for code in self._kind_app_codes[k])
            )
        ]
        lo = self.start_us if matcher.lo_us is None else max(self.start_us, matcher.lo_us)
        hi = self.end_us - 1 if matcher.hi_us is None else min(self.end_us - 1, matcher.hi_us)
        if self.cache_bytes > 0:
            return self._scan_blocks(
                matcher, kinds, lo, hi, after, descending, visible_by_us, limit
            )
        chosen: list[tuple[int, int, int]] = []
        payloads: list[bytes] = []
        wanted = limit + 1
        apps = matcher.apps
        residual = matcher.residual
        delays = self._delay_table
        for t, k, j, h, bits in self._iterate(kinds, lo, hi, after, descending):
            if t + delays[bits & 1023] > visible_by_us:
                continue
            app = self._app_code(k, bits)
            if apps is not None and app not in apps:
                continue
            payload = self.render(h, k, j, t, bits)
            if residual is not None and not residual(
                t, self._kind_activity[k], app, decoder(payload)
            ):
                continue
            chosen.append((t, k, j))
            payloads.append(payload)
            if len(chosen) == wanted:
                break

        def cursor_of(position: int) -> str:
            t, k, j = chosen[position]
            return f"H.{t}.{k}.{j}"

        return Scan(payloads, cursor_of)

    # -- the cache of rendered hours -----------------------------------------------------------

    def configure_cache(self, cache_bytes: int) -> None:
        self.cache_bytes = cache_bytes
        self._evict()

    @property
    def cached_hours(self) -> int:
        return len(self._blocks)

    def _block(self, h: int) -> _HourBlock:
        block = self._blocks.get(h)
        if block is not None:
            self._blocks.move_to_end(h)
            return block
        block = _HourBlock()
        hour_start = self.start_us + h * HOUR_US
        delays = self._delay_table
        size = 0
        for t, k, j, _h, bits in self._iterate(
            range(_KIND_COUNT), hour_start, hour_start + HOUR_US - 1, None, False
        ):
            payload = self.render(h, k, j, t, bits)
            block.times.append(t)
            block.kinds.append(k)
            block.js.append(j)
            block.visible.append(t + delays[bits & 1023])
            block.apps.append(self._app_code(k, bits))
            block.payloads.append(payload)
            size += len(payload) + _BLOCK_EVENT_OVERHEAD
        block.size = size
        self._blocks[h] = block
        self._cached_bytes += size
        self._evict(keep=h)
        return block

    def _evict(self, keep: int | None = None) -> None:
        while self._cached_bytes > self.cache_bytes and self._blocks:
            h, block = next(iter(self._blocks.items()))
            if h == keep:
                break
            del self._blocks[h]
            self._cached_bytes -= block.size

    def _scan_blocks(
        self,
        matcher: EventMatcher,
        kinds: Sequence[int],
        lo: int,
        hi: int,
        after: tuple[int, int, int] | None,
        descending: bool,
        visible_by_us: int,
        limit: int,
    ) -> Scan:
        """`scan` from rendered hours: bisect, then a scan of small integer columns."""
        chosen: list[tuple[int, int, int]] = []
        payloads: list[bytes] = []
        wanted = limit + 1
        if kinds and hi >= lo:
            first_hour = max(0, self._hour_of(lo))
            last_hour = min(self.hours - 1, self._hour_of(hi))
            if descending and after is not None:
                last_hour = min(last_hour, self._hour_of(after[0]))
            elif after is not None:
                first_hour = max(first_hour, self._hour_of(after[0]))
            hours = (
                range(last_hour, first_hour - 1, -1)
                if descending
                else range(first_hour, last_hour + 1)
            )
            selected = bytes(1 if k in kinds else 0 for k in range(_KIND_COUNT))
            apps = matcher.apps
            residual = matcher.residual
            activity_of = self._kind_activity
            for h in hours:
                block = self._block(h)
                times, block_kinds, js = block.times, block.kinds, block.js
                visible, block_apps, block_payloads = block.visible, block.apps, block.payloads
                if descending:
                    end = bisect_right(times, hi) - 1
                    if after is not None:
                        end = min(end, block.before(after))
                    start = bisect_left(times, lo)
                    indices = range(end, start - 1, -1)
                else:
                    start = bisect_left(times, lo)
                    if after is not None:
                        start = max(start, block.after(after))
                    indices = range(start, bisect_right(times, hi))
                for i in indices:
                    k = block_kinds[i]
                    if not selected[k] or visible[i] > visible_by_us:
                        continue
                    if apps is not None and block_apps[i] not in apps:
                        continue
                    payload = block_payloads[i]
                    if residual is not None and not residual(
                        times[i], activity_of[k], block_apps[i], decoder(payload)
                    ):
                        continue
                    chosen.append((times[i], k, js[i]))
                    payloads.append(payload)
                    if len(chosen) == wanted:
                        break
                if len(chosen) == wanted:
                    break

        def cursor_of(position: int) -> str:
            t, k, j = chosen[position]
            return f"H.{t}.{k}.{j}"

        return Scan(payloads, cursor_of)

    # -- ground truth -------------------------------------------------------------------------

    def rows(
        self, since_us: int | None, before_us: int | None, visible_by_us: int | None
    ) -> Iterator[tuple[int, int, int, int, int]]:
        """(time, activity, series, container, app) of every event in [since, before)."""
        lo = self.start_us if since_us is None else max(self.start_us, since_us)
        hi = self.end_us - 1 if before_us is None else min(self.end_us - 1, before_us - 1)
        for t, k, _j, _h, bits in self._iterate(range(len(KINDS)), lo, hi, None, False):
            if visible_by_us is not None and t + self._delay_table[bits & 1023] > visible_by_us:
                continue
            yield (
                t,
                self._kind_activity[k],
                self._kind_series[k],
                self._container(bits, k)[0],
                self._app_code(k, bits),
            )

    def hourly_counts(
        self, since_us: int | None, before_us: int | None
    ) -> Iterator[tuple[int, int, int, int, int]]:
        """(hour start, activity, series, app, count) for [since, before), by arithmetic: the
        fast path of ground truth when neither visibility nor groups are asked for. Apps are
        attributed per event, so this path reports app code -1 (any)."""
        lo = self.start_us if since_us is None else max(self.start_us, since_us)
        hi = self.end_us if before_us is None else min(self.end_us, before_us)
        if hi <= lo:
            return
        for h in range(max(0, self._hour_of(lo)), min(self.hours, self._hour_of(hi - 1) + 1)):
            hour_start = self.start_us + h * HOUR_US
            for k, n in enumerate(self.counts[h]):
                if n == 0:
                    continue
                first = self._first_at_or_after(h, k, n, lo) if lo > hour_start else 0
                last = self._first_at_or_after(h, k, n, hi) if hi < hour_start + HOUR_US else n
                if last > first:
                    yield hour_start, self._kind_activity[k], self._kind_series[k], -1, last - first

    def total(self) -> int:
        return sum(sum(row) for row in self.counts)
