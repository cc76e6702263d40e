"""The store's part in tenant hygiene (real SQLite): each group's last dynamic change outlives
the audit retention while the group exists, member counts, the history start, and the
in-place migration of a version 4 file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from exporter.domain.events import ProcessingState, Series
from exporter.store.database import HOUR_RETENTION, Store
from exporter.store.schema import SCHEMA_VERSION
from tests.listing import list_dynamic_groups
from tests.test_store import G1, G2, GROUP, T0, batch, ev, group

DAY = 86400.0


async def test_last_changes_outlive_the_retention_while_the_group_exists(store: Store) -> None:
    await store.call(
        store.commit_audit_page,
        "t",
        batch([ev(1, Series.DYNAMIC_ADD, T0, G1), ev(2, Series.DYNAMIC_ADD, T0, G2)], T0 + 60),
    )
    await store.call(store.record_directory_poll, "t", GROUP, [group(G1, ProcessingState.ON)], T0)
    later = T0 + HOUR_RETENTION + 40 * DAY
    await store.call(store.prune, "t", later, later - 3600)
    # G1 is still listed: its change 75 days ago is what makes it inactive; G2 is gone.
    assert await store.call(store.group_last_changes, "t", float("-inf")) == {G1: T0}
    assert await store.call(store.hourly_counts, "t", Series.DYNAMIC_ADD, T0 - 1, later) == []


async def test_member_counts_are_kept_per_listed_group(store: Store) -> None:
    await store.call(store.record_directory_poll, "t", GROUP, [group(G1, ProcessingState.ON)], T0)
    await store.call(store.record_member_count, "t", G1.upper(), 0, T0)
    await store.call(store.record_member_count, "t", G2, 5, T0)
    await store.call(store.record_member_count, "t", G1, 3, T0 + 10)
    assert await store.call(store.member_counts, "t") == {G1: (3, T0 + 10), G2: (5, T0)}
    await store.call(store.prune, "t", T0 + 20, T0)
    assert await store.call(store.member_counts, "t") == {G1: (3, T0 + 10)}  # G2 not listed
    assert await store.call(store.member_counts, "other") == {}


async def test_history_is_the_coverage_reaching_the_watermark(store: Store) -> None:
    assert await store.call(store.history, "t") is None
    await store.call(store.commit_audit_page, "t", batch([], T0, coverage_start=T0 - 9 * DAY))
    assert await store.call(store.history, "t") == (T0 - 9 * DAY, T0)


async def test_a_version_4_state_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    await first.open()
    await list_dynamic_groups(first, "t", [G1])
    await first.call(
        first.commit_audit_page, "t", batch([ev(1, Series.DYNAMIC_ADD, T0, G1)], T0 + 60)
    )
    await first.close()
    with sqlite3.connect(path) as db:  # what version 4 wrote
        db.execute("DROP TABLE group_member_counts")
        db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    db.close()
    second = Store(path)
    await second.open()
    try:
        await second.call(second.record_member_count, "t", G1, 7, T0)
        assert await second.call(second.member_counts, "t") == {G1: (7, T0)}
        assert await second.call(second.group_last_changes, "t", 0.0) == {G1: T0}
    finally:
        await second.close()
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    db.close()
    assert version == (str(SCHEMA_VERSION),)
    assert SCHEMA_VERSION == 5


async def test_first_seen_is_the_first_listing_that_showed_each_object(store: Store) -> None:
    await store.call(store.record_directory_poll, "t", GROUP, [group(G1, ProcessingState.ON)], T0)
    await store.call(
        store.record_directory_poll,
        "t",
        GROUP,
        [group(G1, ProcessingState.ON), group(G2.upper(), ProcessingState.ON)],
        T0 + 600,
    )
    assert await store.call(store.first_seen, "t") == {G1: T0, G2: T0 + 600}
