"""The impact preflight's stored users and devices (exporter/store/objects.py), and the schema
migration that adds their tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from exporter.store.database import Store
from exporter.store.objects import ObjectCache
from exporter.store.schema import SCHEMA_VERSION


async def test_full_read_then_delta_merge_and_removal(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    await store.open()
    cache = ObjectCache(store)
    try:
        assert await store.call(cache.sync_state, "t", "user") is None
        await store.call(
            cache.replace,
            "t",
            "user",
            ["department", "city"],
            [("a", {"department": "Sales", "city": "Oslo"}), ("b", {"department": "IT"})],
            "link-1",
            100.0,
        )
        await store.call(
            cache.replace, "t", "device", ["deviceOSType"], [("d", {})], "dev-link", 100.0
        )
        # a delta carries only what changed for a; b is gone; c is new
        await store.call(
            cache.apply_delta,
            "t",
            "user",
            [("a", {"city": "Bergen"}), ("c", {"department": "Legal"})],
            ["b"],
            "link-2",
            200.0,
        )
        objects = await store.call(cache.objects, "t", "user")
        state = await store.call(cache.sync_state, "t", "user")
        devices = await store.call(cache.objects, "t", "device")
    finally:
        await store.close()
    assert objects == {"a": {"department": "Sales", "city": "Bergen"}, "c": {"department": "Legal"}}
    assert state is not None
    assert (state.delta_link, state.synced_at, state.full_read_at, state.objects) == (
        "link-2",
        200.0,
        100.0,
        2,
    )
    assert state.properties == {"department", "city"}
    assert devices == {"d": {}}


async def test_a_version_4_state_file_gets_the_object_tables_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    await first.open()
    await first.close()
    with sqlite3.connect(path) as db:  # what version 4 wrote: no object tables
        db.execute("DROP TABLE impact_objects")
        db.execute("DROP TABLE impact_sync")
        db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    db.close()
    second = Store(path)
    await second.open()
    cache = ObjectCache(second)
    try:
        await second.call(cache.replace, "t", "user", ["city"], [("a", {})], "link", 1.0)
        assert await second.call(cache.objects, "t", "user") == {"a": {}}
    finally:
        await second.close()
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    db.close()
    assert version == (str(SCHEMA_VERSION),)
