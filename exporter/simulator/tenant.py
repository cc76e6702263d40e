"""One simulated tenant: directory, processing queue, audit log, scenario, on a virtual clock.

`SimulatedTenant` is a discrete-event simulation. `advance_to(t)` runs, in time order, every
scenario action, everyday change, bulk-update step and queue step due up to t; the audit log
and the directory are then exactly as Entra's would be at t. A background task in the app
calls it as the clock runs; tests drive the clock by hand. Everything random is drawn from
generators seeded by (seed, purpose), in event order, so a (scenario, seed, start) gives the
same log every time, however the clock was driven.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.clock import SystemClock, VirtualClock
from exporter.domain import events
from exporter.domain.events import (
    DirectoryObjectKind,
    ObjectType,
    ProcessingState,
    Relevance,
    Series,
)
from exporter.domain.rules import MEMBER_OF_PROPERTY, Rule, member_of_sources
from exporter.simulator.auditlog import OTHER_ACTIVITIES, AppRegistry, LiveLog
from exporter.simulator.faults import FaultInjector, FaultSettings
from exporter.simulator.generate import (
    DEVICE_UPDATE_WEIGHTS,
    USER_UPDATE_WEIGHTS,
    GroupSpec,
    TenantSpec,
    describe_change,
    generate_devices,
    generate_directory,
    generate_users,
    random_update,
)
from exporter.simulator.history import History, HistoryRates, HistoryWorld
from exporter.simulator.load import LoadShape
from exporter.simulator.model import USER, Container, Directory, ObjectTable, parse_rule
from exporter.simulator.processing import Capacity, Emission, ProcessingQueue
from exporter.simulator.render import (
    DYNAMIC_PROCESSING_ACTOR,
    SELF_SERVICE,
    Actor,
    PropertyChange,
    enc,
    enc_list_value,
    guid_from_int,
)
from exporter.simulator.scenarios import (
    BulkUpdate,
    EditRule,
    GroupSelector,
    Pause,
    Resume,
    Scenario,
    SetLoad,
    SetProcessingError,
)
from exporter.simulator.timefmt import MICROS, graph_timestamp, parse_iso_seconds
from exporter.simulator.writer import AuditWriter, DelayModel

HOUR = 3600.0

# Who makes everyday changes. The on-premises sync account is a user (Entra Connect's
# `Sync_<server>_<id>` account); HR provisioning, Intune and device registration are apps.
SYNC_ACTOR = Actor(
    "user",
    "7d3c1f52-5a8e-4c1b-9a0e-2f6b8c4d1e90",
    "",
    "Sync_ENTRACONNECT01_7d3c1f52@contoso.example",
    "10.1.0.4",
)
HR_ACTOR = Actor(
    "app",
    "b1f0c2d4-3e5a-4b6c-8d7e-9f0a1b2c3d4e",
    "HR inbound provisioning",
    "e2d4f6a8-1b3c-4d5e-8f9a-0b1c2d3e4f5a",
)
INTUNE_ACTOR = Actor(
    "app",
    "0000000a-0000-0000-c000-000000000000",
    "Microsoft Intune",
    "a4c6e8f0-2b4d-4f6a-8c0e-1a3c5e7a9c1e",
)
DEVICE_REGISTRATION_ACTOR = Actor(
    "app",
    "01cb2876-7ebd-4aa4-9cc9-d28bd4d359a9",
    "Device Registration Service",
    "c3e5a7c9-1d3f-4b5d-8f1b-2d4f6b8d0f2b",
)
ADMIN_ACTORS = tuple(
    Actor(
        "user",
        guid_from_int(random.Random(f"admin-{n}").getrandbits(128)),
        "",
        f"admin{n}@contoso.example",
        f"203.0.113.{10 + n}",
    )
    for n in range(1, 4)
)
OPERATOR_ACTOR = Actor(
    "user", "5e1a9c3d-7b2f-4e6a-9d8c-1f3b5a7c9e2d", "", "oncall.ops@contoso.example", "198.51.100.7"
)
GRAPH_CLIENT_ACTOR = Actor(
    "app",
    "3c5e7a9b-1d2f-4a6c-8e0b-2d4f6a8c0e1f",
    "Graph API client",
    "9a7c5e3b-1f2d-4c6e-8a0b-3d5f7b9d1f3a",
)
BULK_ACTORS = {"sync": SYNC_ACTOR, "hr": HR_ACTOR, "admin": ADMIN_ACTORS[0]}


HOUSEKEEPING_SHARE = 0.5
"""Per everyday user update, the chance of one more update no dynamic rule can read: Entra
logs "Update user" for authentication methods, token timestamps and licence housekeeping too
(#13)."""
HOUSEKEEPING_PROPERTIES = (
    ("StrongAuthenticationMethod", "StrongAuthenticationUserDetails"),
    ("StsRefreshTokensValidFrom",),
    ("AssignedLicense",),
    ("LastDirSyncTime",),
)
HOUSEKEEPING_ACTOR = Actor(
    "app",
    "b6e69c34-5f1f-4c34-8cdf-7fea120b8670",
    "Microsoft Substrate Management",
    "d2f4b6d8-0a2c-4e4a-9c6e-3b5d7f9b1d3f",
)
SELF_SERVICE_SHARE = 0.2
"""Of the everyday changes to assigned groups, those approved through self-service group
management (by the dynamic-processing app)."""


AUTORENEW_SHARE = 0.8
"""Of the Microsoft 365 group expiration decisions, those autorenewed (the group was used); the
rest are deleted. Microsoft's "Set expiration for Microsoft 365 groups" renews groups with user
activity automatically; no share is published."""


class _PoissonStream:
    """A kind of event at a constant rate (times the load factor), drawn from its own random
    stream (`tenant-<name>-<seed>`): adding one changes no other event of a seed."""

    def __init__(self, name: str, rate_per_hour: float, seed: int, now_us: int) -> None:
        self.rate = rate_per_hour
        self.factor = 1.0
        self.rng = random.Random(f"tenant-{name}-{seed}")
        self.next_us: int | None = None
        self.reschedule(now_us)

    def reschedule(self, now_us: int) -> None:
        rate = self.rate * self.factor
        if rate <= 0:
            self.next_us = None
            return
        self.next_us = now_us + max(1, round(self.rng.expovariate(rate / HOUR) * MICROS))


def _expiring_group(rng: random.Random) -> tuple[bytes, bytes, bool]:
    """Microsoft 365 group expiration (#13), on the tenant's Microsoft 365 groups, which the
    simulated directory does not otherwise hold (so an expiry changes no modelled group): (id,
    display name, autorenewed) of the next decision."""
    bits = rng.getrandbits(128)
    autorenew = rng.random() < AUTORENEW_SHARE
    return enc(guid_from_int(bits)), enc(f"Project {bits % 10_000:04d} team"), autorenew


def _property_display_name(name: str) -> str:
    return name[:1].upper() + name[1:]


@dataclass(order=True)
class _Scheduled:
    time_us: int
    sequence: int
    kind: str = field(compare=False)
    payload: Any = field(compare=False)


@dataclass(eq=False)
class _BulkPush:
    object_type: str
    indexes: list[int]
    values: dict[str, Any]
    start_us: int
    step_us: float
    actor: Actor
    position: int = 0

    def next_time_us(self) -> int | None:
        if self.position >= len(self.indexes):
            return None
        return self.start_us + int(self.position * self.step_us)


class _SteadyLoad:
    """Everyday changes as Poisson processes shaped by the load shape (thinning)."""

    KINDS = ("user_update", "device_update", "user_add", "device_add", "manual", "group_update")

    def __init__(
        self, scenario: Scenario, shape: LoadShape, rng: random.Random, now_us: int
    ) -> None:
        load = scenario.load
        self.rates = {
            "user_update": load.user_updates_per_hour,
            "device_update": load.device_updates_per_hour,
            "user_add": load.user_adds_per_hour,
            "device_add": load.device_adds_per_hour,
            "manual": load.manual_changes_per_hour,
            "group_update": load.group_updates_per_hour,
        }
        self.shape = shape
        self.rng = rng
        self.factor = 1.0
        self.next: dict[str, int | None] = {}
        self.reschedule(now_us)

    def _ceiling(self, kind: str) -> float:
        return self.rates[kind] * self.shape.peak_multiplier() * max(1.0, self.factor)

    def reschedule(self, now_us: int) -> None:
        for kind in self.KINDS:
            self.next[kind] = self._draw_after(kind, now_us)

    def _draw_after(self, kind: str, t_us: int) -> int | None:
        ceiling = self._ceiling(kind)
        if ceiling <= 0 or self.factor <= 0:
            return None
        gap = self.rng.expovariate(ceiling / HOUR)
        return t_us + max(1, round(gap * MICROS))

    def next_time_us(self) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for kind in self.KINDS:
            t = self.next[kind]
            if t is not None and (best is None or t < best[0]):
                best = (t, kind)
        return best

    def accept(self, kind: str, t_us: int) -> bool:
        """Thinning: the candidate at t is real with probability rate(t) / ceiling."""
        self.next[kind] = self._draw_after(kind, t_us)
        ceiling = self._ceiling(kind)
        rate = self.rates[kind] * self.shape.multiplier(t_us / MICROS) * self.factor
        return self.rng.random() * ceiling < rate


class SimulatedTenant:
    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        start: float | None = None,
        speed: float | None = None,
        operator_actions: bool | None = None,
        faults: FaultSettings | None = None,
        history_days: float | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        if start is None:
            start = (
                parse_iso_seconds(scenario.start)
                if scenario.start is not None
                else math.floor(SystemClock().now() / HOUR) * HOUR
            )
        self.start = start
        self.clock = VirtualClock(
            start=float(start), speed=float(scenario.speed if speed is None else speed)
        )
        self.operator_actions = (
            scenario.operator_actions if operator_actions is None else operator_actions
        )
        self.retention_seconds = scenario.audit.retention_days * 86400.0
        spec = scenario.tenant
        self.directory: Directory = generate_directory(
            TenantSpec(
                users=spec.users,
                devices=spec.devices,
                dynamic_groups=spec.dynamic_groups,
                device_group_share=spec.device_group_share,
                administrative_units=spec.administrative_units,
                static_groups=spec.static_groups,
                critical_groups=spec.critical_groups,
                paused_groups=spec.paused_groups,
                hygiene_examples=spec.hygiene_examples,
                groups=tuple(
                    GroupSpec(
                        name=g.name,
                        rule=g.rule,
                        critical=g.critical,
                        paused=g.paused,
                        administrative_unit=g.administrative_unit,
                        description=g.description,
                    )
                    for g in spec.groups
                ),
            ),
            self.seed,
            start,
        )
        self.apps = AppRegistry()
        self.live = LiveLog()
        self.faults = FaultInjector(faults or scenario.faults or FaultSettings(), self.seed)
        delay = scenario.audit.delay
        self.delay = DelayModel(
            median_seconds=delay.median,
            sigma=delay.sigma,
            min_seconds=delay.min,
            max_seconds=delay.max,
        )
        self.writer = AuditWriter(
            self.live, self.apps, seed=self.seed, delay=self.delay, faults=self.faults
        )
        processing = scenario.processing
        self.queue = ProcessingQueue(
            self.directory,
            Capacity(
                evaluations_per_hour=processing.evaluations_per_hour,
                write_cost=processing.write_cost,
                full_scan_cost=processing.full_scan_cost,
                item_overhead=processing.item_overhead,
                pickup_delay_seconds=processing.pickup_delay,
            ),
            seed=self.seed,
        )
        self.shape = LoadShape(
            diurnal=scenario.load.diurnal or LoadShape().diurnal,
            weekly=scenario.load.weekly or LoadShape().weekly,
        )
        self.start_us = round(start * MICROS)
        self.time_us = self.start_us
        self._rng = random.Random(f"tenant-activity-{self.seed}")
        # Draws that vary how events look (#13) come from their own stream, so that adding
        # variety does not change which events happen.
        self._variants = random.Random(f"tenant-variants-{self.seed}")
        self._steady = _SteadyLoad(scenario, self.shape, self._rng, self.start_us)
        self._expiry = _PoissonStream(
            "expiry", scenario.load.group_expiries_per_hour, self.seed, self.start_us
        )
        self._other = _PoissonStream(
            "other-activity", scenario.load.other_audit_events_per_hour, self.seed, self.start_us
        )
        self._bulk: list[_BulkPush] = []
        self._timeline: list[_Scheduled] = []
        self._sequence = 0
        self.paused_by_timeline: list[int] = []
        self.actions_done: list[dict[str, Any]] = []
        self.traced: dict[int, list[Emission]] = {}
        """Containers whose applied membership changes are kept (`trace_membership`)."""
        for action in scenario.timeline:
            if action.action in ("pause", "resume") and not self.operator_actions:
                continue
            self._schedule(self.start_us + round(action.at * MICROS), "action", action)
        days = scenario.history.days if history_days is None else history_days
        self.history: History | None = self._build_history(days) if days > 0 else None

    # -- history ------------------------------------------------------------------------------

    def _build_history(self, days: float) -> History:
        directory = self.directory
        load = self.scenario.load
        wanted = self.scenario.history.dynamic_changes_per_hour
        if wanted is None:
            user_changes, device_changes, add_fraction = self._calibrate()
        else:
            updates = load.user_updates_per_hour + load.device_updates_per_hour
            user_changes = device_changes = wanted / updates if updates else 0.0
            add_fraction = 0.5
        end_us = self.start_us
        start_us = end_us - round(days * 86400 * MICROS)
        start_us -= start_us % (3600 * MICROS)
        dynamic = [
            c for c in directory.containers if c.rule is not None and not c.paused and not c.dormant
        ]
        # History changes only everyday properties the rules read (fixed now: history is
        # rendered lazily, later rule edits must not change what it says), so its updates are
        # all rule-relevant; where the rules read none of them, all are of relevance `other`.
        self._history_properties = {
            object_type: frozenset(
                name
                for name in (USER_UPDATE_WEIGHTS if object_type == USER else DEVICE_UPDATE_WEIGHTS)
                if directory.readers_of(object_type, name)
            )
            for object_type in directory.tables
        }
        world = HistoryWorld(
            users=directory.users.refs,
            devices=directory.devices.refs,
            user_groups=[
                (c.index, c.ref)
                for c in dynamic
                if c.member_type == USER and c.kind is DirectoryObjectKind.GROUP
            ],
            device_groups=[
                (c.index, c.ref)
                for c in dynamic
                if c.member_type != USER and c.kind is DirectoryObjectKind.GROUP
            ],
            static_groups=[(c.index, c.ref) for c in directory.containers if c.rule is None],
            admins=ADMIN_ACTORS,
            user_update_actors=(SYNC_ACTOR, SYNC_ACTOR, HR_ACTOR, ADMIN_ACTORS[0]),
            device_update_actors=(INTUNE_ACTOR, INTUNE_ACTOR, DEVICE_REGISTRATION_ACTOR),
            describe_update=self._describe_history_update,
            updates_read_by_rules={
                object_type: bool(names) for object_type, names in self._history_properties.items()
            },
        )
        return History(
            seed=self.seed,
            start_us=start_us,
            end_us=end_us,
            rates=HistoryRates(
                user_updates_per_hour=load.user_updates_per_hour,
                device_updates_per_hour=load.device_updates_per_hour,
                user_adds_per_hour=load.user_adds_per_hour,
                device_adds_per_hour=load.device_adds_per_hour,
                manual_changes_per_hour=load.manual_changes_per_hour,
                group_updates_per_hour=load.group_updates_per_hour,
                dynamic_changes_per_user_update=user_changes,
                dynamic_changes_per_device_update=device_changes,
                dynamic_add_fraction=add_fraction,
            ),
            shape=self.shape,
            world=world,
            apps=self.apps,
            delay_quantiles=self.delay.quantiles(1024),
        )

    def _describe_history_update(
        self, object_type: str, index: int, bits: int
    ) -> list[PropertyChange]:
        # Live updates carry the realistic share of properties no rule reads.
        read = self._history_properties[object_type]
        name, old, new = describe_change(
            self.directory.tables[object_type], index, bits, read_by_rules=read.__contains__
        )
        return [
            PropertyChange(_property_display_name(name), enc_list_value(old), enc_list_value(new))
        ]

    def _calibrate(self, samples: int = 300, budget: int = 300_000) -> tuple[float, float, float]:
        """Membership changes per everyday update, measured on this tenant by trying sample
        updates against the real rules (without applying them), so that history's dynamic
        changes per hour match what the live tenant will do."""
        rng = random.Random(f"calibrate-{self.seed}")
        directory = self.directory
        now = self.start
        adds = removes = 0
        per_type: dict[str, float] = {}
        for object_type, table in directory.tables.items():
            if not len(table):
                per_type[object_type] = 0.0
                continue
            changes = evaluations = tried = 0
            while tried < samples and evaluations < budget:
                index = rng.randrange(len(table))
                name, value = random_update(rng, table, index)
                before = dict(table.view(index))
                after = {**before, name: value}
                tried += 1
                for container_index in directory.readers_of(object_type, name):
                    container = directory.containers[container_index]
                    if container.paused or container.rule is None:
                        continue
                    evaluations += 1
                    was, will = (
                        container.rule.matches(before, now),
                        container.rule.matches(after, now),
                    )
                    if was != will:
                        changes += 1
                        adds += will
                        removes += was
            per_type[object_type] = changes / max(1, tried)
        add_fraction = adds / (adds + removes) if adds + removes else 0.5
        return per_type[USER], per_type["device"], add_fraction

    # -- the event loop -----------------------------------------------------------------------

    def _schedule(self, time_us: int, kind: str, payload: Any) -> None:
        self._sequence += 1
        heapq.heappush(self._timeline, _Scheduled(time_us, self._sequence, kind, payload))

    @property
    def now(self) -> float:
        """Simulated time the tenant has been brought up to (epoch seconds)."""
        return self.time_us / MICROS

    def advance_to(self, t: float, max_steps: int | None = None) -> bool:
        """Run everything due up to t. With max_steps, stop early (returns False) so the event
        loop stays responsive; call again to continue."""
        target = round(t * MICROS)
        steps = 0
        while max_steps is None or steps < max_steps:
            steps += 1
            source, when = self._next_source()
            if source is None or when > target:
                self.time_us = max(self.time_us, target)
                return True
            self.time_us = max(self.time_us, when)
            self._run(source, when)
        return False

    def catch_up(self) -> None:
        self.advance_to(self.clock.now())

    def _next_source(self) -> tuple[str | None, int]:
        best: tuple[int, int, str] | None = None

        def offer(time_us: int | None, rank: int, name: str) -> None:
            nonlocal best
            if time_us is not None and (best is None or (time_us, rank) < best[:2]):
                best = (time_us, rank, name)

        offer(self._timeline[0].time_us if self._timeline else None, 0, "timeline")
        steady = self._steady.next_time_us()
        offer(steady[0] if steady else None, 1, "steady")
        for position, push in enumerate(self._bulk):
            offer(push.next_time_us(), 2, f"bulk:{position}")
        offer(self.queue.next_time_us(), 3, "queue")
        offer(self._expiry.next_us, 4, "expiry")
        offer(self._other.next_us, 5, "other")
        if best is None:
            return None, 0
        return best[2], best[0]

    def _run(self, source: str, time_us: int) -> None:
        if source == "timeline":
            item = heapq.heappop(self._timeline)
            self._run_scheduled(item)
        elif source == "steady":
            steady = self._steady.next_time_us()
            assert steady is not None
            _, kind = steady
            if self._steady.accept(kind, time_us):
                self._everyday_change(kind, time_us)
        elif source.startswith("bulk:"):
            push = self._bulk[int(source[5:])]
            index = push.indexes[push.position]
            push.position += 1
            self._update_object(push.object_type, index, push.values, push.actor, time_us)
            if push.position >= len(push.indexes):
                self._bulk.remove(push)
        elif source == "expiry":
            self._group_expiry(time_us)
        elif source == "other":
            self._other_activity(time_us)
        else:
            self.queue.step(time_us, self._apply_emission)

    # -- changes ------------------------------------------------------------------------------

    def _everyday_change(self, kind: str, time_us: int) -> None:
        rng = self._rng
        directory = self.directory
        if kind in ("user_update", "device_update"):
            table = directory.users if kind == "user_update" else directory.devices
            if not len(table):
                return
            index = rng.randrange(len(table))
            name, value = random_update(rng, table, index)
            actors = (
                (SYNC_ACTOR, SYNC_ACTOR, HR_ACTOR, ADMIN_ACTORS[0])
                if kind == "user_update"
                else (INTUNE_ACTOR, INTUNE_ACTOR, DEVICE_REGISTRATION_ACTOR)
            )
            self._update_object(
                table.object_type, index, {name: value}, rng.choice(actors), time_us
            )
            if kind == "user_update" and self._variants.random() < HOUSEKEEPING_SHARE:
                # A microsecond later: events of one instant would be in no defined order.
                self._housekeeping_update(index, time_us + 1)
        elif kind in ("user_add", "device_add"):
            table = directory.users if kind == "user_add" else directory.devices
            self._add_object(table, rng, time_us)
        elif kind == "manual":
            static = [c for c in directory.containers if c.rule is None]
            users = directory.users
            if not static or not len(users):
                return
            container = rng.choice(static)
            member = rng.randrange(len(users))
            add = member not in container.members
            if self._variants.random() < SELF_SERVICE_SHARE:
                self.self_service_membership(container, member, add=add, time_us=time_us)
            else:
                self.manual_membership(
                    container, member, add=add, actor=rng.choice(ADMIN_ACTORS), time_us=time_us
                )
        elif kind == "group_update":
            dynamic = [c for c in directory.containers if c.rule is not None]
            if dynamic:
                container = rng.choice(dynamic)
                old = container.description
                container.description = f"Reviewed {time_us // MICROS}"
                self._write_container_update(
                    container,
                    [
                        PropertyChange(
                            "Description",
                            enc_list_value(old),
                            enc_list_value(container.description),
                        )
                    ],
                    rng.choice(ADMIN_ACTORS),
                    Series.GROUP_UPDATE_OTHER,
                    time_us,
                )

    def _group_expiry(self, time_us: int) -> None:
        expiry = self._expiry
        group_id, name, autorenew = _expiring_group(expiry.rng)
        expiry.reschedule(time_us)
        self.writer.object_event(
            time_us,
            activity=events.AUTORENEW_GROUP if autorenew else events.DELETE_GROUP,
            category=events.CATEGORY_GROUP_MANAGEMENT,
            operation="Update" if autorenew else "Delete",
            actor=DYNAMIC_PROCESSING_ACTOR,
            target_id=group_id,
            target_type=events.TARGET_TYPE_GROUP,
            target_display_name=name,
            target_user_principal_name=enc(None),
            changes=[],
            series=Series.APPROVAL_MANAGEMENT_OTHER,
            group_type=events.GROUP_TYPE_MICROSOFT_365,
            logged_by=(
                events.LOGGED_BY_SELF_SERVICE if autorenew else events.LOGGED_BY_CORE_DIRECTORY
            ),
            rng=expiry.rng,
        )

    def _other_activity(self, time_us: int) -> None:
        stream = self._other
        activity, category, target_type = stream.rng.choice(OTHER_ACTIVITIES)
        bits = stream.rng.getrandbits(128)
        stream.reschedule(time_us)
        self.writer.object_event(
            time_us,
            activity=activity,
            category=category,
            operation="Update" if activity.startswith("Update") else "Add",
            actor=stream.rng.choice((*ADMIN_ACTORS, GRAPH_CLIENT_ACTOR)),
            target_id=enc(guid_from_int(bits)),
            target_type=target_type,
            target_display_name=enc(f"{target_type} {bits % 1000:03d}"),
            target_user_principal_name=enc(None),
            changes=[],
            series=Series.OTHER,
            rng=stream.rng,
        )

    def _add_object(self, table: ObjectTable, rng: random.Random, time_us: int) -> None:
        fresh = ObjectTable(table.object_type, table.columns)
        fresh.value_domains = dict(table.value_domains)
        if table.object_type == USER:
            generate_users(rng, 1, fresh, start=len(table))
        else:
            generate_devices(rng, 1, fresh, start=len(table))
        attributes = {name: column[0] for name, column in fresh.columns.items()}
        index = table.add(fresh.ids[0], attributes)
        user = table.object_type == USER
        ref = table.refs[index]
        self.writer.object_event(
            time_us,
            activity="Add user" if user else "Add device",
            category=events.CATEGORY_USER_MANAGEMENT if user else events.CATEGORY_DEVICE,
            operation="Add",
            actor=HR_ACTOR if user else DEVICE_REGISTRATION_ACTOR,
            target_id=ref.id,
            target_type="User" if user else "Device",
            target_display_name=ref.display_name,
            target_user_principal_name=ref.user_principal_name,
            changes=[
                PropertyChange(_property_display_name(n), enc_list_value(None), enc_list_value(v))
                for n, v in attributes.items()
                if v is not None and n in ("department", "jobTitle", "deviceOSType", "displayName")
            ],
            series=Series.TRIGGER_USER if user else Series.TRIGGER_DEVICE,
        )
        properties = {name for name, value in attributes.items() if value is not None}
        self.queue.enqueue_object(table.object_type, index, properties, time_us)

    def _housekeeping_update(self, index: int, time_us: int) -> None:
        """An "Update user" of properties no membership rule can reference (not in the
        tenant's attribute table): a trigger of relevance `other`, which re-evaluates nothing."""
        ref = self.directory.users.refs[index]
        names = HOUSEKEEPING_PROPERTIES[self._variants.randrange(len(HOUSEKEEPING_PROPERTIES))]
        self.writer.object_event(
            time_us,
            activity="Update user",
            category=events.CATEGORY_USER_MANAGEMENT,
            operation="Update",
            actor=HOUSEKEEPING_ACTOR,
            target_id=ref.id,
            target_type="User",
            target_display_name=ref.display_name,
            target_user_principal_name=ref.user_principal_name,
            changes=[PropertyChange(name, b"null", b"null") for name in names],
            series=Series.TRIGGER_USER_OTHER,
        )

    def _update_object(
        self, object_type: str, index: int, values: dict[str, Any], actor: Actor, time_us: int
    ) -> None:
        table = self.directory.tables[object_type]
        changes: list[PropertyChange] = []
        changed: set[str] = set()
        for name, value in values.items():
            old = table.set(index, name, value)
            if old != value:
                changed.add(name)
                changes.append(
                    PropertyChange(
                        _property_display_name(name), enc_list_value(old), enc_list_value(value)
                    )
                )
        if not changed:
            return
        user = object_type == USER
        ref = table.refs[index]
        # What the exporter will say (#13): relevant when a dynamic rule reads a changed property.
        readers = self.directory.readers_of
        relevance = (
            Relevance.RULE
            if any(readers(object_type, name) for name in changed)
            else Relevance.OTHER
        )
        self.writer.object_event(
            time_us,
            activity="Update user" if user else "Update device",
            category=events.CATEGORY_USER_MANAGEMENT if user else events.CATEGORY_DEVICE,
            operation="Update",
            actor=actor,
            target_id=ref.id,
            target_type="User" if user else "Device",
            target_display_name=ref.display_name,
            target_user_principal_name=ref.user_principal_name,
            changes=changes,
            series=events.TRIGGER_SERIES_BY_RELEVANCE[ObjectType(object_type)][relevance],
        )
        self.queue.enqueue_object(object_type, index, changed, time_us)

    def _apply_emission(self, emission: Emission) -> bool:
        container = self.directory.containers[emission.container]
        if container.paused:
            return False
        members = container.members
        if emission.add == (emission.member in members):
            return False
        if emission.add:
            members.add(emission.member)
        else:
            members.discard(emission.member)
        container.last_membership_updated = emission.time_us / MICROS
        if (
            container.member_type == USER
            and container.id in self.directory.member_of_sources()
            and container.rule is not None
            and MEMBER_OF_PROPERTY not in container.rule.properties
        ):
            # A dynamic source group of memberOf rules: they read its direct members (#19).
            self._note_member_of(
                emission.member, container.id, add=emission.add, time_us=emission.time_us
            )
        if self.traced:
            trace = self.traced.get(emission.container)
            if trace is not None:
                trace.append(emission)
        self.writer.membership_change(
            emission.time_us,
            add=emission.add,
            actor=DYNAMIC_PROCESSING_ACTOR,
            member=self.directory.tables[container.member_type].refs[emission.member],
            container=container.ref,
            container_index=container.index,
            series=(
                # The exporter's vocabulary counts group membership only; a unit's
                # membership events are "other" to it (events.INGESTED_ACTIVITIES).
                Series.OTHER
                if container.kind is DirectoryObjectKind.ADMINISTRATIVE_UNIT
                else Series.DYNAMIC_ADD
                if emission.add
                else Series.DYNAMIC_REMOVE
            ),
        )
        return True

    def _write_container_update(
        self,
        container: Container,
        changes: list[PropertyChange],
        actor: Actor,
        series: Series,
        time_us: int,
    ) -> None:
        unit = container.kind is DirectoryObjectKind.ADMINISTRATIVE_UNIT
        self.writer.object_event(
            time_us,
            activity=events.UPDATE_ADMINISTRATIVE_UNIT if unit else events.UPDATE_GROUP,
            category=events.CATEGORY_AU if unit else events.CATEGORY_GROUP_MANAGEMENT,
            operation="Update",
            actor=actor,
            target_id=container.ref.id,
            target_type="AdministrativeUnit" if unit else "Group",
            target_display_name=container.ref.display_name,
            target_user_principal_name=b"null",
            changes=changes,
            series=series,
            container_index=container.index,
            group_type=None if unit else "azureAD",
        )

    # -- operations (also used by the Graph PATCH and the control API) -------------------------

    def _op_time(self, time_us: int | None) -> int:
        if time_us is not None:
            return time_us
        self.catch_up()
        return self.time_us

    def set_processing_state(
        self, container: Container, state: ProcessingState, actor: Actor, time_us: int | None = None
    ) -> bool:
        """Pause or resume one dynamic group or unit; False if it already was in that state.
        Resuming enqueues the group's full re-evaluation, as Entra does."""
        if container.rule is None:
            raise ValueError(f"{container.display_name!r} has no dynamic membership rule")
        if container.state is state:
            return False
        at = self._op_time(time_us)
        old = container.state
        container.state = state
        self._write_container_update(
            container,
            [
                PropertyChange(
                    events.PROPERTY_PROCESSING_STATE,
                    enc_list_value(old.value),
                    enc_list_value(state.value),
                )
            ],
            actor,
            Series.PROCESSING_STATE_CHANGE,
            at,
        )
        if state is ProcessingState.ON:
            self.queue.enqueue_full(container.index, at)
        return True

    def edit_rule(
        self, container: Container, rule_text: str, actor: Actor, time_us: int | None = None
    ) -> None:
        """Replace a rule (RuleSyntaxError if Entra would refuse it); the group is then fully
        re-evaluated (on resume, if it is paused)."""
        rule: Rule = parse_rule(rule_text)
        if container.rule is None:
            raise ValueError(f"{container.display_name!r} has no dynamic membership rule")
        if container.member_type != str(rule.object_type) and container.members:
            raise ValueError(
                f"a rule for {rule.object_type} objects cannot replace a "
                f"{container.member_type} rule on a group that has members"
            )
        at = self._op_time(time_us)
        old_text = container.rule.text
        self.directory.replace_rule(container, rule)
        self._note_dynamic_sources(member_of_sources(rule))
        self._write_container_update(
            container,
            [
                PropertyChange(
                    events.PROPERTY_MEMBERSHIP_RULE,
                    enc_list_value(old_text),
                    enc_list_value(rule_text),
                )
            ],
            actor,
            Series.RULE_CHANGE,
            at,
        )
        if not container.paused:
            self.queue.enqueue_full(container.index, at)

    def manual_membership(
        self,
        container: Container,
        member: int,
        *,
        add: bool,
        actor: Actor,
        time_us: int | None = None,
    ) -> bool:
        if container.rule is not None:
            raise ValueError("members of a dynamic group cannot be added or removed by hand")
        if add == (member in container.members):
            return False
        at = self._op_time(time_us)
        if add:
            container.members.add(member)
        else:
            container.members.discard(member)
        self._note_member_of(member, container.id, add=add, time_us=at)
        self.writer.membership_change(
            at,
            add=add,
            actor=actor,
            member=self.directory.users.refs[member],
            container=container.ref,
            container_index=container.index,
            series=Series.MANUAL_ADD if add else Series.MANUAL_REMOVE,
        )
        return True

    def self_service_membership(
        self, container: Container, member: int, *, add: bool, time_us: int
    ) -> None:
        """A change approved through self-service group management: done by the
        dynamic-processing app, logged by Self-service Group Management; not dynamic."""
        if add == (member in container.members):
            return
        if add:
            container.members.add(member)
        else:
            container.members.discard(member)
        self.writer.membership_change(
            time_us,
            add=add,
            actor=DYNAMIC_PROCESSING_ACTOR,
            member=self.directory.users.refs[member],
            container=container.ref,
            container_index=container.index,
            series=Series.APPROVAL_MANAGEMENT_OTHER,
            layout=SELF_SERVICE,
        )

    def update_objects(
        self,
        object_type: str,
        values: dict[str, Any],
        *,
        count: int | None = None,
        fraction: float | None = None,
        where: dict[str, Any] | None = None,
        over_seconds: float = 0.0,
        actor: Actor = SYNC_ACTOR,
        time_us: int | None = None,
    ) -> int:
        """A bulk attribute push: set `values` on `count` (or a `fraction` of) objects matching
        `where`, spread evenly over `over_seconds`. Returns how many objects it touches."""
        table = self.directory.tables[object_type]
        unknown = (set(values) | set(where or {})) - set(table.columns)
        if unknown:
            raise ValueError(f"unknown {object_type} attribute(s): {', '.join(sorted(unknown))}")
        at = self._op_time(time_us)
        candidates = [
            i
            for i in range(len(table))
            if not where or all(table.get(i, k) == v for k, v in where.items())
        ]
        if fraction is not None:
            count = round(len(candidates) * fraction)
        if count is not None and count < len(candidates):
            candidates = sorted(self._rng.sample(candidates, count))
        if not candidates:
            return 0
        step = over_seconds * MICROS / len(candidates)
        push = _BulkPush(object_type, candidates, dict(values), at, step, actor)
        if step == 0:
            for index in candidates:
                self._update_object(object_type, index, push.values, actor, at)
        else:
            self._bulk.append(push)
        return len(candidates)

    def _note_dynamic_sources(self, sources: frozenset[str]) -> None:
        """A rule now names these groups: the users' `memberOf` holds the dynamic ones too from
        now on (assigned groups are always there), so that its evaluation sees them."""
        users = self.directory.users
        for source in sources:
            container = self.directory.by_id.get(source)
            if container is None or container.rule is None or container.member_type != USER:
                continue
            for member in sorted(container.members):
                current = list(users.get(member, "memberOf") or ())
                if source not in current:
                    users.set(member, "memberOf", [*current, source])

    def _note_member_of(self, member: int, group_id: str, *, add: bool, time_us: int) -> None:
        """Keep the user's `memberOf` (assigned groups, and dynamic groups a memberOf rule names)
        in step; rules that read it are re-evaluated for that user, as for any property
        change."""
        users = self.directory.users
        current = [g for g in (users.get(member, "memberOf") or ()) if g != group_id]
        users.set(member, "memberOf", ([*current, group_id] if add else current) or None)
        if self.directory.readers_of(USER, "memberOf"):
            self.queue.enqueue_object(USER, member, {"memberOf"}, time_us)

    def apply_object_changes(
        self,
        object_type: str,
        changes: dict[str, dict[str, Any]],
        *,
        actor: Actor = ADMIN_ACTORS[0],
        time_us: int | None = None,
    ) -> int:
        """New values per object id (a bulk-update file, or one Graph PATCH), all at one time;
        ValueError for unknown ids or attributes. Returns how many objects it touched."""
        table = self.directory.tables[object_type]
        indexes: list[tuple[int, dict[str, Any]]] = []
        for object_id, values in changes.items():
            index = table.index_of.get(object_id.lower())
            if index is None:
                raise ValueError(f"no {object_type} with id {object_id}")
            bad = set(values) - (set(table.columns) - {"memberOf"})
            if bad:
                raise ValueError(
                    f"unknown or read-only {object_type} attribute(s): {', '.join(sorted(bad))}"
                )
            indexes.append((index, values))
        at = self._op_time(time_us)
        for index, values in indexes:
            self._update_object(object_type, index, dict(values), actor, at)
        return len(indexes)

    def trace_membership(self, container: Container) -> None:
        """Keep every membership change applied to this container from now on, with the time
        of the change that caused it (a canary group's ground truth: truth.membership_trace)."""
        self.traced.setdefault(container.index, [])

    def set_processing_error(self, container: Container, message: str | None) -> None:
        container.error_message = message

    def set_load_factor(self, factor: float) -> None:
        self._steady.factor = factor
        self._steady.reschedule(self.time_us)
        for stream in (self._expiry, self._other):
            stream.factor = factor
            stream.reschedule(self.time_us)

    # -- scenario timeline --------------------------------------------------------------------

    def select(
        self, selector: GroupSelector, *, only_paused_by_timeline: bool = False
    ) -> list[Container]:
        dynamic = [c for c in self.directory.containers if c.rule is not None]
        if only_paused_by_timeline:
            mine = set(self.paused_by_timeline)
            dynamic = [c for c in dynamic if c.index in mine]
        if selector == "all":
            return dynamic
        if selector == "critical":
            return [c for c in dynamic if c.critical]
        if selector == "non_critical":
            return [c for c in dynamic if not c.critical]
        wanted = set(selector)
        return [c for c in dynamic if c.id in wanted or c.display_name in wanted]

    def find(self, name_or_id: str) -> Container:
        if name_or_id == "largest":
            users = [
                c for c in self.directory.containers if c.rule is not None and c.member_type == USER
            ]
            if not users:
                raise ValueError("there is no dynamic user group")
            return max(users, key=lambda c: (len(c.members), -c.index))
        container = self.directory.by_id.get(name_or_id.lower()) or next(
            (c for c in self.directory.containers if c.display_name == name_or_id), None
        )
        if container is None:
            raise ValueError(f"no group or administrative unit named or with id {name_or_id!r}")
        return container

    def _run_scheduled(self, item: _Scheduled) -> None:
        if item.kind == "state":
            container, state = item.payload
            self.set_processing_state(container, state, OPERATOR_ACTOR, item.time_us)
            return
        action = item.payload
        at = item.time_us
        record: dict[str, Any] = {"at": at / MICROS, "action": action.action}
        if isinstance(action, BulkUpdate):
            record["objects"] = self.update_objects(
                action.object_type,
                action.set,
                count=action.count,
                fraction=action.fraction,
                where=action.where,
                over_seconds=action.over,
                actor=BULK_ACTORS[action.actor],
                time_us=at,
            )
        elif isinstance(action, Pause | Resume):
            pausing = isinstance(action, Pause)
            targets = [
                c
                for c in self.select(action.groups, only_paused_by_timeline=not pausing)
                if c.paused != pausing
            ]
            if pausing:
                self.paused_by_timeline.extend(c.index for c in targets)
            state = ProcessingState.PAUSED if pausing else ProcessingState.ON
            size = action.batch_size or max(1, len(targets))
            for batch_number, first in enumerate(range(0, len(targets), size)):
                when = at + round(batch_number * action.interval * MICROS)
                for container in targets[first : first + size]:
                    self._schedule(when, "state", (container, state))
            record["groups"] = len(targets)
        elif isinstance(action, EditRule):
            container = self.find(action.group)
            self.edit_rule(container, action.rule, ADMIN_ACTORS[1], at)
            record["group"] = container.id
        elif isinstance(action, SetLoad):
            self.set_load_factor(action.factor)
            record["factor"] = action.factor
        elif isinstance(action, SetProcessingError):
            container = self.find(action.group)
            self.set_processing_error(container, action.message)
            record["group"] = container.id
        self.actions_done.append(record)

    def start_storm(
        self,
        *,
        objects: int,
        attribute: str = "extensionAttribute3",
        value: str = "wave-5",
        over_seconds: float = 1200.0,
        pause_after_seconds: float | None = None,
        resume_after_seconds: float = 86400.0,
        batch_size: int = 100,
        batch_interval_seconds: float = 3600.0,
    ) -> dict[str, Any]:
        """A storm now: a bulk push; with `pause_after_seconds`, also the operator's reaction
        (pause all, resume critical after `resume_after_seconds`, the rest in batches)."""
        self.catch_up()
        now = self.time_us
        touched = self.update_objects(
            USER, {attribute: value}, count=objects, over_seconds=over_seconds
        )
        plan: dict[str, Any] = {"objects": touched, "start": now / MICROS}
        if pause_after_seconds is not None:
            pause_at = now + round(pause_after_seconds * MICROS)
            resume_at = pause_at + round(resume_after_seconds * MICROS)
            for action in (
                Pause(action="pause", at=0, groups="all"),
                Resume(action="resume", at=0, groups="critical"),
                Resume(
                    action="resume",
                    at=0,
                    groups="non_critical",
                    batch_size=batch_size,
                    interval=batch_interval_seconds,
                ),
            ):
                when = pause_at if isinstance(action, Pause) else resume_at
                if action.groups == "non_critical":
                    when += round(batch_interval_seconds * MICROS)
                self._schedule(when, "action", action)
            plan.update(pause_at=pause_at / MICROS, resume_at=resume_at / MICROS)
        return plan

    # -- views --------------------------------------------------------------------------------

    def critical_groups(self) -> list[Container]:
        return [c for c in self.directory.containers if c.critical]

    def processing_status(self, container: Container) -> dict[str, Any] | None:
        """The beta `membershipRuleProcessingStatus`: null while paused."""
        if container.rule is None or container.paused:
            return None
        if container.error_message is not None:
            status = "Failed"
        elif self.queue.is_running(container.index):
            status = "Running"
        elif not container.evaluated:
            status = "NotStarted"
        else:
            status = "Succeeded"
        updated = container.last_membership_updated
        return {
            "status": status,
            "lastMembershipUpdated": None
            if updated is None
            else graph_timestamp(round(updated * MICROS)),
            "errorMessage": container.error_message,
        }

    def stale_members(self, container: Container) -> dict[str, int]:
        """How far the group's members are from what its rule selects right now."""
        if container.rule is None:
            return {"missing": 0, "extra": 0}
        wanted = self.directory.evaluate_members([container], self.now)[container.index]
        return {
            "missing": len(wanted - container.members),
            "extra": len(container.members - wanted),
        }

    def containers(self, indexes: Iterable[int]) -> Sequence[Container]:
        return [self.directory.containers[i] for i in indexes]
