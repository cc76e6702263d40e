"""The store's facts for the tenant-hygiene report, as functions of a connection: the running
exporter reads them through `Store`, and `lint-rules --tenant` through a read-only connection
to the exporter's file (it must not migrate or lock a store an exporter is using)."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.hygiene import MemberCount
from exporter.store.audit_query import stored_audit_query_mode


def member_counts(db: sqlite3.Connection, tenant: str) -> dict[str, tuple[int, float]]:
    """group id (lower case) -> (members, when the count was read)."""
    return {
        group_id: (count, read_at)
        for group_id, count, read_at in db.execute(
            "SELECT group_id, count, read_at FROM group_member_counts WHERE tenant=?", (tenant,)
        )
    }


def history(db: sqlite3.Connection, tenant: str) -> tuple[float, float] | None:
    """The uninterrupted audit coverage that reaches the watermark, (start, end); None before
    any: how far back "no dynamic change" is known, and up to when."""
    row = db.execute(
        "SELECT start, end FROM audit_coverage WHERE tenant=? ORDER BY start DESC LIMIT 1",
        (tenant,),
    ).fetchone()
    return None if row is None else (float(row[0]), float(row[1]))


def last_changes(
    db: sqlite3.Connection, tenant: str, since: float = float("-inf")
) -> dict[str, float]:
    """group id -> its last dynamic membership change, for changes since `since` (by default
    as far back as the store knows: listed groups keep theirs beyond the audit retention)."""
    return dict(
        db.execute(
            "SELECT group_id, time FROM group_last_change WHERE tenant=? AND time >= ?",
            (tenant, since),
        )
    )


def first_seen(db: sqlite3.Connection, tenant: str) -> dict[str, float]:
    """id (lower case) -> the first listing that showed each listed group or unit."""
    return dict(
        db.execute("SELECT lower(id), first_seen FROM directory_objects WHERE tenant=?", (tenant,))
    )


@dataclass(frozen=True, slots=True)
class HygieneFacts:
    last_changes: dict[str, float]
    history: tuple[float, float] | None
    member_counts: dict[str, MemberCount]
    first_seen: dict[str, float]
    audit_query_mode: AuditQueryMode = AuditQueryMode.NARROW
    """How the exporter asks the audit log (the trigger sample starts there)."""


class StoreTooOld(Exception):
    """The file predates schema 5; the message names the fix."""


def read_hygiene_facts(path: Path, tenant: str) -> HygieneFacts | None:
    """The facts about `tenant` in the store at `path`, read-only; None when there is no file."""
    if not path.is_file():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        db.execute("PRAGMA busy_timeout=10000")
        try:
            counts = member_counts(db, tenant)
        except sqlite3.OperationalError:
            raise StoreTooOld(
                f"{path}: a store older than schema 5 has no member counts; start the exporter "
                "once to migrate it"
            ) from None
        return HygieneFacts(
            last_changes(db, tenant),
            history(db, tenant),
            {k: MemberCount(c, t) for k, (c, t) in counts.items()},
            first_seen(db, tenant),
            stored_audit_query_mode(db, tenant),
        )
