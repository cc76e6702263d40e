"""The report's lines and episode blocks, built from the objects and outcomes of a command."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from exporter.domain.plan import (
    ExclusionReason,
    ResumeBatch,
)
from exporter.domain.records import DirectoryObject
from exporter.ops.engine import Outcome
from exporter.ops.report import Line, Result, iso
from exporter.store.ledger import (
    EpisodeRecord,
    ObjectRef,
    OpStatus,
)

EXCLUSION_TEXT = {
    ExclusionReason.PAUSED_BEFORE_EPISODE: "paused before the episode began (name it to resume)",
    ExclusionReason.PAUSE_TIME_UNKNOWN: "nothing records when it was paused (name it to resume)",
    ExclusionReason.NO_PAUSE_EPISODE: "no pause episode: adopt one (pause --adopt) or name it",
    ExclusionReason.ALREADY_ON: "already On",
    ExclusionReason.NOT_FOUND: "not a dynamic group or unit of this tenant",
    ExclusionReason.CANARY_GROUP: "the canary probe's group (name it to resume)",
}


def object_line(
    obj: DirectoryObject | ObjectRef,
    result: Result,
    detail: str | None = None,
    *,
    batch: int | None = None,
    critical: bool = False,
) -> Line:
    return Line(obj.id, obj.kind, obj.name, result, detail, batch, critical)


def outcome_line(outcome: Outcome, *, batch: int | None = None, critical: bool = False) -> Line:
    result = {
        OpStatus.DONE: Result.CHANGED,
        OpStatus.FAILED: Result.FAILED,
        OpStatus.SKIPPED: Result.SKIPPED,
        OpStatus.PLANNED: Result.NOT_ATTEMPTED,
    }.get(outcome.status, Result.SKIPPED)
    line = object_line(outcome.ref, result, outcome.detail, batch=batch, critical=critical)
    return replace(line, requests=outcome.requests, throttled=outcome.throttled)


def batch_lines(batch: ResumeBatch, result: Result, detail: str | None) -> list[Line]:
    return [
        Line(g.id, g.kind, g.name, result, detail, batch.index, g.critical) for g in batch.groups
    ]


def episode_json(episode: EpisodeRecord | None, *, new: bool = False) -> dict[str, Any] | None:
    if episode is None:
        return None
    return {
        "id": episode.id,
        "source": "ledger",
        "origin": episode.origin.value,
        "new": new,
        "started_at": iso(episode.started_at),
        "started_by": episode.started_by,
        "reason": episode.reason,
        "ended_at": iso(episode.ended_at),
    }
