"""The one place for the selectors and thresholds of the alerts, recording rules and dashboards.

Change a value here, then run `python -m alerts.build` and `python -m dashboards.build` and commit
the generated files (a test fails while they are stale).

Two kinds of threshold live here:

* Microsoft's figures, which the exporter's signals (`entra_dynamic_pause_warranted`,
  `entra_dynamic_resume_ready`) already apply with the exporter's `thresholds:` config. They are
  repeated here only to draw them on dashboards and quote them in alert text; a test checks they
  equal the exporter's defaults (`exporter.domain.settings.Thresholds`).
* Prometheus-side thresholds, which only the rules apply (how long a signal must hold, how stale
  data may be, how much throttling is tolerable).

Sources quoted (see alerts/runbook.md for the full quotations):
* [MANAGE] "Understand and manage dynamic group processing in Microsoft Entra ID",
  https://learn.microsoft.com/en-us/entra/identity/users/manage-dynamic-group
* [TROUBLESHOOT] "Troubleshooting Groups with dynamic membership processing",
  https://learn.microsoft.com/en-us/troubleshoot/entra/entra-id/dir-dmns-obj/troubleshoot-dynamic-group-processing
* [THROTTLING] "Microsoft Graph service-specific throttling limits" (identity and access reports),
  https://learn.microsoft.com/en-us/graph/throttling-limits
"""

from __future__ import annotations

from typing import Final

from exporter.http.runbook import RUNBOOK_ROUTE
from exporter.readiness.client import DEFAULT_URL

# --- Selectors -------------------------------------------------------------------------------

EXPORTER_JOB: Final = "entra-dg-exporter"
"""The scrape job name of the example Prometheus config (alerts/prometheus.yml)."""

EXPORTER_SELECTOR: Final = f'job="{EXPORTER_JOB}"'
"""The one setting that says which series are the exporter's, as kubernetes-mixin's
`_config.*Selector`: every rule and every dashboard query selects with it and with nothing
hard-coded. Give your Prometheus's labels (e.g. `job="entra", cluster="prod"`), then run
`python -m alerts.build` and `python -m dashboards.build`. Dashboards add `job` and `instance`
variables on top, to narrow further among the series it selects."""

# --- Runbook links ---------------------------------------------------------------------------

RUNBOOK_PATH: Final = "alerts/runbook.md"
"""The runbook, relative to the top of the repository."""

EXPORTER_URL: Final = DEFAULT_URL
"""Where on-call's browser reaches the exporter: its default address, which docker-compose.yml
publishes. Every alert links to `<exporter URL>/runbook#<alert name in lower case>`, the runbook
the exporter serves (exporter/http/runbook.py), so the link opens from a chat message with no
repository browser. Build options (alerts/runbook.md "Runbook links"): `--exporter-url URL` for
the address your exporter is reached at; `--runbook-base-url URL` to link to a repository browser
instead (`URL/alerts/runbook.md#<alert>`, the anchor GitHub and GitLab give the heading)."""

EXPORTER_RUNBOOK_ROUTE: Final = RUNBOOK_ROUTE

# --- Microsoft's figures (the exporter applies them; quoted and drawn here) --------------------

MEMBERSHIP_CHANGES_PER_HOUR: Final = 20_000
"""[MANAGE]: pause when you plan to "make more than 20,000 membership changes"."""

GROUPS_CHANGED_PER_HOUR: Final = 500
"""[MANAGE]: pause when you plan "to make changes to more than 500 groups"."""

MINIMUM_PAUSE_SECONDS: Final = 24 * 3600
"""[MANAGE]: "waiting a minimum of 24 hours"; [TROUBLESHOOT] says at least 12 hours. The exporter
default is the stricter 24 h (`thresholds.minimum_pause`)."""

TRIGGER_RATE_FACTOR: Final = 5.0
"""Exporter default (`thresholds.trigger_rate_factor`): triggers at 5x their baseline, sustained,
warrant a pause ([MANAGE]: "A high volume of user or device changes can create a long processing
queue")."""

RECOVERY_TOLERANCE: Final = 1.5
"""Exporter default (`thresholds.recovery_tolerance`): "back to baseline" ([MANAGE]) means the
trigger rate is within 1.5x its baseline."""

PROCESSING_LAG_SECONDS: Final = 4 * 3600
"""[MANAGE]: "Changes to memberships are typically processed within a few hours." The exporter's
processing_lag reason and the ProcessingLagHigh alert both use 4 h."""

WATERMARK_MAX_AGE_SECONDS: Final = 3600
"""Exporter default (`thresholds.watermark_max_age`): older audit data blocks resuming."""

AUDIT_REQUESTS_PER_10S: Final = 5
"""[THROTTLING]: the audit log allows 5 requests per 10 seconds per app per tenant."""

DYNAMIC_OBJECT_LIMIT: Final = 15_000
"""Entra's limit of dynamic groups and dynamic administrative units per tenant (the exporter
exports its configured value, `hygiene.object_limit`, as `entra_dynamic_object_limit`)."""

HEADROOM_WARNING_RATIO: Final = 0.80
HEADROOM_CRITICAL_RATIO: Final = 0.95
"""Exporter defaults (exporter.domain.hygiene): the share of the limit in use at which
GroupLimitApproaching warns, then pages. [MANAGE]: "Regularly review the number of groups in
your tenant. Delete inactive or outdated groups." """

# --- Prometheus-side thresholds ------------------------------------------------------------------

PAUSE_WARRANTED_WARNING_FOR: Final = 15 * 60
PAUSE_WARRANTED_CRITICAL_FOR: Final = 3600
"""A pause warranted for an hour with nothing paused: the queue has been growing for an hour."""

PAUSE_REASONS: Final = ("membership_changes", "groups_changed", "trigger_rate", "rule_change_storm")
"""The volume reasons of `entra_dynamic_pause_warranted`, alerted as PauseWarranted. The other two
reasons, processing_stalled and processing_lag, have their own alerts (ProcessingStalled and
ProcessingLagHigh) so that one condition raises one alert."""

RESUME_READY_FOR: Final = 15 * 60

PAUSED_TOO_LONG_SECONDS: Final = 48 * 3600
"""Twice Microsoft's 24-hour minimum pause: memberships have been frozen for two days."""

CRITICAL_GROUP_PAUSED_TOO_LONG_SECONDS: Final = 48 * 3600
"""[TROUBLESHOOT]: resume "critical groups first"; a critical group still paused after twice the
minimum pause has been forgotten."""

CRITICAL_GROUP_PAUSED_UNKNOWN_SINCE_FOR: Final = CRITICAL_GROUP_PAUSED_TOO_LONG_SECONDS
"""A critical group already paused when the exporter first listed it has no pause time (#13): it is
alerted once `entra_dynamic_group_paused{critical="true"}` has said so for as long (a `for:`)."""

TRIGGER_ANOMALY_FACTOR: Final = 3.0
"""An early warning below the exporter's 5x pause threshold."""

TRIGGER_ANOMALY_MIN_PER_HOUR: Final = 100
"""Below this many trigger events per hour a high ratio is noise (a quiet hour's baseline)."""

TRIGGER_ANOMALY_FOR: Final = 30 * 60

TRIGGER_ANOMALY_MIN_WAITING: Final = 100
"""The anomaly warns only while at least this many changes wait in the processing queue: a
burst the queue absorbs as it comes (a nightly HR sync on a tenant whose baseline has not seen
it yet, a device wave) is not worth a warning; one it cannot absorb shows here within minutes
(bench/RESULTS.md, "Detection")."""

PROCESSING_STALLED_FOR: Final = 15 * 60

PROCESSING_LAG_QUANTILE: Final = 0.9
PROCESSING_LAG_QUANTILES: Final = (0.5, 0.9, 0.99)
PROCESSING_LAG_WINDOW: Final = "1h"
"""Lag observations are sparse (one per membership change): quantiles over an hour are stable."""
PROCESSING_LAG_FOR: Final = 30 * 60

HEADROOM_FOR: Final = 30 * 60
"""Counts move slowly; half an hour keeps a listing's hiccup from paging."""

EXPORTER_ABSENT_FOR: Final = 15 * 60
COLLECTOR_FAILING_FOR: Final = 15 * 60
AUDIT_DATA_STALE_FOR: Final = 15 * 60

GRAPH_THROTTLED_RATIO: Final = 0.10
"""The exporter paces itself below Graph's limit, so a healthy run sees no 429 at all; one request
in ten throttled for half an hour means another client shares the app's budget."""
GRAPH_THROTTLED_FOR: Final = 30 * 60

PERMISSION_ERROR_WINDOW: Final = "10m"
PERMISSION_ERROR_FOR: Final = 5 * 60

# --- The canary probe (#20): measured, not estimated, processing delay ----------------------------

PROBE_LATENCY_SECONDS: Final = PROCESSING_LAG_SECONDS
"""[MANAGE]: "typically processed within a few hours": the same 4 h bound as ProcessingLagHigh,
applied to the canary's measured delay. ProbeLatencyHigh fires on the round still waiting
(`entra_dynamic_probe_round_age_seconds`), so on-call hears it before the round ends."""
PROBE_LATENCY_FOR: Final = 5 * 60
PROBE_TIMED_OUT_FOR: Final = 60
"""A timeout is a fact, not a fluctuation: one evaluation confirms it."""
PROBE_TIMEOUT_WINDOW: Final = "6h"
"""A timed-out round stays alerted for this long (the exporter's default probe timeout)."""

RATE_WINDOW: Final = "5m"
"""The window of the recording rules' rates (at least four scrapes of a 30 s or 1 m interval)."""


def promql_duration(seconds: int) -> str:
    """3600 -> '1h', 5400 -> '90m', 172800 -> '2d': the largest unit that divides evenly."""
    if seconds <= 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_duration(seconds: int) -> str:
    """3600 -> '1 hour', 900 -> '15 minutes', 172800 -> '48 hours': for alert and panel text."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" + ("" if count == 1 else "s")
    return f"{seconds} seconds"


# --- Detection (#23): the queue still waiting, and a storm mid-resume ---------------------------
# Chosen by `python -m bench --only detection` (bench/RESULTS.md, docs/signals.md "Detection").

QUEUE_WARNING_DRAIN_SECONDS: Final = 3600
"""Warn when the work waiting will take more than an hour to drain at the recent rate: the
issue's bar ("a backlog over 1 hour")."""
QUEUE_WARNING_FOR: Final = 5 * 60
QUEUE_CRITICAL_DRAIN_SECONDS: Final = 4 * 3600
"""Page when it will take more than 4 hours: the processing_lag threshold, Microsoft's "within a
few hours"."""
QUEUE_CRITICAL_FOR: Final = 5 * 60
QUEUE_PROJECTION_WINDOW: Final = "10m"
"""Page also when the drain time, projected an hour ahead from its trend over the last 10
minutes (`predict_linear`), passes 4 hours while it is already over an hour: a push still
under way adds to the backlog faster than any present reading shows."""
QUEUE_MIN_WAITING: Final = 100
"""Fewer waiting changes than this are not a backlog worth a notification whatever the rate
says (a rate measured on a quiet tenant is the arrival rate, not the capacity)."""

QUEUE_PROJECTION_FROM_SECONDS: Final = 15 * 60
"""The warning also fires when a drain time already over 15 minutes, projected an hour ahead,
passes an hour: a slow creep builds its backlog too gradually for the present value alone."""
QUEUE_GROWING_FROM_SECONDS: Final = 15 * 60
"""The growth warning (`_QUEUE_GROWING` in alerts/rules.py) needs a present drain time over 15
minutes: a queue a healthy tenant empties in minutes is not growing, whatever a few changes'
slope says."""
QUEUE_KEEP_FIRING_FOR: Final = 30 * 60
"""The drain estimate is noisy (the rate over 15 minutes): without this the page resolved and
fired again four times in the short push."""

MID_RESUME_FOR: Final = 5 * 60
