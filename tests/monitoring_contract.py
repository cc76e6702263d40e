"""What the alerts, recording rules, dashboards and runbook may rely on, and what they use.

The one place for:
* the exporter's metric families the monitoring relies on (DESIGN 5.1, plus
  entra_dynamic_collector_duration_seconds and the per-group families of the critical-groups
  view, docs/architecture.md),
* their label values (docs/architecture.md, "Metric label values"),
* the extraction of every PromQL expression from the rules, the dashboards and the runbook, with
  the dashboards' template variables substituted.

Which metric names exist is judged on the REAL exporter: `exported_sample_names(exposition)`
reads the body of GET /metrics of the exporter watching the storm after every collector has
polled once (tests/storm.py `capture_storm_exposition`), so histograms and per-group series are
there. Label values stay checked against CONTRACT_LABEL_VALUES, because a healthy run need not
show every value (no 429, no pause) while the contract says which values may appear.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.events import Relevance, Series

REPO = Path(__file__).resolve().parent.parent
ALERTS_DIR = REPO / "alerts"
DASHBOARDS_JSON = REPO / "dashboards" / "json"
RUNBOOK = ALERTS_DIR / "runbook.md"


@dataclass(frozen=True)
class Family:
    name: str
    type: str  # counter (name without _total), gauge, histogram
    labels: tuple[str, ...]


CONTRACT: tuple[Family, ...] = (
    Family("entra_dynamic_groups", "gauge", ("tenant", "kind", "state")),
    Family("entra_dynamic_membership_changes", "counter", ("tenant", "operation")),
    Family("entra_dynamic_manual_membership_changes", "counter", ("tenant", "operation")),
    Family("entra_dynamic_membership_changes_last_hour", "gauge", ("tenant",)),
    Family("entra_dynamic_membership_changes_baseline_per_hour", "gauge", ("tenant",)),
    Family("entra_dynamic_groups_changed_last_hour", "gauge", ("tenant",)),
    Family("entra_dynamic_object_changes_last_hour", "gauge", ("tenant", "object_type")),
    Family("entra_dynamic_audit_query_mode", "gauge", ("tenant", "mode")),
    Family("entra_dynamic_audit_undecided_changes", "gauge", ("tenant",)),
    Family("entra_dynamic_group_paused", "gauge", ("tenant", "group_id", "group_name", "critical")),
    Family(
        "entra_dynamic_object_changes_by_relevance_last_hour",
        "gauge",
        ("tenant", "object_type", "relevance"),
    ),
    Family("entra_dynamic_object_changes_baseline_per_hour", "gauge", ("tenant", "object_type")),
    Family("entra_dynamic_object_changes_deviation_ratio", "gauge", ("tenant", "object_type")),
    Family("entra_dynamic_membership_changes_deviation_ratio", "gauge", ("tenant",)),
    Family("entra_dynamic_processing_lag_seconds", "histogram", ("tenant",)),
    Family(
        "entra_dynamic_group_paused_since_timestamp_seconds",
        "gauge",
        ("tenant", "group_id", "group_name", "critical"),
    ),
    Family("entra_dynamic_pause_started_timestamp_seconds", "gauge", ("tenant",)),
    Family("entra_dynamic_pause_warranted", "gauge", ("tenant", "reason")),
    Family("entra_dynamic_resume_ready", "gauge", ("tenant",)),
    Family("entra_dynamic_resume_blocked", "gauge", ("tenant", "reason")),
    Family("entra_dynamic_rules_using_operator", "gauge", ("tenant", "operator")),
    # Tenant hygiene (#21): headroom against the limit, dead-weight candidates by reason.
    Family("entra_dynamic_object_limit", "gauge", ("tenant",)),
    Family("entra_dynamic_hygiene_candidates", "gauge", ("tenant", "reason")),
    Family("entra_dynamic_hygiene_not_judged", "gauge", ("tenant", "reason")),
    # Storm attribution (#19): top 5 of each and `other`, so the label sets stay bounded.
    Family("entra_dynamic_trigger_changes_last_hour", "gauge", ("tenant", "initiator")),
    Family("entra_dynamic_trigger_property_changes_last_hour", "gauge", ("tenant", "property")),
    Family("entra_dynamic_trigger_property_readers", "gauge", ("tenant", "property")),
    # The canary probe (#20): measured processing delay, for tenants with a probe (and
    # entra_dynamic_probe_last_success_timestamp_seconds, which nothing here relies on: absent
    # before a first detection, as in the storm exposition whose clock is frozen).
    Family("entra_dynamic_probe_latency_seconds", "histogram", ("tenant",)),
    Family("entra_dynamic_probe_rounds_started", "counter", ("tenant",)),
    Family("entra_dynamic_probe_rounds", "counter", ("tenant", "outcome")),
    Family("entra_dynamic_probe_round_age_seconds", "gauge", ("tenant",)),
    # The work still waiting (#23): what finished lag pairs cannot show while a queue grows.
    Family("entra_dynamic_processing_queue_waiting_triggers", "gauge", ("tenant",)),
    Family("entra_dynamic_processing_queue_oldest_waiting_seconds", "gauge", ("tenant",)),
    Family("entra_dynamic_processing_queue_backlog_evaluations", "gauge", ("tenant",)),
    Family("entra_dynamic_processing_queue_rate_per_hour", "gauge", ("tenant",)),
    Family("entra_dynamic_processing_queue_drain_seconds", "gauge", ("tenant",)),
    Family("entra_dynamic_mid_resume_groups_on", "gauge", ("tenant",)),
    Family("entra_dynamic_pause_signal_observed", "gauge", ("tenant", "reason")),
    Family("entra_dynamic_pause_signal_threshold", "gauge", ("tenant", "reason")),
    Family("entra_dynamic_collector_success", "gauge", ("tenant", "collector")),
    Family(
        "entra_dynamic_collector_last_success_timestamp_seconds", "gauge", ("tenant", "collector")
    ),
    Family("entra_dynamic_collector_duration_seconds", "gauge", ("tenant", "collector")),
    Family("entra_dynamic_audit_watermark_timestamp_seconds", "gauge", ("tenant",)),
    Family("entra_dynamic_graph_requests", "counter", ("tenant", "endpoint", "code")),
    Family("entra_dynamic_audit_events", "counter", ("tenant", "kind")),
    Family("entra_dynamic_audit_event_lateness_seconds", "histogram", ("tenant",)),
    Family("entra_dynamic_audit_events_reconciled", "counter", ("tenant",)),
    Family("entra_dynamic_exporter_build_info", "gauge", ("version", "revision", "python_version")),
    # The critical-groups view: Graph beta membershipRuleProcessingStatus of each critical group
    # (1 for its current status, 0 for the others), and the last dynamic membership change seen in
    # the audit log per (bounded) group (docs/architecture.md; not in DESIGN 5.1).
    Family(
        "entra_dynamic_group_processing_status",
        "gauge",
        ("tenant", "group_id", "group_name", "status"),
    ),
    Family(
        "entra_dynamic_group_last_membership_change_timestamp_seconds",
        "gauge",
        ("tenant", "group_id", "group_name", "critical"),
    ),
    # The tenant's clock at the scrape (#16): ages are measured against it, never time()
    # (exporter/runtime/tenant_time.py, alerts/rules.py age_expr).
    Family("entra_dynamic_tenant_time_seconds", "gauge", ("tenant",)),
    Family("entra_dynamic_manual_membership_changes_last_hour", "gauge", ("tenant",)),
)

# (family, label) -> every value the exporter may export (docs/architecture.md).
CONTRACT_LABEL_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("entra_dynamic_groups", "kind"): frozenset({"group", "administrative_unit"}),
    ("entra_dynamic_groups", "state"): frozenset({"on", "paused"}),
    ("entra_dynamic_membership_changes", "operation"): frozenset({"add", "remove"}),
    ("entra_dynamic_manual_membership_changes", "operation"): frozenset({"add", "remove"}),
    ("entra_dynamic_pause_warranted", "reason"): frozenset(
        {
            "membership_changes",
            "groups_changed",
            "trigger_rate",
            "processing_lag",
            "rule_change_storm",
            "processing_stalled",
        }
    ),
    ("entra_dynamic_pause_signal_observed", "reason"): frozenset(
        {"membership_changes", "groups_changed", "trigger_rate", "processing_lag"}
        | {"rule_change_storm", "processing_stalled"}
    ),
    ("entra_dynamic_pause_signal_threshold", "reason"): frozenset(
        {"membership_changes", "groups_changed", "trigger_rate", "processing_lag"}
        | {"rule_change_storm", "processing_stalled"}
    ),
    ("entra_dynamic_hygiene_candidates", "reason"): frozenset(
        {"inactive", "empty", "never_matches", "duplicate", "memberof"}
    ),
    ("entra_dynamic_hygiene_not_judged", "reason"): frozenset({"inactive", "empty"}),
    ("entra_dynamic_resume_blocked", "reason"): frozenset(
        {
            "minimum_pause",
            "trigger_rate_recovery",
            "audit_data_stale",
            "collector_failing",
            "critical_group_failed",
            "processing_keeping_up",
        }
    ),
    ("entra_dynamic_probe_rounds", "outcome"): frozenset(
        {"detected", "timed_out", "paused", "failed"}
    ),
    **{
        (family, "collector"): frozenset(
            {"audit", "groups", "administrative_units", "critical_status"}
        )
        for family in (
            "entra_dynamic_collector_success",
            "entra_dynamic_collector_last_success_timestamp_seconds",
            "entra_dynamic_collector_duration_seconds",
        )
    },
    ("entra_dynamic_graph_requests", "endpoint"): frozenset(
        {
            "directory_audits",
            "groups",
            "administrative_units",
            "group_status",
            "group_update",
            "administrative_unit_update",
            "member_count",
            "group",
            "user_update",
            "device_update",
            "check_member_groups",
        }
    ),
    ("entra_dynamic_object_changes_by_relevance_last_hour", "relevance"): frozenset(
        relevance.value for relevance in Relevance
    ),
    ("entra_dynamic_audit_query_mode", "mode"): frozenset(mode.value for mode in AuditQueryMode),
    ("entra_dynamic_audit_events", "kind"): frozenset(
        {*(series.value for series in Series), "duplicate", "malformed"}
    ),
    **{
        (family, "object_type"): frozenset({"user", "device"})
        for family in (
            "entra_dynamic_object_changes_last_hour",
            "entra_dynamic_object_changes_by_relevance_last_hour",
            "entra_dynamic_object_changes_baseline_per_hour",
            "entra_dynamic_object_changes_deviation_ratio",
        )
    },
    **{
        (family, "critical"): frozenset({"true", "false"})
        for family in (
            "entra_dynamic_group_paused_since_timestamp_seconds",
            "entra_dynamic_group_paused",
            "entra_dynamic_group_last_membership_change_timestamp_seconds",
        )
    },
    ("entra_dynamic_group_processing_status", "status"): frozenset(
        {"not_started", "running", "succeeded", "failed", "unknown"}
    ),
}

PROBE_FAMILIES = frozenset(f.name for f in CONTRACT if f.name.startswith("entra_dynamic_probe_"))
"""The canary probe's families (#20): exported only for a tenant with a probe, so a run without
one (tests/test_signals_e2e.py's storm) cannot show them; the storm exposition runs one."""

PROMETHEUS_SERIES = frozenset({"up"})
"""Series Prometheus itself makes for every target (ExporterAbsent uses `up`)."""

_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def family_of(sample_name: str) -> str:
    """entra_dynamic_graph_requests_total -> entra_dynamic_graph_requests, x_bucket -> x."""
    for family in CONTRACT:
        if any(sample_name == family.name + s for s in _SAMPLE_SUFFIXES[family.type]):
            return family.name
    return sample_name


# --- the exporter's output ---------------------------------------------------------------------


class _ContractCollector(Collector):
    """One sample per contract label value, as the exporter would expose them."""

    def collect(self) -> Iterator[Metric]:
        for family in CONTRACT:
            yield _family_metric(family)


def _label_sets(family: Family) -> list[list[str]]:
    sets: list[list[str]] = [[]]
    for label in family.labels:
        values = sorted(CONTRACT_LABEL_VALUES.get((family.name, label), {f"some_{label}"}))
        sets = [[*prefix, value] for prefix in sets for value in values]
    return sets


def _family_metric(family: Family) -> Metric:
    labels = list(family.labels)
    metric: Metric
    if family.type == "counter":
        metric = CounterMetricFamily(family.name, "contract", labels=labels)
    elif family.type == "gauge":
        metric = GaugeMetricFamily(family.name, "contract", labels=labels)
    else:
        histogram = HistogramMetricFamily(family.name, "contract", labels=labels)
        for values in _label_sets(family):
            histogram.add_metric(values, [("3600", 1.0), ("+Inf", 2.0)], sum_value=7200.0)
        return histogram
    for values in _label_sets(family):
        metric.add_metric(values, 1.0)
    return metric


def contract_exposition() -> str:
    """The contract rendered as Prometheus text exposition."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ContractCollector())
    return generate_latest(registry).decode()


def sample_names_from_exposition(text: str) -> frozenset[str]:
    return frozenset(
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    )


def exported_sample_names(exposition: str) -> frozenset[str]:
    """Every sample name in an exposition: give it the real exporter's /metrics body."""
    return sample_names_from_exposition(exposition)


def exported_label_values(exposition: str) -> dict[tuple[str, str], frozenset[str]]:
    """(family, label) -> the values an exposition shows, for the labels the contract limits."""
    found: dict[tuple[str, str], set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            for label, value in sample.labels.items():
                key = (family_of(sample.name), label)
                if key in CONTRACT_LABEL_VALUES:
                    found.setdefault(key, set()).add(value)
    return {key: frozenset(v) for key, v in found.items()}


# --- what the rules, dashboards and runbook use ------------------------------------------------


@dataclass(frozen=True)
class Expression:
    where: str  # "alerts/rules/prometheus_alerts.yml: EntraDynamicX", "dashboards/json/x.json: p"
    promql: str  # as written
    source: str  # "rules", "dashboard", "runbook"

    def substituted(self) -> str:
        return substitute_variables(self.promql)


_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1d",
    "${tenant}": "contoso",
    "$tenant": "contoso",
    "${job}": ".+",
    "$job": ".+",
    "${instance}": ".+",
    "$instance": ".+",
}


def substitute_variables(promql: str, variables: dict[str, str] | None = None) -> str:
    """Replace Grafana's variables by values PromQL parses; `variables` override the defaults."""
    for name, value in {**_VARIABLES, **(variables or {})}.items():
        promql = promql.replace(name, value)
    return promql


def rule_files() -> list[Path]:
    return [
        ALERTS_DIR / "rules" / "prometheus_rules.yml",
        ALERTS_DIR / "rules" / "prometheus_alerts.yml",
    ]


def rules() -> Iterator[dict[str, Any]]:
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            yield from group["rules"]


def recorded_names() -> frozenset[str]:
    return frozenset(rule["record"] for rule in rules() if "record" in rule)


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS_JSON.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


_LABEL_VALUES_QUERY = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def expressions() -> list[Expression]:
    found: list[Expression] = []
    for rule in rules():
        name = rule.get("alert") or rule["record"]
        found.append(Expression(f"alerts rule {name}", rule["expr"], "rules"))
    for file_name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for item in panel.get("targets", []):
                found.append(
                    Expression(
                        f"dashboards/json/{file_name}: {panel['title']!r} {item['refId']}",
                        item["expr"],
                        "dashboard",
                    )
                )
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = _LABEL_VALUES_QUERY.match(variable["query"])
            if match is None:
                raise AssertionError(
                    f"dashboards/json/{file_name}: variable {variable['name']} query "
                    f"{variable['query']!r} is not label_values(selector, label)"
                )
            found.append(
                Expression(
                    f"dashboards/json/{file_name}: variable {variable['name']}",
                    match["selector"],
                    "dashboard",
                )
            )
    for i, block in enumerate(runbook_promql_blocks()):
        found.append(Expression(f"alerts/runbook.md promql block {i + 1}", block, "runbook"))
    return found


def runbook_promql_blocks() -> list[str]:
    text = RUNBOOK.read_text(encoding="utf-8")
    return [m.strip() for m in re.findall(r"```promql\n(.*?)```", text, flags=re.DOTALL)]


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


_OPS = (
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)


def _op(op: Any) -> str:
    return next(text for known, text in _OPS if op == known)


def parse(promql: str) -> Any:
    return promql_parser.parse(promql)


def selectors(promql: str) -> list[Selector]:
    """Every vector selector of an expression (raises ValueError when it does not parse)."""
    found: list[Selector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple((m.name, _op(m.op), m.value) for m in node.matchers.matchers)
            name = node.name or next((v for n, _, v in matchers if n == "__name__"), "")
            found.append(Selector(name, tuple(m for m in matchers if m[0] != "__name__")))

    promql_parser.walk(parse(promql), visit)
    return found


def matrix_ranges(promql: str) -> list[float]:
    """The range of every `[...]` of an expression, in seconds."""
    found: list[float] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.MatrixSelector):
            found.append(node.range.total_seconds())

    promql_parser.walk(parse(promql), visit)
    return found
