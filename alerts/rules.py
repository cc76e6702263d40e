"""Recording rules and alerts, built from alerts.config.

Every alert has `severity` (critical, warning or info), a static `summary`, a templated
`description` that ends with the next action (a command or a decision, tenant filled in), and a
`runbook_url` opening its own `## <AlertName>` section of alerts/runbook.md: as the exporter
serves it (`<exporter URL>/runbook#<alert>`), or on a repository browser when a base URL is given.
Recording rules are named `level:metric:operations`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from alerts import config as c

# Go-template fragments of alert descriptions.
TENANT = "{{ $labels.tenant }}"
REASON = "{{ $labels.reason }}"
COLLECTOR = "{{ $labels.collector }}"
ENDPOINT = "{{ $labels.endpoint }}"
OBJECT_TYPE = "{{ $labels.object_type }}"
VALUE_DURATION = "{{ $value | humanizeDuration }}"
CLI = "entra-dg-exporter"


def runbook_base_url(url: str) -> str:
    """A base URL for runbook links, checked and without a trailing slash ('' stays '': links
    relative to the repository). Raises ValueError naming the problem and the fix."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"runbook base URL {url!r} is not an http(s) URL with a host: give where the "
            "repository's files are browsed, e.g. https://github.com/OWNER/REPO/blob/main"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"runbook base URL {url!r} has a query or fragment: give the URL of the repository's "
            f"top level; {c.RUNBOOK_PATH}#<alert> is appended to it"
        )
    return url.rstrip("/")


def exporter_url(url: str) -> str:
    """The exporter's address for runbook links, checked and without a trailing slash. Raises
    ValueError naming the problem and the fix."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"exporter URL {url!r} is not an http(s) URL with a host and nothing after the path: "
            f"give the address on-call's browser reaches the exporter at, e.g. {c.EXPORTER_URL}"
        )
    return url.rstrip("/")


def runbook_url(alert_name: str, base_url: str = "", exporter: str = c.EXPORTER_URL) -> str:
    """`<exporter>/runbook#<alert name in lower case>`, the runbook the exporter serves; with a
    base URL (a repository browser) `<base_url>/alerts/runbook.md#<alert name in lower case>`."""
    fragment = alert_name.lower()
    base = runbook_base_url(base_url)
    if base:
        return f"{base}/{c.RUNBOOK_PATH}#{fragment}"
    return f"{exporter_url(exporter)}{c.EXPORTER_RUNBOOK_ROUTE}#{fragment}"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Alert:
    name: str
    severity: Severity
    expr: str
    for_seconds: int
    summary: str
    description: str
    next_action: str = ""
    """What to do next, a command or a decision with the tenant filled in: the description ends
    with it ("Next: ..."), so the notification alone says what to do."""
    keep_firing_seconds: int = 0
    """`keep_firing_for`: a noisy estimate dipping under its threshold for a few minutes does
    not resolve the alert and notify again when it comes back."""

    def __post_init__(self) -> None:
        if not self.name.startswith("EntraDynamic") or not self.name.isalnum():
            raise ValueError(f"alert {self.name!r}: names are CamelCase with prefix EntraDynamic")
        if "{{" in self.summary:
            raise ValueError(
                f"alert {self.name}: the summary is static; templates go in the description"
            )
        if "{{" not in self.description:
            raise ValueError(f"alert {self.name}: the description must be templated")
        if not self.next_action:
            raise ValueError(f"alert {self.name}: say what to do next (next_action)")

    @property
    def full_description(self) -> str:
        return f"{self.description} Next: {self.next_action}"

    def runbook_url(self, base_url: str = "", exporter: str = c.EXPORTER_URL) -> str:
        return runbook_url(self.name, base_url, exporter)

    def to_rule(
        self,
        for_override: str | None = None,
        runbook_base_url: str = "",
        exporter: str = c.EXPORTER_URL,
    ) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_seconds:
            rule["for"] = for_override or c.promql_duration(self.for_seconds)
        if self.keep_firing_seconds:
            rule["keep_firing_for"] = c.promql_duration(self.keep_firing_seconds)
        rule["labels"] = {"severity": self.severity.value}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.full_description,
            "runbook_url": self.runbook_url(runbook_base_url, exporter),
        }
        return rule


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        level, _, rest = self.record.partition(":")
        metric, _, operations = rest.partition(":")
        if not (level and metric and operations) or ":" in operations:
            raise ValueError(f"recording rule {self.record!r} is not level:metric:operations")

    def to_rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"record": self.record, "expr": self.expr}
        if self.labels:
            rule["labels"] = dict(self.labels)
        return rule


def sel(metric: str, *matchers: str) -> str:
    """`metric{<EXPORTER_SELECTOR>, <matchers>}`."""
    return f"{metric}{{{', '.join((c.EXPORTER_SELECTOR, *matchers))}}}"


def age_expr(clock: str, timestamps: str) -> str:
    """How old `timestamps` (aggregated `by (tenant, ...)`) are in the tenant's clock: `clock`
    selects entra_dynamic_tenant_time_seconds, read at the same scrape. Never `time() - ...`:
    Prometheus's clock is not the tenant's under the demo (exporter/runtime/tenant_time.py)."""
    return f"max by (tenant) ({clock})\n- on (tenant) group_right\n{timestamps}"


TENANT_TIME = "entra_dynamic_tenant_time_seconds"


def one_of(label: str, values: tuple[str, ...]) -> str:
    return f'{label}=~"{"|".join(values)}"'


def _lag_quantile_rule(quantile: float) -> Recording:
    return Recording(
        record=LAG_QUANTILE_RECORD,
        expr=(
            f"histogram_quantile({quantile}, sum by (tenant, le) (\n"
            f"  rate({sel('entra_dynamic_processing_lag_seconds_bucket')}"
            f"[{c.PROCESSING_LAG_WINDOW}])\n))"
        ),
        labels={"quantile": str(quantile)},
    )


W = c.RATE_WINDOW
GRAPH_RATE_RECORD = f"tenant_endpoint_code:entra_dynamic_graph_requests:rate{W}"
THROTTLED_RATIO_RECORD = f"tenant_endpoint:entra_dynamic_graph_requests_throttled:ratio_rate{W}"
LAG_QUANTILE_RECORD = (
    "tenant_quantile:entra_dynamic_processing_lag_seconds:"
    f"histogram_quantile_rate{c.PROCESSING_LAG_WINDOW}"
)
MEMBERSHIP_RATE_RECORD = f"tenant:entra_dynamic_membership_changes:rate{W}"
MANUAL_RATE_RECORD = f"tenant:entra_dynamic_manual_membership_changes:rate{W}"
AUDIT_EVENTS_RATE_RECORD = f"tenant_kind:entra_dynamic_audit_events:rate{W}"
GROUPS_BY_STATE_RECORD = "tenant_state:entra_dynamic_groups:sum"

RECORDING_RULES: tuple[Recording, ...] = (
    Recording(
        MEMBERSHIP_RATE_RECORD,
        f"sum by (tenant) (rate({sel('entra_dynamic_membership_changes_total')}[{W}]))",
    ),
    Recording(
        MANUAL_RATE_RECORD,
        f"sum by (tenant) (rate({sel('entra_dynamic_manual_membership_changes_total')}[{W}]))",
    ),
    Recording(
        AUDIT_EVENTS_RATE_RECORD,
        f"sum by (tenant, kind) (rate({sel('entra_dynamic_audit_events_total')}[{W}]))",
    ),
    Recording(
        GROUPS_BY_STATE_RECORD,
        f"sum by (tenant, state) ({sel('entra_dynamic_groups')})",
    ),
    Recording(
        GRAPH_RATE_RECORD,
        f"sum by (tenant, endpoint, code) (rate({sel('entra_dynamic_graph_requests_total')}[{W}]))",
    ),
    # 0 rather than no series while no request was throttled, so graphs and tests see the ratio.
    Recording(
        THROTTLED_RATIO_RECORD,
        f'(\n  sum by (tenant, endpoint) ({GRAPH_RATE_RECORD}{{code="429"}})\n'
        f"  or\n  0 * sum by (tenant, endpoint) ({GRAPH_RATE_RECORD})\n)\n"
        f"/\nsum by (tenant, endpoint) ({GRAPH_RATE_RECORD})",
    ),
    *(_lag_quantile_rule(q) for q in c.PROCESSING_LAG_QUANTILES),
)


PAUSE_IN_EFFECT = f"max by (tenant) ({sel('entra_dynamic_pause_started_timestamp_seconds')}) > 0"
"""Tenants inside a pause episode (the exporter exports 0 or nothing when there is none)."""

_PAUSE_WARRANTED = (
    f"(\n  max by (tenant, reason) (\n"
    f"    {sel('entra_dynamic_pause_warranted', one_of('reason', c.PAUSE_REASONS))}\n"
    f"  ) == 1\n)\nunless on (tenant)\n({PAUSE_IN_EFFECT})"
)

_CRITICAL_PAUSED = sel("entra_dynamic_group_paused_since_timestamp_seconds", 'critical="true"')
_CRITICAL_PAUSED_STATE = sel("entra_dynamic_group_paused", 'critical="true"')
_CRITICAL_PAUSED_UNKNOWN_SINCE = (
    "max by (tenant, group_id, group_name) (\n"
    f"  {_CRITICAL_PAUSED_STATE}\n"
    ") == 1\n"
    "unless on (tenant, group_id)\n"
    f"{sel('entra_dynamic_group_paused_since_timestamp_seconds')}"
)
"""Critical groups paused at a time nobody knows (already paused when first listed): the
paused-since form cannot see them, so their pause is timed by Prometheus (`for:`)."""
_STALLED = sel("entra_dynamic_pause_warranted", 'reason="processing_stalled"')
_PROBE_TIMED_OUT = sel("entra_dynamic_probe_rounds_total", 'outcome="timed_out"')
_DENIED = sel("entra_dynamic_graph_requests_total", 'code=~"401|403"')


def _signal_value(metric: str, filter_: str = "humanize") -> str:
    """The pause signal's own figure for this alert's tenant and reason (a query at alert time:
    the alert's value is the 0/1 of pause_warranted)."""
    selector = sel(metric, 'tenant="%s"', 'reason="%s"')
    return (
        f"{{{{ with printf `{selector}` $labels.tenant $labels.reason | query }}}}"
        f"{{{{ . | first | value | {filter_} }}}}{{{{ else }}}}?{{{{ end }}}}"
    )


_OBSERVED = _signal_value("entra_dynamic_pause_signal_observed")
_THRESHOLD = _signal_value("entra_dynamic_pause_signal_threshold")
_REASON_FIGURES = (
    '{{ if eq $labels.reason "membership_changes" }}'
    f"{_OBSERVED} dynamic membership changes in the trailing hour, at or above {_THRESHOLD}. "
    f"Microsoft advises pausing before more than {c.MEMBERSHIP_CHANGES_PER_HOUR:,} membership "
    "changes."
    '{{ else if eq $labels.reason "groups_changed" }}'
    f"{_OBSERVED} groups had a dynamic membership change in the trailing hour, at or above "
    f"{_THRESHOLD}. Microsoft advises pausing before changes to more than "
    f"{c.GROUPS_CHANGED_PER_HOUR} groups."
    '{{ else if eq $labels.reason "trigger_rate" }}'
    f"Rule-relevant user and device changes run at {_OBSERVED}x their baseline (threshold "
    f"{_THRESHOLD}x, sustained): a bulk update builds a queue that Entra works through in order."
    '{{ else if eq $labels.reason "rule_change_storm" }}'
    f"{_OBSERVED} membership rule changes in the trailing hour, at or above {_THRESHOLD}: each "
    "queues a full re-evaluation of its group."
    "{{ end }}"
)
"""Each reason's own observed value and threshold (#23), and Microsoft's 500 groups and 20,000
changes only where they are the threshold."""

_HEADROOM_USED = (
    f"sum by (tenant) ({sel('entra_dynamic_groups')})\n"
    f"/ on (tenant)\nmax by (tenant) ({sel('entra_dynamic_object_limit')})"
)
"""The share of Entra's limit of dynamic groups and units a tenant uses (every kind and state)."""


def _headroom_alert(severity: Severity, ratio: float, consequence: str) -> Alert:
    return Alert(
        name="EntraDynamicGroupLimitApproaching",
        severity=severity,
        expr=f"{_HEADROOM_USED}\n> {ratio:g}",
        for_seconds=c.HEADROOM_FOR,
        summary="The tenant approaches Entra's limit of dynamic groups.",
        description=(
            f"Tenant {TENANT}: dynamic groups and dynamic administrative units use "
            f"{{{{ $value | humanizePercentage }}}} of the tenant's limit "
            f"({c.DYNAMIC_OBJECT_LIMIT:,} by default), above {ratio:.0%}. {consequence} "
            'Microsoft: "Regularly review the number of groups in your tenant. Delete inactive '
            'or outdated groups."'
        ),
        next_action=(
            f"`{CLI} lint-rules --config.file <config> --tenant {TENANT}` lists the candidates "
            "(inactive, empty, never matching, duplicate, memberOf) with their evidence; delete "
            "or merge them, nothing is deleted for you."
        ),
    )


_QUEUE_WAITING = sel("entra_dynamic_processing_queue_waiting_triggers")
_QUEUE_DRAIN = sel("entra_dynamic_processing_queue_drain_seconds")


_WAITING_IN_AN_HOUR = (
    f"max by (tenant) (predict_linear({_QUEUE_WAITING}[{c.QUEUE_PROJECTION_WINDOW}], 3600))"
)
_QUEUE_GROWING = (
    "(\n"
    f"  max by (tenant) ({_QUEUE_DRAIN}) > {c.QUEUE_GROWING_FROM_SECONDS}\n"
    "  and on (tenant)\n"
    f"  {_WAITING_IN_AN_HOUR}\n"
    f"  * on (tenant) max by (tenant) ({_QUEUE_DRAIN})\n"
    f"  / on (tenant) max by (tenant) ({_QUEUE_WAITING})\n"
    f"  > {c.QUEUE_WARNING_DRAIN_SECONDS}\n"
    f"  and on (tenant)\n  {_WAITING_IN_AN_HOUR} >= {c.QUEUE_MIN_WAITING}\n"
    ")"
)
"""The queue grows: the changes waiting an hour from now, at their growth over the projection
window, would take over an hour to drain at the present rate (drain / waiting is the time one
waiting change takes). A slow creep adds a few changes a minute: its present drain time stays
under an hour for most of an hour, its growth shows within minutes (bench/RESULTS.md)."""


def _queue_alert(severity: Severity, drain_seconds: int, for_seconds: int) -> Alert:
    """The queue still waiting will take longer than `drain_seconds` to drain (#23)."""
    paging = severity is Severity.CRITICAL
    drain = f"max by (tenant) ({_QUEUE_DRAIN})"
    projected = (
        f"max by (tenant) (predict_linear({_QUEUE_DRAIN}[{c.QUEUE_PROJECTION_WINDOW}], 3600))"
    )
    # Now, or within the hour at the present growth once the backlog is already sizeable.
    already = c.QUEUE_WARNING_DRAIN_SECONDS if paging else c.QUEUE_PROJECTION_FROM_SECONDS
    long_drain = (
        f"(\n    {drain} > {drain_seconds}\n    or\n    ({drain} > {already} "
        f"and on (tenant) {projected} > {drain_seconds})\n  )"
    )
    backlog = (
        f"(\n  {long_drain}\n"
        f"  and on (tenant)\n  max by (tenant) ({_QUEUE_WAITING}) >= {c.QUEUE_MIN_WAITING}\n)"
    )
    if not paging:
        backlog = f"(\n{backlog}\nor\n{_QUEUE_GROWING}\n)"
    return Alert(
        name="EntraDynamicQueueBacklog",
        severity=severity,
        expr=f"{backlog}\nunless on (tenant)\n({PAUSE_IN_EFFECT})",
        for_seconds=for_seconds,
        keep_firing_seconds=c.QUEUE_KEEP_FIRING_FOR,
        summary="Dynamic membership work is queueing faster than Entra processes it.",
        description=(
            f"Tenant {TENANT}: the changes waiting for dynamic membership processing will take "
            f"about {VALUE_DURATION} to drain at the recent rate, more than "
            f"{c.human_duration(drain_seconds)} now or within the hour at its present growth, "
            "and nothing is paused. "
            + _signal_query("entra_dynamic_processing_queue_waiting_triggers", 'printf "%.0f"')
            + " changes wait (entra_dynamic_processing_queue_*). Entra works through one queue "
            "per tenant, in order: every group waits behind this backlog."
        ),
        next_action=(
            f"pause now: `{CLI} pause --tenant {TENANT} --all --except-critical --reason '<why>' "
            "--apply` (without --apply: what it would pause)."
            if paging
            else f"find the bulk change (`{CLI} check-resume --tenant {TENANT} --json` shows the "
            f"trigger causes); if it is planned and large, or unintended, `{CLI} pause --tenant "
            f"{TENANT} --all --except-critical --reason '<why>' --apply`."
        ),
    )


def _signal_query(metric: str, filter_: str) -> str:
    """A tenant's value of another series, read at alert time."""
    selector = sel(metric, 'tenant="%s"')
    return (
        f"{{{{ with printf `{selector}` $labels.tenant | query }}}}"
        f"{{{{ . | first | value | {filter_} }}}}{{{{ else }}}}?{{{{ end }}}}"
    )


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="EntraDynamicPauseWarranted",
        severity=Severity.WARNING,
        expr=_PAUSE_WARRANTED,
        for_seconds=c.PAUSE_WARRANTED_WARNING_FOR,
        summary="Pausing dynamic group processing is warranted.",
        description=(
            f"Tenant {TENANT}: the exporter's {REASON} signal has warranted pausing dynamic group "
            f"processing for {c.human_duration(c.PAUSE_WARRANTED_WARNING_FOR)} and no pause is in "
            f"effect. {_REASON_FIGURES}"
        ),
        next_action=(
            f"`{CLI} plan --tenant {TENANT}`; if the change is planned and large, or unintended, "
            f"`{CLI} pause --tenant {TENANT} --all --except-critical --reason '<why>' --apply`."
        ),
    ),
    Alert(
        name="EntraDynamicPauseWarranted",
        severity=Severity.CRITICAL,
        expr=_PAUSE_WARRANTED,
        for_seconds=c.PAUSE_WARRANTED_CRITICAL_FOR,
        summary="Pausing dynamic group processing is warranted.",
        description=(
            f"Tenant {TENANT}: the exporter's {REASON} signal has warranted pausing dynamic group "
            f"processing for {c.human_duration(c.PAUSE_WARRANTED_CRITICAL_FOR)} and still nothing "
            f"is paused. {_REASON_FIGURES} Entra processes one queue per tenant, in order; every "
            "further hour adds "
            "to a backlog that can take more than 24 hours to drain (Microsoft)."
        ),
        next_action=(
            f"pause now: `{CLI} pause --tenant {TENANT} --all --except-critical --reason '<why>' "
            "--apply` (without --apply: what it would pause)."
        ),
    ),
    Alert(
        name="EntraDynamicResumeReady",
        severity=Severity.INFO,
        expr=(
            f"(max by (tenant) ({sel('entra_dynamic_resume_ready')}) == 1)\n"
            f"and on (tenant)\n({PAUSE_IN_EFFECT})"
        ),
        for_seconds=c.RESUME_READY_FOR,
        summary="It is safe to resume dynamic group processing.",
        description=(
            f"Tenant {TENANT}: every resume condition has held for "
            f"{c.human_duration(c.RESUME_READY_FOR)}: the pause is older than the minimum "
            f"({c.human_duration(c.MINIMUM_PAUSE_SECONDS)} by default), the trigger rate is back "
            f"within {c.RECOVERY_TOLERANCE:g}x its baseline, the audit data is fresh and no "
            "critical group reports a failed status. Resume critical groups first, then the "
            "rest in batches."
        ),
        next_action=(
            f"`{CLI} plan --tenant {TENANT}`, then `{CLI} resume --tenant {TENANT} --group "
            f"<critical ids> --apply`, then `{CLI} resume --tenant {TENANT} --non-critical "
            "--all-batches --apply`."
        ),
    ),
    Alert(
        name="EntraDynamicPausedTooLong",
        severity=Severity.WARNING,
        expr=(
            "(\n"
            + age_expr(
                sel(TENANT_TIME),
                f"max by (tenant) ({sel('entra_dynamic_pause_started_timestamp_seconds')} > 0)",
            )
            + f"\n) > {c.PAUSED_TOO_LONG_SECONDS}"
        ),
        for_seconds=15 * 60,
        summary="Dynamic group processing has been paused for too long.",
        description=(
            f"Tenant {TENANT}: dynamic group processing has been paused for {VALUE_DURATION}, "
            f"more than {c.human_duration(c.PAUSED_TOO_LONG_SECONDS)}. The memberships of the "
            "paused groups are frozen while users and devices keep changing."
        ),
        next_action=(
            f"`{CLI} check-resume --tenant {TENANT}` says what blocks the resume; decide: "
            f"resume (`{CLI} resume --tenant {TENANT} --non-critical --apply`) or keep the "
            "pause and record why in the incident."
        ),
    ),
    Alert(
        name="EntraDynamicCriticalGroupPausedTooLong",
        severity=Severity.CRITICAL,
        expr=(
            "(\n"
            + age_expr(
                sel(TENANT_TIME), f"max by (tenant, group_id, group_name) ({_CRITICAL_PAUSED})"
            )
            + f"\n) > {c.CRITICAL_GROUP_PAUSED_TOO_LONG_SECONDS}"
        ),
        for_seconds=15 * 60,
        summary="A critical dynamic group has been paused for too long.",
        description=(
            "Critical group {{ $labels.group_name }} ({{ $labels.group_id }}) in tenant "
            f"{TENANT} has been paused for {VALUE_DURATION}, more than "
            f"{c.human_duration(c.CRITICAL_GROUP_PAUSED_TOO_LONG_SECONDS)}. Microsoft advises "
            "resuming critical groups first."
        ),
        next_action=(
            f"`{CLI} resume --tenant {TENANT} --group {{{{ $labels.group_id }}}} --apply` (if "
            "readiness blocks and the group cannot wait, add --force --reason '<why>')."
        ),
    ),
    Alert(
        name="EntraDynamicCriticalGroupPausedTooLong",
        severity=Severity.CRITICAL,
        expr=_CRITICAL_PAUSED_UNKNOWN_SINCE,
        for_seconds=c.CRITICAL_GROUP_PAUSED_UNKNOWN_SINCE_FOR,
        summary="A critical dynamic group has been paused for too long.",
        description=(
            "Critical group {{ $labels.group_name }} ({{ $labels.group_id }}) in tenant "
            f"{TENANT} has been paused for at least "
            f"{c.human_duration(c.CRITICAL_GROUP_PAUSED_UNKNOWN_SINCE_FOR)} as the exporter saw "
            "it; when the pause began is unknown (it was already paused when the exporter first "
            "listed it). Microsoft advises resuming critical groups first."
        ),
        next_action=(
            f"`{CLI} resume --tenant {TENANT} --group {{{{ $labels.group_id }}}} --apply` (if "
            "readiness blocks and the group cannot wait, add --force --reason '<why>')."
        ),
    ),
    Alert(
        name="EntraDynamicTriggerRateAnomaly",
        severity=Severity.WARNING,
        expr=(
            "max by (tenant, object_type) (\n"
            f"  {sel('entra_dynamic_object_changes_deviation_ratio')}\n"
            f") >= {c.TRIGGER_ANOMALY_FACTOR:g}\n"
            "and on (tenant, object_type)\n"
            "max by (tenant, object_type) (\n"
            f"  {sel('entra_dynamic_object_changes_last_hour')}\n"
            f") >= {c.TRIGGER_ANOMALY_MIN_PER_HOUR}\n"
            "and on (tenant)\n"
            f"max by (tenant) ({_QUEUE_WAITING}) >= {c.TRIGGER_ANOMALY_MIN_WAITING}"
        ),
        for_seconds=c.TRIGGER_ANOMALY_FOR,
        summary="User or device changes run far above their baseline.",
        description=(
            f"Tenant {TENANT}: {OBJECT_TYPE} changes, which make Entra re-evaluate dynamic "
            "membership rules, have run at {{ $value | humanize }}x their baseline for "
            f"{c.human_duration(c.TRIGGER_ANOMALY_FOR)} (warning at {c.TRIGGER_ANOMALY_FACTOR:g}x; "
            f"the exporter warrants a pause at {c.TRIGGER_RATE_FACTOR:g}x). A bulk update may be "
            "under way."
        ),
        next_action=(
            f"find the bulk update's source (HR sync, script, migration); if it is planned and "
            f"large, `{CLI} plan --tenant {TENANT}`, then `{CLI} pause --tenant {TENANT} --all "
            "--except-critical --reason '<why>' --apply`."
        ),
    ),
    Alert(
        name="EntraDynamicProcessingStalled",
        severity=Severity.CRITICAL,
        expr=(
            "(\n  max by (tenant) (\n"
            f"    {_STALLED}\n"
            f"  ) == 1\n)\nunless on (tenant)\n({PAUSE_IN_EFFECT})"
        ),
        for_seconds=c.PROCESSING_STALLED_FOR,
        summary="Dynamic group processing has stalled.",
        description=(
            f"Tenant {TENANT}: users and devices keep changing but dynamic group processing has "
            "made no membership change for longer than the exporter's stall bound "
            "(thresholds.stall_after, 3 hours by default), and nothing is paused."
        ),
        next_action=(
            f"`{CLI} check-resume --tenant {TENANT}` (rule out a failing collector), then "
            f"`{CLI} pause --tenant {TENANT} --all --except-critical --reason 'stalled' --apply` "
            "and open a Microsoft support case."
        ),
    ),
    Alert(
        name="EntraDynamicProcessingLagHigh",
        severity=Severity.WARNING,
        expr=(
            f'{LAG_QUANTILE_RECORD}{{quantile="{c.PROCESSING_LAG_QUANTILE}"}}\n'
            f"> {c.PROCESSING_LAG_SECONDS}"
        ),
        for_seconds=c.PROCESSING_LAG_FOR,
        summary="Dynamic membership changes lag far behind the changes that trigger them.",
        description=(
            f"Tenant {TENANT}: the {{{{ $labels.quantile }}}} quantile of the delay from a user "
            "or device change to the membership change it caused was "
            f"{VALUE_DURATION} over the last {c.PROCESSING_LAG_WINDOW}, above "
            f"{c.human_duration(c.PROCESSING_LAG_SECONDS)}. Microsoft: changes are typically "
            "processed within a few hours."
        ),
        next_action=(
            f"`{CLI} lint-rules --tenant {TENANT}` for slow rules; decide whether to pause: "
            f"`{CLI} pause --tenant {TENANT} --all --except-critical --reason '<why>' --apply`."
        ),
    ),
    Alert(
        name="EntraDynamicExporterAbsent",
        severity=Severity.WARNING,
        # absent() names the job when no target exists; max == 0 when every target is down.
        expr=(f"absent({sel('up')})\nor\nmax by (job) ({sel('up')}) == 0"),
        for_seconds=c.EXPORTER_ABSENT_FOR,
        summary="The entra-dg-exporter is down or not scraped.",
        description=(
            "Prometheus has had no successful scrape of job {{ $labels.job }} for "
            f"{c.human_duration(c.EXPORTER_ABSENT_FOR)}: the target is missing from the "
            "configuration or every instance is down. While it is absent no pause-warranted or "
            "resume-ready alert can fire."
        ),
        next_action=(
            "start the exporter of job {{ $labels.job }} (Prometheus: Status > Targets); if it "
            f"exits at start, `{CLI} config check <its config file>` names the problem."
        ),
    ),
    Alert(
        name="EntraDynamicCollectorFailing",
        severity=Severity.WARNING,
        expr=(f"min by (tenant, collector) ({sel('entra_dynamic_collector_success')}) == 0"),
        for_seconds=c.COLLECTOR_FAILING_FOR,
        summary="An exporter collector keeps failing to poll Microsoft Graph.",
        description=(
            f"The {COLLECTOR} collector of tenant {TENANT} has failed its polls for "
            f"{c.human_duration(c.COLLECTOR_FAILING_FOR)}. The metrics it feeds are frozen and "
            "resuming is blocked until it recovers."
        ),
        next_action=(
            f"`{CLI} check-resume --tenant {TENANT}` shows the {COLLECTOR} collector's last "
            f"error; fix it (credentials: `{CLI} config check <config file>`); do not resume "
            "until it recovers."
        ),
    ),
    Alert(
        name="EntraDynamicAuditDataStale",
        severity=Severity.WARNING,
        expr=(
            "(\n"
            + age_expr(
                sel(TENANT_TIME),
                f"max by (tenant) ({sel('entra_dynamic_audit_watermark_timestamp_seconds')})",
            )
            + f"\n) > {c.WATERMARK_MAX_AGE_SECONDS}"
        ),
        for_seconds=c.AUDIT_DATA_STALE_FOR,
        summary="The exporter's view of the audit log is stale.",
        description=(
            f"Tenant {TENANT}: the audit log is ingested only up to {VALUE_DURATION} ago "
            f"(bound: {c.human_duration(c.WATERMARK_MAX_AGE_SECONDS)}). Every signal computed "
            "from it is out of date and resume readiness is blocked."
        ),
        next_action=(
            f"`{CLI} check-resume --tenant {TENANT}` (audit_data_stale among the blockers); fix "
            "the audit collector first (EntraDynamicCollectorFailing); do not resume on stale data."
        ),
    ),
    Alert(
        name="EntraDynamicGraphThrottling",
        severity=Severity.WARNING,
        expr=f"{THROTTLED_RATIO_RECORD} > {c.GRAPH_THROTTLED_RATIO:g}",
        for_seconds=c.GRAPH_THROTTLED_FOR,
        summary="Microsoft Graph keeps throttling the exporter.",
        description=(
            f"Tenant {TENANT}: {{{{ $value | humanizePercentage }}}} of the {ENDPOINT} requests "
            f"were throttled (HTTP 429) over the last {W}, for "
            f"{c.human_duration(c.GRAPH_THROTTLED_FOR)}. The exporter paces itself under Graph's "
            f"limit of {c.AUDIT_REQUESTS_PER_10S} audit-log requests per 10 seconds per app and "
            "tenant, so another client shares the app's budget or the pacing is misconfigured."
        ),
        next_action=(
            f"find the other client using the app registration of tenant {TENANT} (a second "
            f"exporter, a script) and stop it; `{CLI} config check <config file>` shows "
            "polling.audit_requests_per_10s, lower it if the app is shared on purpose."
        ),
    ),
    Alert(
        name="EntraDynamicGraphPermissionDenied",
        severity=Severity.WARNING,
        expr=(
            "sum by (tenant, endpoint, code) (\n"
            f"  increase({_DENIED}"
            f"[{c.PERMISSION_ERROR_WINDOW}])\n) > 0"
        ),
        for_seconds=c.PERMISSION_ERROR_FOR,
        summary="Microsoft Graph refuses the exporter's credentials or permissions.",
        description=(
            "Tenant "
            f"{TENANT}: Microsoft Graph answered {{{{ $labels.code }}}} to about "
            '{{ $value | printf "%.0f" }} '
            f"{ENDPOINT} requests in the last {c.PERMISSION_ERROR_WINDOW}. 403: the app "
            "registration lacks a permission or admin consent; 401: its credential or token was "
            "rejected."
        ),
        next_action=(
            f"grant the app registration of tenant {TENANT} the permissions and admin consent "
            f"the runbook lists, then `{CLI} config check <config file>`."
        ),
    ),
    Alert(
        name="EntraDynamicProbeLatencyHigh",
        severity=Severity.WARNING,
        expr=(
            f"max by (tenant) ({sel('entra_dynamic_probe_round_age_seconds')})\n"
            f"> {c.PROBE_LATENCY_SECONDS}"
        ),
        for_seconds=c.PROBE_LATENCY_FOR,
        summary="The canary probe's change has waited too long for its membership change.",
        description=(
            f"Tenant {TENANT}: the canary probe changed its canary {VALUE_DURATION} ago and the "
            "canary group's membership has not followed yet, longer than "
            f"{c.human_duration(c.PROBE_LATENCY_SECONDS)}. This is measured, not estimated: a "
            "change made now waits at least this long. Microsoft: changes are typically "
            "processed within a few hours."
        ),
        next_action=(
            f"`{CLI} check-resume --tenant {TENANT}` (processing_keeping_up and the estimated "
            f"lag); if a bulk change is running, `{CLI} pause --tenant {TENANT} --all "
            "--except-critical --reason '<why>' --apply` (the canary group stays on)."
        ),
    ),
    Alert(
        name="EntraDynamicProbeTimedOut",
        severity=Severity.WARNING,
        expr=(
            f"sum by (tenant) (\n  increase({_PROBE_TIMED_OUT}[{c.PROBE_TIMEOUT_WINDOW}])\n) > 0"
        ),
        for_seconds=c.PROBE_TIMED_OUT_FOR,
        summary="A canary probe round timed out: its membership change never appeared.",
        description=(
            f"Tenant {TENANT}: about " + '{{ $value | printf "%.0f" }} '
            "canary probe round(s) ended without "
            f"the canary group's membership change in the last {c.PROBE_TIMEOUT_WINDOW} (probe "
            "timeout: 6 hours by default), and the canary group was not paused. Processing is "
            "stalled or the queue is longer than the timeout."
        ),
        next_action=(
            f"`{CLI} check-resume --tenant {TENANT}`; check that the canary group's rule still "
            f"selects the canary (`{CLI} config check <config file>`), then treat it as "
            "EntraDynamicProcessingStalled."
        ),
    ),
    _headroom_alert(
        Severity.WARNING,
        c.HEADROOM_WARNING_RATIO,
        "Every dynamic group is evaluated on every relevant change, so each one also slows "
        "processing for the whole tenant.",
    ),
    _headroom_alert(
        Severity.CRITICAL,
        c.HEADROOM_CRITICAL_RATIO,
        "At the limit no dynamic group or unit can be created.",
    ),
    *(
        _queue_alert(Severity.WARNING, c.QUEUE_WARNING_DRAIN_SECONDS, c.QUEUE_WARNING_FOR),
        _queue_alert(Severity.CRITICAL, c.QUEUE_CRITICAL_DRAIN_SECONDS, c.QUEUE_CRITICAL_FOR),
        Alert(
            name="EntraDynamicStormMidResume",
            severity=Severity.WARNING,
            expr=f"max by (tenant) ({sel('entra_dynamic_mid_resume_groups_on')}) > 0",
            for_seconds=c.MID_RESUME_FOR,
            summary="Triggers climb again while part of the paused groups are back On.",
            description=(
                f"Tenant {TENANT}: user and device changes climb again while {{{{ $value }}}} "
                "groups of the pause episode are already back On; they take the new work into "
                "the queue the pause was draining."
            ),
            next_action=(
                f"pause exactly those groups again: `{CLI} pause --tenant {TENANT} --resumed "
                "--reason 'triggers climbed again mid-resume' --apply` (without --apply: which "
                "ones); resume them with the rest once readiness holds."
            ),
        ),
    ),
)

ALERT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(a.name for a in ALERTS))


def recording_groups() -> dict[str, Any]:
    return {
        "groups": [{"name": "entra-dynamic.rules", "rules": [r.to_rule() for r in RECORDING_RULES]}]
    }


def alert_groups(
    for_override: str | None = None, runbook_base_url: str = "", exporter: str = c.EXPORTER_URL
) -> dict[str, Any]:
    """The alerting rules; `for_override` replaces every `for:` (e.g. '10s' for an end-to-end
    test that cannot wait 15 minutes of wall time); every `runbook_url` opens the runbook the
    exporter at `exporter` serves, or with `runbook_base_url` a repository browser's copy."""
    return {
        "groups": [
            {
                "name": "entra-dynamic.alerts",
                "rules": [a.to_rule(for_override, runbook_base_url, exporter) for a in ALERTS],
            }
        ]
    }
