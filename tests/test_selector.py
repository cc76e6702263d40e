"""One selector setting (alerts/config.py EXPORTER_SELECTOR, as kubernetes-mixin's `_config`)
decides which series every rule and every dashboard query reads: rendered with another selector,
nothing still names the default job, every exporter series carries the new matchers, and
promtool accepts the rules."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import build as alerts_build
from alerts import config as c
from alerts import rules as alerts_rules
from dashboards import build as dashboards_build
from tests.monitoring_contract import selectors, substitute_variables
from tests.prometheus_tools import run

OTHER = 'job="monitoring/entra", cluster="prod-eu"'
OTHER_MATCHERS = {("job", "=", "monitoring/entra"), ("cluster", "=", "prod-eu")}


def _exporter_series(metric: str, recorded: set[str]) -> bool:
    return metric == "up" or (metric.startswith("entra_dynamic_") and metric not in recorded)


def _dashboard_queries(doc: dict[str, Any]) -> list[str]:
    queries = [v["query"] for v in doc["templating"]["list"] if v["type"] == "query"]
    stack = list(doc["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        queries.extend(t["expr"] for t in panel.get("targets", []))
    return queries


@pytest.fixture
def other_selector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """alerts/config.py as a deployment would edit it. alerts.rules builds its rules when it is
    imported (as `python -m alerts.build` does), so it is imported again on both sides."""
    with monkeypatch.context() as patch:
        patch.setattr(c, "EXPORTER_SELECTOR", OTHER)
        importlib.reload(alerts_rules)
        yield
    importlib.reload(alerts_rules)


@pytest.mark.usefixtures("other_selector")
def test_every_rule_and_dashboard_follows_the_selector_setting(tmp_path: Path) -> None:
    rule_texts = alerts_build.render()
    recorded = {
        rule["record"]
        for rule in yaml.safe_load(rule_texts[alerts_build.RECORDING_FILE])["groups"][0]["rules"]
    }
    expressions = [
        rule["expr"]
        for text in rule_texts.values()
        for group in yaml.safe_load(text)["groups"]
        for rule in group["rules"]
    ]
    for text in dashboards_build.render().values():
        doc = json.loads(text)
        for query in _dashboard_queries(doc):
            query = substitute_variables(query)
            if query.startswith("label_values("):
                query = query.removeprefix("label_values(").rsplit(",", 1)[0]
            expressions.append(query)
    checked = 0
    for expr in expressions:
        assert "entra-dg-exporter" not in expr, expr
        for selector in selectors(expr):
            if _exporter_series(selector.metric, recorded):
                assert set(selector.matchers) >= OTHER_MATCHERS, (expr, selector)
                checked += 1
    assert checked > 50, "the test saw too few selectors to mean anything"

    written = alerts_build.write_rule_files(tmp_path)
    result = run("promtool", ["check", "rules", *map(str, written)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules_takes_the_rule_directory_glob_alone() -> None:
    # The shell's glob, as an operator types it: nothing but rule files may match.
    files = sorted(alerts_build.RULES_DIR.glob("*.yml"))
    assert [f.name for f in files] == sorted(
        [alerts_build.RECORDING_FILE, alerts_build.ALERTING_FILE]
    )
    result = run("promtool", ["check", "rules", *map(str, files)])
    assert result.returncode == 0, result.stdout + result.stderr
