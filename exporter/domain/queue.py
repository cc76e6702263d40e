"""The work still waiting in the tenant's processing queue, seen from the audit log (#23).

The lag estimator (`domain/lag`) pairs a trigger with the membership change it caused: it sees
only finished work, so during a storm it trails the queue by however long the queue is. This
module reads what has not finished yet.

Entra evaluates a tenant's changes "in order, rather than all at once" (one queue per tenant):
once a trigger at t1 is seen to have moved a membership, every trigger before t1 has been
processed too, whether or not it moved anything. So the queue's front is the newest trigger
known to be processed (`processed_through`), and the rule-relevant triggers after it that no
membership change has answered are the waiting work: their number, and the oldest one's age.
Triggers that moved nothing stay "waiting" until a later trigger moves something; a quiet
tenant can hold a few such for a while, so an age is only believed when at least
`MIN_WAITING_TRIGGERS` wait (a storm has thousands).

The processing rate is how many triggers the front passed in the last `RATE_WINDOW` of changes
(settled and received; the triggers counted from the minute buckets of rule-relevant triggers);
the backlog drains in waiting / rate. Before a queue forms, the front passes triggers as fast as
they come, so the first minutes of a storm under-read the rate (and over-read the drain) until
the window has seen the queue busy. In evaluations, the backlog is the waiting triggers times
the rules that read the properties the trailing hour's triggers changed (`rules_per_trigger`).

The front cannot trail the tenant's capacity: while no membership change moves it, the queue
still works through the triggers behind it, at most as fast as the tenant has been seen to
process them (`capacity_per_hour`, the highest rate measured while a queue was judged, kept by
the store). So the front is advanced by that many triggers (`CAPACITY_MARGIN` of it) for the
time since the last change (`capacity_front`): a night job's triggers that moved nothing stop
counting as waiting within minutes, while a storm's front moves with its own changes. Without a
measured capacity the front is not advanced (the cautious side).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from exporter.domain.attribution import TriggerCauses
from exporter.domain.events import RELEVANT_TRIGGER_SERIES, ObjectType, Series
from exporter.domain.history import MINUTE, CountHistory, floor_to

MIN_WAITING_TRIGGERS = 10
"""Fewer waiting triggers than this say nothing about a queue: a handful that moved no
membership wait until a later trigger moves one (the same bar as the lag's samples)."""
RATE_WINDOW = 900.0
"""The processing rate is measured over the last 15 minutes of finished work: long enough for
a few hundred matches in a storm, short enough to follow a queue that speeds up as it drains."""

CAPACITY_MARGIN = 1.0
"""The capacity bound advances the front by the highest rate measured, not less: the measure
is at most the capacity (at a quiet tenant the job's arrival rate), and at half of it the
quiet month still had 2 false queue-growth warnings (bench/RESULTS.md, "Detection"); an
over-estimate would hide a real queue, but in the storms the measures agreed (473 and 491 an
hour in the short push and the slow creep)."""

CAPACITY_KEPT = 7 * 86400.0
"""The measured capacity is kept a week: a tenant's nightly and weekly jobs measure it again."""

STALE_FRONT = 3600.0
"""A front last moved longer ago than this, with no measured capacity, says nothing about a
queue (`front_is_evidence`): an hour is many times a healthy tenant's lag (a minute or two)
and well inside the processing-lag reason's 4 h, which a real stall reaches with a capacity
measured."""

FRONT_WINDOW = 300.0
"""The front is read from the changes of the last 5 minutes: dozens in a storm, a few in a
healthy tenant (whose queue is a minute or two long)."""

RELEVANT_TRIGGERS: tuple[Series, ...] = (
    *RELEVANT_TRIGGER_SERIES[ObjectType.USER],
    *RELEVANT_TRIGGER_SERIES[ObjectType.DEVICE],
)
"""The triggers the lag estimator keeps pending (rule-relevant or of unknown relevance)."""


@dataclass(frozen=True, slots=True)
class WaitingTriggers:
    """What the store holds: triggers received after the queue's front that no change answered."""

    processed_through: float | None
    """The newest trigger known to be processed (None: no finished work is known)."""
    count: int
    oldest_at: float | None
    pairs: tuple[tuple[float, float], ...] = ()
    """Recent (change time, trigger time) pairs, settled and received, by change time."""
    pending_at: tuple[float, ...] | None = None
    """The times of the `count` waiting triggers, oldest first (None: not read)."""
    capacity_per_hour: float | None = None
    """The highest processing rate measured while a queue was judged (None: none measured)."""


@dataclass(frozen=True, slots=True)
class QueueEstimate:
    waiting_triggers: int
    oldest_waiting_seconds: float | None
    """None when fewer than MIN_WAITING_TRIGGERS wait (nothing to judge), else the age."""
    processed_through: float | None
    rate_per_hour: float | None
    """Triggers the queue's front passed per hour, over RATE_WINDOW of finished work."""
    drain_seconds: float | None
    """0 when nothing waits; None when it cannot be told (no rate measured yet, or the front
    has not moved: then the backlog is not draining)."""

    @property
    def judged(self) -> bool:
        return self.oldest_waiting_seconds is not None


def queue_front(pairs: Sequence[tuple[float, float]], until: float) -> float | None:
    """The queue's front as of `until`, from (change time, trigger time) pairs: the median
    trigger of the changes made in the FRONT_WINDOW up to the last change at or before `until`.
    A median, not the newest: an object changed twice while queued (Entra merges the two)
    sometimes pairs its change with the later trigger, and one such pair must not move the
    front past hours of waiting work."""
    seen = [pair for pair in pairs if pair[0] <= until]
    if not seen:
        return None
    last = max(change for change, _ in seen)
    recent = sorted(trigger for change, trigger in seen if change > last - FRONT_WINDOW)
    return recent[len(recent) // 2]


def triggers_between(history: CountHistory, start: float, end: float) -> float:
    """Rule-relevant triggers with start < time <= end, minute buckets taken pro rata."""
    if end <= start:
        return 0.0
    first, last = floor_to(start, MINUTE), floor_to(end, MINUTE)
    counts = history.minute_counts(RELEVANT_TRIGGERS, first, last)
    total = 0.0
    for i, n in enumerate(counts):
        bucket = first + i * MINUTE
        overlap = min(end, bucket + MINUTE) - max(start, bucket)
        if overlap > 0:
            total += n * overlap / MINUTE
    return total


def capacity_front(
    front: float, last_change: float, capacity_per_hour: float, history: CountHistory, now: float
) -> float:
    """The front advanced, in trigger order, by the triggers `CAPACITY_MARGIN` of the capacity
    works through in `now - last_change`; never beyond `now`."""
    budget = CAPACITY_MARGIN * capacity_per_hour * max(0.0, now - last_change) / 3600.0
    if budget <= 0 or front >= now:
        return min(front, now)
    first, last = floor_to(front, MINUTE), floor_to(now, MINUTE)
    counts = history.minute_counts(RELEVANT_TRIGGERS, first, last)
    for i, n in enumerate(counts):
        start = max(front, first + i * MINUTE)
        end = min(now, first + (i + 1) * MINUTE)
        if end <= start or n <= 0:
            continue
        inside = n * (end - start) / MINUTE
        if inside > budget:
            return start + (end - start) * budget / inside
        budget -= inside
    return now


def bounded_by_capacity(
    waiting: WaitingTriggers, history: CountHistory, now: float
) -> WaitingTriggers:
    """The waiting triggers behind the capacity-bounded front left out (`capacity_front`)."""
    front, capacity, pending = (
        waiting.processed_through,
        waiting.capacity_per_hour,
        waiting.pending_at,
    )
    if front is None or capacity is None or capacity <= 0 or pending is None or not waiting.pairs:
        return waiting
    bound = capacity_front(front, waiting.pairs[-1][0], capacity, history, now)
    still = [t for t in pending if t > bound]
    return replace(
        waiting, count=len(still), oldest_at=still[0] if still else None, pending_at=tuple(still)
    )


def front_is_evidence(waiting: WaitingTriggers, now: float) -> bool:
    """Whether the triggers after the front can be believed to wait. Not without a front (no
    finished work known), nor when the front is older than `STALE_FRONT` and no capacity has
    been measured to advance it: a quiet tenant's triggers that moved nothing then look exactly
    like a queue stalled since the last change. A fresh install of a quiet fleet tenant read its
    first hours as "36 changes waiting, the oldest 6 h" and warranted a pause at once (#18's
    fleet benchmark); a tenant running for a while has measured its capacity at its own nightly
    and weekly jobs (`measured_capacity`)."""
    if waiting.processed_through is None or not waiting.pairs:
        return False
    if waiting.capacity_per_hour is not None and waiting.capacity_per_hour > 0:
        return True
    return now - waiting.pairs[-1][0] <= STALE_FRONT


def estimate_queue(
    waiting: WaitingTriggers,
    history: CountHistory,
    *,
    now: float,
    groups_on: int | None = None,
) -> QueueEstimate:
    """`groups_on`: dynamic groups On; with none, nothing waits (the queue skips the work of
    paused groups, and their resume queues a full re-evaluation instead)."""
    if groups_on == 0:
        waiting = WaitingTriggers(waiting.processed_through, 0, None, waiting.pairs)
    waiting = bounded_by_capacity(waiting, history, now)
    judged = (
        waiting.count >= MIN_WAITING_TRIGGERS
        and waiting.oldest_at is not None
        and front_is_evidence(waiting, now)
    )
    oldest = max(0.0, now - waiting.oldest_at) if judged and waiting.oldest_at is not None else None
    rate: float | None = None
    pairs = waiting.pairs
    if pairs:
        last_change = pairs[-1][0]
        ahead = queue_front(pairs, last_change)
        behind = queue_front(pairs, last_change - RATE_WINDOW)
        if ahead is not None and behind is not None:
            passed = triggers_between(history, behind, ahead)
            rate = passed / RATE_WINDOW * 3600.0
    drain: float | None
    if waiting.count == 0:
        drain = 0.0
    elif rate is None or rate <= 0:
        drain = None
    else:
        drain = waiting.count / rate * 3600.0
    return QueueEstimate(
        waiting_triggers=waiting.count,
        oldest_waiting_seconds=oldest,
        processed_through=waiting.processed_through,
        rate_per_hour=rate,
        drain_seconds=drain if drain is None or math.isfinite(drain) else None,
    )


def measured_capacity(
    waiting: WaitingTriggers, history: CountHistory, *, now: float
) -> float | None:
    """The processing rate worth keeping as the tenant's capacity: measured while a queue is
    judged (at least MIN_WAITING_TRIGGERS wait), before any capacity bound (so the bound never
    feeds itself). The front never passes triggers faster than the tenant works, so this is
    at most the capacity; while the queue keeps up it is the arrival rate, an under-estimate."""
    unbounded = replace(waiting, capacity_per_hour=None)
    estimate = estimate_queue(unbounded, history, now=now)
    if not estimate.judged or estimate.rate_per_hour is None or estimate.rate_per_hour <= 0:
        return None
    return estimate.rate_per_hour


def rules_per_trigger(causes: TriggerCauses | None) -> float | None:
    """Rules read per rule-relevant trigger in the trailing hour: each changed property's
    updates times the rules reading it, over the updates of properties some rule reads (the
    `other` bucket and properties no rule reads left out). None without the readers."""
    if causes is None:
        return None
    known = [c for c in causes.properties if c.readers]
    updates = sum(c.triggers for c in known)
    if not updates:
        return None
    return sum(c.triggers * (c.readers or 0) for c in known) / updates


def backlog_evaluations(estimate: QueueEstimate, causes: TriggerCauses | None) -> float | None:
    """The backlog in evaluations: waiting triggers x rules that read what they changed."""
    per_trigger = rules_per_trigger(causes)
    return None if per_trigger is None else estimate.waiting_triggers * per_trigger
