"""What a pause/resume/plan command did (or would do), for people (rich tables) and for
programs (`--json`).

Every object the command considered gets one line with a result and, unless it changed, the
reason. The table groups them: changed, skipped by reason, failed (each with its error).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from exporter.domain.events import DirectoryObjectKind


class Result(StrEnum):
    CHANGED = "changed"
    WOULD_CHANGE = "would_change"
    ADOPTED = "adopted"
    WOULD_ADOPT = "would_adopt"
    PLANNED = "planned"
    """plan: in a batch."""
    UNCHANGED = "unchanged"
    """Already in the wanted state."""
    EXCLUDED = "excluded"
    DEFERRED = "deferred"
    """Left for a later batch or run."""
    SKIPPED = "skipped"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"
    """The run stopped (Ctrl-C, readiness) before trying it."""


ACTED = frozenset({Result.CHANGED, Result.WOULD_CHANGE, Result.ADOPTED, Result.WOULD_ADOPT})


class Status(StrEnum):
    DRY_RUN = "dry_run"
    COMPLETED = "completed"
    NOTHING_TO_DO = "nothing_to_do"
    CANCELLED = "cancelled"
    """The operator answered no."""
    FAILED = "failed"
    """Done, but some objects failed."""
    INTERRUPTED = "interrupted"
    REFUSED = "refused"
    """The readiness gate refused the (first) batch."""
    STOPPED = "stopped"
    """Readiness no longer held before a later batch."""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self]


EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_INPUT = 2
EXIT_REFUSED = 3
EXIT_CODES = {
    Status.DRY_RUN: EXIT_OK,
    Status.COMPLETED: EXIT_OK,
    Status.NOTHING_TO_DO: EXIT_OK,
    Status.CANCELLED: EXIT_INCOMPLETE,
    Status.FAILED: EXIT_INCOMPLETE,
    Status.INTERRUPTED: EXIT_INCOMPLETE,
    Status.REFUSED: EXIT_REFUSED,
    Status.STOPPED: EXIT_REFUSED,
}


@dataclass(frozen=True, slots=True)
class Line:
    id: str
    kind: DirectoryObjectKind
    name: str
    result: Result
    detail: str | None = None
    batch: int | None = None
    critical: bool = False
    requests: int | None = None
    """HTTP requests sent for it (retries included); None where nothing was sent."""
    throttled: int | None = None
    """Of those, answered 429."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "name": self.name,
            "result": self.result.value,
            "detail": self.detail,
            "batch": self.batch,
            "critical": self.critical,
            "requests": self.requests,
            "throttled": self.throttled,
        }


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """What the run's PATCHes cost: Graph's throttling shows here, not as failures."""

    requests: int
    throttled: int
    retried_objects: int
    """Objects that took more than one request."""

    @classmethod
    def of(cls, lines: Sequence[Line]) -> RequestSummary:
        sent = [line for line in lines if line.requests]
        return cls(
            requests=sum(line.requests or 0 for line in sent),
            throttled=sum(line.throttled or 0 for line in sent),
            retried_objects=sum(1 for line in sent if (line.requests or 0) > 1),
        )

    def to_json(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "throttled": self.throttled,
            "retried_objects": self.retried_objects,
        }

    def text(self) -> str:
        return (
            f"Graph: {self.requests:,} request(s), {self.throttled:,} answered 429 and retried; "
            f"{self.retried_objects:,} object(s) took more than one request"
        )


@dataclass(frozen=True, slots=True)
class BatchLine:
    number: int
    critical: bool
    objects: int
    readiness: str | None
    """The readiness state seen before it (resume), or None (plan, dry run)."""
    status: str
    """planned, completed, failed, interrupted, deferred, refused."""
    starts_after_seconds: float | None = None
    """plan: offset from the first batch."""

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "critical": self.critical,
            "objects": self.objects,
            "readiness": self.readiness,
            "status": self.status,
            "starts_after_seconds": self.starts_after_seconds,
        }


@dataclass
class Report:
    command: str
    tenant: str
    applied: bool
    status: Status = Status.DRY_RUN
    run_id: str | None = None
    episode: dict[str, Any] | None = None
    readiness: list[dict[str, Any]] = field(default_factory=list)
    batches: list[BatchLine] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def counts(self) -> Counter[Result]:
        return Counter(line.result for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "command": self.command,
            "tenant": self.tenant,
            "applied": self.applied,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "run_id": self.run_id,
            "episode": self.episode,
            "readiness": self.readiness,
            "summary": {result.value: counts.get(result, 0) for result in Result},
            "requests": RequestSummary.of(self.lines).to_json(),
            "batches": [b.to_json() for b in self.batches],
            "objects": [line.to_json() for line in self.lines],
            "notes": self.notes,
            "plan": self.plan,
        }


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- rendering for people -------------------------------------------------------------------------

LISTED_CHANGES = 25
"""Changed objects are listed one by one up to this many (then counted); failures always are."""
EXAMPLES = 2


def render(report: Report, console: Console) -> None:
    console.print(
        f"[bold]{report.command}[/bold] tenant [bold]{report.tenant}[/bold]: {_status_text(report)}"
    )
    if report.episode is not None:
        console.print(_episode_text(report.episode))
    for reading in report.readiness:
        console.print(f"Readiness ({reading['when']}): {reading['state']} - {reading['detail']}")
    if report.batches:
        console.print(_batch_table(report))
    counts = report.counts()
    summary = Table(
        title="Summary" if report.applied else "Summary (dry run)", title_justify="left"
    )
    summary.add_column("result")
    summary.add_column("objects", justify="right")
    summary.add_column("why / what")
    for result in Result:
        if counts.get(result):
            summary.add_row(result.value, f"{counts[result]:,}", _reasons(report.lines, result))
    if counts:
        console.print(summary)
    requests = RequestSummary.of(report.lines)
    if requests.requests:
        console.print(requests.text())
    changed = [line for line in report.lines if line.result in ACTED]
    if changed and len(changed) <= LISTED_CHANGES:
        console.print(_object_table("Changed" if report.applied else "To change", changed))
    failed = [line for line in report.lines if line.result is Result.FAILED]
    if failed:
        console.print(_object_table("Failed", failed, style="red"))
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    if not report.applied and report.status is Status.DRY_RUN:
        console.print("Dry run: nothing was changed. Add --apply to act.")


def _status_text(report: Report) -> str:
    texts = {
        Status.DRY_RUN: "dry run",
        Status.COMPLETED: "done",
        Status.NOTHING_TO_DO: "nothing to do",
        Status.CANCELLED: "cancelled, nothing changed",
        Status.FAILED: "done, with failures",
        Status.INTERRUPTED: "interrupted (run the same command again to finish)",
        Status.REFUSED: "refused by the readiness check",
        Status.STOPPED: "stopped: readiness no longer holds",
    }
    text = texts[report.status]
    return f"{text} (run {report.run_id})" if report.run_id else text


def _episode_text(episode: dict[str, Any]) -> str:
    if episode.get("new") and episode.get("id") is None:
        parts = ["A new pause episode would begin"]
    elif episode.get("source") == "inferred":
        parts = ["Pause episode (inferred from pause times, no ledger record)"]
    else:
        parts = [f"Pause episode {episode.get('id')}" + (" (new)" if episode.get("new") else "")]
    if episode.get("started_at"):
        parts.append(f"started {episode['started_at']}")
    if episode.get("started_by"):
        parts.append(f"by {episode['started_by']}")
    if episode.get("reason"):
        parts.append(f"- {episode['reason']}")
    if episode.get("ended_at"):
        parts.append(f"(ended {episode['ended_at']})")
    return " ".join(parts)


def _batch_table(report: Report) -> Table:
    table = Table(title="Batches", title_justify="left")
    table.add_column("batch", justify="right")
    table.add_column("kind")
    table.add_column("objects", justify="right")
    table.add_column("starts after", justify="right")
    table.add_column("readiness")
    table.add_column("status")
    by_batch: dict[int, list[str]] = defaultdict(list)
    for line in report.lines:
        if line.batch is not None:
            by_batch[line.batch].append(line.name or line.id)
    table.add_column("first objects")
    for batch in report.batches:
        names = by_batch.get(batch.number, [])
        shown = ", ".join(names[:EXAMPLES]) + (
            f", +{len(names) - EXAMPLES}" if len(names) > 3 else ""
        )
        table.add_row(
            str(batch.number),
            "critical" if batch.critical else "other",
            f"{batch.objects:,}",
            _duration(batch.starts_after_seconds),
            batch.readiness or "",
            batch.status,
            shown,
        )
    return table


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _reasons(lines: Iterable[Line], result: Result) -> str:
    reasons = Counter(line.detail or "" for line in lines if line.result is result)
    parts = [
        f"{reason} ({n:,})" if len(reasons) > 1 else reason for reason, n in reasons.most_common(4)
    ]
    if len(reasons) > 4:
        parts.append(f"{len(reasons) - 4} more reasons (see --json)")
    return "; ".join(p for p in parts if p)


def _object_table(title: str, lines: Sequence[Line], *, style: str = "") -> Table:
    table = Table(title=title, title_justify="left", style=style)
    table.add_column("id")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("detail")
    for line in lines:
        table.add_row(line.id, line.kind.value, line.name, line.detail or "")
    return table


__all__ = ["BatchLine", "Line", "Report", "Result", "Status", "iso", "render"]
