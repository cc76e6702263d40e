"""The demo under a real Prometheus and Alertmanager: every dashboard query tells the truth, and
the storm pages.

The demo's tenant lives on an accelerated clock (an hour in 4 s here, 6 s in README's demo)
while Prometheus scrapes, evaluates `time()` and `rate()` in real time. So the dashboards
measure ages against the tenant's clock, which the exporter exports at every scrape
(exporter/runtime/tenant_time.py), and read the tenant's activity per hour from its trailing-hour
gauges; `rate()` is left to the exporter's own work per wall-clock second (WALL_CLOCK_RATES).
docs/signals.md "Ages and rates" says why.

One run for the module (tests/e2e/stack.py `running_stack`, the demo's story):
* the simulator runs the `demo` command's story (the storm with DEMO_TIMELINE: the push at 1 h,
  the operator pausing everything at 5 h) with a day of history, frozen until the exporter has
  read it;
* the exporter runs docs/examples/compose-demo.yml as shipped, with only the addresses and paths
  of this run changed, plus the `demo` command's sections and critical groups (DEMO_SECTIONS);
* Prometheus runs alerts/prometheus.yml with the target's address and the pace changed
  (tests/e2e/prometheus.py: scrape every second, `for:` 5 s), and sends its alerts to a real
  Alertmanager running alerts/alertmanager.yml, whose receivers are a local webhook.
The clock runs at SPEED to the end of the push, then in slow motion (SLOW_MOTION) until
EntraDynamicPauseWarranted fires, and is stopped for a still picture; then it runs on at SPEED
until the operator's pause has reached Prometheus, and stops again. About 40 s in all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli.demo import DEMO_SECTIONS, DEMO_TENANT, DEMO_TIMELINE
from exporter.config.durations import parse_duration
from exporter.simulator.app import resolve_scenario
from exporter.simulator.exporter_config import write_config_file
from tests.e2e.alertmanager import CHAT_PATH, PAGER_PATH
from tests.e2e.prometheus import PrometheusError
from tests.e2e.stack import Stack, running_stack
from tests.monitoring_contract import (
    REPO,
    Expression,
    dashboards,
    expressions,
    panels,
    selectors,
    substitute_variables,
)

pytestmark = pytest.mark.e2e

COMPOSE_DEMO = REPO / "docs" / "examples" / "compose-demo.yml"
TENANT = DEMO_TENANT
SPEED = 900.0
"""Simulated seconds per wall second outside the storm (README's demo: 600): to the end of the
push and from the storm to the operator's pause, 4 s each."""
FOR_OVERRIDE = "5s"
SLOW_MOTION = 60.0
"""The clock's speed once the push is over. The demo's push lasts 30 minutes and warrants a pause
for about 50 minutes of the tenant's time (measured: from 1.7 h to 2.5 h), 5 s of wall time at
x600: shorter than any alert's `for:` plus Prometheus's evaluations. Slowed to an hour a minute,
the storm holds while the alert goes pending, fires and is routed."""
_PUSH = next(step for step in DEMO_TIMELINE if step["action"] == "bulk_update")
PUSH_OVER = parse_duration(_PUSH["at"]) + parse_duration(_PUSH["over"])
PAUSE_WARRANTED = "EntraDynamicPauseWarranted"
STORM_TIMEOUT = 60.0
PAUSE_TIMEOUT = 60.0
HOURLY_TOLERANCE = 0.10

GRAFANA_VARIABLES = {
    "${tenant}": TENANT,
    "$tenant": TENANT,
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}

AGE_UNITS = frozenset({"s", "dtdurations"})
"""Panels in these units show durations: an age, a lag or a poll's duration, never negative."""

WALL_CLOCK_RATES: dict[str, str] = {
    "dashboards/json/overview.json: 'Graph requests by answer' A": (
        "the exporter's requests to Graph per wall-clock second: its own work, in Prometheus's "
        "clock"
    ),
    "dashboards/json/overview.json: 'Audit events ingested' A": (
        "the exporter's ingestion per wall-clock second: its own work, in Prometheus's clock"
    ),
    "dashboards/json/overview.json: 'Processing lag distribution' A": (
        "counts per lag bucket (a distribution of lags measured in the tenant's clock), no rate"
    ),
}
"""The only dashboard queries that may apply rate() or increase(), and why."""

HOURLY_TRUTH = {
    # A counter in a per-hour panel is compared too: rate() over it is in Prometheus's clock.
    "entra_dynamic_membership_changes_last_hour": "membership_changes",
    "entra_dynamic_membership_changes_total": "membership_changes",
    "entra_dynamic_object_changes_last_hour": "object_changes",
    "entra_dynamic_groups_changed_last_hour": "groups_changed",
}
"""What a per-hour panel's metric counts, as the exporter's signals (/api/v1/readiness) say it."""


def write_scenario(path: Path) -> Path:
    """The `demo` command's story with a day of history (the demo pre-writes seven)."""
    scenario = resolve_scenario("storm", {"timeline": DEMO_TIMELINE, "history": {"days": 1}})
    document = scenario.model_dump(mode="json", exclude_none=True)
    document["name"] = "demo-e2e"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def write_demo_config(path: Path, graph_url: str, critical: list[str]) -> Path:
    """docs/examples/compose-demo.yml with this run's addresses and paths, and the demo's
    sections (a day's backfill, as the simulator holds a day)."""
    document = yaml.safe_load(COMPOSE_DEMO.read_text(encoding="utf-8"))
    (tenant,) = document["tenants"]
    assert tenant["name"] == TENANT, COMPOSE_DEMO
    assert tenant["clock"] == "simulator", COMPOSE_DEMO
    tenant["graph_base_url"] = graph_url
    tenant["critical_groups"] = critical
    document["store"]["path"] = str(path.parent / "demo.sqlite3")
    for name, section in DEMO_SECTIONS.items():
        document[name] = {**document.get(name, {}), **section}
    document["polling"]["backfill_days"] = 1
    return write_config_file(path, document)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("demo-e2e")
    with running_stack(
        directory,
        scenario=write_scenario(directory / "demo-e2e.yaml"),
        simulator_flags=[],  # the scenario's start, as the demo
        exporter_config=write_demo_config,
        for_override=FOR_OVERRIDE,
    ) as running:
        yield running


@dataclass(frozen=True)
class Storm:
    alerts: list[dict[str, Any]]
    wall_seconds: float
    simulated_seconds: float


@pytest.fixture(scope="module")
def storm(stack: Stack) -> Storm:
    """The clock runs at SPEED until the push is over, then in slow motion (SLOW_MOTION) until
    the alert fires, and stops."""
    began = stack.clock()["now"]
    started = time.monotonic()
    stack.set_speed(SPEED)
    stack.wait_until(
        lambda: stack.clock()["now"] >= began + PUSH_OVER,
        within=STORM_TIMEOUT,
        what=f"the demo's push to end ({PUSH_OVER / 3600:g} h into the story)",
    )
    stack.set_speed(SLOW_MOTION)
    stack.wait_until(
        lambda: bool(stack.prometheus.firing(PAUSE_WARRANTED)),
        within=STORM_TIMEOUT,
        what=f"{PAUSE_WARRANTED} firing in Prometheus (for: {FOR_OVERRIDE})",
    )
    wall = time.monotonic() - started
    stopped = stack.set_speed(0)
    return Storm(stack.prometheus.firing(PAUSE_WARRANTED), wall, stopped["now"] - began)


@pytest.fixture(scope="module")
def paused(storm: Storm, stack: Stack) -> float:
    """Runs the clock on until Prometheus sees the operator's pause (the demo pauses every
    dynamic group at 5 h) and the critical groups' pause times; returns the simulated time."""
    stack.set_speed(SPEED)
    episode = f'entra_dynamic_pause_started_timestamp_seconds{{tenant="{TENANT}"}} > 0'
    critical = (
        f'entra_dynamic_group_paused_since_timestamp_seconds{{tenant="{TENANT}", critical="true"}}'
    )
    stack.wait_until(
        lambda: bool(stack.prometheus.query(episode)) and bool(stack.prometheus.query(critical)),
        within=PAUSE_TIMEOUT,
        what="Prometheus to see the operator's pause (the episode, the critical groups paused)",
    )
    return stack.set_speed(0)["now"]


# --- reading the dashboards -----------------------------------------------------------------


def dashboard_expressions() -> list[Expression]:
    return [e for e in expressions() if e.source == "dashboard"]


def query_of(expression: Expression) -> str:
    promql = substitute_variables(expression.promql, GRAFANA_VARIABLES)
    assert "$" not in promql, f"{expression.where}: a template variable is not substituted"
    return promql


def units() -> dict[str, str]:
    """Expression `where` -> the unit of its panel."""
    found = {}
    for file_name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
            for item in panel.get("targets", []):
                found[f"dashboards/json/{file_name}: {panel['title']!r} {item['refId']}"] = unit
    return found


def evaluate_all(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Every dashboard query's instant result; fails on any query Prometheus refuses."""
    results: dict[str, list[dict[str, Any]]] = {}
    errors = []
    for expression in dashboard_expressions():
        try:
            results[expression.where] = stack.prometheus.query(query_of(expression))
        except PrometheusError as exc:
            errors.append(f"{expression.where}: {exc}")
    assert errors == [], stack.fail("dashboard queries Prometheus refuses:\n" + "\n".join(errors))
    return results


def negative_durations(stack: Stack) -> list[str]:
    unit_of = units()
    negative = []
    for where, result in evaluate_all(stack).items():
        if unit_of.get(where) not in AGE_UNITS:
            continue
        for sample in result:
            value = float(sample["value"][1])
            if math.isfinite(value) and value < 0:
                negative.append(f"{where} {sample['metric']}: {value:,.0f} s")
    return negative


def uses_rate(promql: str) -> bool:
    return any(f"{function}(" in promql for function in ("rate", "irate", "increase"))


def hourly_expressions() -> list[tuple[Expression, str]]:
    """Per-hour panels of the tenant's activity, with what each counts (HOURLY_TRUTH): every
    query in a panel in /h, and every query reading one of the trailing-hour gauges alone."""
    unit_of = units()
    found = []
    for expression in dashboard_expressions():
        metrics = {s.metric for s in selectors(query_of(expression))}
        counted = {HOURLY_TRUTH[m] for m in metrics if m in HOURLY_TRUTH}
        per_hour = unit_of.get(expression.where) == "suffix:/h"
        if len(metrics) == 1 and len(counted) == 1 and (per_hour or "last_hour" in str(metrics)):
            found.append((expression, counted.pop()))
    return found


def truth(stack: Stack) -> dict[str, dict[str, float]]:
    """The exporter's own trailing-hour counts, as its signals see them: what -> {label: n}."""
    body = stack.http.get(f"{stack.exporter_url}/api/v1/readiness").json()
    (view,) = [t for t in body["tenants"] if t["tenant"] == TENANT]
    assessment = view["assessment"]
    rates = assessment["rates"]
    return {
        "membership_changes": {"": float(rates["membership_changes"]["last_hour"])},
        "groups_changed": {"": float(assessment["groups_changed_last_hour"])},
        "object_changes": {
            kind: float(rates[f"{kind}_changes"]["last_hour"]) for kind in ("user", "device")
        },
    }


def hourly_disagreements(stack: Stack) -> list[str]:
    expected = truth(stack)
    wrong = []
    for expression, what in hourly_expressions():
        result = stack.prometheus.query(query_of(expression))
        shown: dict[str, float] = {}
        for sample in result:
            key = sample["metric"].get("object_type", "")
            shown[key] = shown.get(key, 0.0) + float(sample["value"][1])
        for key, want in expected[what].items():
            got = shown.get(key, 0.0)
            if abs(got - want) > max(HOURLY_TOLERANCE * want, 1.0):
                wrong.append(
                    f"{expression.where} {key or what}: {got:,.0f} against the exporter's "
                    f"{want:,.0f} in the trailing hour"
                )
    if not any(what == "membership_changes" for _, what in hourly_expressions()):
        wrong.append("no per-hour panel of membership changes was found to compare")
    return wrong


def assert_hourly_panels_agree(stack: Stack) -> None:
    """Within 10% of what the signals count; waited for, as Prometheus may hold the snapshot
    before last for a scrape (the clock is stopped, so the exporter's numbers stand still)."""
    last: list[str] = []

    def agree() -> bool:
        last[:] = hourly_disagreements(stack)
        return not last

    try:
        stack.wait_until(agree, within=15, what="every per-hour panel to agree")
    except AssertionError:
        raise AssertionError(
            stack.fail("per-hour panels against the exporter's trailing hour:\n" + "\n".join(last))
        ) from None


# --- the design, on the dashboards as shipped ---------------------------------------------------


def test_only_the_exporters_own_work_is_a_rate_in_prometheus_time() -> None:
    """The tenant's activity per hour is read from trailing-hour gauges (the tenant's clock);
    rate() is for the exporter's own work per wall-clock second."""
    rated = {e.where for e in dashboard_expressions() if uses_rate(e.promql)}
    assert sorted(rated) == sorted(WALL_CLOCK_RATES)
    assert not [e.where for e in dashboard_expressions() if "time()" in e.promql]
    assert not [e.where for e in expressions() if e.source == "rules" and "time()" in e.promql]


# --- the storm ----------------------------------------------------------------------------------


def test_the_demo_storm_warrants_a_pause_in_prometheus(stack: Stack, storm: Storm) -> None:
    reasons = {a["labels"]["reason"] for a in storm.alerts}
    assert "trigger_rate" in reasons, stack.fail(f"firing: {storm.alerts}")
    assert {a["labels"]["tenant"] for a in storm.alerts} == {TENANT}
    print(
        f"\n{PAUSE_WARRANTED} fired {storm.wall_seconds:.1f}s after the clock started "
        f"({storm.simulated_seconds / 3600:.1f} simulated hours: x{SPEED:g}, then x{SLOW_MOTION:g} "
        "from the end of the push)"
    )


def test_no_dashboard_duration_is_negative_in_the_storm(stack: Stack, storm: Storm) -> None:
    negative = negative_durations(stack)
    assert negative == [], stack.fail("negative durations:\n" + "\n".join(negative))


def test_hourly_panels_agree_with_the_exporters_trailing_hour_in_the_storm(
    stack: Stack, storm: Storm
) -> None:
    """Within 10% of what the signals count (the clock is stopped: Prometheus has the last
    snapshot within a scrape or two)."""
    assert_hourly_panels_agree(stack)
    print(f"\ntrailing hour in the storm, as the exporter's signals count it: {truth(stack)}")


def test_the_page_reaches_alertmanager_and_its_runbook_link_opens(
    stack: Stack, storm: Storm
) -> None:
    """Prometheus -> Alertmanager (alerts/alertmanager.yml) -> the pager and chat webhooks; the
    notification's runbook_url opens the alert's section on the exporter."""

    def notified() -> list[dict[str, Any]]:
        return [
            alert
            for path in (PAGER_PATH, CHAT_PATH)
            for message in stack.webhook.at(path)
            for alert in message.get("alerts", [])
            if alert["labels"].get("alertname") == PAUSE_WARRANTED
        ]

    def chat_heard() -> bool:
        return any(PAUSE_WARRANTED in title for title in stack.webhook.chat_messages())

    stack.wait_until(
        lambda: chat_heard() or bool(notified()),
        within=20,
        what=f"Alertmanager to deliver {PAUSE_WARRANTED} to a webhook",
    )
    alerts = notified()
    if alerts:
        links = {a["annotations"]["runbook_url"] for a in alerts}
    else:  # the chat's Slack format carries the link in its text
        text = "\n".join(stack.webhook.chat_messages().values())
        links = {line.removeprefix("Runbook: ") for line in text.splitlines() if "Runbook:" in line}
    assert links == {f"{stack.exporter_url}/runbook#{PAUSE_WARRANTED.lower()}"}, links
    (link,) = links
    page = stack.http.get(link)
    assert page.status_code == 200
    assert f'<h2 id="{PAUSE_WARRANTED.lower()}">' in page.text


# --- after the operator's pause -------------------------------------------------------------


def test_no_dashboard_duration_is_negative_once_paused(stack: Stack, paused: float) -> None:
    negative = negative_durations(stack)
    assert negative == [], stack.fail("negative durations:\n" + "\n".join(negative))
    results = evaluate_all(stack)
    for where in (
        "dashboards/json/overview.json: 'Paused for' A",
        "dashboards/json/critical-groups.json: 'Longest critical pause' A",
    ):
        assert results[where], stack.fail(f"{where}: no data once paused")


def test_hourly_panels_agree_with_the_exporters_trailing_hour_once_paused(
    stack: Stack, paused: float
) -> None:
    assert_hourly_panels_agree(stack)
    print(f"\ntrailing hour once paused, as the exporter's signals count it: {truth(stack)}")
