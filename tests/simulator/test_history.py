"""Pre-written history: generated on demand, yet ordered, countable by arithmetic, and linked
(each dynamic change follows a trigger of the same object)."""

from __future__ import annotations

from collections import Counter

import orjson

from exporter.simulator.app import resolve_scenario
from exporter.simulator.auditlog import ACTIVITY_CODE, SERIES, EventMatcher
from exporter.simulator.tenant import SimulatedTenant
from exporter.simulator.truth import audit_counts

from .conftest import SMALL, START


def _tenant() -> SimulatedTenant:
    scenario = resolve_scenario(
        "steady", {**SMALL, "history": {"days": 0.5, "dynamic_changes_per_hour": 120}}
    )
    return SimulatedTenant(scenario, seed=2, start=START + 1800, speed=0)


def test_history_is_ordered_and_its_arithmetic_counts_are_exact() -> None:
    tenant = _tenant()
    history = tenant.history
    assert history is not None
    rows = list(history.rows(None, None, None))
    times = [r[0] for r in rows]
    assert times == sorted(times)
    assert history.start_us <= times[0]
    assert times[-1] < history.end_us  # history ends where the live log begins
    assert len(rows) < history.total()  # the last hour is cut at the start
    enumerated = Counter(
        (t - t % 3_600_000_000, activity, series) for t, activity, series, _, _ in rows
    )
    arithmetic: Counter[tuple[int, int, int]] = Counter()
    for hour, activity, series, _, n in history.hourly_counts(None, None):
        arithmetic[(hour, activity, series)] += n
    assert +arithmetic == +enumerated
    middle = history.start_us + 5_400_000_000
    window = Counter((a, s) for t, a, s, _, _ in rows if middle <= t < middle + 1_800_000_000)
    partial: Counter[tuple[int, int]] = Counter()
    for _, activity, series, _, n in history.hourly_counts(middle, middle + 1_800_000_000):
        partial[(activity, series)] += n
    assert partial == window


def test_pages_in_both_orders_agree() -> None:
    tenant = _tenant()
    history = tenant.history
    assert history is not None
    visible = history.end_us + 3600_000_000
    ascending = history.scan(
        EventMatcher(), after=None, descending=False, visible_by_us=visible, limit=10**6
    )
    descending = history.scan(
        EventMatcher(), after=None, descending=True, visible_by_us=visible, limit=10**6
    )
    assert ascending.payloads == list(reversed(descending.payloads))
    # resuming from any cursor continues exactly after it
    cursor = ascending.cursor_of(99)
    _, t, k, j = cursor.split(".")
    rest = history.scan(
        EventMatcher(),
        after=(int(t), int(k), int(j)),
        descending=False,
        visible_by_us=visible,
        limit=10**6,
    )
    assert rest.payloads == ascending.payloads[100:]


def test_dynamic_changes_follow_a_trigger_of_the_same_object() -> None:
    tenant = _tenant()
    history = tenant.history
    assert history is not None
    everything = history.scan(
        EventMatcher(), after=None, descending=False, visible_by_us=history.end_us * 2, limit=10**6
    )
    last_trigger: dict[str, str] = {}
    linked = total = 0
    for payload in everything.payloads:
        event = orjson.loads(payload)
        activity = event["activityDisplayName"]
        # The member by type: some events list the group first (#13).
        target = next(t["id"] for t in event["targetResources"] if t["type"] != "Group")
        if activity in ("Update user", "Update device"):
            last_trigger[target] = event["activityDateTime"]
        elif activity.endswith("member to group") and event["initiatedBy"]["app"] is not None:
            total += 1
            if target in last_trigger and last_trigger[target] < event["activityDateTime"]:
                linked += 1
    assert total > 20
    assert linked / total > 0.9


def test_visible_counts_by_arithmetic_agree_with_enumeration() -> None:
    tenant = _tenant()
    history = tenant.history
    assert history is not None
    visible_by = history.end_us - 600_000_000  # ten minutes before the start: some not yet seen
    enumerated = Counter(series for _, _, series, _, _ in history.rows(None, None, visible_by))
    counts = audit_counts(tenant, visible_by=visible_by / 1_000_000, before=history.end_us / 1e6)
    assert counts["total"] == sum(enumerated.values())
    assert counts["total"] < audit_counts(tenant, before=history.end_us / 1e6)["total"]
    by_series = {name: n for name, n in counts["series"].items() if n}
    assert by_series == {SERIES[code].value: n for code, n in enumerated.items()}


def test_the_cache_of_rendered_hours_serves_exactly_what_rendering_does() -> None:
    plain = _tenant().history
    cached = _tenant().history
    assert plain is not None
    assert cached is not None
    cached.configure_cache(400_000)  # a few hours: later ones evict earlier ones
    visible = plain.end_us - 300_000_000  # some of the last events not visible yet
    updates = frozenset({ACTIVITY_CODE["Update user"], ACTIVITY_CODE["Add member to group"]})
    matchers = [
        EventMatcher(),
        EventMatcher(lo_us=plain.start_us + 5_000_000_000, hi_us=plain.end_us - 7_000_000_000),
        EventMatcher(activities=updates),
    ]
    for matcher in matchers:
        for descending in (False, True):
            expected = plain.scan(
                matcher, after=None, descending=descending, visible_by_us=visible, limit=10**6
            )
            for limit in (10**6, 37):
                got = cached.scan(
                    matcher, after=None, descending=descending, visible_by_us=visible, limit=limit
                )
                assert got.payloads == expected.payloads[: limit + 1]
            # resuming from a cursor, as a nextLink does
            _, t, k, j = expected.cursor_of(150).split(".")
            cursor = (int(t), int(k), int(j))
            resumed = cached.scan(
                matcher, after=cursor, descending=descending, visible_by_us=visible, limit=100
            )
            assert resumed.payloads == expected.payloads[151:252]
            assert resumed.cursor_of(0) == expected.cursor_of(151)
    assert 0 < cached.cached_hours < cached.hours
