from __future__ import annotations

from pathlib import Path

import pytest

from exporter.simulator.app import resolve_scenario
from exporter.simulator.scenarios import BUNDLED, ScenarioError, load_scenario


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_scenarios_load(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name


def test_storm_has_operator_actions_that_can_be_switched_off() -> None:
    storm = load_scenario("storm")
    assert storm.operator_actions
    assert {a.action for a in storm.timeline} >= {"bulk_update", "pause", "resume"}
    quiet = resolve_scenario("storm", {"operator_actions": False})
    assert not quiet.operator_actions


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tenant:\n  userz: 3\n", "tenant.userz: unknown key"),
        ("tenant: {dynamic_groups: 15000, administrative_units: 1}\n", "limit of 15000"),
        ("history: {days: 31}\n", "history.days"),
        ("timeline:\n  - {at: 1h, action: explode}\n", "timeline.0"),
        ("timeline:\n  - {at: soon, action: set_load, factor: 2}\n", "duration"),
        ("- a list\n", "a YAML mapping"),
        ("tenant: [\n", "not valid YAML"),
        ("faults: {error_500_rate: 3}\n", "faults.error_500_rate"),
    ],
)
def test_bad_scenarios_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert str(path) in text


def test_unknown_names_and_missing_files() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        load_scenario("nope")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario("/nonexistent/x.yaml")


def test_custom_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\n"
        "tenant: {users: 50, devices: 0, dynamic_groups: 3, groups: [{name: Sales, rule: "
        "'user.department -eq \"Sales\"', critical: true}]}\n"
        "timeline:\n"
        "  - {at: 30m, action: edit_rule, group: Sales, rule: 'user.department -eq \"Legal\"'}\n"
        "  - {at: 1h, action: processing_error, group: Sales}\n",
        encoding="utf-8",
    )
    scenario = load_scenario(path)
    assert scenario.tenant.groups[0].critical
    assert [a.action for a in scenario.timeline] == ["edit_rule", "processing_error"]
