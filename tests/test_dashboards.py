"""The generated Grafana dashboards: fresh, and linted in the spirit of Grafana's dashboard linter
(templated datasource everywhere, units, $__rate_interval, titles and descriptions, the tenant
variable in every query) plus the modern-schema shape dashboards.common.to_json promises."""

from __future__ import annotations

from typing import Any

import pytest

from alerts import config as c
from dashboards import build
from dashboards.common import DATASOURCE, SCHEMA_VERSION
from tests.monitoring_contract import (
    dashboards,
    matrix_ranges,
    panels,
    recorded_names,
    selectors,
    substitute_variables,
)

DASHBOARDS = dashboards()
MODERN_PANEL_TYPES = {"row", "timeseries", "stat", "table", "state-timeline", "heatmap"}
RATE_SENTINEL = "1h2m3s"  # stands for $__rate_interval in the parsed expression
RATE_SENTINEL_SECONDS = 3723.0
TENANT_SENTINEL = "TENANT_VARIABLE"
EXPORTER_MATCHERS = selectors(f"up{{{c.EXPORTER_SELECTOR}}}")[0].matchers


def _content_panels() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, panel)
        for name, dashboard in DASHBOARDS.items()
        for panel in panels(dashboard)
        if panel["type"] != "row"
    ]


def _targets() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [(name, panel, t) for name, panel in _content_panels() for t in panel["targets"]]


def test_committed_json_is_what_the_source_generates() -> None:
    assert build.stale_files() == [], "run: python -m dashboards.build"


def test_both_dashboards_exist() -> None:
    assert set(DASHBOARDS) == {"overview.json", "critical-groups.json"}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_shape(name: str) -> None:
    doc = DASHBOARDS[name]
    assert doc["schemaVersion"] == SCHEMA_VERSION
    assert doc["uid"].startswith("entra-dg-")
    assert doc["title"]
    assert doc["description"]
    assert isinstance(doc["refresh"], str)
    assert "time_options" not in doc.get("timepicker", {})
    for legacy in ("rows", "__inputs", "sharedCrosshair", "hideControls", "id"):
        assert legacy not in doc, legacy
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["tenant"]["datasource"] == DATASOURCE
    assert variables["tenant"]["query"].startswith("label_values(")
    ids = [p["id"] for p in panels(doc)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def _nulls(value: Any, path: str = "") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _nulls(v, f"{path}[{i}]")]
    return []


def test_no_nulls_but_the_base_threshold_step() -> None:
    for name, doc in DASHBOARDS.items():
        stray = [p for p in _nulls(doc) if not p.endswith(".steps[0].value")]
        assert not stray, f"{name}: nulls at {stray[:5]}"


def test_panels_are_modern_and_laid_out_without_overlap() -> None:
    for name, doc in DASHBOARDS.items():
        cells: dict[tuple[int, int], str] = {}
        for panel in panels(doc):
            assert panel["type"] in MODERN_PANEL_TYPES, f"{name}: {panel['type']}"
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']} is wider than the grid"
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    other = cells.setdefault((x, y), panel["title"])
                    assert other == panel["title"], f"{name}: {panel['title']} overlaps {other}"
            legend = panel.get("options", {}).get("legend")
            if isinstance(legend, dict) and "displayMode" in legend:
                assert "showLegend" in legend, f"{name}: {panel['title']} legend (schema 37)"
            if panel["type"] == "table":
                custom = panel["fieldConfig"]["defaults"]["custom"]
                assert "displayMode" not in custom
                assert "cellOptions" in custom
            if panel["type"] == "heatmap":
                assert panel["options"]["calculate"] is False
                assert all(t["format"] == "heatmap" for t in panel["targets"])


def test_every_panel_has_title_description_unit_and_templated_datasource() -> None:
    for name, panel in _content_panels():
        where = f"{name}: {panel.get('title')!r}"
        assert panel.get("title"), where
        assert len(panel.get("description", "")) >= 20, f"{where}: describe what it shows"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        assert panel["datasource"] == DATASOURCE, where
        thresholds = panel["fieldConfig"]["defaults"].get("thresholds")
        if thresholds is not None:
            assert thresholds["steps"], f"{where}: thresholds need a base step"
            assert thresholds["steps"][0]["value"] is None, f"{where}: base step value is null"
        assert panel["targets"], f"{where}: no query"


def test_every_target_uses_the_datasource_variable() -> None:
    for name, panel, item in _targets():
        assert item["datasource"] == DATASOURCE, f"{name}: {panel['title']} {item['refId']}"


def test_every_range_is_the_rate_interval() -> None:
    for name, panel, item in _targets():
        expr = substitute_variables(
            item["expr"], {"$__rate_interval": RATE_SENTINEL, "$tenant": TENANT_SENTINEL}
        )
        for seconds in matrix_ranges(expr):
            assert seconds == RATE_SENTINEL_SECONDS, (
                f"{name}: {panel['title']}: use [$__rate_interval] in every rate/increase"
            )


def test_every_selector_is_filtered_by_the_tenant_variable() -> None:
    recorded = recorded_names()
    for name, panel, item in _targets():
        expr = substitute_variables(item["expr"], {"$tenant": TENANT_SENTINEL})
        found = selectors(expr)
        assert found, f"{name}: {panel['title']}: selects nothing"
        for selector in found:
            where = f"{name}: {panel['title']}: {selector.metric}"
            assert ("tenant", "=~", TENANT_SENTINEL) in selector.matchers, where
            if selector.metric not in recorded:
                assert set(EXPORTER_MATCHERS) <= set(selector.matchers), where
                assert ("job", "=~", ".+") in selector.matchers, where  # the $job variable
                assert ("instance", "=~", ".+") in selector.matchers, where


def test_build_reports_stale_and_leftover_files(tmp_path: Any) -> None:
    for file_name, text in build.render().items():
        (tmp_path / file_name).write_text(text, encoding="utf-8")
    assert build.stale_files(tmp_path) == []
    (tmp_path / "overview.json").write_text("{}", encoding="utf-8")
    (tmp_path / "removed.json").write_text("{}", encoding="utf-8")
    assert build.stale_files(tmp_path) == ["overview.json", "removed.json"]
