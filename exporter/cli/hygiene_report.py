"""`lint-rules --config.file ... [--tenant NAME]`: the tenant-hygiene part of the report.

Headroom against Entra's limit, and the dead-weight candidates (exporter.domain.hygiene) with
their evidence: the rules from the listing, each group's last dynamic change and the audit
history behind it from the exporter's store (`store.path` of the configuration; the exporter
keeps them beyond the audit log's retention), member counts from the store or, with
`--count-members`, read now with `$count` within `hygiene.member_count_requests_per_minute`, and
the changes of the last 7 days read from the audit log to estimate what the candidates cost.
Nothing here writes to the tenant or to the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiolimiter import AsyncLimiter

from exporter.config.models import Config, Tenant
from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.events import DirectoryObjectKind
from exporter.domain.hygiene import (
    CHANGE_WINDOW_DAYS,
    DAY,
    EvaluationCost,
    Headroom,
    HygieneObject,
    HygieneReport,
    MemberCount,
    PropertyChanges,
    Reason,
    assess_hygiene,
    evaluation_cost,
    evaluations_by_rule,
)
from exporter.domain.rules import Rule, RuleSyntaxError, parse
from exporter.graph.client import GraphClient
from exporter.graph.errors import GraphError
from exporter.graph.hygiene import TriggerChangeSample
from exporter.store.hygiene import read_hygiene_facts


@dataclass(frozen=True, slots=True)
class TenantHygiene:
    now: float
    headroom: Headroom
    report: HygieneReport
    cost: EvaluationCost | None
    changes: TriggerChangeSample | None
    store: str | None
    """The exporter's store read for last changes and member counts (None: none found)."""
    counted_now: int
    """$count requests this run made (--count-members)."""
    cost_error: str | None = None
    """Why the changes could not be read (the rest of the report stands without the cost)."""
    cost_by_reason: Mapping[Reason, EvaluationCost] = field(default_factory=dict)
    """The same estimate for the candidates of each reason."""


async def tenant_now(tenant: Tenant) -> float:
    """The tenant's clock: the simulator's for a simulated tenant, else the system's."""
    from exporter.clock import (
        SimulatorClockUnavailable,
        SystemClock,
        read_simulator_clock,
        simulator_clock_url,
    )

    if tenant.clock != "simulator":
        return SystemClock().now()
    import httpx

    async with httpx.AsyncClient(timeout=10.0) as http:
        reading = await read_simulator_clock(http, simulator_clock_url(tenant.graph_base_url or ""))
    if reading is None:
        raise SimulatorClockUnavailable(
            f"tenant {tenant.name}: the simulator's clock cannot be read; is it running?"
        )
    return reading[0]


async def assess_tenant_hygiene(
    config: Config,
    tenant: Tenant,
    graph: GraphClient,
    objects: Sequence[HygieneObject],
    *,
    count_members: bool,
    inactive_days: int,
) -> TenantHygiene:
    settings = config.hygiene
    now = await tenant_now(tenant)
    facts = read_hygiene_facts(config.store.path, tenant.name)
    counts: dict[str, MemberCount] = dict(facts.member_counts) if facts else {}
    counted = 0
    if count_members:
        limiter = AsyncLimiter(settings.member_count_requests_per_minute, 60.0)
        for obj in objects:
            if obj.kind != DirectoryObjectKind.GROUP.value:
                continue
            known = counts.get(obj.id.lower())
            if known is not None and now - known.read_at < settings.member_count_refresh:
                continue
            async with limiter:
                counts[obj.id.lower()] = MemberCount(await graph.count_members(obj.id), now)
            counted += 1
    report = assess_hygiene(
        objects,
        now=now,
        inactive_days=inactive_days,
        # No coverage yet: the store cannot say that anything did not change.
        last_changes=facts.last_changes if facts and facts.history is not None else None,
        history_start=facts.history[0] if facts and facts.history else None,
        history_end=facts.history[1] if facts and facts.history else None,
        member_counts=counts,
        first_seen=facts.first_seen if facts else None,
    )
    headroom = Headroom(
        sum(1 for o in objects if o.kind == DirectoryObjectKind.GROUP.value),
        sum(1 for o in objects if o.kind == DirectoryObjectKind.ADMINISTRATIVE_UNIT.value),
        settings.object_limit,
    )
    cost_error: str | None = None
    try:
        changes: TriggerChangeSample | None = await graph.trigger_changes(
            now - CHANGE_WINDOW_DAYS * DAY,
            now,
            max_events=settings.change_sample_events,
            # Where the audit poller ended up: no refused request to find it again.
            mode=facts.audit_query_mode if facts else AuditQueryMode.NARROW,
        )
    except GraphError as exc:  # e.g. no AuditLog.Read.All: the candidates stand without it
        changes, cost_error = None, str(exc)
    cost = None
    cost_by_reason: dict[Reason, EvaluationCost] = {}
    if changes is not None:
        rules: dict[str, Rule] = {}
        for obj in objects:
            with contextlib.suppress(RuleSyntaxError, ValueError):
                rules[obj.id] = parse(obj.rule)
        evaluations = evaluations_by_rule(
            rules,
            [PropertyChanges(kind, props, n) for (kind, props), n in changes.counts.items()],
        )
        cost = evaluation_cost(evaluations, report.candidate_ids())
        cost_by_reason = {
            reason: evaluation_cost(
                evaluations, {c.target.id for c in report.candidates if c.reason is reason}
            )
            for reason in Reason
        }
    return TenantHygiene(
        now,
        headroom,
        report,
        cost,
        changes,
        str(config.store.path) if facts is not None else None,
        counted,
        cost_error,
        cost_by_reason,
    )


def _time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _detail(key: str, value: object) -> object:
    """Times as ISO 8601 in the JSON (epoch seconds inside)."""
    if key in ("last_change", "counted_at") and isinstance(value, float | int):
        return _time(float(value))
    return value


def hygiene_json(result: TenantHygiene) -> dict[str, Any]:
    report = result.report
    changes = result.changes
    cost = result.cost
    return {
        "generated_at": _time(result.now),
        "headroom": {
            "dynamic_groups": result.headroom.groups,
            "dynamic_administrative_units": result.headroom.units,
            "limit": result.headroom.limit,
            "ratio": round(result.headroom.ratio, 4),
            "level": result.headroom.level,
        },
        "inactive_days": report.inactive_days,
        "history_days": round(report.history_days, 1),
        "store": result.store,
        "member_counts_read_now": result.counted_now,
        "candidates_by_reason": {k.value: v for k, v in report.by_reason().items()},
        "not_judged": {k.value: v for k, v in report.not_judged.items()},
        "evaluation_cost_error": result.cost_error,
        "evaluation_cost": None
        if cost is None
        else {
            "evaluations": cost.total,
            "by_candidates": cost.candidates,
            "share": None if cost.share is None else round(cost.share, 4),
            "changes_read": changes.events if changes else 0,
            "oldest_change": changes.oldest if changes else None,
            "newest_change": changes.newest if changes else None,
            "complete": changes.complete if changes else None,
            "query_mode": changes.mode.value if changes else None,
            "window_days": CHANGE_WINDOW_DAYS,
            "share_by_reason": {
                reason.value: None if c.share is None else round(c.share, 4)
                for reason, c in result.cost_by_reason.items()
            },
        },
        "candidates": [
            {
                "reason": c.reason.value,
                "kind": c.target.kind,
                "id": c.target.id,
                "name": c.target.name,
                "rule": c.target.rule,
                "evidence": c.evidence,
                "recommendation": c.recommendation,
                **{k: _detail(k, v) for k, v in c.details.items()},
            }
            for c in report.candidates
        ],
        "duplicate_sets": [[o.id for o in same] for same in report.duplicate_sets],
    }


def write_hygiene_table(result: TenantHygiene, console: Any) -> None:
    """The report for a terminal: rich tables (nothing here deletes; it says what to review)."""
    from rich.markup import escape
    from rich.table import Table

    report, headroom, cost, changes = result.report, result.headroom, result.cost, result.changes
    style = {"ok": "green", "warning": "yellow", "critical": "bold red"}[headroom.level]
    console.print()
    console.print(
        "[bold]Tenant hygiene[/bold] (nothing is deleted: these are candidates to review)"
    )
    console.print(
        f"  headroom: {headroom.groups:,} dynamic groups + {headroom.units:,} dynamic units = "
        f"{headroom.used:,} of {headroom.limit:,} "
        f"([{style}]{headroom.ratio:.1%}, {headroom.level}[/{style}])"
    )
    if result.store is None:
        console.print(
            "  no exporter store found (store.path): inactive groups cannot be judged; run the "
            "exporter, which keeps each group's last change"
        )
    else:
        console.print(
            f"  {report.history_days:.0f} days of audit history in {escape(result.store)}; "
            f"inactive after {report.inactive_days} days without a dynamic membership change"
        )
    for reason, count in report.not_judged.items():
        if count:
            why = (
                "history shorter than the period"
                if reason.value == "inactive"
                else "no member count yet (--count-members reads them)"
            )
            console.print(f"  not judged for {reason.value}: {count} ({why})")
    table = Table(show_lines=False, expand=False)
    for column in ("reason", "group", "evidence", "recommendation"):
        table.add_column(column, overflow="fold")
    for c in report.candidates:
        table.add_row(
            c.reason.value,
            escape(f"{c.target.name} ({c.target.id})"),
            escape(c.evidence),
            escape(c.recommendation),
        )
    if report.candidates:
        console.print(table)
    by_reason = ", ".join(f"{k.value} {v}" for k, v in report.by_reason().items())
    console.print(f"  candidates: {len(report.candidate_ids())} object(s); by reason: {by_reason}")
    if result.cost_error is not None:
        console.print(
            f"  the share of evaluations is unknown: {escape(result.cost_error)}", highlight=False
        )
    if cost is not None and changes is not None:
        share = "n/a (no changes read)" if cost.share is None else f"{cost.share:.1%}"
        sample = "" if changes.complete else " (a sample: the newest changes up to the cap)"
        console.print(
            f"  estimated share of evaluations spent on candidates: {share} "
            f"({cost.candidates:,} of {cost.total:,} evaluations caused by {changes.events:,} "
            f"user and device changes of the last {CHANGE_WINDOW_DAYS} days{sample})"
        )
