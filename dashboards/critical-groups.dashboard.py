"""Critical groups: the configured critical groups' pause, processing status and last membership
change. Generated into dashboards/json/critical-groups.json by `python -m dashboards.build`."""

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
    metric,
    pos,
    row,
    stat,
    state_timeline,
    steps,
    table,
    target,
    targets,
    timeseries,
    value_text,
)

PAUSED = metric("entra_dynamic_group_paused_since_timestamp_seconds", 'critical="true"')
LAST_CHANGE = metric(
    "entra_dynamic_group_last_membership_change_timestamp_seconds", 'critical="true"'
)
TENANT_TIME = metric(rules.TENANT_TIME)
"""Ages are measured against the tenant's clock (rules.age_expr), never `time()`."""
FAILED = metric("entra_dynamic_group_processing_status", 'status="failed"')
GROUP = "tenant, group_id, group_name"

# The beta membershipRuleProcessingStatus (per critical group) as one number per group, so a
# state timeline can colour it.
STATUS_CODES = {"unknown": 0, "not_started": 1, "running": 2, "succeeded": 3, "failed": 4}
STATUS_TEXT = {
    0: ("unknown / paused", GREY),
    1: ("not started", BLUE),
    2: ("running", ORANGE),
    3: ("succeeded", GREEN),
    4: ("failed", RED),
}


def _status_is(status: str) -> str:
    return metric("entra_dynamic_group_processing_status", f'status="{status}"')


STATUS_EXPR = (
    "max by (tenant, group_name) (\n  "
    + "\n  or ".join(f"({_status_is(s)} == 1) * {code}" for s, code in STATUS_CODES.items())
    + "\n)"
)


def by_name(name: str, *properties: Mapping[str, object]) -> dict[str, object]:
    return {"matcher": {"id": "byName", "options": name}, "properties": list(properties)}


panels = [
    row("Critical groups", 0),
    stat(
        "Critical groups paused",
        "How many of the tenant's configured critical groups are paused. Microsoft advises "
        "resuming critical groups first.",
        [target(f"count by (tenant) ({PAUSED})", "{{tenant}}")],
        "short",
        pos(0, 1, 6, 4),
        thresholds=steps((GREEN, None), (RED, 1)),
        no_value="none",
    ),
    stat(
        "Critical groups failing",
        "Critical groups whose processing status (Graph beta membershipRuleProcessingStatus) is "
        "Failed; a failed critical group blocks resuming.",
        [target(f"count by (tenant) ({FAILED} == 1)", "{{tenant}}")],
        "short",
        pos(6, 1, 6, 4),
        thresholds=steps((GREEN, None), (RED, 1)),
        no_value="none",
    ),
    stat(
        "Longest critical pause",
        f"How long the longest-paused critical group has been paused. Orange after "
        f"{c.MINIMUM_PAUSE_SECONDS // 3600} h (time to resume it), red after "
        f"{c.CRITICAL_GROUP_PAUSED_TOO_LONG_SECONDS // 3600} h "
        "(EntraDynamicCriticalGroupPausedTooLong).",
        [target(rules.age_expr(TENANT_TIME, f"min by (tenant) ({PAUSED})"), "{{tenant}}")],
        "dtdurations",
        pos(12, 1, 6, 4),
        thresholds=steps(
            (GREEN, None),
            (ORANGE, c.MINIMUM_PAUSE_SECONDS),
            (RED, c.CRITICAL_GROUP_PAUSED_TOO_LONG_SECONDS),
        ),
        no_value="none paused",
    ),
    stat(
        "Longest without a membership change",
        "Time since the critical group that changed least recently last had a dynamic membership "
        "change in the audit log. Long is normal for a stable population; compare with the "
        "trigger rate on the Overview.",
        [target(rules.age_expr(TENANT_TIME, f"min by (tenant) ({LAST_CHANGE})"), "{{tenant}}")],
        "dtdurations",
        pos(18, 1, 6, 4),
        thresholds=steps((BLUE, None)),
    ),
    table(
        "Critical groups",
        "One row per critical group: processing status, paused since (empty when processing) and "
        "the last dynamic membership change seen in the audit log.",
        [
            target(
                f"max by ({GROUP}, status) "
                f"({metric('entra_dynamic_group_processing_status')} == 1)",
                ref="A",
                instant=True,
                fmt="table",
            ),
            target(f"1000 * max by ({GROUP}) ({PAUSED})", ref="B", instant=True, fmt="table"),
            target(f"1000 * max by ({GROUP}) ({LAST_CHANGE})", ref="C", instant=True, fmt="table"),
        ],
        "none",
        pos(0, 5, 24, 9),
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "Value #A": True},
                    "indexByName": {
                        "group_name": 0,
                        "status": 1,
                        "Value #B": 2,
                        "Value #C": 3,
                        "group_id": 4,
                        "tenant": 5,
                    },
                    "renameByName": {
                        "group_name": "Group",
                        "status": "Processing status",
                        "Value #B": "Paused since",
                        "Value #C": "Last membership change",
                        "group_id": "Object id",
                        "tenant": "Tenant",
                    },
                },
            },
        ],
        overrides=[
            by_name("Paused since", {"id": "unit", "value": "dateTimeAsIso"}),
            by_name("Last membership change", {"id": "unit", "value": "dateTimeAsIso"}),
            by_name(
                "Processing status",
                {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                {
                    "id": "mappings",
                    "value": value_text(
                        {status: STATUS_TEXT[code] for status, code in STATUS_CODES.items()}
                    ),
                },
            ),
        ],
        sort_by="Group",
    ),
    timeseries(
        "Paused for",
        "How long each paused critical group has been paused. Red line: "
        f"{c.CRITICAL_GROUP_PAUSED_TOO_LONG_SECONDS // 3600} h.",
        targets(
            (
                rules.age_expr(TENANT_TIME, f"max by (tenant, group_name) ({PAUSED})"),
                "{{group_name}}",
            )
        ),
        "s",
        pos(0, 14, 12, 8),
        thresholds=steps((GREEN, None), (RED, c.CRITICAL_GROUP_PAUSED_TOO_LONG_SECONDS)),
        fill=0,
    ),
    state_timeline(
        "Processing status",
        "Each critical group's processing status over time (Graph beta "
        "membershipRuleProcessingStatus; null while paused, shown as unknown).",
        [target(STATUS_EXPR, "{{group_name}}")],
        "none",
        pos(12, 14, 12, 8),
        mappings=value_text(STATUS_TEXT),
        thresholds=steps((GREY, None)),
    ),
    timeseries(
        "Time since last membership change",
        "Time since each critical group last had a dynamic membership change in the audit log.",
        targets(
            (
                rules.age_expr(TENANT_TIME, f"max by (tenant, group_name) ({LAST_CHANGE})"),
                "{{group_name}}",
            ),
        ),
        "s",
        pos(0, 22, 24, 8),
        fill=0,
    ),
]

dashboard = dashboard(
    title="Entra ID dynamic groups / Critical groups",
    uid="entra-dg-critical-groups",
    description="The tenant's configured critical groups: paused since, processing status and "
    "last membership change.",
    panels=panels,
)
