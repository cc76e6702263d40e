"""The canary probe's recent rounds, kept so that a restarted exporter continues the streak
readiness counts (`minimum_pause_with_evidence` wants several normal rounds since the pause) and
watches the flip it made before it stopped instead of flipping again."""

from __future__ import annotations

import sqlite3

from exporter.domain.probe import ProbeOutcome, ProbeRound


def canary_key(group_id: str, object_id: str, property_name: str) -> str:
    """Rounds of one canary (group, object, property); another canary's rounds say nothing."""
    return f"{group_id.lower()}/{object_id.lower()}/{property_name.lower()}"


def keep_round(
    db: sqlite3.Connection, tenant: str, canary: str, done: ProbeRound, kept: int
) -> None:
    """Insert or update one round and forget those more than `kept` rounds older."""
    db.execute(
        "INSERT INTO probe_rounds (tenant, canary, number, started_at, entering, outcome, "
        "finished_at, latency, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (tenant, canary, number) DO UPDATE SET started_at = excluded.started_at, "
        "entering = excluded.entering, outcome = excluded.outcome, "
        "finished_at = excluded.finished_at, latency = excluded.latency, detail = excluded.detail",
        (
            tenant,
            canary,
            done.number,
            done.started_at,
            int(done.entering),
            None if done.outcome is None else done.outcome.value,
            done.finished_at,
            done.latency,
            done.detail,
        ),
    )
    db.execute(
        "DELETE FROM probe_rounds WHERE tenant=? AND canary=? AND number <= ?",
        (tenant, canary, done.number - kept),
    )


def kept_rounds(db: sqlite3.Connection, tenant: str, canary: str) -> list[ProbeRound]:
    """Oldest first."""
    return [
        ProbeRound(
            number=number,
            started_at=started_at,
            entering=bool(entering),
            outcome=None if outcome is None else ProbeOutcome(outcome),
            finished_at=finished_at,
            latency=latency,
            detail=detail,
        )
        for number, started_at, entering, outcome, finished_at, latency, detail in db.execute(
            "SELECT number, started_at, entering, outcome, finished_at, latency, detail "
            "FROM probe_rounds WHERE tenant=? AND canary=? ORDER BY number",
            (tenant, canary),
        )
    ]
