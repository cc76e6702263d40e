"""Every PromQL expression in the rules, the dashboards and the runbook parses, names only metrics
the real exporter exports (its /metrics watching the storm, tests/storm.py) or a recording rule
records, and matches only label values of the contract; the exporter exports every family of the
contract, and no label value outside it."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.monitoring_contract import (
    CONTRACT,
    CONTRACT_LABEL_VALUES,
    PROMETHEUS_SERIES,
    Expression,
    contract_exposition,
    exported_label_values,
    exported_sample_names,
    expressions,
    family_of,
    parse,
    recorded_names,
    sample_names_from_exposition,
    selectors,
)
from tests.prometheus_tools import run
from tests.storm import capture_storm_exposition

EXPRESSIONS = expressions()
_SIMPLE_ALTERNATION = re.compile(r"^[a-z0-9_]+(\|[a-z0-9_]+)*$")


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The real exporter's /metrics, watching the storm (about 3 s)."""
    return asyncio.run(capture_storm_exposition(tmp_path_factory.mktemp("storm")))


def test_expressions_come_from_every_source() -> None:
    sources = {e.source for e in EXPRESSIONS}
    assert sources == {"rules", "dashboard", "runbook"}
    assert len(EXPRESSIONS) > 60


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=lambda e: e.where)
def test_expression_parses(expression: Expression) -> None:
    try:
        parse(expression.substituted())
    except ValueError as exc:
        pytest.fail(f"{expression.where}: {exc}\n{expression.promql}", pytrace=False)


def test_every_metric_used_is_exported_or_recorded(exposition: str) -> None:
    known = exported_sample_names(exposition) | recorded_names() | PROMETHEUS_SERIES
    unknown = sorted(
        {
            f"{selector.metric} (in {expression.where})"
            for expression in EXPRESSIONS
            for selector in selectors(expression.substituted())
            if selector.metric not in known
        }
    )
    assert not unknown, "metrics neither exported nor recorded:\n" + "\n".join(unknown)


def test_every_matched_label_value_is_in_the_contract() -> None:
    wrong = []
    for expression in EXPRESSIONS:
        for selector in selectors(expression.substituted()):
            family = family_of(selector.metric)
            for label, op, value in selector.matchers:
                allowed = CONTRACT_LABEL_VALUES.get((family, label))
                if allowed is None or op not in ("=", "=~"):
                    continue
                if op == "=~" and not _SIMPLE_ALTERNATION.match(value):
                    continue
                for alternative in value.split("|"):
                    if alternative not in allowed:
                        wrong.append(f"{expression.where}: {family}{{{label}={alternative!r}}}")
    assert not wrong, "label values outside docs/architecture.md:\n" + "\n".join(wrong)


def test_the_label_check_catches_a_wrong_value() -> None:
    selector = selectors('entra_dynamic_pause_warranted{reason="membership_change"}')[0]
    allowed = CONTRACT_LABEL_VALUES[(family_of(selector.metric), "reason")]
    assert selector.matchers[0][2] not in allowed


def test_the_exporter_exports_every_family_of_the_contract(exposition: str) -> None:
    exported = {family_of(name) for name in exported_sample_names(exposition)}
    missing = sorted(f.name for f in CONTRACT if f.name not in exported)
    assert not missing, "contract families the exporter does not export:\n" + "\n".join(missing)


def test_the_exporter_exports_only_label_values_of_the_contract(exposition: str) -> None:
    outside = {
        f"{family}{{{label}}}: {sorted(values - CONTRACT_LABEL_VALUES[(family, label)])}"
        for (family, label), values in exported_label_values(exposition).items()
        if values - CONTRACT_LABEL_VALUES[(family, label)]
    }
    assert not outside, "label values outside docs/architecture.md:\n" + "\n".join(sorted(outside))


def test_the_real_exposition_passes_promtool_check_metrics(exposition: str) -> None:
    result = run("promtool", ["check", "metrics"], stdin=exposition)
    assert result.returncode == 0, result.stdout + result.stderr


def test_exposition_parsing_finds_every_sample_name() -> None:
    names = sample_names_from_exposition(contract_exposition())
    assert "entra_dynamic_graph_requests_total" in names
    assert {
        "entra_dynamic_processing_lag_seconds_bucket",
        "entra_dynamic_processing_lag_seconds_count",
        "entra_dynamic_processing_lag_seconds_sum",
    } <= names
    assert names == exported_sample_names(contract_exposition())


def test_the_contract_passes_promtool_check_metrics() -> None:
    result = run("promtool", ["check", "metrics"], stdin=contract_exposition())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout
