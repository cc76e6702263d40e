"""Users and devices kept for the impact preflight: the properties the tenant's rules read, per
object, and the delta link that brings them up to date (`exporter.graph.objects`).

Tables `impact_objects` and `impact_sync` (schema version 5, `exporter.store.database`). A
tenant's objects of one type are replaced whole by a full read and patched by a delta read,
each in one transaction with its delta link, so the link always matches what is stored.
Methods are sync: run them on the store's thread (`await store.call(cache.x, ...)`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from exporter.store.database import Store


@dataclass(frozen=True, slots=True)
class SyncState:
    properties: frozenset[str]
    delta_link: str
    synced_at: float
    full_read_at: float
    objects: int


class ObjectCache:
    def __init__(self, store: Store) -> None:
        self.store = store

    def sync_state(self, tenant: str, object_type: str) -> SyncState | None:
        db = self.store.db
        row = db.execute(
            "SELECT properties, delta_link, synced_at, full_read_at FROM impact_sync "
            "WHERE tenant=? AND object_type=?",
            (tenant, object_type),
        ).fetchone()
        if row is None:
            return None
        (count,) = db.execute(
            "SELECT count(*) FROM impact_objects WHERE tenant=? AND object_type=?",
            (tenant, object_type),
        ).fetchone()
        return SyncState(frozenset(orjson.loads(row[0])), row[1], row[2], row[3], count)

    def replace(
        self,
        tenant: str,
        object_type: str,
        properties: Iterable[str],
        objects: Iterable[tuple[str, dict[str, Any]]],
        delta_link: str,
        now: float,
    ) -> None:
        """A full read: these objects and nothing else, and the link to continue from."""
        db = self.store.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "DELETE FROM impact_objects WHERE tenant=? AND object_type=?",
                (tenant, object_type),
            )
            db.executemany(
                "INSERT OR REPLACE INTO impact_objects VALUES (?, ?, ?, ?)",
                ((tenant, object_type, i, orjson.dumps(p)) for i, p in objects),
            )
            db.execute(
                "INSERT OR REPLACE INTO impact_sync VALUES (?, ?, ?, ?, ?, ?)",
                (
                    tenant,
                    object_type,
                    orjson.dumps(sorted(properties)).decode(),
                    delta_link,
                    now,
                    now,
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def apply_delta(
        self,
        tenant: str,
        object_type: str,
        objects: Iterable[tuple[str, dict[str, Any]]],
        removed: Iterable[str],
        delta_link: str,
        now: float,
    ) -> None:
        """A delta read: changed objects merged (a delta may carry only the changed
        properties), removed ones deleted, the new link kept."""
        db = self.store.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for object_id, values in objects:
                row = db.execute(
                    "SELECT properties FROM impact_objects "
                    "WHERE tenant=? AND object_type=? AND id=?",
                    (tenant, object_type, object_id),
                ).fetchone()
                merged = {**(orjson.loads(row[0]) if row else {}), **values}
                db.execute(
                    "INSERT OR REPLACE INTO impact_objects VALUES (?, ?, ?, ?)",
                    (tenant, object_type, object_id, orjson.dumps(merged)),
                )
            db.executemany(
                "DELETE FROM impact_objects WHERE tenant=? AND object_type=? AND id=?",
                ((tenant, object_type, i) for i in removed),
            )
            db.execute(
                "UPDATE impact_sync SET delta_link=?, synced_at=? WHERE tenant=? AND object_type=?",
                (delta_link, now, tenant, object_type),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def objects(self, tenant: str, object_type: str) -> dict[str, dict[str, Any]]:
        """id -> rule property -> value."""
        loads = orjson.loads
        return {
            object_id: loads(blob)
            for object_id, blob in self.store.db.execute(
                "SELECT id, properties FROM impact_objects WHERE tenant=? AND object_type=?",
                (tenant, object_type),
            )
        }
