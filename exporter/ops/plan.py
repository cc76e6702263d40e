"""`plan`: what a resume would do, batch by batch (read-only: no lock, no ledger writes)."""

from __future__ import annotations

from exporter.ops.gate import decide
from exporter.ops.lines import batch_lines
from exporter.ops.planning import (
    ResumeRequest,
    context_lines,
    episode_view_json,
    read_readiness,
    readiness_json,
    resume_view,
)
from exporter.ops.preparation import prepare
from exporter.ops.report import BatchLine, Report, Result, Status
from exporter.ops.session import OpsSession


async def plan(session: OpsSession, request: ResumeRequest) -> Report:
    """What a resume would do, batch by batch (read-only: no lock, no ledger writes)."""
    report = Report("plan", session.name, False)
    prepared = await prepare(session, report, apply=False)
    view = await resume_view(session, prepared, request)
    interval = view.resume.batch_interval
    for batch in view.batches:
        report.lines += batch_lines(batch, Result.PLANNED, None)
        report.batches.append(
            BatchLine(
                batch.index,
                batch.critical,
                len(batch.groups),
                None,
                "planned",
                (batch.index - 1) * interval,
            )
        )
    context_lines(view, report)
    report.episode = episode_view_json(view)
    reading = await read_readiness(session)
    report.readiness.append(readiness_json(reading, "now", decide(reading, force=request.force)))
    summary = view.plan.summary
    report.plan = {
        "critical_groups": sum(len(b.groups) for b in view.batches if b.critical),
        "other_groups": sum(len(b.groups) for b in view.batches if not b.critical),
        "batches": len(view.batches),
        "batch_size": summary.batch_size,
        "max_critical_groups": summary.max_critical_groups,
        "batch_interval_seconds": interval,
        "estimated_duration_seconds": max(0, len(view.batches) - 1) * interval,
        "excluded": {reason.value: n for reason, n in summary.excluded},
        "held_back_critical": sum(len(b.groups) for b in view.held_back),
    }
    report.status = Status.DRY_RUN
    return report
