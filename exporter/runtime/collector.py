"""The Prometheus collector: metric families drawn from the current immutable `Snapshot`.

`collect()` does no I/O and keeps no state between scrapes. Each family comes from a small
builder `(Snapshot) -> Iterable[Metric]`; to add families, pass more builders (the signals'
gauges, for instance) to `SnapshotCollector`. Names and labels follow DESIGN 5.1 and the label
values in docs/architecture.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.baseline import Measure
from exporter.domain.events import (
    RELEVANT_TRIGGER_SERIES,
    TRIGGER_SERIES_BY_RELEVANCE,
    DirectoryObjectKind,
    Series,
)
from exporter.domain.groups import MembershipProcessingStatus
from exporter.domain.probe import ProbeOutcome
from exporter.domain.queue import backlog_evaluations
from exporter.runtime.snapshot import Snapshot, TenantSnapshot
from exporter.store.database import DUPLICATE, MALFORMED, MALFORMED_PREFIX
from exporter.store.lateness import RECONCILED, lateness_histogram

PREFIX = "entra_dynamic_"
FamilyBuilder = Callable[[Snapshot], Iterable[Metric]]

_STATES = (("On", "on"), ("Paused", "paused"))
PROCESSING_STATUS_LABELS = {
    MembershipProcessingStatus.NOT_STARTED: "not_started",
    MembershipProcessingStatus.RUNNING: "running",
    MembershipProcessingStatus.SUCCEEDED: "succeeded",
    MembershipProcessingStatus.FAILED: "failed",
}


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _gauge(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
    # prometheus_client appends _total to counter names.
    return CounterMetricFamily(PREFIX + name, doc, labels=list(labels))


def groups(snapshot: Snapshot) -> Iterator[Metric]:
    family = _gauge(
        "groups",
        "Dynamic groups and dynamic administrative units by membership processing state.",
        ["tenant", "kind", "state"],
    )
    for t in snapshot.tenants:
        if not t.directory_polled:
            continue
        for kind in DirectoryObjectKind:
            for graph_state, label in _STATES:
                family.add_metric(
                    [t.tenant, kind.value, label], t.directory_counts.get((kind, graph_state), 0)
                )
            unknown = t.directory_counts.get((kind, "unknown"), 0)
            if unknown:
                family.add_metric([t.tenant, kind.value, "unknown"], unknown)
    yield family


def membership_changes(snapshot: Snapshot) -> Iterator[Metric]:
    dynamic = _counter(
        "membership_changes",
        "Group membership changes made by dynamic membership processing, as ingested from "
        "the audit log (by event, exactly once).",
        ["tenant", "operation"],
    )
    manual = _counter(
        "manual_membership_changes",
        "Group membership changes made by people or other apps, as ingested from the audit log.",
        ["tenant", "operation"],
    )
    last_hour = _gauge(
        "membership_changes_last_hour",
        "Dynamic membership changes whose activity time falls in the trailing hour.",
        ["tenant"],
    )
    changed = _gauge(
        "groups_changed_last_hour",
        "Distinct groups with a dynamic membership change in the trailing hour.",
        ["tenant"],
    )
    objects = _gauge(
        "object_changes_last_hour",
        "User and device changes that can start re-evaluation (a changed property is read by a "
        "dynamic rule, or the event does not say which changed: relevance rule or unknown) in "
        "the trailing hour; the trigger-rate signal, its baseline and recovery count these.",
        ["tenant", "object_type"],
    )
    by_relevance = _gauge(
        "object_changes_by_relevance_last_hour",
        "User and device changes in the trailing hour by relevance to the tenant's dynamic "
        "rules: rule (a changed property is read by a rule; adds and deletes), other (none is), "
        "unknown (the event does not say which properties changed).",
        ["tenant", "object_type", "relevance"],
    )
    for t in snapshot.tenants:
        totals = t.totals
        dynamic.add_metric([t.tenant, "add"], totals.get(Series.DYNAMIC_ADD.value, 0))
        dynamic.add_metric([t.tenant, "remove"], totals.get(Series.DYNAMIC_REMOVE.value, 0))
        manual.add_metric([t.tenant, "add"], totals.get(Series.MANUAL_ADD.value, 0))
        manual.add_metric([t.tenant, "remove"], totals.get(Series.MANUAL_REMOVE.value, 0))
        last_hour.add_metric(
            [t.tenant],
            t.last_hour.get(Series.DYNAMIC_ADD, 0) + t.last_hour.get(Series.DYNAMIC_REMOVE, 0),
        )
        changed.add_metric([t.tenant], t.groups_changed_last_hour)
        for object_type, relevant in RELEVANT_TRIGGER_SERIES.items():
            objects.add_metric(
                [t.tenant, object_type.value], sum(t.last_hour.get(s, 0) for s in relevant)
            )
        for object_type, series_by_relevance in TRIGGER_SERIES_BY_RELEVANCE.items():
            for relevance, series in series_by_relevance.items():
                by_relevance.add_metric(
                    [t.tenant, object_type.value, relevance.value], t.last_hour.get(series, 0)
                )
    yield from (dynamic, manual, last_hour, changed, objects, by_relevance)


def manual_membership_changes_last_hour(snapshot: Snapshot) -> Iterator[Metric]:
    """The trailing hour of manual_membership_changes_total, in the tenant's clock: a rate panel
    reads it rather than rate() over the counter, which Prometheus takes in its own clock (600
    times too fast under the demo's)."""
    family = _gauge(
        "manual_membership_changes_last_hour",
        "Group membership changes made by people or other apps whose activity time falls in the "
        "trailing hour.",
        ["tenant"],
    )
    for t in snapshot.tenants:
        family.add_metric(
            [t.tenant],
            t.last_hour.get(Series.MANUAL_ADD, 0) + t.last_hour.get(Series.MANUAL_REMOVE, 0),
        )
    yield family


def paused_groups(snapshot: Snapshot) -> Iterator[Metric]:
    paused = _gauge(
        "group_paused",
        "1 for each paused group (or dynamic administrative unit), whether or not its pause "
        "time is known; critical groups always, others up to the per-group series cap, "
        "longest paused first.",
        ["tenant", "group_id", "group_name", "critical"],
    )
    since = _gauge(
        "group_paused_since_timestamp_seconds",
        "When processing of this paused group (or dynamic administrative unit) was paused, for "
        "the exported paused groups whose pause time is known (absent for one already paused "
        "when the exporter first listed it, with no audit event saying when).",
        ["tenant", "group_id", "group_name", "critical"],
    )
    dropped = _gauge(
        "paused_groups_not_exported",
        "Paused groups left out of the per-group series by the cap.",
        ["tenant"],
    )
    for t in snapshot.tenants:
        for p in t.paused:
            labels = [t.tenant, p.id, p.name, _bool(p.critical)]
            paused.add_metric(labels, 1)
            if p.since is not None:
                since.add_metric(labels, p.since)
        dropped.add_metric([t.tenant], t.paused_not_exported)
    yield from (paused, since, dropped)


def group_changes(snapshot: Snapshot) -> Iterator[Metric]:
    last = _gauge(
        "group_last_membership_change_timestamp_seconds",
        "Activity time of the group's last dynamic membership change seen in the audit log; "
        "critical groups always, others up to the per-group series cap, most recent first.",
        ["tenant", "group_id", "group_name", "critical"],
    )
    for t in snapshot.tenants:
        for change in t.last_changes:
            last.add_metric(
                [t.tenant, change.group_id, change.name, _bool(change.critical)], change.time
            )
    yield last


def critical_status(snapshot: Snapshot) -> Iterator[Metric]:
    status = _gauge(
        "group_processing_status",
        "Processing status of each critical group (Graph beta membershipRuleProcessingStatus): "
        "one series per group, value 1, labelled with its current status (unknown while paused "
        "or unreadable).",
        ["tenant", "group_id", "group_name", "status"],
    )
    updated = _gauge(
        "group_last_membership_update_timestamp_seconds",
        "When processing last updated the critical group's membership (Graph beta).",
        ["tenant", "group_id", "group_name"],
    )
    for t in snapshot.tenants:
        for c in t.critical_statuses:
            known = c.status.status
            current = "unknown" if known is None else PROCESSING_STATUS_LABELS[known]
            # Only the current status: a series per status (0 for the others) made 200 critical
            # groups a third of the exposition, and every query reads `== 1` anyway.
            status.add_metric([t.tenant, c.group_id, c.name, current], 1)
            if c.status.last_membership_updated is not None:
                updated.add_metric([t.tenant, c.group_id, c.name], c.status.last_membership_updated)
    yield from (status, updated)


def collectors(snapshot: Snapshot) -> Iterator[Metric]:
    success = _gauge(
        "collector_success",
        "Whether the last poll of this collector succeeded.",
        ["tenant", "collector"],
    )
    duration = _gauge(
        "collector_duration_seconds",
        "How long the last poll of this collector took.",
        ["tenant", "collector"],
    )
    last = _gauge(
        "collector_last_success_timestamp_seconds",
        "When this collector last succeeded.",
        ["tenant", "collector"],
    )
    for t in snapshot.tenants:
        for c in t.collectors:
            success.add_metric([t.tenant, c.name], 1 if c.success else 0)
            if c.duration is not None:
                duration.add_metric([t.tenant, c.name], c.duration)
            if c.last_success is not None:
                last.add_metric([t.tenant, c.name], c.last_success)
    yield from (success, duration, last)


def audit(snapshot: Snapshot) -> Iterator[Metric]:
    watermark = _gauge(
        "audit_watermark_timestamp_seconds",
        "Newest audit-log activity time fully ingested.",
        ["tenant"],
    )
    backfill = _gauge(
        "audit_backfill_progress_ratio",
        "Progress of the audit-log catch-up (backfill) towards the present, 0 to 1.",
        ["tenant"],
    )
    events = _counter(
        "audit_events",
        "Audit events ingested, by classification; duplicate: seen before and not counted "
        "again; malformed: unreadable and skipped.",
        ["tenant", "kind"],
    )
    malformed = _counter(
        "audit_malformed_events",
        "Unreadable audit events, by what was wrong with them.",
        ["tenant", "reason"],
    )
    query_mode = _gauge(
        "audit_query_mode",
        "1 for the way the audit log is queried, 0 for the others: narrow (time range and the "
        "ingested activities), time_ordered (time range only, oldest first) or time_only (time "
        "range only); the exporter steps down when Graph refuses a query, and filters here.",
        ["tenant", "mode"],
    )
    undecided = _gauge(
        "audit_undecided_changes",
        "Membership changes by the dynamic-processing app not counted yet: no group listing "
        "has said whether their group is dynamic (they are counted when one does; a value "
        "that stays up means the groups collector is failing).",
        ["tenant"],
    )
    for t in snapshot.tenants:
        undecided.add_metric([t.tenant], t.undecided_changes)
        for mode in AuditQueryMode:
            query_mode.add_metric([t.tenant, mode.value], 1 if mode is t.audit_query_mode else 0)
        if t.watermark is not None:
            watermark.add_metric([t.tenant], t.watermark)
        if t.backfill is not None:
            backfill.add_metric([t.tenant], t.backfill.fraction)
        for series in Series:
            events.add_metric([t.tenant, series.value], t.totals.get(series.value, 0))
        events.add_metric([t.tenant, DUPLICATE], t.totals.get(DUPLICATE, 0))
        events.add_metric([t.tenant, MALFORMED], t.totals.get(MALFORMED, 0))
        for kind, count in sorted(t.totals.items()):
            if kind.startswith(MALFORMED_PREFIX):
                malformed.add_metric([t.tenant, kind.removeprefix(MALFORMED_PREFIX)], count)
    yield from (watermark, backfill, events, malformed, query_mode, undecided)


def audit_lateness(snapshot: Snapshot) -> Iterator[Metric]:
    lateness = HistogramMetricFamily(
        PREFIX + "audit_event_lateness_seconds",
        "How long after its activity time each audit event was first read (live polls and "
        "the reconciliation pass, not the backfill): at most the poll interval plus Graph's "
        "delay when on time; above the lateness allowance, found only by reconciliation.",
        labels=["tenant"],
    )
    reconciled = _counter(
        "audit_events_reconciled",
        "Audit events that appeared after the lateness allowance, found and counted by the "
        "reconciliation pass (they would have been lost without it).",
        ["tenant"],
    )
    for t in snapshot.tenants:
        buckets, total = lateness_histogram(t.totals)
        lateness.add_metric([t.tenant], buckets, sum_value=total)
        reconciled.add_metric([t.tenant], t.totals.get(RECONCILED, 0))
    yield from (lateness, reconciled)


def graph_requests(snapshot: Snapshot) -> Iterator[Metric]:
    family = _counter(
        "graph_requests",
        "Requests made to Microsoft Graph, by endpoint and HTTP status code (transport_error: "
        "no response).",
        ["tenant", "endpoint", "code"],
    )
    for t in snapshot.tenants:
        for (endpoint, code), count in sorted(t.graph_requests.items()):
            family.add_metric([t.tenant, endpoint, code], count)
    yield family


_OBJECT_MEASURES = (("user", Measure.USER_CHANGES), ("device", Measure.DEVICE_CHANGES))


def signals(snapshot: Snapshot) -> Iterator[Metric]:
    """Baselines, deviation ratios, pause-warranted and resume-ready, from each tenant's latest
    assessment (absent before the first one; a ratio or baseline that has no value yet, e.g. no
    history, is absent rather than 0)."""
    membership_baseline = _gauge(
        "membership_changes_baseline_per_hour",
        "Dynamic membership changes expected in the trailing hour: a seasonal median of the "
        "same hour in past weeks or days (docs/signals.md).",
        ["tenant"],
    )
    object_baseline = _gauge(
        "object_changes_baseline_per_hour",
        "User and device changes expected in the trailing hour (seasonal median).",
        ["tenant", "object_type"],
    )
    object_ratio = _gauge(
        "object_changes_deviation_ratio",
        "User and device changes in the trailing hour / their baseline (1 = normal).",
        ["tenant", "object_type"],
    )
    membership_ratio = _gauge(
        "membership_changes_deviation_ratio",
        "Dynamic membership changes in the trailing hour / their baseline (1 = normal).",
        ["tenant"],
    )
    warranted = _gauge(
        "pause_warranted",
        "1 while this reason warrants pausing dynamic group processing; every reason is "
        "always exported.",
        ["tenant", "reason"],
    )
    ready = _gauge(
        "resume_ready",
        "1 when every resume condition holds for the current pause episode.",
        ["tenant"],
    )
    blocked = _gauge(
        "resume_blocked",
        "1 for each resume condition that blocks resuming, or that cannot be judged yet.",
        ["tenant", "reason"],
    )
    started = _gauge(
        "pause_started_timestamp_seconds",
        "Start of the current pause episode; 0 when there is none.",
        ["tenant"],
    )
    assessed = _gauge(
        "assessment_timestamp_seconds",
        "When the signals and resume readiness were last evaluated (the tenant's clock).",
        ["tenant"],
    )
    duration = _gauge(
        "assessment_duration_seconds",
        "How long the last evaluation took: reading the store plus evaluating.",
        ["tenant"],
    )
    for t in snapshot.tenants:
        a = t.assessment
        if a is None:
            continue
        membership = a.rate(Measure.MEMBERSHIP_CHANGES)
        if membership.baseline is not None:
            membership_baseline.add_metric([t.tenant], membership.baseline)
        if membership.deviation_ratio is not None:
            membership_ratio.add_metric([t.tenant], membership.deviation_ratio)
        for label, measure in _OBJECT_MEASURES:
            reading = a.rate(measure)
            if reading.baseline is not None:
                object_baseline.add_metric([t.tenant, label], reading.baseline)
            if reading.deviation_ratio is not None:
                object_ratio.add_metric([t.tenant, label], reading.deviation_ratio)
        for signal in a.pause_signals:
            warranted.add_metric([t.tenant, signal.reason.value], 1 if signal.active else 0)
        ready.add_metric([t.tenant], 1 if a.readiness.ready else 0)
        for condition in a.readiness.conditions:
            blocked.add_metric([t.tenant, condition.condition.value], 1 if condition.blocks else 0)
        started.add_metric([t.tenant], a.episode.started_at if a.episode is not None else 0)
        assessed.add_metric([t.tenant], a.evaluated_at)
        if t.assessment_timing is not None:
            timing = t.assessment_timing
            duration.add_metric([t.tenant], timing.read_seconds + timing.evaluate_seconds)
    yield from (
        membership_baseline,
        object_baseline,
        object_ratio,
        membership_ratio,
        warranted,
        ready,
        blocked,
        started,
        assessed,
        duration,
    )


def _bound(bound: float) -> str:
    """A histogram bucket's `le`, as Prometheus writes it (`60.0`, `+Inf`)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def processing_lag(snapshot: Snapshot) -> Iterator[Metric]:
    family = HistogramMetricFamily(
        PREFIX + "processing_lag_seconds",
        "Estimated delay from a user or device change to the dynamic membership change it "
        "caused, by the activity times in the audit log (each change counted once, when "
        "ingested).",
        labels=["tenant"],
    )
    for t in snapshot.tenants:
        h = t.lag_histogram
        if h is None:
            continue
        family.add_metric(
            [t.tenant],
            [(_bound(bound), count) for bound, count in h.cumulative()],
            sum_value=h.sum_seconds,
        )
    yield family


def rules_using_operator(snapshot: Snapshot) -> Iterator[Metric]:
    family = _gauge(
        "rules_using_operator",
        "Dynamic groups and administrative units whose membership rule uses an operator "
        "Microsoft calls inefficient (match, contains, memberof) or a chain it advises "
        "rewriting (or_chain: use -in; ne_chain: use -notIn).",
        ["tenant", "operator"],
    )
    for t in snapshot.tenants:
        if t.rules_using_operator is None:
            continue
        for operator, count in sorted(t.rules_using_operator.items()):
            family.add_metric([t.tenant, operator], count)
    yield family


def hygiene(snapshot: Snapshot) -> Iterator[Metric]:
    limit = _gauge(
        "object_limit",
        "Entra's limit of dynamic groups and dynamic administrative units combined per tenant "
        "(hygiene.object_limit); compare with sum(entra_dynamic_groups).",
        ["tenant"],
    )
    candidates = _gauge(
        "hygiene_candidates",
        "Dynamic groups and units that are candidates for deletion or merging, by reason "
        "(inactive, empty, never_matches, duplicate, memberof); one may have several reasons. "
        "lint-rules --config.file lists them with the evidence.",
        ["tenant", "reason"],
    )
    not_judged = _gauge(
        "hygiene_not_judged",
        "Dynamic groups on which no verdict is possible yet: inactive (the exporter's audit "
        "history is shorter than hygiene.inactive_days), empty (no member count read yet).",
        ["tenant", "reason"],
    )
    for t in snapshot.tenants:
        summary = t.hygiene
        if summary is None:
            continue
        limit.add_metric([t.tenant], summary.object_limit)
        for reason, count in summary.candidates.items():
            candidates.add_metric([t.tenant, reason.value], count)
        for reason, count in summary.not_judged.items():
            not_judged.add_metric([t.tenant, reason.value], count)
    yield limit
    yield candidates
    yield not_judged


def trigger_causes(snapshot: Snapshot) -> Iterator[Metric]:
    """Storm attribution: the trailing hour's triggers by initiator and by changed property,
    top 5 of each and `other` (bounded label sets), and the rules reading each property."""
    initiators = _gauge(
        "trigger_changes_last_hour",
        "Triggers of re-evaluation (user and device updates) in the trailing hour by who made "
        "them: the top 5 initiators (user principal name or app), the rest as other.",
        ["tenant", "initiator"],
    )
    properties = _gauge(
        "trigger_property_changes_last_hour",
        "Triggers in the trailing hour by the property they changed (Entra's Included Updated "
        "Properties): the top 5, the rest as other. One update can change several.",
        ["tenant", "property"],
    )
    readers = _gauge(
        "trigger_property_readers",
        "Dynamic groups and administrative units whose rule reads each property of "
        "trigger_property_changes_last_hour: what those changes re-evaluate.",
        ["tenant", "property"],
    )
    for t in snapshot.tenants:
        causes = t.trigger_causes
        if causes is None:
            continue
        for cause in causes.initiators:
            initiators.add_metric([t.tenant, cause.name], cause.triggers)
        for cause in causes.properties:
            properties.add_metric([t.tenant, cause.name], cause.triggers)
            if cause.readers is not None:
                readers.add_metric([t.tenant, cause.name], cause.readers)
    yield initiators
    yield properties
    yield readers


def canary_probe(snapshot: Snapshot) -> Iterator[Metric]:
    """The canary probe's families (#20), for tenants with a probe: the latency histogram (the
    lag estimator's buckets, so the measured and the estimated delay draw side by side), rounds
    started and ended by outcome (every outcome from 0), the age of the round in flight (0 when
    none: an alert on it fires while a slow round still waits) and the latest success."""
    latency = HistogramMetricFamily(
        PREFIX + "probe_latency_seconds",
        "Measured delay from the canary probe's property change to the canary group's "
        "membership change (detected rounds).",
        labels=["tenant"],
    )
    started = CounterMetricFamily(
        PREFIX + "probe_rounds_started",
        "Canary probe rounds whose property change Graph accepted.",
        labels=["tenant"],
    )
    ended = CounterMetricFamily(
        PREFIX + "probe_rounds",
        "Canary probe rounds ended, by outcome: detected, timed_out, paused (the canary group "
        "was paused: nothing measured), failed (the change was refused).",
        labels=["tenant", "outcome"],
    )
    age = GaugeMetricFamily(
        PREFIX + "probe_round_age_seconds",
        "How long the canary probe's round in flight has waited for its membership change; 0 "
        "when none is in flight.",
        labels=["tenant"],
    )
    last = GaugeMetricFamily(
        PREFIX + "probe_last_success_timestamp_seconds",
        "When the canary probe last saw its membership change (absent before the first).",
        labels=["tenant"],
    )
    for t in snapshot.tenants:
        probe = t.probe
        if probe is None:
            continue
        h = probe.latency
        latency.add_metric(
            [t.tenant],
            [(_bound(bound), count) for bound, count in h.cumulative()],
            sum_value=h.sum_seconds,
        )
        started.add_metric([t.tenant], probe.rounds_started)
        for outcome in ProbeOutcome:
            ended.add_metric([t.tenant, outcome.value], probe.outcomes.get(outcome, 0))
        flying = probe.in_flight
        age.add_metric([t.tenant], max(0.0, t.taken_at - flying.started_at) if flying else 0.0)
        detected = [r for r in probe.rounds if r.outcome is ProbeOutcome.DETECTED]
        if detected and detected[-1].finished_at is not None:
            last.add_metric([t.tenant], detected[-1].finished_at)
    yield from (latency, started, ended, age, last)


def processing_queue(snapshot: Snapshot) -> Iterator[Metric]:
    """The work still waiting (#23, docs/signals.md "Queue"): what finished pairs cannot show
    while a queue grows. Absent before the first assessment and while a value is unknown."""
    waiting = _gauge(
        "processing_queue_waiting_triggers",
        "Rule-relevant user and device changes after the processing queue's front that no "
        "dynamic membership change has answered yet.",
        ["tenant"],
    )
    oldest = _gauge(
        "processing_queue_oldest_waiting_seconds",
        "Age of the oldest waiting change; 0 while fewer than 10 wait (too few to judge: "
        "changes that moved no membership wait until a later one does).",
        ["tenant"],
    )
    evaluations = _gauge(
        "processing_queue_backlog_evaluations",
        "Estimated evaluations still to do: waiting changes x the rules that read the "
        "properties the trailing hour's changes touched.",
        ["tenant"],
    )
    rate = _gauge(
        "processing_queue_rate_per_hour",
        "Changes the queue's front passed per hour over the last 15 minutes of finished work.",
        ["tenant"],
    )
    drain = _gauge(
        "processing_queue_drain_seconds",
        "When the waiting changes will have been processed at that rate (0: nothing waits); "
        "absent when it cannot be told or the queue is not draining.",
        ["tenant"],
    )
    for t in snapshot.tenants:
        q = t.assessment.queue if t.assessment is not None else None
        if q is None:
            continue
        waiting.add_metric([t.tenant], q.waiting_triggers)
        oldest.add_metric([t.tenant], q.oldest_waiting_seconds or 0.0)
        backlog = backlog_evaluations(q, t.trigger_causes)
        if backlog is not None:
            evaluations.add_metric([t.tenant], backlog)
        if q.rate_per_hour is not None:
            rate.add_metric([t.tenant], q.rate_per_hour)
        if q.drain_seconds is not None:
            drain.add_metric([t.tenant], q.drain_seconds)
    yield from (waiting, oldest, evaluations, rate, drain)


def pause_signal_values(snapshot: Snapshot) -> Iterator[Metric]:
    """What each pause reason observed and the threshold it compares with (#23): alert texts
    quote a reason's own figures (absent while a reason cannot be judged)."""
    observed = _gauge(
        "pause_signal_observed",
        "The value each pause-warranted reason observed: changes or groups per trailing hour, "
        "the trigger ratio to baseline, or seconds (docs/signals.md).",
        ["tenant", "reason"],
    )
    threshold = _gauge(
        "pause_signal_threshold",
        "The threshold each pause-warranted reason compares its observed value with.",
        ["tenant", "reason"],
    )
    for t in snapshot.tenants:
        if t.assessment is None:
            continue
        for signal in t.assessment.pause_signals:
            threshold.add_metric([t.tenant, signal.reason.value], signal.threshold)
            if signal.observed is not None:
                observed.add_metric([t.tenant, signal.reason.value], signal.observed)
    yield from (observed, threshold)


def mid_resume(snapshot: Snapshot) -> Iterator[Metric]:
    """A storm mid-resume (#23): the episode's groups back On while triggers climb again."""
    family = _gauge(
        "mid_resume_groups_on",
        "Groups of the current pause episode already back On while triggers climb again (0 "
        "otherwise): `pause --resumed` pauses exactly these again.",
        ["tenant"],
    )
    for t in snapshot.tenants:
        if t.assessment is None:
            continue
        storm = t.assessment.mid_resume
        family.add_metric([t.tenant], 0 if storm is None else len(storm.resumed_group_ids))
    yield family


def build_info(snapshot: Snapshot) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        PREFIX + "exporter_build_info",
        "The exporter's version, source revision and the Python it runs on; always 1.",
        labels=["version", "revision", "python_version"],
    )
    family.add_metric([snapshot.version, snapshot.revision, snapshot.python_version], 1)
    yield family


DEFAULT_BUILDERS: tuple[FamilyBuilder, ...] = (
    groups,
    membership_changes,
    paused_groups,
    group_changes,
    critical_status,
    collectors,
    audit,
    audit_lateness,
    graph_requests,
    signals,
    processing_lag,
    rules_using_operator,
    hygiene,
    trigger_causes,
    canary_probe,
    build_info,
    manual_membership_changes_last_hour,
    processing_queue,
    pause_signal_values,
    mid_resume,
)


class SnapshotCollector(Collector):
    def __init__(
        self,
        source: Callable[[], Snapshot],
        builders: Sequence[FamilyBuilder] = DEFAULT_BUILDERS,
    ) -> None:
        self._source = source
        self._builders = tuple(builders)

    def collect(self) -> Iterable[Metric]:
        snapshot = self._source()
        for builder in self._builders:
            yield from builder(snapshot)


__all__ = ["DEFAULT_BUILDERS", "FamilyBuilder", "SnapshotCollector", "TenantSnapshot"]
