"""Entra's dynamic membership processing: one sequential queue per tenant.

What the seeds say, and how it is modelled:

* "Changes for a single tenant are evaluated and applied in order, rather than all at once": a
  FIFO of work items served one at a time. An object change (a user's department, a device's
  OS version) is one item; while it waits, further changes to the same object merge into it.
  A resumed group, or a group whose rule was edited, is one *full re-evaluation* item.
* Time to serve an item = its cost / capacity (`evaluations_per_hour`). An object item costs
  one evaluation per affected rule (rules that read a changed property, skipping paused ones),
  weighted up for -match, -contains and memberOf ("inefficient operators ... increase
  processing time"), plus `write_cost` per membership change written. A full re-evaluation
  costs `full_scan_cost` per object of its type, plus its writes. So the number of groups, the
  number of object changes and the rules' shape are the three factors, as Microsoft lists them.
* Paused groups are skipped: their members go stale, and the queue does not carry the work.
  Resuming enqueues that group's full re-evaluation (so does a rule edit), which is how a paused
  group catches up, and why resuming everything at once rebuilds a backlog.
* memberOf rules (Microsoft's "Configure dynamic membership groups with the memberOf attribute",
  preview limitations): a change to a source group's direct members (assigned, or dynamic by
  processing) re-evaluates the rules that name it for that member; they only add: a memberOf
  group keeps the members its sources lose until its rule is modified. A memberOf group is not
  a source of another ("can't be used to define the membership of another memberOf group").
* Items are picked up 0.5 to 1.5 times `pickup_delay_seconds` after the change (a pipeline
  latency), so a healthy tenant shows a lag of a minute or two, not zero.

An item is evaluated when its service starts; its membership changes are then applied (and
logged) spread over its service time. A change for a group paused meanwhile is dropped; the
group's full re-evaluation on resume will make it.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.domain.rules import MEMBER_OF_PROPERTY
from exporter.simulator.model import Directory, condition_allows
from exporter.simulator.timefmt import MICROS

HOUR_US = 3600 * MICROS


@dataclass(frozen=True, slots=True)
class Capacity:
    evaluations_per_hour: float = 200_000.0
    write_cost: float = 4.0
    full_scan_cost: float = 0.05
    item_overhead: float = 1.0
    pickup_delay_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.evaluations_per_hour <= 0:
            raise ValueError("processing capacity must be > 0 evaluations per hour")
        if min(self.write_cost, self.full_scan_cost, self.item_overhead) < 0:
            raise ValueError("processing costs must be >= 0")
        if self.pickup_delay_seconds < 0:
            raise ValueError("pickup delay must be >= 0 s")


@dataclass(eq=False, slots=True)
class WorkItem:
    enqueued_us: int
    eligible_us: int
    object_type: str  # the member type (for full re-evaluations: the container's)
    index: int  # object index, or container index for a full re-evaluation
    full: bool
    properties: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Emission:
    time_us: int
    container: int
    member: int
    add: bool
    trigger_us: int


@dataclass(slots=True)
class Service:
    item: WorkItem
    start_us: int
    end_us: int
    cost: float
    emissions: list[Emission]
    next: int = 0


# (emission) -> whether it was applied
ApplyEmission = Callable[[Emission], bool]


class ProcessingQueue:
    def __init__(self, directory: Directory, capacity: Capacity, seed: int = 0) -> None:
        self.directory = directory
        self.capacity = capacity
        self._rng = random.Random(f"queue-{seed}")
        self._last_eligible_us = 0
        self.pending: deque[WorkItem] = deque()
        self._pending_objects: dict[tuple[str, int], WorkItem] = {}
        self._pending_full: dict[int, WorkItem] = {}
        self._pending_properties: Counter[tuple[str, str]] = Counter()
        self.service: Service | None = None
        self.free_at_us = 0
        # what was processed: item completions and applied membership changes, with their lag
        self.item_done_us = array("q")
        self.item_lag_us = array("q")
        self.change_us = array("q")
        self.change_lag_us = array("q")
        self.evaluations_done = 0.0

    # -- enqueueing ---------------------------------------------------------------------------

    def enqueue_object(
        self, object_type: str, index: int, properties: set[str], time_us: int
    ) -> None:
        item = self._pending_objects.get((object_type, index))
        if item is not None:
            for name in properties - item.properties:
                self._pending_properties[(object_type, name)] += 1
            item.properties |= properties
            return
        item = WorkItem(
            time_us,
            self._eligible(time_us),
            object_type,
            index,
            full=False,
            properties=set(properties),
        )
        self._pending_objects[(object_type, index)] = item
        for name in properties:
            self._pending_properties[(object_type, name)] += 1
        self.pending.append(item)

    def enqueue_full(self, container: int, time_us: int) -> None:
        if container in self._pending_full:
            return
        member_type = self.directory.containers[container].member_type
        item = WorkItem(time_us, self._eligible(time_us), member_type, container, full=True)
        self._pending_full[container] = item
        self.pending.append(item)

    def _eligible(self, time_us: int) -> int:
        """When the queue may pick an item up: after a pipeline delay of 0.5 to 1.5 times
        `pickup_delay_seconds`, never before an item enqueued earlier (the queue is FIFO)."""
        delay = self.capacity.pickup_delay_seconds * self._rng.uniform(0.5, 1.5)
        eligible = max(self._last_eligible_us, time_us + round(delay * MICROS))
        self._last_eligible_us = eligible
        return eligible

    def _dequeue(self) -> WorkItem:
        item = self.pending.popleft()
        if item.full:
            del self._pending_full[item.index]
        else:
            del self._pending_objects[(item.object_type, item.index)]
            for name in item.properties:
                key = (item.object_type, name)
                self._pending_properties[key] -= 1
                if self._pending_properties[key] <= 0:
                    del self._pending_properties[key]
        return item

    # -- the discrete-event step --------------------------------------------------------------

    def next_time_us(self) -> int | None:
        service = self.service
        if service is not None:
            if service.next < len(service.emissions):
                return service.emissions[service.next].time_us
            return service.end_us
        if self.pending:
            return max(self.free_at_us, self.pending[0].eligible_us)
        return None

    def step(self, time_us: int, apply: ApplyEmission) -> None:
        """Do the one thing due at `time_us` (== next_time_us())."""
        service = self.service
        if service is not None:
            if service.next < len(service.emissions):
                emission = service.emissions[service.next]
                service.next += 1
                if apply(emission):
                    self.change_us.append(emission.time_us)
                    self.change_lag_us.append(emission.time_us - emission.trigger_us)
                return
            self._complete(service)
            return
        self._start(self._dequeue(), time_us)

    def _start(self, item: WorkItem, start_us: int) -> None:
        directory = self.directory
        capacity = self.capacity
        now = start_us / MICROS
        cost = capacity.item_overhead
        changes: list[tuple[int, int, bool]] = []
        if item.full:
            container = directory.containers[item.index]
            if not container.paused and container.rule is not None:
                wanted = directory.evaluate_members([container], now)[container.index]
                current = container.members
                changes.extend((container.index, m, False) for m in sorted(current - wanted))
                changes.extend((container.index, m, True) for m in sorted(wanted - current))
                cost += len(directory.tables[container.member_type]) * (
                    capacity.full_scan_cost * container.cost_weight
                )
        else:
            view = directory.tables[item.object_type].view(item.index)
            for index in sorted(directory.affected(item.object_type, item.properties)):
                container = directory.containers[index]
                if container.paused:
                    continue
                rule = container.rule
                assert rule is not None
                cost += container.cost_weight
                # The evaluation is charged either way; the shortcut only spares our CPU.
                wanted_member = condition_allows(container.condition, view) and rule.matches(
                    view, now
                )
                if not wanted_member and MEMBER_OF_PROPERTY in rule.properties:
                    # Microsoft (memberOf preview limitations): a memberOf group does not lose
                    # the members its source groups lose "until the rule is modified" (a full
                    # re-evaluation, above, does remove them).
                    continue
                if wanted_member != (item.index in container.members):
                    changes.append((index, item.index, wanted_member))
        cost += capacity.write_cost * len(changes)
        duration = round(cost / capacity.evaluations_per_hour * HOUR_US)
        end_us = start_us + max(1, duration)
        count = len(changes)
        emissions = [
            Emission(
                start_us + (position + 1) * (end_us - start_us) // (count + 1),
                container_index,
                member,
                add,
                item.enqueued_us,
            )
            for position, (container_index, member, add) in enumerate(changes)
        ]
        self.service = Service(item, start_us, end_us, cost, emissions)

    def _complete(self, service: Service) -> None:
        self.service = None
        self.free_at_us = service.end_us
        self.evaluations_done += service.cost
        self.item_done_us.append(service.end_us)
        self.item_lag_us.append(service.end_us - service.item.enqueued_us)
        if service.item.full:
            container = self.directory.containers[service.item.index]
            if not container.paused:
                container.evaluated = True

    # -- ground truth -------------------------------------------------------------------------

    def is_running(self, container_index: int) -> bool:
        """Whether processing work that concerns this container is queued or in service."""
        container = self.directory.containers[container_index]
        if container.rule is None:
            return False
        if container_index in self._pending_full:
            return True
        service = self.service
        if service is not None:
            item = service.item
            if item.full and item.index == container_index:
                return True
            if (
                not item.full
                and item.object_type == container.member_type
                and (item.properties & container.rule.properties)
            ):
                return True
        member_type = container.member_type
        return any(
            self._pending_properties.get((member_type, name), 0) > 0
            for name in container.rule.properties
        )

    def backlog(self, now_us: int) -> dict[str, float | int | None]:
        """The queue as it truly is: items waiting, the evaluations they will cost as things
        stand (paused groups cost nothing), the oldest waiting change and its age."""
        directory = self.directory
        capacity = self.capacity
        evaluations = 0.0
        for item in self.pending:
            evaluations += capacity.item_overhead
            if item.full:
                container = directory.containers[item.index]
                if not container.paused:
                    evaluations += len(directory.tables[container.member_type]) * (
                        capacity.full_scan_cost * container.cost_weight
                    )
            else:
                for index in directory.affected(item.object_type, item.properties):
                    container = directory.containers[index]
                    if not container.paused:
                        evaluations += container.cost_weight
        service = self.service
        remaining_service = 0.0
        oldest: int | None = self.pending[0].enqueued_us if self.pending else None
        if service is not None:
            remaining_service = (
                service.cost
                * max(0, service.end_us - now_us)
                / max(1, service.end_us - service.start_us)
            )
            oldest = (
                service.item.enqueued_us
                if oldest is None
                else min(oldest, service.item.enqueued_us)
            )
        total = evaluations + remaining_service
        return {
            "items": len(self.pending),
            "full_reevaluations": len(self._pending_full),
            "in_service": service is not None,
            "evaluations": round(total, 3),
            "drain_seconds": round(total / capacity.evaluations_per_hour * 3600, 3),
            "oldest_enqueued": None if oldest is None else oldest / MICROS,
            "lag_seconds": 0.0 if oldest is None else max(0, now_us - oldest) / MICROS,
        }

    def lag_distribution(
        self, since_us: int | None, before_us: int | None, *, changes: bool
    ) -> dict[str, float | int | None]:
        """Lag of items completed (or membership changes applied) in [since, before)."""
        times, lags = (
            (self.change_us, self.change_lag_us)
            if changes
            else (
                self.item_done_us,
                self.item_lag_us,
            )
        )
        start = 0 if since_us is None else bisect_left(times, since_us)
        end = len(times) if before_us is None else bisect_left(times, before_us)
        window = sorted(lags[start:end])
        if not window:
            return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}

        def quantile(q: float) -> float:
            return window[min(len(window) - 1, int(q * len(window)))] / MICROS

        return {
            "count": len(window),
            "mean": sum(window) / len(window) / MICROS,
            "p50": quantile(0.5),
            "p90": quantile(0.9),
            "p99": quantile(0.99),
            "max": window[-1] / MICROS,
        }
