"""Issue #13 in the store: dynamic means dynamic whichever arrives first (the audit event or the
listing that says the group is dynamic), malformed events counted once by content, and the
version 4 -> 5 migration."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.events import Series
from exporter.domain.records import ClassifiedEvent, MalformedEvent
from exporter.runtime.snapshot import read_store_view
from exporter.store.database import PageBatch, Store
from tests.listing import list_dynamic_groups

T0 = 1_714_564_800.0
DYNAMIC, ASSIGNED = "11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"


def change(
    event_id: str, at: float, group: str, series: Series = Series.DYNAMIC_ADD
) -> ClassifiedEvent:
    return ClassifiedEvent(event_id, at, series, group, "u1", None)


def batch(
    events: Sequence[ClassifiedEvent],
    watermark: float,
    malformed: Sequence[MalformedEvent] = (),
    window_start: float = T0,
) -> PageBatch:
    return PageBatch(
        events=events,
        malformed=malformed,
        watermark=watermark,
        next_start=watermark,
        backfill_start=T0 - 3600,
        now=watermark,
        malformed_time=window_start,
        coverage_start=T0 - 3600,
    )


async def totals(store: Store) -> dict[str, int]:
    return await store.call(store.totals, "t")


async def test_a_change_seen_before_the_first_listing_waits_for_it(store: Store) -> None:
    """The backfill at first start sees events before the first group listing."""
    events = [change("a", T0 + 10, DYNAMIC), change("b", T0 + 20, ASSIGNED)]
    await store.call(store.commit_audit_page, "t", batch(events, T0 + 30))
    assert "dynamic_add" not in await totals(store)
    assert await store.call(store.undecided_count, "t") == 2
    view = await store.run(
        lambda: read_store_view(store, "t", T0 + 60, critical=frozenset(), per_group_cap=10)
    )
    assert view.undecided_changes == 2  # exported as entra_dynamic_audit_undecided_changes
    await list_dynamic_groups(store, "t", [DYNAMIC], at=T0 + 60)
    assert await totals(store) == {"dynamic_add": 1, "approval_management_other": 1}
    assert await store.call(store.undecided_count, "t") == 0
    assert await store.call(store.group_last_changes, "t", T0) == {DYNAMIC: T0 + 10}
    assert await store.call(store.counts_between, "t", T0, T0 + 10**9) == {
        Series.DYNAMIC_ADD: 1,
        Series.APPROVAL_MANAGEMENT_OTHER: 1,
    }
    # The same events served again are duplicates, not counted again.
    await store.call(store.commit_audit_page, "t", batch(events, T0 + 30))
    assert (await totals(store))["dynamic_add"] == 1


async def test_the_listing_first_gives_the_same_counts(store: Store) -> None:
    await list_dynamic_groups(store, "t", [DYNAMIC], at=T0 + 60)
    events = [change("a", T0 + 10, DYNAMIC), change("b", T0 + 20, ASSIGNED)]
    await store.call(store.commit_audit_page, "t", batch(events, T0 + 30))
    assert await totals(store) == {"dynamic_add": 1, "approval_management_other": 1}
    assert await store.call(store.group_last_changes, "t", T0) == {DYNAMIC: T0 + 10}


_BUCKET_TABLES = (
    "minute_counts",
    "hour_counts",
    "totals",
    "group_hour_counts",
    "group_last_change",
)
_EDGES = st.sampled_from([0.0, 1e-6, 0.5, 59.999999, 60.0, 3599.9999999, 3600.0, 3600.000001])


@given(
    moments=st.lists(
        st.tuples(st.integers(0, 47), _EDGES, st.booleans(), st.booleans()),
        min_size=1,
        max_size=40,
    )
)
@settings(max_examples=40, deadline=None)
def test_changes_held_for_a_listing_land_in_the_buckets_a_listed_group_gets(
    moments: list[tuple[int, float, bool, bool]],
) -> None:
    """A listing decides held changes in SQL, bucket by bucket (a month of them must not be
    read into memory): minute, hour and per-group buckets, totals and last changes are those
    the page commit gives when the listing came first, times on bucket edges included."""
    events = [
        change(
            f"e{i}",
            T0 + hour * 3600.0 + edge,
            DYNAMIC if dynamic else ASSIGNED,
            Series.DYNAMIC_ADD if add else Series.DYNAMIC_REMOVE,
        )
        for i, (hour, edge, dynamic, add) in enumerate(moments)
    ]
    listed_at = T0 + 49 * 3600.0
    events.sort(key=lambda e: e.time)

    async def contents(listing_first: bool) -> dict[str, list[tuple[object, ...]]]:
        store = Store(":memory:")
        await store.open()
        try:
            if listing_first:
                await list_dynamic_groups(store, "t", [DYNAMIC], at=listed_at)
            await store.call(store.commit_audit_page, "t", batch(events, events[-1].time))
            if not listing_first:
                await list_dynamic_groups(store, "t", [DYNAMIC], at=listed_at)
            return await store.run(
                lambda: {
                    t: sorted(store.db.execute(f"SELECT * FROM {t}"), key=repr)
                    for t in _BUCKET_TABLES
                }
            )
        finally:
            await store.close()

    assert asyncio.run(contents(listing_first=False)) == asyncio.run(contents(listing_first=True))


async def test_a_group_created_after_the_last_listing_waits_for_the_next(store: Store) -> None:
    await list_dynamic_groups(store, "t", [DYNAMIC], at=T0)
    await store.call(
        store.commit_audit_page, "t", batch([change("n", T0 + 100, ASSIGNED)], T0 + 110)
    )
    assert await store.call(store.undecided_count, "t") == 1
    await list_dynamic_groups(store, "t", [DYNAMIC, ASSIGNED], at=T0 + 200)
    assert (await totals(store)).get("dynamic_add") == 1


async def test_a_group_converted_to_assigned(store: Store) -> None:
    await list_dynamic_groups(store, "t", [DYNAMIC], at=T0)
    await list_dynamic_groups(store, "t", [], at=T0 + 600)  # converted: no longer listed
    events = [
        change("before", T0 + 300, DYNAMIC),
        change("after", T0 + 700, DYNAMIC, Series.DYNAMIC_REMOVE),
    ]
    await store.call(store.commit_audit_page, "t", batch(events, T0 + 800))
    assert await totals(store) == {"dynamic_add": 1, "approval_management_other": 1}


async def test_a_malformed_event_counts_once_across_windows_and_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    no_time = MalformedEvent("digest:aaaa", None, "bad_time")
    bare_null = MalformedEvent("digest:bbbb", None, "not_an_object")
    for window_start in (T0, T0 + 60, T0 + 120):  # overlapping polls, then restarts
        store = Store(path)
        await store.open()
        try:
            await store.call(
                store.commit_audit_page,
                "t",
                batch([], window_start + 60, [no_time, bare_null], window_start),
            )
        finally:
            await store.close()
    store = Store(path)
    await store.open()
    try:
        counted = await totals(store)
        assert (counted["malformed"], counted["malformed:bad_time"]) == (2, 1)
        # Served intact later (the same id, a readable time): counted as the event it is.
        await store.call(
            store.commit_audit_page, "t", batch([change("x", T0 + 5, "g", Series.OTHER)], T0 + 200)
        )
        assert (await totals(store))["other"] == 1
    finally:
        await store.close()


async def test_a_version_4_file_counts_its_triggers_as_unknown_relevance(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    await first.open()
    events = [
        ClassifiedEvent("u", T0, Series.TRIGGER_USER, None, "u1", None),
        ClassifiedEvent("d", T0, Series.TRIGGER_DEVICE, None, "d1", None),
    ]
    await first.call(first.commit_audit_page, "t", batch(events, T0 + 1))
    await first.close()
    with sqlite3.connect(path) as db:  # what version 4 left: no relevance in the series
        db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    db.close()
    second = Store(path)
    await second.open()
    try:
        assert await totals(second) == {"trigger_user_unknown": 1, "trigger_device_unknown": 1}
        assert await second.call(second.counts_between, "t", T0 - 60, T0 + 10**9) == {
            Series.TRIGGER_USER_UNKNOWN: 1,
            Series.TRIGGER_DEVICE_UNKNOWN: 1,
        }
    finally:
        await second.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("5",)
    db.close()
