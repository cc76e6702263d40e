"""The SQLite store: exactly-once page commits, pruning, directory states and paused-since."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from exporter.domain.events import DirectoryObjectKind, ProcessingState, Series
from exporter.domain.records import ClassifiedEvent, DirectoryObject, MalformedEvent
from exporter.runtime.snapshot import read_store_view
from exporter.store.database import MINUTE_RETENTION, NewEvents, PageBatch, Store
from exporter.store.errors import StoreError
from exporter.store.schema import SCHEMA_VERSION
from tests.listing import list_dynamic_groups

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z, on an hour boundary
G1, G2 = "11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"
GROUP = DirectoryObjectKind.GROUP


def ev(i: int, series: Series, t: float, group: str | None = None) -> ClassifiedEvent:
    return ClassifiedEvent(f"e{i}", t, series, group, None, None)


def batch(events: Sequence[ClassifiedEvent], watermark: float, **kw: object) -> PageBatch:
    fields: dict[str, object] = {
        "malformed": (),
        "watermark": watermark,
        "next_start": watermark,
        "backfill_start": T0 - 3600,
        "now": watermark,
        "malformed_time": T0,
        "coverage_start": T0 - 3600,
    }
    fields.update(kw)
    return PageBatch(events=events, **fields)  # type: ignore[arg-type]


async def test_a_page_counts_once_even_when_committed_again(store: Store) -> None:
    await list_dynamic_groups(store, "t", [G1, G2])
    events = [
        ev(1, Series.DYNAMIC_ADD, T0 + 10, G1),
        ev(2, Series.DYNAMIC_REMOVE, T0 + 70, G2),
        ev(3, Series.TRIGGER_USER, T0 + 80),
        ev(3, Series.TRIGGER_USER, T0 + 80),  # a duplicate within the page
    ]
    malformed = [MalformedEvent("bad1", None, "bad_time")]
    first = await store.call(
        store.commit_audit_page, "t", batch(events, T0 + 100, malformed=malformed)
    )
    assert first.counted[Series.DYNAMIC_ADD.value] == 1
    assert first.counted["duplicate"] == 1
    again = await store.call(
        store.commit_audit_page, "t", batch(events, T0 + 100, malformed=malformed)
    )
    assert again.counted == {"duplicate": 5}
    totals = await store.call(store.totals, "t")
    assert totals == {
        "dynamic_add": 1,
        "dynamic_remove": 1,
        "trigger_user": 1,
        "malformed": 1,
        "malformed:bad_time": 1,
        "duplicate": 6,
    }
    assert await store.call(store.counts_between, "t", T0, T0 + 3600) == {
        Series.DYNAMIC_ADD: 1,
        Series.DYNAMIC_REMOVE: 1,
        Series.TRIGGER_USER: 1,
    }
    assert await store.call(store.minute_counts, "t", Series.DYNAMIC_REMOVE, T0, T0 + 3600) == [
        (int(T0) + 60, 1)
    ]
    assert await store.call(store.hourly_counts, "t", Series.DYNAMIC_ADD, T0, T0 + 3600) == [
        (int(T0), 1)
    ]
    assert await store.call(store.groups_changed_between, "t", T0, T0 + 3600) == 2
    assert await store.call(store.groups_changed_between, "t", T0 + 60, T0 + 3600) == 1
    assert await store.call(store.groups_changed_between, "t", T0, T0 + 60) == 1
    state = await store.call(store.audit_state, "t")
    assert state is not None
    assert state.watermark == T0 + 100
    # Other tenants are separate.
    assert await store.call(store.totals, "other") == {}


async def test_watermark_never_moves_back(store: Store) -> None:
    await store.call(store.commit_audit_page, "t", batch([], T0 + 500))
    await store.call(store.commit_audit_page, "t", batch([], T0 + 100))
    state = await store.call(store.audit_state, "t")
    assert state is not None
    assert (state.watermark, state.next_start) == (T0 + 500, T0 + 500)


class Exploding:
    """Writes a table of the test's own (created after the store opens) in the page's
    transaction, and fails on an event named boom."""

    def consume(self, db: sqlite3.Connection, tenant: str, pages: Sequence[NewEvents]) -> None:
        events = [e for page in pages for e in page.events]
        db.executemany("INSERT INTO consumed VALUES (?)", [(e.id,) for e in events])
        if any(e.id == "boom" for e in events):
            raise RuntimeError("consumer failed")

    def prune(self, db: sqlite3.Connection, tenant: str, now: float) -> None:
        db.execute("DELETE FROM consumed")


async def test_a_page_commits_whole_or_not_at_all_with_its_consumers(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3", [Exploding()])
    await store.open()
    await store.run(lambda: store.db.execute("CREATE TABLE consumed (id TEXT PRIMARY KEY)"))
    await list_dynamic_groups(store, "t", [G1])
    try:
        await store.call(store.commit_audit_page, "t", batch([ev(1, Series.OTHER, T0)], T0 + 1))
        bad = [
            ev(2, Series.DYNAMIC_ADD, T0, G1),
            ClassifiedEvent("boom", T0, Series.OTHER, None, None, None),
        ]
        with pytest.raises(RuntimeError, match="consumer failed"):
            await store.call(store.commit_audit_page, "t", batch(bad, T0 + 50))
        assert await store.call(store.totals, "t") == {"other": 1}
        state = await store.call(store.audit_state, "t")
        assert state is not None
        assert state.watermark == T0 + 1
        consumed = await store.run(lambda: store.db.execute("SELECT id FROM consumed").fetchall())
        assert consumed == [("e1",)]
        # Nothing of the failed page was marked seen: retried, it counts.
        await store.call(store.commit_audit_page, "t", batch(bad[:1], T0 + 50))
        assert (await store.call(store.totals, "t"))["dynamic_add"] == 1
    finally:
        await store.close()


async def test_prune_keeps_totals(store: Store) -> None:
    old = [ev(1, Series.TRIGGER_DEVICE, T0), ev(2, Series.TRIGGER_DEVICE, T0 + MINUTE_RETENTION)]
    await store.call(store.commit_audit_page, "t", batch(old, T0 + MINUTE_RETENTION))
    await store.call(store.prune, "t", T0 + MINUTE_RETENTION + 120, T0 + 1)
    seen = await store.run(lambda: store.db.execute("SELECT id FROM seen_events").fetchall())
    assert seen == [("e2",)]
    assert await store.call(store.counts_between, "t", 0, T0 + 10**6) == {Series.TRIGGER_DEVICE: 1}
    assert (await store.call(store.totals, "t"))["trigger_device"] == 2
    hourly = await store.call(store.hourly_counts, "t", Series.TRIGGER_DEVICE, 0, T0 + 10**6)
    assert sum(n for _, n in hourly) == 2


def group(object_id: str, state: ProcessingState | None, name: str = "g") -> DirectoryObject:
    return DirectoryObject(GROUP, object_id, name, 'user.department -eq "x"', state)


async def test_paused_since_from_polls_refined_by_audit(store: Store) -> None:
    on, paused = ProcessingState.ON, ProcessingState.PAUSED
    await store.call(
        store.record_directory_poll, "t", GROUP, [group(G1, on), group(G2, paused)], T0
    )
    # G2 was paused when first seen: its pause time is unknown, never the first poll's (#13).
    assert [(p.id, p.paused_since) for p in await store.call(store.paused_objects, "t")] == [
        (G2, None)
    ]
    await store.call(
        store.record_directory_poll, "t", GROUP, [group(G1, paused), group(G2, paused)], T0 + 300
    )
    paused_objects = await store.call(store.paused_objects, "t")
    assert [(p.id, p.paused_since) for p in paused_objects] == [(G2, None), (G1, T0 + 300)]
    # The audit event of the pause arrives (late); it refines G1's start, within the poll gap.
    pause_event = ClassifiedEvent("p1", T0 + 120, Series.PROCESSING_STATE_CHANGE, G1, None, paused)
    too_early = ClassifiedEvent("p0", T0 - 60, Series.PROCESSING_STATE_CHANGE, G1, None, paused)
    await store.call(store.commit_audit_page, "t", batch([pause_event, too_early], T0 + 400))
    paused_objects = await store.call(store.paused_objects, "t")
    assert [(p.id, p.paused_since) for p in paused_objects] == [(G2, None), (G1, T0 + 120)]
    # For the signals, a pause time is never guessed: G2 was paused from the first listing on.
    states = await store.call(store.object_states, "t")
    assert [(o.id, o.state, o.paused_since) for o in states] == [
        (G1, paused, T0 + 120),
        (G2, paused, None),
    ]
    counts = await store.call(store.directory_state_counts, "t")
    assert counts == {(GROUP, "Paused"): 2}
    # Resumed, then gone from the listing.
    await store.call(store.record_directory_poll, "t", GROUP, [group(G1, on)], T0 + 600)
    assert await store.call(store.paused_objects, "t") == []
    assert [o.id for o in await store.call(store.directory_objects, "t")] == [G1]
    # Paused again: a new spell, the old audit event no longer explains it.
    await store.call(store.record_directory_poll, "t", GROUP, [group(G1, paused)], T0 + 900)
    assert [p.paused_since for p in await store.call(store.paused_objects, "t")] == [T0 + 900]
    assert [o.paused_since for o in await store.call(store.object_states, "t")] == [T0 + 900]
    await store.call(store.record_directory_poll, "t", GROUP, [group(G1, on)], T0 + 1200)
    await store.call(store.record_directory_poll, "t", GROUP, [group(G1, on)], T0 + 1500)
    [resumed] = await store.call(store.object_states, "t")
    assert (resumed.paused_since, resumed.resumed_at) == (None, T0 + 1200)


async def test_a_version_3_state_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    await first.open()
    await first.call(
        first.record_directory_poll, "t", GROUP, [group(G1, ProcessingState.PAUSED)], T0
    )
    await first.close()
    with sqlite3.connect(path) as db:  # what version 3 wrote
        db.execute("ALTER TABLE directory_objects DROP COLUMN resumed_observed_at")
        db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    db.close()
    second = Store(path)
    await second.open()
    try:
        await second.call(
            second.record_directory_poll, "t", GROUP, [group(G1, ProcessingState.ON)], T0 + 300
        )
        [state] = await second.call(second.object_states, "t")
        assert state.resumed_at == T0 + 300
    finally:
        await second.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
    db.close()


async def test_a_version_4_state_file_gains_the_operations_request_counts(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    await first.open()
    await first.close()
    with sqlite3.connect(path) as db:  # what version 4 wrote
        db.execute("ALTER TABLE ops_operations DROP COLUMN requests")
        db.execute("ALTER TABLE ops_operations DROP COLUMN throttled")
        db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    db.close()
    second = Store(path)
    await second.open()
    await second.close()
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(ops_operations)")}
        assert {"requests", "throttled"} <= columns
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("5",)
    db.close()


async def test_a_newer_state_file_is_refused_with_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    await first.open()
    await first.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()
    with pytest.raises(StoreError, match=r"schema version 99.*move the file aside"):
        await Store(path).open()


async def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    await first.open()
    await first.call(
        first.commit_audit_page, "t", batch([ev(1, Series.RULE_CHANGE, T0, G1)], T0 + 9)
    )
    await first.close()
    second = Store(path)
    await second.open()
    try:
        assert await second.call(second.totals, "t") == {"rule_change": 1}
        mode = await second.run(lambda: second.db.execute("PRAGMA journal_mode").fetchone())
        assert mode == ("wal",)
    finally:
        await second.close()


async def test_per_group_series_are_bounded_but_keep_critical_groups(store: Store) -> None:
    paused = ProcessingState.PAUSED
    ids = [f"{n}0000000-0000-4000-8000-000000000000" for n in range(1, 6)]
    critical = frozenset({ids[4]})
    for i in range(len(ids)):  # paused one after the other: ids[0] longest
        objects = [group(o, paused, name=f"g{n}") for n, o in enumerate(ids[: i + 1])]
        await store.call(store.record_directory_poll, "t", GROUP, objects, T0 + 60 * i)
    changes = [ev(n, Series.DYNAMIC_ADD, T0 + n, object_id) for n, object_id in enumerate(ids)]
    await store.call(store.commit_audit_page, "t", batch(changes, T0 + 10))
    view = await store.run(
        lambda: read_store_view(store, "t", T0 + 600, critical=critical, per_group_cap=2)
    )
    assert [(p.id, p.critical) for p in view.paused] == [
        (ids[0], False),
        (ids[1], False),
        (ids[4], True),
    ]
    assert view.paused_not_exported == 2
    assert [(c.group_id, c.critical) for c in view.last_changes] == [
        (ids[4], True),
        (ids[3], False),
        (ids[2], False),
    ]
    assert view.names[ids[4]] == "g4"
    assert view.groups_changed_last_hour == 5


async def test_coverage_and_count_history(store: Store) -> None:
    await store.call(store.commit_audit_page, "t", batch([ev(1, Series.TRIGGER_USER, T0)], T0 + 60))
    await store.call(store.commit_audit_page, "t", batch([], T0 + 600))
    # Away longer than the retention: a gap, then a new interval.
    later = T0 + 40 * 86400
    await store.call(
        store.commit_audit_page,
        "t",
        batch([ev(2, Series.TRIGGER_USER, later + 5)], later + 60, coverage_start=later),
    )
    assert await store.call(store.coverage, "t") == [(T0 - 3600, T0 + 600), (later, later + 60)]
    state = await store.call(store.audit_state, "t")
    assert state is not None
    assert state.coverage_start == later
    history = await store.call(store.count_history, "t", T0 - 86400, later + 60)
    assert history.covers(T0, T0 + 60)
    assert not history.covers(T0 + 3600, T0 + 7200)
    assert history.hourly[Series.TRIGGER_USER] == {int(T0): 1, int(later): 1}
    assert history.hour_count((Series.TRIGGER_USER,), int(T0)) is None  # only part of it was seen
