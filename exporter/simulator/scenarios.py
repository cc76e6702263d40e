"""Scenario files: what tenant to build, how it behaves every day, and what happens when.

The format is documented in docs/simulator.md; bundled scenarios are in `scenarios/*.yaml`
(`steady`, `storm`, `rule-edit`). Every key is checked: a typo is an error naming the key.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exporter.config.durations import Duration
from exporter.simulator.faults import FaultSettings

MAX_DYNAMIC_GROUPS = 15_000
BUNDLED = ("steady", "storm", "rule-edit")


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message is one line naming the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupModel(_Strict):
    name: str = Field(min_length=1, max_length=256)
    rule: str = Field(min_length=1, max_length=3072)
    critical: bool = False
    paused: bool = False
    administrative_unit: bool = False
    description: str | None = None


class TenantModel(_Strict):
    users: Annotated[int, Field(ge=0, le=2_000_000)] = 2000
    devices: Annotated[int, Field(ge=0, le=2_000_000)] = 500
    dynamic_groups: Annotated[int, Field(ge=0)] = 60
    device_group_share: Annotated[float, Field(ge=0, le=1)] = 0.2
    administrative_units: Annotated[int, Field(ge=0)] = 4
    static_groups: Annotated[int, Field(ge=0)] = 10
    critical_groups: Annotated[int, Field(ge=0)] = 3
    paused_groups: Annotated[int, Field(ge=0)] = 0
    groups: tuple[GroupModel, ...] = ()
    hygiene_examples: bool = True

    @model_validator(mode="after")
    def _within_entra_limits(self) -> TenantModel:
        total = self.dynamic_groups + self.administrative_units + len(self.groups)
        if total > MAX_DYNAMIC_GROUPS:
            raise ValueError(
                f"{total} dynamic groups and administrative units exceed Entra's limit of "
                f"{MAX_DYNAMIC_GROUPS} per tenant"
            )
        if self.critical_groups + self.paused_groups > self.dynamic_groups and self.dynamic_groups:
            raise ValueError("critical_groups + paused_groups cannot exceed dynamic_groups")
        return self


class ProcessingModel(_Strict):
    evaluations_per_hour: Annotated[float, Field(gt=0)] = 200_000.0
    write_cost: Annotated[float, Field(ge=0)] = 4.0
    full_scan_cost: Annotated[float, Field(ge=0)] = 0.05
    item_overhead: Annotated[float, Field(ge=0)] = 1.0
    pickup_delay: Duration = 60.0


class DelayModelSettings(_Strict):
    median: Duration = 120.0
    sigma: Annotated[float, Field(ge=0)] = 0.8
    min: Duration = 15.0
    max: Duration = 900.0


class AuditModel(_Strict):
    delay: DelayModelSettings = DelayModelSettings()
    retention_days: Annotated[int, Field(ge=1, le=30)] = 30


class HistoryModel(_Strict):
    days: Annotated[float, Field(ge=0, le=30)] = 7.0
    dynamic_changes_per_hour: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        description="weekly mean of dynamic membership changes per hour in history; default: "
        "measured by trying everyday updates against this tenant's rules",
    )


class LoadModel(_Strict):
    """Weekly-mean hourly rates of everyday changes; `diurnal` (24) and `weekly` (7, Monday
    first) shape them over the week."""

    user_updates_per_hour: Annotated[float, Field(ge=0)] = 120.0
    device_updates_per_hour: Annotated[float, Field(ge=0)] = 40.0
    user_adds_per_hour: Annotated[float, Field(ge=0)] = 2.0
    device_adds_per_hour: Annotated[float, Field(ge=0)] = 2.0
    manual_changes_per_hour: Annotated[float, Field(ge=0)] = 4.0
    group_updates_per_hour: Annotated[float, Field(ge=0)] = 0.1
    group_expiries_per_hour: Annotated[float, Field(ge=0)] = 0.25
    """Microsoft 365 group expiration decisions by the dynamic-processing app (#13): about 6 a
    day, a tenant's ~1,000 Microsoft 365 groups over a 180-day lifetime; most autorenewed."""
    other_audit_events_per_hour: Annotated[float, Field(ge=0)] = 0.0
    """Directory audit activity the exporter does not ingest (application, service principal,
    policy management): 0 by default; the budget benchmark sets it to price the query modes."""
    diurnal: tuple[float, ...] | None = Field(default=None, min_length=24, max_length=24)
    weekly: tuple[float, ...] | None = Field(default=None, min_length=7, max_length=7)


GroupSelector = Literal["all", "critical", "non_critical"] | tuple[str, ...]


class _Action(_Strict):
    at: Duration


class BulkUpdate(_Action):
    """Set attributes on many objects, spread evenly over `over` (a sync or script push)."""

    action: Literal["bulk_update"]
    object_type: Literal["user", "device"] = "user"
    count: Annotated[int, Field(ge=1)] | None = None
    fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    where: dict[str, Any] | None = None
    set: dict[str, Any] = Field(min_length=1)
    over: Duration = 0.0
    actor: Literal["sync", "hr", "admin"] = "sync"

    @model_validator(mode="after")
    def _one_size(self) -> BulkUpdate:
        if self.count is not None and self.fraction is not None:
            raise ValueError("bulk_update takes count or fraction, not both")
        return self


class Pause(_Action):
    """An operator action: pause groups (switched off with `operator_actions: false`)."""

    action: Literal["pause"]
    groups: GroupSelector = "all"
    batch_size: Annotated[int, Field(ge=1)] | None = None
    interval: Duration = 0.0


class Resume(_Action):
    """An operator action: resume groups this timeline paused (never ones paused before)."""

    action: Literal["resume"]
    groups: GroupSelector = "all"
    batch_size: Annotated[int, Field(ge=1)] | None = None
    interval: Duration = 0.0


class EditRule(_Action):
    action: Literal["edit_rule"]
    group: str = Field(description="name or id, or 'largest' (the largest dynamic user group)")
    rule: str = Field(min_length=1, max_length=3072)


class SetLoad(_Action):
    """Multiply the everyday load from now on (1 = normal)."""

    action: Literal["set_load"]
    factor: Annotated[float, Field(ge=0)]


class SetProcessingError(_Action):
    """Make a group report a failed processing status (`message: null` clears it)."""

    action: Literal["processing_error"]
    group: str
    message: str | None = "Processing failed: the group could not be updated."


Action = Annotated[
    BulkUpdate | Pause | Resume | EditRule | SetLoad | SetProcessingError,
    Field(discriminator="action"),
]


class Scenario(_Strict):
    name: str = "custom"
    description: str = ""
    seed: int = 0
    start: str | None = Field(
        default=None, description="ISO-8601 UTC start of the simulation; default: the hour now"
    )
    speed: Annotated[float, Field(ge=0)] = 1.0
    operator_actions: bool = True
    tenant: TenantModel = TenantModel()
    processing: ProcessingModel = ProcessingModel()
    audit: AuditModel = AuditModel()
    history: HistoryModel = HistoryModel()
    load: LoadModel = LoadModel()
    faults: FaultSettings | None = None
    timeline: tuple[Action, ...] = ()

    @model_validator(mode="after")
    def _history_within_retention(self) -> Scenario:
        if self.history.days > self.audit.retention_days:
            raise ValueError(
                f"history.days ({self.history.days:g}) exceeds audit.retention_days "
                f"({self.audit.retention_days}): older events could never be read"
            )
        return self


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {message}{suffix}"


def parse_scenario(raw: Any, source: str) -> Scenario:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: a scenario is a YAML mapping (name:, tenant:, ...)")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{source}: {_first_problem(exc)}") from None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A bundled scenario by name (`storm`) or a YAML file by path."""
    text = str(name_or_path)
    if text in BUNDLED:
        source = f"bundled scenario {text!r}"
        content = (
            resources.files("exporter.simulator")
            .joinpath("scenarios", f"{text}.yaml")
            .read_text(encoding="utf-8")
        )
    elif text.endswith((".yaml", ".yml")) or Path(text).exists():
        source = text
        try:
            content = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{text}: cannot read the scenario file: {exc.strerror}") from None
    else:
        raise ScenarioError(
            f"unknown scenario {text!r}: use one of {', '.join(BUNDLED)} or a path to a .yaml file"
        )
    try:
        raw = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ScenarioError(f"{source}: not valid YAML{where}") from None
    return parse_scenario(raw, source)
