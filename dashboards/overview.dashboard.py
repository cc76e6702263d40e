"""Overview: is a pause warranted, is it safe to resume, and why; rates against their baselines;
processing lag; the exporter's own health. Generated into dashboards/json/overview.json by
`python -m dashboards.build`."""

from collections.abc import Mapping

from alerts import config as c
from alerts import rules
from dashboards.common import (
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    RED,
    dashboard,
    heatmap,
    metric,
    pos,
    recorded,
    row,
    stat,
    state_timeline,
    steps,
    target,
    targets,
    timeseries,
    value_text,
)

RATE = "[$__rate_interval]"
PAUSE_STARTED = metric("entra_dynamic_pause_started_timestamp_seconds")
PAUSED_GROUPS = metric("entra_dynamic_groups", 'state="paused"')
CRITICAL_PAUSED = metric("entra_dynamic_group_paused_since_timestamp_seconds", 'critical="true"')
TENANT_TIME = metric(rules.TENANT_TIME)
"""Ages are measured against the tenant's clock (rules.age_expr), never `time()`."""
DASHED = {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}
DOTTED = {"id": "custom.lineStyle", "value": {"fill": "dot", "dash": [0, 10]}}
NO_FILL = {"id": "custom.fillOpacity", "value": 0}


def by_ref(ref: str, *properties: Mapping[str, object]) -> dict[str, object]:
    return {"matcher": {"id": "byFrameRefID", "options": ref}, "properties": list(properties)}


status_panels = [
    row("Pause and resume", 0),
    stat(
        "Pause warranted",
        "1 while any of the exporter's pause-warranted reasons holds "
        "(entra_dynamic_pause_warranted). The reasons are on the right; the runbook explains each.",
        [target(f"max by (tenant) ({metric('entra_dynamic_pause_warranted')})", "{{tenant}}")],
        "none",
        pos(0, 1, 4, 5),
        thresholds=steps((GREEN, None), (RED, 1)),
        mappings=value_text({0: ("no", GREEN), 1: ("PAUSE", RED)}),
    ),
    state_timeline(
        "Pause-warranted reasons",
        "Each reason of entra_dynamic_pause_warranted over time. membership_changes: >= "
        f"{c.MEMBERSHIP_CHANGES_PER_HOUR:,} dynamic changes in the trailing hour; "
        f"groups_changed: >= {c.GROUPS_CHANGED_PER_HOUR} groups changed in the trailing hour "
        "(Microsoft's figures); "
        f"trigger_rate: user/device changes >= {c.TRIGGER_RATE_FACTOR:g}x baseline, sustained; "
        "processing_lag, processing_stalled, rule_change_storm.",
        [
            target(
                f"max by (tenant, reason) ({metric('entra_dynamic_pause_warranted')})",
                "{{tenant}} {{reason}}",
            )
        ],
        "none",
        pos(4, 1, 8, 5),
        mappings=value_text({0: ("no", GREEN), 1: ("warranted", RED)}),
        thresholds=steps((GREEN, None), (RED, 1)),
    ),
    stat(
        "Resume",
        "While a pause episode is in effect: READY when every resume condition holds "
        "(entra_dynamic_resume_ready), otherwise 'not yet' (see the blockers on the right).",
        [
            target(
                f"(max by (tenant) ({metric('entra_dynamic_resume_ready')})"
                f" and on (tenant) (max by (tenant) ({PAUSE_STARTED}) > 0))"
                f" or on (tenant) (0 * max by (tenant) ({PAUSE_STARTED}) + 2)",
                "{{tenant}}",
            )
        ],
        "none",
        pos(12, 1, 4, 5),
        thresholds=steps((ORANGE, None), (GREEN, 1), (GREY, 2)),
        mappings=value_text({0: ("not yet", ORANGE), 1: ("READY", GREEN), 2: ("no pause", GREY)}),
        no_value="no pause",  # the exporter may omit the pause-start series outside a pause
    ),
    state_timeline(
        "Resume blocked by",
        "Each condition that blocks resuming (entra_dynamic_resume_blocked): minimum_pause "
        f"({c.MINIMUM_PAUSE_SECONDS // 3600} h by default; Microsoft: 24 h, support article: "
        "12 h, which applies while the canary probe measures normal latency), "
        f"trigger_rate_recovery (triggers back within {c.RECOVERY_TOLERANCE:g}x baseline for "
        "consecutive hours), audit_data_stale, collector_failing, critical_group_failed, "
        "processing_keeping_up (the canary probe measures processing not keeping up).",
        [
            target(
                f"max by (tenant, reason) ({metric('entra_dynamic_resume_blocked')})",
                "{{tenant}} {{reason}}",
            )
        ],
        "none",
        pos(16, 1, 8, 5),
        mappings=value_text({0: ("clear", GREEN), 1: ("blocking", ORANGE)}),
        thresholds=steps((GREEN, None), (ORANGE, 1)),
    ),
    stat(
        "Paused for",
        "Age of the current pause episode (entra_dynamic_pause_started_timestamp_seconds, in "
        "the tenant's clock). Blue: "
        f"younger than the {c.MINIMUM_PAUSE_SECONDS // 3600} h minimum; red: older than "
        f"{c.PAUSED_TOO_LONG_SECONDS // 3600} h (EntraDynamicPausedTooLong).",
        [
            target(
                rules.age_expr(TENANT_TIME, f"max by (tenant) ({PAUSE_STARTED} > 0)"), "{{tenant}}"
            )
        ],
        "dtdurations",
        pos(0, 6, 4, 4),
        thresholds=steps(
            (BLUE, None), (GREEN, c.MINIMUM_PAUSE_SECONDS), (RED, c.PAUSED_TOO_LONG_SECONDS)
        ),
        no_value="not paused",
    ),
    stat(
        "Dynamic groups paused",
        "Dynamic groups and administrative units whose processing state is Paused "
        '(entra_dynamic_groups{state="paused"}).',
        [
            target(
                f"sum by (tenant) ({PAUSED_GROUPS})",
                "{{tenant}}",
            )
        ],
        "short",
        pos(4, 6, 4, 4),
        thresholds=steps((GREEN, None), (ORANGE, 1)),
    ),
    stat(
        "Critical groups paused",
        "Paused groups among the tenant's configured critical groups; Microsoft advises resuming "
        "them first.",
        [
            target(
                f"count by (tenant) ({CRITICAL_PAUSED})",
                "{{tenant}}",
            )
        ],
        "short",
        pos(8, 6, 4, 4),
        thresholds=steps((GREEN, None), (RED, 1)),
        no_value="none",
    ),
    stat(
        "Membership changes, trailing hour",
        "Dynamic membership changes whose activity time falls in the trailing hour. Microsoft: "
        f"pause before more than {c.MEMBERSHIP_CHANGES_PER_HOUR:,} membership changes.",
        [
            target(
                f"sum by (tenant) ({metric('entra_dynamic_membership_changes_last_hour')})",
                "{{tenant}}",
            )
        ],
        "short",
        pos(12, 6, 4, 4),
        thresholds=steps(
            (GREEN, None),
            (ORANGE, c.MEMBERSHIP_CHANGES_PER_HOUR // 2),
            (RED, c.MEMBERSHIP_CHANGES_PER_HOUR),
        ),
        graph=True,
    ),
    stat(
        "Groups changed, trailing hour",
        "Distinct groups with a dynamic membership change in the trailing hour. Microsoft: pause "
        f"before changes to more than {c.GROUPS_CHANGED_PER_HOUR} groups.",
        [
            target(
                f"sum by (tenant) ({metric('entra_dynamic_groups_changed_last_hour')})",
                "{{tenant}}",
            )
        ],
        "short",
        pos(16, 6, 4, 4),
        thresholds=steps(
            (GREEN, None),
            (ORANGE, c.GROUPS_CHANGED_PER_HOUR // 2),
            (RED, c.GROUPS_CHANGED_PER_HOUR),
        ),
        graph=True,
    ),
    stat(
        "Trigger rate vs baseline",
        "The larger of the user and device change deviations (trailing hour / baseline; 1 = "
        f"normal). Green: within {c.RECOVERY_TOLERANCE:g}x (back to baseline); red: at or above "
        f"{c.TRIGGER_RATE_FACTOR:g}x, where a sustained surge warrants a pause.",
        [
            target(
                f"max by (tenant) ({metric('entra_dynamic_object_changes_deviation_ratio')})",
                "{{tenant}}",
            )
        ],
        "suffix:x",
        pos(20, 6, 4, 4),
        thresholds=steps(
            (GREEN, None), (ORANGE, c.RECOVERY_TOLERANCE), (RED, c.TRIGGER_RATE_FACTOR)
        ),
        graph=True,
    ),
]

rate_panels = [
    row("Rates against their baselines", 10),
    timeseries(
        "Dynamic membership changes vs baseline",
        "Trailing-hour dynamic membership changes (by activity time) against the baseline for "
        f"this hour of the week and its normal band (up to {c.RECOVERY_TOLERANCE:g}x). The red "
        f"line is Microsoft's {c.MEMBERSHIP_CHANGES_PER_HOUR:,}. While groups are paused this "
        "falls to near zero by construction: judge recovery on the trigger rate.",
        targets(
            (
                f"sum by (tenant) ({metric('entra_dynamic_membership_changes_last_hour')})",
                "{{tenant}} trailing hour",
            ),
            (
                f"sum by (tenant) ({metric('entra_dynamic_membership_changes_baseline_per_hour')})",
                "{{tenant}} baseline",
            ),
            (
                f"{c.RECOVERY_TOLERANCE:g} * sum by (tenant) "
                f"({metric('entra_dynamic_membership_changes_baseline_per_hour')})",
                "{{tenant}} normal band (upper edge)",
            ),
        ),
        "short",
        pos(0, 11, 12, 8),
        thresholds=steps((GREEN, None), (RED, c.MEMBERSHIP_CHANGES_PER_HOUR)),
        overrides=[by_ref("B", DASHED, NO_FILL), by_ref("C", DOTTED, NO_FILL)],
    ),
    timeseries(
        "Trigger events vs baseline",
        "User and device changes (the events that make Entra re-evaluate rules) in the trailing "
        f"hour, against their baseline, the normal band ({c.RECOVERY_TOLERANCE:g}x, 'back to "
        f"baseline') and the pause level ({c.TRIGGER_RATE_FACTOR:g}x).",
        targets(
            (
                "sum by (tenant, object_type) "
                f"({metric('entra_dynamic_object_changes_last_hour')})",
                "{{tenant}} {{object_type}}",
            ),
            (
                "sum by (tenant, object_type) "
                f"({metric('entra_dynamic_object_changes_baseline_per_hour')})",
                "{{tenant}} {{object_type}} baseline",
            ),
            (
                f"{c.RECOVERY_TOLERANCE:g} * sum by (tenant, object_type) "
                f"({metric('entra_dynamic_object_changes_baseline_per_hour')})",
                "{{tenant}} {{object_type}} normal band (upper edge)",
            ),
            (
                f"{c.TRIGGER_RATE_FACTOR:g} * sum by (tenant, object_type) "
                f"({metric('entra_dynamic_object_changes_baseline_per_hour')})",
                "{{tenant}} {{object_type}} pause level",
            ),
        ),
        "short",
        pos(12, 11, 12, 8),
        overrides=[
            by_ref("B", DASHED, NO_FILL),
            by_ref("C", DOTTED, NO_FILL),
            by_ref(
                "D", DOTTED, NO_FILL, {"id": "color", "value": {"mode": "fixed", "fixedColor": RED}}
            ),
        ],
    ),
    timeseries(
        "Deviation from baseline",
        "Trailing hour / baseline (1 = normal) for triggers and for dynamic membership changes. "
        f"Orange line: {c.RECOVERY_TOLERANCE:g}x (the resume tolerance); red line: "
        f"{c.TRIGGER_RATE_FACTOR:g}x (pause warranted when sustained).",
        targets(
            (
                "max by (tenant, object_type) "
                f"({metric('entra_dynamic_object_changes_deviation_ratio')})",
                "{{tenant}} {{object_type}} changes",
            ),
            (
                f"max by (tenant) ({metric('entra_dynamic_membership_changes_deviation_ratio')})",
                "{{tenant}} membership changes",
            ),
        ),
        "suffix:x",
        pos(0, 19, 12, 8),
        thresholds=steps(
            (GREEN, None), (ORANGE, c.RECOVERY_TOLERANCE), (RED, c.TRIGGER_RATE_FACTOR)
        ),
        fill=0,
    ),
    timeseries(
        "Paused dynamic groups",
        "Dynamic groups and administrative units in the Paused processing state, over time.",
        targets(
            (
                f"sum by (tenant, kind) ({PAUSED_GROUPS})",
                "{{tenant}} paused {{kind}}",
            ),
        ),
        "short",
        pos(12, 19, 12, 8),
        stacked=True,
    ),
    timeseries(
        "Groups changed in the trailing hour",
        "Distinct groups with a dynamic membership change in the trailing hour. Red line: "
        f"Microsoft's {c.GROUPS_CHANGED_PER_HOUR} groups.",
        targets(
            (
                f"sum by (tenant) ({metric('entra_dynamic_groups_changed_last_hour')})",
                "{{tenant}}",
            ),
        ),
        "short",
        pos(0, 27, 12, 8),
        thresholds=steps((GREEN, None), (RED, c.GROUPS_CHANGED_PER_HOUR)),
    ),
    timeseries(
        "Membership changes, trailing hour",
        "Dynamic and manual membership changes whose activity time falls in the trailing hour, "
        "counted by the exporter in the tenant's clock (not rate() over the counters: "
        "Prometheus's clock is not the tenant's under the demo, and audit records arrive in "
        "bursts about 15 minutes after the activity).",
        targets(
            (
                f"sum by (tenant) ({metric('entra_dynamic_membership_changes_last_hour')})",
                "{{tenant}} dynamic",
            ),
            (
                f"sum by (tenant) ({metric('entra_dynamic_manual_membership_changes_last_hour')})",
                "{{tenant}} manual",
            ),
        ),
        "suffix:/h",
        pos(12, 27, 12, 8),
    ),
]

lag_panels = [
    row("Processing lag", 35),
    timeseries(
        "Processing lag quantiles (last hour)",
        "Delay from a user or device change to the dynamic membership change it caused: median, "
        "90th and 99th percentile over the last hour (recording rule). Red line: "
        f"{c.PROCESSING_LAG_SECONDS // 3600} h (Microsoft: typically processed within a few hours;"
        " can take more than 24 hours).",
        targets((recorded(rules.LAG_QUANTILE_RECORD), "{{tenant}} p{{quantile}}")),
        "s",
        pos(0, 36, 8, 8),
        thresholds=steps((GREEN, None), (RED, c.PROCESSING_LAG_SECONDS)),
        fill=0,
    ),
    heatmap(
        "Processing lag distribution",
        "How many membership changes arrived after each lag (entra_dynamic_processing_lag_seconds"
        " buckets); darker is more.",
        [
            target(
                "sum by (le) (increase("
                f"{metric('entra_dynamic_processing_lag_seconds_bucket')}{RATE}))",
                "{{le}}",
                fmt="heatmap",
            )
        ],
        "s",
        pos(8, 36, 8, 8),
    ),
    timeseries(
        "Measured delay (canary probe) beside the estimate",
        "The canary probe (tenants[].probe) changes one canary object so that it enters or "
        "leaves a canary group, and waits for the membership change: the sawtooth is how long "
        "its current change has waited (entra_dynamic_probe_round_age_seconds), each peak one "
        "measured delay. Beside it the estimated median lag from the audit log. Red line: "
        f"{c.PROBE_LATENCY_SECONDS // 3600} h (EntraDynamicProbeLatencyHigh). No probe "
        "configured: no sawtooth.",
        targets(
            (
                f"max by (tenant) ({metric('entra_dynamic_probe_round_age_seconds')})",
                "{{tenant}} measured: waiting now",
            ),
            (
                recorded(rules.LAG_QUANTILE_RECORD, 'quantile="0.5"'),
                "{{tenant}} estimated median",
            ),
        ),
        "s",
        pos(16, 36, 8, 8),
        thresholds=steps((GREEN, None), (RED, c.PROBE_LATENCY_SECONDS)),
        fill=0,
    ),
]

exporter_panels = [
    row("Exporter and Microsoft Graph", 44),
    state_timeline(
        "Collector health",
        "Whether each collector's last poll succeeded (entra_dynamic_collector_success). A failing "
        "collector freezes its metrics and blocks resuming.",
        [
            target(
                f"min by (tenant, collector) ({metric('entra_dynamic_collector_success')})",
                "{{tenant}} {{collector}}",
            )
        ],
        "none",
        pos(0, 45, 12, 7),
        mappings=value_text({0: ("failing", RED), 1: ("ok", GREEN)}),
        thresholds=steps((RED, None), (GREEN, 1)),
    ),
    timeseries(
        "Time since last successful poll",
        "Seconds since each collector last succeeded, in the tenant's clock.",
        targets(
            (
                rules.age_expr(
                    TENANT_TIME,
                    "max by (tenant, collector) "
                    f"({metric('entra_dynamic_collector_last_success_timestamp_seconds')})",
                ),
                "{{tenant}} {{collector}}",
            ),
        ),
        "s",
        pos(12, 45, 12, 7),
        fill=0,
    ),
    timeseries(
        "Audit data age",
        "Age of the newest fully ingested audit-log time (the watermark), in the tenant's "
        "clock. Red line: "
        f"{c.WATERMARK_MAX_AGE_SECONDS // 3600} h, beyond which resuming is blocked "
        "(EntraDynamicAuditDataStale).",
        targets(
            (
                rules.age_expr(
                    TENANT_TIME,
                    "max by (tenant) "
                    f"({metric('entra_dynamic_audit_watermark_timestamp_seconds')})",
                ),
                "{{tenant}}",
            ),
        ),
        "s",
        pos(0, 52, 8, 8),
        thresholds=steps((GREEN, None), (RED, c.WATERMARK_MAX_AGE_SECONDS)),
        fill=0,
    ),
    timeseries(
        "Graph requests by answer",
        "Requests to Microsoft Graph per second of wall-clock time (the exporter's own work, "
        "Prometheus's clock), by endpoint and HTTP status (transport_error: no response).",
        targets(
            (
                "sum by (tenant, endpoint, code) (rate("
                f"{metric('entra_dynamic_graph_requests_total')}{RATE}))",
                "{{tenant}} {{endpoint}} {{code}}",
            ),
        ),
        "reqps",
        pos(8, 52, 8, 8),
        stacked=True,
    ),
    timeseries(
        "Graph throttling (429 share)",
        f"Share of each endpoint's requests answered 429 over {c.RATE_WINDOW}, the series "
        "EntraDynamicGraphThrottling reads (0 when nothing was throttled). The exporter paces "
        f"itself below {c.AUDIT_REQUESTS_PER_10S} audit-log requests per 10 s per app and tenant "
        "(Microsoft Graph's limit), so any sustained share means another client uses the same "
        f"app. Red line: {c.GRAPH_THROTTLED_RATIO:.0%} (EntraDynamicGraphThrottling).",
        targets((recorded(rules.THROTTLED_RATIO_RECORD), "{{tenant}} {{endpoint}}")),
        "percentunit",
        pos(16, 52, 8, 8),
        thresholds=steps((GREEN, None), (RED, c.GRAPH_THROTTLED_RATIO)),
        fill=0,
    ),
    timeseries(
        "Collector poll duration",
        "How long each collector's last poll took (entra_dynamic_collector_duration_seconds).",
        targets(
            (
                "max by (tenant, collector) "
                f"({metric('entra_dynamic_collector_duration_seconds')})",
                "{{tenant}} {{collector}}",
            ),
        ),
        "s",
        pos(0, 60, 8, 8),
        fill=0,
    ),
    timeseries(
        "Audit events ingested",
        "Audit events ingested per second of wall-clock time (the exporter's own work, "
        "Prometheus's clock), by classification (duplicates are seen again and not counted "
        "twice; malformed ones are counted and skipped).",
        targets(
            (
                f"sum by (tenant, kind) (rate({metric('entra_dynamic_audit_events_total')}{RATE}))",
                "{{tenant}} {{kind}}",
            ),
        ),
        "cps",
        pos(8, 60, 8, 8),
        stacked=True,
    ),
    stat(
        "Rules using inefficient operators",
        "Dynamic groups whose rule uses an operator Microsoft calls inefficient (-match, "
        "-contains, memberOf, long -or chains). Fix them with `entra-dg-exporter lint-rules`.",
        [
            target(
                f"max by (tenant, operator) ({metric('entra_dynamic_rules_using_operator')})",
                "{{tenant}} {{operator}}",
            )
        ],
        "short",
        pos(16, 60, 8, 8),
        thresholds=steps((GREEN, None), (ORANGE, 1)),
    ),
]

_OBJECTS = f"sum by (tenant) ({metric('entra_dynamic_groups')})"
_LIMIT = f"max by (tenant) ({metric('entra_dynamic_object_limit')})"

# Tenant hygiene (#21): Microsoft's first best practice, "Monitor the number of dynamic
# membership groups in your tenant ... Delete inactive or outdated groups."
hygiene_panels = [
    row("Tenant hygiene", 68),
    stat(
        "Share of the dynamic group limit",
        "Dynamic groups and dynamic administrative units against the tenant's limit "
        f"({c.DYNAMIC_OBJECT_LIMIT:,} by default, entra_dynamic_object_limit). Orange from "
        f"{c.HEADROOM_WARNING_RATIO:.0%}, red from {c.HEADROOM_CRITICAL_RATIO:.0%}, as "
        "EntraDynamicGroupLimitApproaching.",
        [target(f"{_OBJECTS}\n/ on (tenant)\n{_LIMIT}", "{{tenant}}")],
        "percentunit",
        pos(0, 69, 6, 8),
        thresholds=steps(
            (GREEN, None), (ORANGE, c.HEADROOM_WARNING_RATIO), (RED, c.HEADROOM_CRITICAL_RATIO)
        ),
    ),
    timeseries(
        "Dynamic groups and units against the limit",
        "Every dynamic group and unit the exporter lists (any state), and the tenant's limit.",
        targets((_OBJECTS, "{{tenant}} dynamic objects"), (_LIMIT, "{{tenant}} limit")),
        "short",
        pos(6, 69, 10, 8),
        fill=0,
    ),
    stat(
        "Dead-weight candidates",
        "Dynamic groups that are candidates for deletion or merging, by reason: inactive (no "
        "dynamic membership change for hygiene.inactive_days), empty, never_matches "
        "(contradictory rule), duplicate (equivalent rules), memberof (the preview operator "
        "Microsoft recommends deleting). Nothing is deleted: `entra-dg-exporter lint-rules "
        "--config.file` lists them with their evidence.",
        [
            target(
                f"max by (tenant, reason) ({metric('entra_dynamic_hygiene_candidates')})",
                "{{tenant}} {{reason}}",
            )
        ],
        "short",
        pos(16, 69, 8, 8),
        thresholds=steps((GREEN, None), (ORANGE, 1)),
    ),
]

dashboard = dashboard(
    title="Entra ID dynamic groups / Overview",
    uid="entra-dg-overview",
    description="Pause and resume signals, change rates against their baselines, processing lag "
    "and exporter health for Microsoft Entra ID dynamic group processing.",
    panels=status_panels + rate_panels + lag_panels + exporter_panels + hygiene_panels,
)
