"""End to end: the simulator runs a storm, the exporter watches it, a real Prometheus scrapes the
exporter and evaluates the project's rules; the dashboards' queries run against that Prometheus.

The story, in the order the tests run (one stack for the module, tests/e2e/stack.py):
1. Ready: the exporter has backfilled a day of history and polled every collector once;
   Prometheus scrapes it (`up` is 1) and has loaded every rule of alerts/.
2. Storm: the clock runs (an hour in 9 s); a bulk push sends the trigger rate far above its
   baseline; the exporter warrants a pause and EntraDynamicPauseWarranted fires in Prometheus
   (`for:` shortened to 10 s). The clock is then stopped so the checks below see a still picture.
   Every rule evaluates without error, every recording rule has series, every dashboard query
   runs, and has data unless listed in NO_DATA_DURING_STORM with the reason.
3. Pause: the test pauses every dynamic group, as the operator would, and moves the clock on
   20 minutes (the pause events reach the audit log, the groups are polled again). A pause is
   now in effect while the trigger rate still warrants one: the alert stops; the dashboards'
   pause panels have data (NO_DATA_AFTER_PAUSE lists what has none, and why).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import build, rules
from alerts.config import EXPORTER_JOB
from tests.e2e.alertmanager import PAGER_PATH
from tests.e2e.prometheus import (
    SHIPPED_CONFIG,
    PrometheusError,
    derive_config,
    values,
    write_config_dir,
)
from tests.e2e.stack import FOR_OVERRIDE, SCRAPE_INTERVAL, STORM_SPEED, TENANT, Stack
from tests.monitoring_contract import Expression, expressions, recorded_names, substitute_variables
from tests.prometheus_tools import run

pytestmark = pytest.mark.e2e

PAUSE_WARRANTED = "EntraDynamicPauseWarranted"
STORM_TIMEOUT = 90.0
"""Wall seconds for the storm to make the alert fire (about 20 s on 2 shared cores)."""
PAUSE_SETTLE_SECONDS = 1200.0
"""Simulated time after the pause: the audit log's delay is at most 15 minutes."""

GRAFANA_VARIABLES = {
    "${tenant}": TENANT,
    "$tenant": TENANT,
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}

NO_DATA_DURING_STORM: dict[str, str] = {
    "dashboards/json/overview.json: 'Paused for' A": "no pause episode before the operator pauses",
    "dashboards/json/overview.json: 'Critical groups paused' A": (
        "no critical group is paused before the operator pauses (the storm's 3 pre-paused "
        "groups are not critical)"
    ),
    "dashboards/json/critical-groups.json: 'Critical groups paused' A": "as above",
    "dashboards/json/critical-groups.json: 'Longest critical pause' A": "as above",
    "dashboards/json/critical-groups.json: 'Critical groups' B": "as above",
    "dashboards/json/critical-groups.json: 'Paused for' A": "as above",
    "dashboards/json/overview.json: 'Measured delay (canary probe) beside the estimate' A": (
        "the storm's tenant has no canary probe (opt-in; its families are held by "
        "tests/storm.py's exposition and the probe's own tests)"
    ),
}

NO_DATA_AFTER_PAUSE: dict[str, str] = {
    "dashboards/json/critical-groups.json: 'Critical groups failing' A": (
        "a paused group reports no processing status (Graph beta: null while paused), so the "
        "failed critical group is 'unknown' now"
    ),
    "dashboards/json/overview.json: 'Measured delay (canary probe) beside the estimate' A": (
        "no canary probe, as in the storm"
    ),
}


def dashboard_expressions() -> list[Expression]:
    return [e for e in expressions() if e.source == "dashboard"]


def dashboard_query(expression: Expression) -> str:
    promql = substitute_variables(expression.promql, GRAFANA_VARIABLES)
    assert "$" not in promql, f"{expression.where}: a template variable is not substituted"
    return promql


def empty_dashboard_queries(stack: Stack) -> tuple[set[str], list[str]]:
    """The dashboard queries that return no series, and those that fail."""
    empty: set[str] = set()
    errors: list[str] = []
    for expression in dashboard_expressions():
        promql = dashboard_query(expression)
        try:
            result = stack.prometheus.query(promql)
        except PrometheusError as exc:
            errors.append(f"{expression.where}: {exc}\n  {promql}")
            continue
        if not result:
            empty.add(expression.where)
    return empty, errors


@dataclass(frozen=True)
class Storm:
    alerts: list[dict[str, Any]]
    """EntraDynamicPauseWarranted as Prometheus reported it firing."""
    wall_seconds: float
    """From starting the clock to the alert firing."""
    simulated_seconds: float
    """Simulated time the storm ran before the clock was stopped."""


@pytest.fixture(scope="module")
def storm(stack: Stack) -> Storm:
    began = stack.clock()["now"]
    started = time.monotonic()
    stack.set_speed(STORM_SPEED)

    def both_severities_firing() -> bool:
        firing = stack.prometheus.firing(PAUSE_WARRANTED)
        return {a["labels"].get("severity") for a in firing} >= {"warning", "critical"}

    stack.wait_until(
        both_severities_firing,
        within=STORM_TIMEOUT,
        what=f"{PAUSE_WARRANTED} firing (warning and critical, for: {FOR_OVERRIDE})",
    )
    wall = time.monotonic() - started
    stopped = stack.set_speed(0)
    return Storm(stack.prometheus.firing(PAUSE_WARRANTED), wall, stopped["now"] - began)


@pytest.fixture(scope="module")
def paused(storm: Storm, stack: Stack) -> int:
    count = stack.pause_all()
    assert count > 0, stack.fail("no dynamic group was On to pause")
    stack.advance(PAUSE_SETTLE_SECONDS)
    # The pause events come from the audit collector and the groups' states from the groups
    # collector: each reaches Prometheus on its own poll, in either order.
    episode = f'entra_dynamic_pause_started_timestamp_seconds{{tenant="{TENANT}"}} > 0'
    stack.wait_until(
        lambda: bool(stack.prometheus.query(episode)),
        within=30,
        what="Prometheus to see the pause episode (pause_started_timestamp_seconds > 0)",
    )
    on = f'sum(entra_dynamic_groups{{tenant="{TENANT}", state="on"}})'
    stack.wait_until(
        lambda: values(stack.prometheus.query(on)) == [0.0],
        within=30,
        what=f"Prometheus to see no group On ({on} == 0)",
    )
    return count


# --- 1. ready ----------------------------------------------------------------------------------


def test_the_e2e_config_is_the_shipped_one_with_addresses_and_intervals_changed(
    tmp_path: Path,
) -> None:
    shipped = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    derived = derive_config(shipped, exporter_target="127.0.0.1:1", interval=SCRAPE_INTERVAL)
    assert derived["rule_files"] == shipped["rule_files"]
    assert [job["job_name"] for job in derived["scrape_configs"]] == [EXPORTER_JOB]
    shipped_job = next(j for j in shipped["scrape_configs"] if j["job_name"] == EXPORTER_JOB)
    derived_job = derived["scrape_configs"][0]
    untouched = set(shipped_job) - {"scrape_timeout", "relabel_configs"}
    untouched = {k for k in untouched if not k.endswith("_sd_configs")}
    assert {k: derived_job[k] for k in untouched} == {k: shipped_job[k] for k in untouched}
    config = write_config_dir(
        tmp_path, exporter_target="127.0.0.1:1", interval="1s", for_override=FOR_OVERRIDE
    )
    result = run("promtool", ["check", "config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"for: {FOR_OVERRIDE}" in (tmp_path / "rules" / build.ALERTING_FILE).read_text(
        encoding="utf-8"
    )
    shipped_alerts = (build.RULES_DIR / build.ALERTING_FILE).read_text(encoding="utf-8")
    assert f"for: {FOR_OVERRIDE}" not in shipped_alerts, "the shipped rules keep their for:"


def test_prometheus_scrapes_the_exporter(stack: Stack) -> None:
    stack.wait_until(
        lambda: values(stack.prometheus.query(f'up{{job="{EXPORTER_JOB}"}}')) == [1.0],
        within=15,
        what=f'up{{job="{EXPORTER_JOB}"}} == 1',
    )
    (target,) = stack.prometheus.targets()
    assert target["labels"]["job"] == EXPORTER_JOB
    assert target["health"] == "up", stack.fail(f"target: {target}")
    assert target["scrapeUrl"] == f"{stack.exporter_url}/metrics"


def test_prometheus_loaded_every_rule_of_the_project(stack: Stack) -> None:
    loaded = sorted(r["name"] for r in stack.prometheus.rules())
    expected = sorted([r.record for r in rules.RECORDING_RULES] + [a.name for a in rules.ALERTS])
    assert loaded == expected, stack.fail(f"rules loaded by Prometheus: {loaded}")


# --- 2. storm ----------------------------------------------------------------------------------


def test_the_pause_warranted_alert_fires_in_the_storm(stack: Stack, storm: Storm) -> None:
    severities = sorted(a["labels"]["severity"] for a in storm.alerts)
    assert severities == ["critical", "warning"], stack.fail(f"firing: {storm.alerts}")
    for alert in storm.alerts:
        assert alert["labels"]["tenant"] == TENANT
        assert alert["labels"]["reason"] == "trigger_rate", stack.fail(f"alert: {alert}")
        assert alert["annotations"]["runbook_url"].endswith("#entradynamicpausewarranted")
        description = alert["annotations"]["description"]
        assert description.startswith(f"Tenant {TENANT}: the exporter's trigger_rate signal")
    # The exporter warrants a pause after the trigger rate has held 30 simulated minutes above
    # 5x its baseline; the push starts 10 minutes in.
    assert storm.simulated_seconds > 40 * 60
    print(
        f"\n{PAUSE_WARRANTED} fired {storm.wall_seconds:.1f}s after the clock started "
        f"({storm.simulated_seconds / 60:.0f} simulated minutes)"
    )


def test_the_storm_raises_no_health_alert(stack: Stack, storm: Storm) -> None:
    health = (
        "EntraDynamicExporterAbsent",
        "EntraDynamicCollectorFailing",
        "EntraDynamicAuditDataStale",
        "EntraDynamicGraphThrottling",
        "EntraDynamicGraphPermissionDenied",
    )
    active = [a for a in stack.prometheus.alerts() if a["labels"]["alertname"] in health]
    assert active == [], stack.fail(f"health alerts active in a healthy run: {active}")
    anomaly = stack.prometheus.firing("EntraDynamicTriggerRateAnomaly")
    assert {a["labels"]["object_type"] for a in anomaly} == {"user"}, stack.fail(
        f"EntraDynamicTriggerRateAnomaly: {anomaly}"
    )


def test_every_rule_evaluates_without_error(stack: Stack, storm: Storm) -> None:
    unhealthy = [
        f"{r['name']}: {r['health']} {r.get('lastError', '')}"
        for r in stack.prometheus.rules()
        if r["health"] != "ok"
    ]
    assert unhealthy == [], stack.fail("rules that failed to evaluate:\n" + "\n".join(unhealthy))


def test_every_recording_rule_produces_series(stack: Stack, storm: Storm) -> None:
    for record in sorted(recorded_names()):
        result = stack.prometheus.query(f'{record}{{tenant="{TENANT}"}}')
        assert result, stack.fail(f"recording rule {record} has no series")
        finite = [v for v in values(result) if math.isfinite(v)]
        assert finite, stack.fail(f"recording rule {record}: only NaN/Inf: {result}")


def test_every_dashboard_query_runs_and_has_data_in_the_storm(stack: Stack, storm: Storm) -> None:
    empty, errors = empty_dashboard_queries(stack)
    assert errors == [], stack.fail("dashboard queries Prometheus refuses:\n" + "\n".join(errors))
    assert sorted(empty) == sorted(NO_DATA_DURING_STORM), stack.fail(
        "dashboard queries without data in the storm (expected: NO_DATA_DURING_STORM):\n"
        + "\n".join(sorted(empty))
    )


def test_the_dashboards_tenant_variable_offers_the_tenant(stack: Stack, storm: Storm) -> None:
    for expression in dashboard_expressions():
        if not expression.where.endswith("variable tenant"):
            continue
        result = stack.prometheus.query(dashboard_query(expression))
        assert {s["metric"].get("tenant") for s in result} == {TENANT}, expression.where


def test_every_runbook_query_runs(stack: Stack, storm: Storm) -> None:
    errors = []
    for expression in expressions():
        if expression.source != "runbook":
            continue
        promql = expression.promql.replace('tenant="contoso"', f'tenant="{TENANT}"')
        try:
            stack.prometheus.query(promql)
        except PrometheusError as exc:
            errors.append(f"{expression.where}: {exc}")
    assert errors == [], "\n".join(errors)


def test_the_chat_hears_what_to_do_next_and_the_runbook_link_opens(
    stack: Stack, storm: Storm
) -> None:
    """The real chain: the rules fire in Prometheus, Alertmanager (alerts/alertmanager.yml)
    groups them by tenant and alert, the critical tier inhibits the warning one, and the chat's
    webhook receives a message whose next action names the tenant and whose runbook link opens
    its section on the exporter."""
    title = f"[FIRING] {PAUSE_WARRANTED} ({TENANT})"

    def critical_in_chat() -> bool:
        return "(critical)" in stack.webhook.chat_messages().get(title, "")

    stack.wait_until(critical_in_chat, within=30, what=f"the chat to hear {title} (critical)")
    text = stack.webhook.chat_messages()[title]
    assert text.startswith("*Pausing dynamic group processing is warranted.* (critical)\n")
    assert "(warning)" not in text, "the critical tier inhibits the warning tier"
    assert (
        f"Next: pause now: `entra-dg-exporter pause --tenant {TENANT} --all --except-critical "
        "--reason '<why>' --apply`"
    ) in text
    link = f"{stack.exporter_url}/runbook#{PAUSE_WARRANTED.lower()}"
    assert f"Runbook: {link}" in text
    paged = [a for m in stack.webhook.at(PAGER_PATH) for a in m["alerts"]]
    pause_pages = [a for a in paged if a["labels"]["alertname"] == PAUSE_WARRANTED]
    assert pause_pages, "the pager hears the critical tier"
    assert {a["annotations"]["runbook_url"] for a in pause_pages} == {link}
    # Each page links its own alert's section (the storm's queue pages too, #23).
    assert all(
        a["annotations"]["runbook_url"].endswith("#" + a["labels"]["alertname"].lower())
        for a in paged
    )
    page = stack.http.get(link.split("#")[0])
    assert page.status_code == 200
    assert f'<h2 id="{PAUSE_WARRANTED.lower()}">' in page.text
    print(f"chat message:\n{title}\n{text}")


# --- 3. pause ----------------------------------------------------------------------------------


def test_a_pause_in_effect_silences_the_pause_warranted_alert(stack: Stack, paused: int) -> None:
    warranted = f'entra_dynamic_pause_warranted{{tenant="{TENANT}", reason="trigger_rate"}}'
    assert values(stack.prometheus.query(warranted)) == [1.0], stack.fail(
        "the trigger rate should still warrant a pause: the push runs for 4 simulated hours"
    )
    stack.wait_until(
        lambda: not stack.prometheus.active(PAUSE_WARRANTED),
        within=15,
        what=f"{PAUSE_WARRANTED} to stop once the pause is in effect",
    )


def test_every_dashboard_query_has_data_once_paused(stack: Stack, paused: int) -> None:
    empty, errors = empty_dashboard_queries(stack)
    assert errors == [], stack.fail("dashboard queries Prometheus refuses:\n" + "\n".join(errors))
    assert sorted(empty) == sorted(NO_DATA_AFTER_PAUSE), stack.fail(
        "dashboard queries without data once paused (expected: NO_DATA_AFTER_PAUSE):\n"
        + "\n".join(sorted(empty))
    )
