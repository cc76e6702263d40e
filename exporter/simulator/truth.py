"""Ground truth: exactly what the simulated tenant wrote to its audit log, and how its
processing queue really stands, for tests, benchmarks and drills to compare with what a client
saw. Classifications are `exporter.domain.events.Series` values."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from exporter.simulator.auditlog import ACTIVITIES, ACTIVITY_CODE, SERIES, hour_start_us
from exporter.simulator.tenant import SimulatedTenant
from exporter.simulator.timefmt import MICROS, us_from_seconds

BREAKDOWNS = frozenset({"hour", "group", "app"})


def _series_dict(counter: Counter[int]) -> dict[str, int]:
    return {series.value: counter.get(code, 0) for code, series in enumerate(SERIES)}


def audit_counts(
    tenant: SimulatedTenant,
    *,
    since: float | None = None,
    before: float | None = None,
    visible_by: float | None = None,
    by: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Events with since <= activityDateTime < before (written so far), optionally only those
    a client could have seen by `visible_by`; always by series and activity, and by hour, group
    (id) and app (initiatedBy.app.displayName) on request. `only`: count only these activities (the
    exporter's `INGESTED_ACTIVITIES`, to compare with what it counts)."""
    breakdowns = set(by)
    unknown = breakdowns - BREAKDOWNS
    if unknown:
        raise ValueError(f"unknown breakdown(s) {sorted(unknown)}: use hour, group, app")
    since_us = None if since is None else us_from_seconds(since)
    before_us = None if before is None else us_from_seconds(before)
    visible_us = None if visible_by is None else us_from_seconds(visible_by)
    series: Counter[int] = Counter()
    activities: Counter[int] = Counter()
    hours: dict[int, Counter[int]] = defaultdict(Counter)
    groups: dict[int, Counter[int]] = defaultdict(Counter)
    apps: Counter[int] = Counter()
    total = 0
    per_event = "group" in breakdowns or "app" in breakdowns
    wanted = None if only is None else {ACTIVITY_CODE[a] for a in only}
    for time_us, activity, series_code, container, app, count in _rows(
        tenant, since_us, before_us, visible_us, per_event
    ):
        if wanted is not None and activity not in wanted:
            continue
        total += count
        series[series_code] += count
        activities[activity] += count
        if "hour" in breakdowns:
            hours[hour_start_us(time_us)][series_code] += count
        if "group" in breakdowns and container >= 0:
            groups[container][series_code] += count
        if "app" in breakdowns:
            apps[app] += count
    result: dict[str, Any] = {
        "since": since,
        "before": before,
        "visible_by": visible_by,
        "written_until": tenant.now,
        "total": total,
        "series": _series_dict(series),
        "activities": {ACTIVITIES[code]: n for code, n in sorted(activities.items())},
    }
    if "hour" in breakdowns:
        result["hours"] = [
            {"hour": hour / MICROS, "total": sum(c.values()), "series": _series_dict(c)}
            for hour, c in sorted(hours.items())
        ]
    if "group" in breakdowns:
        containers = tenant.directory.containers
        result["groups"] = {
            containers[index].id: {
                "name": containers[index].display_name,
                "total": sum(c.values()),
                "series": {SERIES[code].value: n for code, n in sorted(c.items())},
            }
            for index, c in sorted(groups.items())
        }
    if "app" in breakdowns:
        result["apps"] = {
            (tenant.apps.names[code] or "(user)"): n for code, n in sorted(apps.items())
        }
    return result


def _rows(
    tenant: SimulatedTenant,
    since_us: int | None,
    before_us: int | None,
    visible_us: int | None,
    per_event: bool,
) -> Iterator[tuple[int, int, int, int, int, int]]:
    history = tenant.history
    if history is not None:
        if per_event:
            for time_us, activity, series, container, app in history.rows(
                since_us, before_us, visible_us
            ):
                yield time_us, activity, series, container, app, 1
        else:
            # Events older than the longest delay are all visible: count those by arithmetic,
            # and look at the few younger ones one by one.
            settled = before_us
            if visible_us is not None:
                boundary = visible_us - history.max_delay_us
                settled = boundary if before_us is None else min(before_us, boundary)
            for hour, activity, series, app, count in history.hourly_counts(since_us, settled):
                yield hour, activity, series, -1, app, count
            if visible_us is not None and settled is not None:
                start = settled if since_us is None else max(since_us, settled)
                for time_us, activity, series, container, app in history.rows(
                    start, before_us, visible_us
                ):
                    yield time_us, activity, series, container, app, 1
    for time_us, activity, series, container, app in tenant.live.rows(
        since_us, before_us, visible_us
    ):
        yield time_us, activity, series, container, app, 1


def queue_truth(
    tenant: SimulatedTenant, *, since: float | None = None, before: float | None = None
) -> dict[str, Any]:
    """The backlog and lag as they truly are now, and the lag of what was processed in
    [since, before): per work item (enqueue to completion) and per membership change (the
    triggering change to the change written)."""
    queue = tenant.queue
    since_us = None if since is None else us_from_seconds(since)
    before_us = None if before is None else us_from_seconds(before)
    paused = sum(1 for c in tenant.directory.containers if c.rule is not None and c.paused)
    return {
        "now": tenant.now,
        "capacity_evaluations_per_hour": queue.capacity.evaluations_per_hour,
        "backlog": queue.backlog(tenant.time_us),
        "paused_groups": paused,
        "evaluations_done": round(queue.evaluations_done, 3),
        "processed_items": queue.lag_distribution(since_us, before_us, changes=False),
        "membership_changes": queue.lag_distribution(since_us, before_us, changes=True),
    }


def membership_trace(tenant: SimulatedTenant, group: str) -> list[dict[str, Any]]:
    """The membership changes applied to a traced group (`SimulatedTenant.trace_membership`),
    oldest first: when, which member, added or removed, when the change that caused it was
    made (`trigger`) and the processing delay between the two (`latency`, seconds)."""
    container = tenant.find(group)
    trace = tenant.traced.get(container.index)
    if trace is None:
        raise ValueError(f"{container.display_name!r} is not traced: call trace_membership first")
    refs = tenant.directory.tables[container.member_type].ids
    return [
        {
            "time": e.time_us / MICROS,
            "member": refs[e.member],
            "add": e.add,
            "trigger": e.trigger_us / MICROS,
            "latency": (e.time_us - e.trigger_us) / MICROS,
        }
        for e in trace
    ]
