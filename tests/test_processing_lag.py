"""The lag estimator inside the store's page transactions: exactly once across a restart and a
rolled-back page; groups' re-evaluations; and the operator usage of listed rules."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.events import DirectoryObjectKind, ObjectType, ProcessingState, Series
from exporter.domain.lag import LagEvent, LagEventKind
from exporter.domain.lint import OPERATOR_USAGE_KEYS
from exporter.domain.queue import CAPACITY_KEPT
from exporter.domain.records import ClassifiedEvent, DirectoryObject, MalformedEvent
from exporter.runtime.rule_usage import RuleUsageTracker
from exporter.store.database import NewEvents, PageBatch, Store
from exporter.store.lag import ProcessingLagConsumer, lag_items
from tests.listing import list_dynamic_groups

T0 = 1_714_564_800.0
G1 = "11111111-0000-4000-8000-000000000001"
USERS = [f"u{i}" for i in range(10)]
LAG = 600.0
HOUR = 3600.0


def trigger(i: int, user: str, at: float) -> ClassifiedEvent:
    return ClassifiedEvent(f"t{i}", at, Series.TRIGGER_USER, None, user, None, ObjectType.USER)


def change(i: int, user: str, at: float, group: str = G1) -> ClassifiedEvent:
    return ClassifiedEvent(f"c{i}", at, Series.DYNAMIC_ADD, group, user, None, ObjectType.USER)


def page(events: Sequence[ClassifiedEvent], settled: float) -> PageBatch:
    return PageBatch(
        events=events,
        malformed=(),
        watermark=settled,
        next_start=settled,
        backfill_start=T0 - HOUR,
        now=settled,
        malformed_time=T0,
        coverage_start=T0 - HOUR,
    )


TRIGGERS = page([trigger(i, u, T0 + 60 * i) for i, u in enumerate(USERS)], T0 + 590)
CHANGES = page([change(i, u, T0 + 60 * i + LAG) for i, u in enumerate(USERS)], T0 + 2 * HOUR)


def consumer() -> ProcessingLagConsumer:
    return ProcessingLagConsumer(horizon=48 * HOUR, sample_window=HOUR)


async def lag_of(store: Store, lag: ProcessingLagConsumer) -> tuple[int, float, list[float]]:
    def read() -> tuple[int, float, list[float]]:
        histogram = lag.histogram(store.db, "t")
        samples = lag.recent_samples(store.db, "t", T0 - HOUR)
        return histogram.count, histogram.sum_seconds, [s.lag_seconds for s in samples]

    return await store.run(read)


async def test_the_estimate_survives_a_restart_between_trigger_and_change(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = Store(path, [consumer()])
    await first.open()
    await list_dynamic_groups(first, "t", [G1])
    await first.call(first.commit_audit_page, "t", TRIGGERS)
    await first.close()
    lag = consumer()
    second = Store(path, [lag])
    await second.open()
    try:
        await second.call(second.commit_audit_page, "t", CHANGES)
        assert await lag_of(second, lag) == (len(USERS), LAG * len(USERS), [LAG] * len(USERS))
    finally:
        await second.close()


class FailOnce:
    """A consumer after the lag one that fails the first page holding a change: the page's
    transaction is rolled back after the estimator has consumed it in memory."""

    def __init__(self) -> None:
        self.failed = False

    def consume(self, db: sqlite3.Connection, tenant: str, pages: Sequence[NewEvents]) -> None:
        events = [e for page in pages for e in page.events]
        if not self.failed and any(e.series is Series.DYNAMIC_ADD for e in events):
            self.failed = True
            raise RuntimeError("disk full")

    def prune(self, db: sqlite3.Connection, tenant: str, now: float) -> None:
        pass


async def test_a_rolled_back_page_is_estimated_once_when_committed_again(tmp_path: Path) -> None:
    lag = consumer()
    store = Store(tmp_path / "state.sqlite3", [lag, FailOnce()])
    await store.open()
    await list_dynamic_groups(store, "t", [G1])
    try:
        await store.call(store.commit_audit_page, "t", TRIGGERS)
        with pytest.raises(RuntimeError, match="disk full"):
            await store.call(store.commit_audit_page, "t", CHANGES)
        assert await lag_of(store, lag) == (0, 0.0, [])
        await store.call(store.commit_audit_page, "t", CHANGES)
        assert await lag_of(store, lag) == (len(USERS), LAG * len(USERS), [LAG] * len(USERS))
        await store.call(store.commit_audit_page, "t", CHANGES)  # seen: counted once
        assert (await lag_of(store, lag))[0] == len(USERS)
    finally:
        await store.close()


async def test_a_resumed_group_bounds_the_lag_of_its_changes(tmp_path: Path) -> None:
    """A user changed a day ago, its group paused meanwhile and resumed at R: its change in that
    group minutes after R measures the queue since R, not the day of pause."""
    resumed_at = T0 + 24 * HOUR
    resumed = ClassifiedEvent(
        "r", resumed_at, Series.PROCESSING_STATE_CHANGE, G1, None, ProcessingState.ON
    )
    lag = consumer()
    store = Store(tmp_path / "state.sqlite3", [lag])
    await store.open()
    await list_dynamic_groups(store, "t", [G1])
    try:
        await store.call(store.commit_audit_page, "t", page([trigger(0, "u0", T0)], T0 + 60))
        late = page([resumed, change(0, "u0", resumed_at + 300)], resumed_at + HOUR)
        await store.call(store.commit_audit_page, "t", late)
        count, _, samples = await lag_of(store, lag)
        assert (count, samples) == (1, [300.0])
    finally:
        await store.close()


def listed(*rules: str) -> list[DirectoryObject]:
    return [
        DirectoryObject(DirectoryObjectKind.GROUP, f"g{i}", f"group {i}", rule, None)
        for i, rule in enumerate(rules)
    ]


async def test_operator_usage_is_recomputed_only_when_the_rules_change() -> None:
    assert RuleUsageTracker().usage is None  # before the first listing
    tracker = RuleUsageTracker()
    rules = ['user.department -match "^Sales"', 'user.city -eq "Oslo"']
    await tracker.listed(DirectoryObjectKind.GROUP, listed(*rules))
    assert tracker.computations == 0  # listing never waits for the parse
    assert await tracker.update()
    assert tracker.usage is not None
    assert set(tracker.usage) == set(OPERATOR_USAGE_KEYS)
    assert tracker.usage["match"] == 1
    await tracker.listed(DirectoryObjectKind.GROUP, listed(*rules))
    assert not await tracker.update()
    assert tracker.computations == 1
    unit = DirectoryObject(
        DirectoryObjectKind.ADMINISTRATIVE_UNIT, "a1", "unit", 'user.city -contains "os"', None
    )
    await tracker.listed(DirectoryObjectKind.ADMINISTRATIVE_UNIT, [unit])
    assert await tracker.update()
    assert (tracker.computations, tracker.usage["match"], tracker.usage["contains"]) == (2, 1, 1)
    await tracker.listed(DirectoryObjectKind.GROUP, listed(rules[1]))
    assert await tracker.update()
    assert (tracker.computations, tracker.usage["match"]) == (3, 0)


async def test_operator_usage_follows_listings_in_the_background_and_says_so() -> None:
    tracker = RuleUsageTracker()
    updates: asyncio.Queue[Mapping[str, int] | None] = asyncio.Queue()

    async def updated() -> None:
        await updates.put(tracker.usage)

    worker = asyncio.create_task(tracker.run(on_update=updated))
    try:
        await tracker.listed(DirectoryObjectKind.GROUP, listed('user.city -match "^O"'))
        await tracker.listed(DirectoryObjectKind.GROUP, listed('user.city -match "^O"'))
        async with asyncio.timeout(10):
            first = await updates.get()
        await tracker.listed(DirectoryObjectKind.GROUP, listed('user.city -contains "O"'))
        async with asyncio.timeout(10):
            second = await updates.get()
        assert [(u or {}).get("contains") for u in (first, second)] == [0, 1]
        assert tracker.computations == 2
    finally:
        worker.cancel()


async def test_the_rules_stored_by_the_last_run_stand_in_until_this_run_lists_its_own() -> None:
    """A restart's first audit poll judges trigger relevance by the stored rules instead of
    waiting for the listings (the cold start); the first listing replaces them."""
    tracker = RuleUsageTracker()
    await tracker.prime(listed('user.department -eq "Sales"'))
    assert tracker.complete, "no administrative unit stored: listed empty, not unknown"
    assert tracker.properties is not None
    assert tracker.properties.user == frozenset({"department"})
    await tracker.listed(DirectoryObjectKind.GROUP, listed('user.city -eq "Oslo"'))
    assert await tracker.update()
    assert tracker.properties.user == frozenset({"city"})
    await tracker.prime(listed('user.country -eq "NO"'))
    assert tracker.properties.user == frozenset({"city"}), "a listing came: priming is late"


async def test_a_listing_that_arrives_during_a_parse_is_not_claimed_by_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audit poller takes the rules once both kinds are parsed: a group listing that came
    while the units' rules were being parsed must wait for its own parse (the storm's
    extensionAttribute3 triggers were counted as not rule-relevant, 1 run in 3)."""
    import threading

    from exporter.runtime import rule_usage

    parsing, release = threading.Event(), threading.Event()
    readings = rule_usage._readings

    def slow_readings(rules: list[str]) -> object:
        parsing.set()
        release.wait(10)
        return readings(rules)

    monkeypatch.setattr(rule_usage, "_readings", slow_readings)
    tracker = RuleUsageTracker()
    unit = DirectoryObject(
        DirectoryObjectKind.ADMINISTRATIVE_UNIT, "a1", "unit", 'user.city -eq "Oslo"', None
    )
    await tracker.listed(DirectoryObjectKind.ADMINISTRATIVE_UNIT, [unit])
    first = asyncio.create_task(tracker.update())
    await asyncio.to_thread(parsing.wait, 10)
    await tracker.listed(DirectoryObjectKind.GROUP, listed('user.extensionAttribute3 -eq "x"'))
    release.set()
    assert await first
    claimed = tracker.complete
    assert not claimed, "the groups' rules were not in that parse"
    assert await tracker.update()
    assert tracker.complete
    assert tracker.properties is not None
    assert "extensionattribute3" in tracker.properties.user


# -- pages committed together ------------------------------------------------------------------

_EVENT_KINDS = st.sampled_from(["trigger", "change", "other"])


@st.composite
def page_runs(draw: st.DrawFn) -> list[PageBatch]:
    """Consecutive pages of triggers and changes of a few users, with events repeated on a
    later page (Graph's duplicates) and malformed events."""
    pages: list[PageBatch] = []
    previous: list[ClassifiedEvent] = []
    at = T0
    for p in range(draw(st.integers(1, 6))):
        events: list[ClassifiedEvent] = []
        for i in range(draw(st.integers(0, 8))):
            at += draw(st.floats(0, 900))
            user = draw(st.sampled_from(USERS[:3]))
            kind = draw(_EVENT_KINDS)
            if kind == "trigger":
                events.append(trigger(100 * p + i, user, at))
            elif kind == "change":
                events.append(change(100 * p + i, user, at, draw(st.sampled_from([G1, "g2"]))))
            else:
                events.append(ClassifiedEvent(f"o{p}.{i}", at, Series.OTHER, None, None, None))
        repeat = draw(st.booleans())
        if previous and repeat:
            events.append(previous[-1])
        malformed = [MalformedEvent(f"m{p}", at, "no_time")] if draw(st.booleans()) else []
        previous = events or previous
        pages.append(replace(page(events, at), malformed=malformed))
    return pages


def _contents(store: Store) -> dict[str, list[tuple[object, ...]]]:
    tables = [
        name
        for (name,) in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        if name != "lag_meta"  # the generation counts transactions, not events
    ]
    return {t: sorted(store.db.execute(f"SELECT * FROM {t}"), key=repr) for t in tables}


@given(pages=page_runs(), cuts=st.lists(st.booleans(), min_size=6, max_size=6))
@settings(max_examples=60, deadline=None)
def test_pages_committed_together_leave_what_one_by_one_leaves(
    pages: list[PageBatch], cuts: list[bool]
) -> None:
    """The poller commits the pages that arrived while the store was busy as one transaction:
    counts, seen ids, watermark and the lag estimator's rows and samples are the same as page by
    page, duplicates across the grouped pages included."""

    async def commit(groups: list[list[PageBatch]]) -> dict[str, list[tuple[object, ...]]]:
        store = Store(":memory:", [consumer()])
        await store.open()
        try:
            for group in groups:
                await store.call(store.commit_audit_pages, "t", group)
            return await store.run(lambda: _contents(store))
        finally:
            await store.close()

    groups: list[list[PageBatch]] = [[pages[0]]]
    for batch_, cut in zip(pages[1:], cuts, strict=False):
        if cut:
            groups.append([batch_])
        else:
            groups[-1].append(batch_)
    one_by_one = asyncio.run(commit([[p] for p in pages]))
    assert asyncio.run(commit(groups)) == one_by_one


def test_lag_items_are_the_estimators_form_of_the_lag_events() -> None:
    """The hot path builds the estimator's items directly from classified events: the same
    items as the LagEvents the estimator's own API takes."""
    paused = ClassifiedEvent("p", T0, Series.PROCESSING_STATE_CHANGE, G1, None, None)
    resumed = paused._replace(id="r", processing_state=ProcessingState.ON)
    rule = ClassifiedEvent("rule", T0 + 1, Series.RULE_CHANGE, G1, None, None)
    device = ClassifiedEvent(
        "d", T0 + 2, Series.TRIGGER_DEVICE, None, "d1", None, ObjectType.DEVICE
    )
    no_group = change(1, "u1", T0 + 3)._replace(group_id=None)
    other = ClassifiedEvent("o", T0 + 4, Series.OTHER, None, "x", None, ObjectType.USER)
    events = [paused, resumed, rule, trigger(0, "u0", T0), device, change(0, "u0", T0 + 9)]
    expected = [
        LagEvent(LagEventKind.REEVALUATION, G1, None, T0),
        LagEvent(LagEventKind.REEVALUATION, G1, None, T0 + 1),
        LagEvent(LagEventKind.TRIGGER, "u0", ObjectType.USER, T0),
        LagEvent(LagEventKind.TRIGGER, "d1", ObjectType.DEVICE, T0 + 2),
        LagEvent(LagEventKind.CHANGE, "u0", ObjectType.USER, T0 + 9, G1),
        LagEvent(LagEventKind.CHANGE, "u1", ObjectType.USER, T0 + 3),
    ]
    assert lag_items([*events, no_group, other]) == [e.item for e in expected]


async def test_the_measured_capacity_survives_a_restart_and_ages_out_after_a_week(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    first_lag = consumer()
    first = Store(path, [first_lag])
    await first.open()
    await first.run(lambda: first_lag.record_capacity(first.db, "t", 1200.0, T0))
    await first.run(lambda: first_lag.record_capacity(first.db, "t", 800.0, T0 + HOUR))
    await first.close()
    lag = consumer()
    second = Store(path, [lag])
    await second.open()
    try:
        assert await second.run(lambda: lag.capacity(second.db, "t", T0 + 2 * HOUR)) == 1200.0
        week_later = T0 + CAPACITY_KEPT + 1
        assert await second.run(lambda: lag.capacity(second.db, "t", week_later)) is None
        waiting = await second.run(lambda: lag.waiting_triggers(second.db, "t", T0 + 2 * HOUR))
        assert waiting.capacity_per_hour == 1200.0
    finally:
        await second.close()
