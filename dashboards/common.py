"""Building blocks shared by the *.dashboard.py files, and the JSON normaliser.

Every panel and target uses the `datasource` template variable, every query selects
`tenant=~"$tenant"`, every rate uses `$__rate_interval`, every panel has a unit, a title and a
description (tests/test_dashboards.py lints the generated JSON for all of it).

Why a normaliser: grafanalib 0.7.1 emits schemaVersion 12 and the legacy keys that went with it.
Grafana migrates a dashboard from its stated schemaVersion up, one step at a time; a dashboard that
claims a modern version skips those migrations, so its JSON must already be in the modern shape.
For SCHEMA_VERSION 39 (Grafana 10.4 and later; Grafana 11.3+ and 12 then apply the trivial steps
40 and 41 on load) that means:
* datasources are `{"type", "uid"}` references on panels and targets, never names (step 33) and
  never null (step 36: null meant "the default datasource");
* panels have `gridPos`; no legacy `rows`, `span`, `height` (step 16);
* legends carry `showLegend` (step 37: `displayMode: hidden` became `showLegend: false`);
* table cells use `custom.cellOptions`, not `custom.displayMode` (step 38);
* `refresh` is a string (step 40) and the timepicker has no `time_options` (step 41);
* only current panel types: timeseries, stat, table, state-timeline, heatmap (the new heatmap
  options, `calculate: false` for Prometheus buckets), no graph or singlestat (Angular panels are
  gone since Grafana 11).
Nulls are dropped, except the first threshold step's `value: null`, which Grafana reads as
minus infinity.
"""

from __future__ import annotations

import json
from typing import Any

import attr
from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from alerts import config as c

SCHEMA_VERSION = 39
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
TENANT_MATCHER = 'tenant=~"$tenant"'
JOB_MATCHER = 'job=~"$job"'
INSTANCE_MATCHER = 'instance=~"$instance"'
TAG = "entra-dg"

GREEN, ORANGE, RED, BLUE, GREY = "green", "orange", "red", "blue", "text"


def metric(name: str, *matchers: str) -> str:
    """A raw exporter metric: `name{<EXPORTER_SELECTOR>, job=~"$job", instance=~"$instance",
    tenant=~"$tenant", <matchers>}`."""
    return f"{name}{{{', '.join((*_exporter(), TENANT_MATCHER, *matchers))}}}"


def _exporter() -> tuple[str, ...]:
    """The exporter's series (alerts/config.py's selector, read when the dashboards are built),
    narrowed by the job and instance variables."""
    return (c.EXPORTER_SELECTOR, JOB_MATCHER, INSTANCE_MATCHER)


def recorded(name: str, *matchers: str) -> str:
    """A recording rule's output (it has no job label): `name{tenant=~"$tenant", ...}`."""
    return f"{name}{{{', '.join((TENANT_MATCHER, *matchers))}}}"


def target(
    expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, fmt: str = "time_series"
) -> Any:
    return g.Target(
        expr=expr,
        legendFormat=legend,
        refId=ref,
        instant=instant,
        format=fmt,
        datasource=DATASOURCE,
    )


def targets(*items: tuple[str, str]) -> list[Any]:
    """(expr, legend) pairs -> targets A, B, C..."""
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(items)]


def pos(x: int, y: int, w: int, h: int) -> Any:
    return g.GridPos(h=h, w=w, x=x, y=y)


def steps(*pairs: tuple[str, float | None]) -> list[dict[str, Any]]:
    """Threshold steps; the first one's value is None (minus infinity)."""
    return [{"color": color, "value": value} for color, value in pairs]


def value_text(
    mapping: dict[int, tuple[str, str]] | dict[str, tuple[str, str]],
) -> list[dict[str, Any]]:
    """{0: ("no", "green"), 1: ("yes", "red")} -> a Grafana value mapping (in the given order)."""
    options = {
        str(value): {"text": text, "color": color, "index": i}
        for i, (value, (text, color)) in enumerate(mapping.items())
    }
    return [{"type": "value", "options": options}]


def row(title: str, y: int) -> Any:
    return g.RowPanel(title=title, gridPos=pos(0, y, 24, 1))


def timeseries(
    title: str,
    description: str,
    items: list[Any],
    unit: str,
    grid: Any,
    *,
    thresholds: list[dict[str, Any]] | None = None,
    stacked: bool = False,
    overrides: list[dict[str, Any]] | None = None,
    fill: int = 10,
    draw: str = "line",
    min_value: int | None = 0,
) -> Any:
    return g.TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=items,
        unit=unit,
        gridPos=grid,
        fillOpacity=fill,
        drawStyle=draw,
        stacking={"mode": "normal", "group": "A"} if stacked else {"mode": "none"},
        thresholds=thresholds or steps((GREEN, None)),
        thresholdsStyleMode="line" if thresholds else "off",
        overrides=overrides or [],
        legendDisplayMode="list",
        tooltipMode="multi",
        valueMin=min_value,
        maxDataPoints=None,
    )


def stat(
    title: str,
    description: str,
    items: list[Any],
    unit: str,
    grid: Any,
    *,
    thresholds: list[dict[str, Any]],
    mappings: list[dict[str, Any]] | None = None,
    no_value: str = "no data",
    graph: bool = False,
) -> Any:
    return g.Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=items,
        format=unit,
        gridPos=grid,
        thresholds=thresholds,
        mappings=mappings or [],
        colorMode="background",
        graphMode="area" if graph else "none",
        reduceCalc="lastNotNull",
        noValue=no_value,
        textMode="value_and_name",
        maxDataPoints=None,
    )


def state_timeline(
    title: str,
    description: str,
    items: list[Any],
    unit: str,
    grid: Any,
    *,
    mappings: list[dict[str, Any]],
    thresholds: list[dict[str, Any]],
) -> Any:
    return g.StateTimeline(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=items,
        gridPos=grid,
        mappings=mappings,
        thresholds=thresholds,
        showValue="never",
        extraJson={"fieldConfig": {"defaults": {"unit": unit}}},
        maxDataPoints=None,
    )


def table(
    title: str,
    description: str,
    items: list[Any],
    unit: str,
    grid: Any,
    *,
    transformations: list[dict[str, Any]],
    overrides: list[dict[str, Any]],
    sort_by: str | None = None,
) -> Any:
    return g.Table(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=items,
        unit=unit,
        gridPos=grid,
        transformations=transformations,
        overrides=overrides,
        filterable=True,
        thresholds=steps((GREEN, None)),
        sortBy=[g.TableSortByField(displayName=sort_by)] if sort_by else [],
        maxDataPoints=None,
    )


@attr.s
class Heatmap(g.Panel):  # type: ignore[misc]  # grafanalib ships no type information
    """The heatmap panel of Grafana 9+ (grafanalib's Heatmap emits the removed legacy one), for
    Prometheus histogram buckets: the data is already bucketed, so `calculate` is off."""

    unit: str = attr.ib(default="s")

    def to_json_data(self) -> Any:
        return self.panel_json(
            {
                "type": "heatmap",
                "fieldConfig": {
                    "defaults": {
                        "unit": self.unit,
                        "custom": {
                            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
                            "scaleDistribution": {"type": "linear"},
                        },
                    },
                    "overrides": [],
                },
                "options": {
                    "calculate": False,
                    "cellGap": 1,
                    "color": {
                        "mode": "scheme",
                        "scheme": "Oranges",
                        "fill": "dark-orange",
                        "scale": "exponential",
                        "exponent": 0.5,
                        "steps": 64,
                        "reverse": False,
                    },
                    "yAxis": {"axisPlacement": "left", "unit": self.unit, "reverse": False},
                    "rowsFrame": {"layout": "auto"},
                    "filterValues": {"le": 1e-9},
                    "legend": {"show": True},
                    "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": True},
                    "cellValues": {"unit": "short"},
                },
            }
        )


def heatmap(title: str, description: str, items: list[Any], unit: str, grid: Any) -> Any:
    panel_class: Any = Heatmap  # attrs fields of the untyped base are invisible to mypy
    return panel_class(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=items,
        unit=unit,
        gridPos=grid,
        thresholds=steps((GREEN, None)),
        maxDataPoints=None,
    )


def datasource_variable() -> Any:
    return g.Template(
        name="datasource",
        label="Data source",
        query="prometheus",
        type="datasource",
        refresh=g.REFRESH_ON_DASHBOARD_LOAD,
    )


def _label_variable(name: str, label: str, *narrowed_by: str) -> Any:
    """A variable listing a label's values among the exporter's series (build_info: one per
    instance), narrowed by the variables before it; All (any value) by default."""
    selector = ", ".join((c.EXPORTER_SELECTOR, *narrowed_by))
    return g.Template(
        name=name,
        label=label,
        query=f"label_values(entra_dynamic_exporter_build_info{{{selector}}}, {name})",
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=".+",
        refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
        sort=g.SORT_ALPHA_IGNORE_CASE_ASC,
    )


def job_variable() -> Any:
    return _label_variable("job", "Job")


def instance_variable() -> Any:
    return _label_variable("instance", "Instance", JOB_MATCHER)


def tenant_variable() -> Any:
    query = f"label_values(entra_dynamic_groups{{{', '.join(_exporter())}}}, tenant)"
    return g.Template(
        name="tenant",
        label="Tenant",
        query=query,
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=".+",
        refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
        sort=g.SORT_ALPHA_IGNORE_CASE_ASC,
    )


def dashboard(*, title: str, uid: str, description: str, panels: list[Any]) -> Any:
    return g.Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=[TAG],
        timezone="browser",
        refresh="1m",
        time=g.Time("now-24h", "now"),
        schemaVersion=SCHEMA_VERSION,
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        editable=False,
        links=[
            g.DashboardLink(
                title="Entra ID dynamic groups",
                tags=[TAG],
                asDropdown=False,
                includeVars=True,
                keepTime=True,
                type="dashboards",
            )
        ],
        templating=g.Templating(
            list=[datasource_variable(), job_variable(), instance_variable(), tenant_variable()]
        ),
        panels=panels,
    ).auto_panel_ids()


# --- JSON normalisation ------------------------------------------------------------------------

_DASHBOARD_LEGACY = ("__inputs", "rows", "hideControls", "sharedCrosshair", "style", "gnetId", "id")
_PANEL_LEGACY = (
    "span",
    "height",
    "minSpan",
    "error",
    "editable",
    "cacheTimeout",
    "columns",
    "fontSize",
    "styles",
    "thresholdType",
    "repeatDirection",
    "maxPerRow",
)
_TARGET_LEGACY = ("query", "target", "metric", "step", "intervalFactor", "hide")
_TEMPLATE_LEGACY = (
    "useTags",
    "tagsQuery",
    "tagValuesQuery",
    "auto",
    "auto_min",
    "auto_count",
    "options",
)


def to_json(dashboard_object: Any) -> dict[str, Any]:
    """A grafanalib Dashboard -> the modern JSON document Grafana provisions."""
    raw = json.loads(json.dumps(dashboard_object.to_json_data(), cls=DashboardEncoder))
    doc: dict[str, Any] = _drop_nulls(raw)
    for key in _DASHBOARD_LEGACY:
        doc.pop(key, None)
    doc.get("timepicker", {}).pop("time_options", None)
    for panel in doc["panels"]:
        _normalise_panel(panel)
    for variable in doc["templating"]["list"]:
        _normalise_variable(variable)
    return doc


def _drop_nulls(value: Any, parent_key: str = "") -> Any:
    if isinstance(value, dict):
        keep_null = parent_key == "steps"
        return {k: _drop_nulls(v, k) for k, v in value.items() if v is not None or keep_null}
    if isinstance(value, list):
        return [_drop_nulls(v, parent_key) for v in value]
    return value


def _normalise_panel(panel: dict[str, Any]) -> None:
    for key in _PANEL_LEGACY:
        panel.pop(key, None)
    if not panel.get("repeat"):
        panel.pop("repeat", None)
    for key in ("hideTimeOverride", "transparent"):
        if panel.get(key) is False:
            del panel[key]
    if panel["type"] == "row":
        for key in ("datasource", "targets", "fieldConfig", "transformations", "links"):
            panel.pop(key, None)
        return
    legend = panel.get("options", {}).get("legend")
    if isinstance(legend, dict) and "displayMode" in legend:
        hidden = legend["displayMode"] == "hidden"
        legend["showLegend"] = not hidden
        if hidden:
            legend["displayMode"] = "list"
    if panel["type"] == "table":
        for key in ("mappings", "color"):
            panel.pop(key, None)
        custom = panel["fieldConfig"]["defaults"].setdefault("custom", {})
        mode = custom.pop("displayMode", "auto")
        custom["cellOptions"] = {"type": mode}
    for item in panel.get("targets", []):
        for key in _TARGET_LEGACY:
            item.pop(key, None)
        if not item.get("interval"):
            item.pop("interval", None)
        item["range"] = not item.get("instant", False)
        item["editorMode"] = "code"


def _normalise_variable(variable: dict[str, Any]) -> None:
    for key in _TEMPLATE_LEGACY:
        variable.pop(key, None)
    if variable["type"] == "query":
        variable["definition"] = variable["query"]
    if variable.get("current", {}).get("text") is None:
        variable["current"] = {}
