"""Settings that cannot work are refused (#14 item 6): every config in the table was accepted by
`config check` before, and each is now one line naming the key and where the value came from
(the file, a --config.set flag or an environment variable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from exporter.cli.main import cli
from exporter.config.loading import ConfigError, load_config

NAN, INF = float("nan"), float("inf")


def base() -> dict[str, Any]:
    return {
        "tenants": [
            {
                "name": "lab",
                "auth": {"method": "static_token", "token": "t"},
                "graph_base_url": "http://127.0.0.1:8080",
            }
        ]
    }


def with_setting(dotted: str, value: Any) -> dict[str, Any]:
    document = base()
    parts = dotted.split(".")
    node = document["tenants"][0] if parts[0] == "tenants" else document
    for part in parts[2:-1] if parts[0] == "tenants" else parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return document


# (setting, value, what the line must say): each accepted by `config check` before #14.
REFUSED: list[tuple[str, Any, str]] = [
    ("polling.groups_interval", NAN, "finite"),
    ("polling.audit_interval", INF, "finite"),
    ("polling.critical_status_interval", "nan", "finite"),
    ("polling.audit_interval", "0.001s", "at least 1s"),
    ("polling.request_timeout", 0, "longer than 0s"),
    ("polling.retry_initial_delay", "0s", "longer than 0s"),
    ("polling.retry_max_delay", "1ms", "retry_max_delay is shorter than retry_initial_delay"),
    ("polling.lateness_allowance", "40d", "shorter than 1d"),
    ("polling.backfill_days", INF, "finite"),
    ("polling.groups_interval", "1h", "collector_max_age"),
    ("polling.audit_interval", "2h", "collector_max_age"),
    ("thresholds.trigger_rate_sustain", NAN, "finite"),
    ("thresholds.baseline_floor_per_hour", INF, "finite"),
    ("thresholds.recovery_tolerance", INF, "finite"),
    ("thresholds.episode_min_share", NAN, "finite"),
    ("thresholds.minimum_pause", "1e400", "finite"),
    ("resume.batch_interval", NAN, "finite"),
    ("tenants.lab.graph_base_url", "http://127.0.0.1:99999", "port outside 1-65535"),
    ("tenants.lab.graph_base_url", "http://127.0.0.1:0", "port outside 1-65535"),
]


@pytest.mark.parametrize(
    ("setting", "value", "says"), REFUSED, ids=[f"{s}={v}" for s, v, _ in REFUSED]
)
def test_a_setting_that_cannot_work_is_one_line_naming_the_key_and_the_file(
    tmp_path: Path, setting: str, value: Any, says: str
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(with_setting(setting, value)))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    problems = refused.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: ")
    assert setting.rsplit(".", 1)[-1] in problems[0]
    assert says.lower() in problems[0].lower(), problems[0]


def test_the_defaults_and_the_edges_of_each_range_still_load(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    document = base()
    document["polling"] = {
        "audit_interval": "1s",
        "lateness_allowance": "23h",
        "reconcile_reach": "1d",
        "backfill_days": 30,
    }
    document["resume"] = {"batch_interval": 0}
    document["tenants"][0]["graph_base_url"] = "http://127.0.0.1:65535"
    path.write_text(yaml.safe_dump(document))
    load_config(path)


def cli_check(path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["config", "check", str(path), *args], env=env)
    return result.exit_code, result.output.strip().splitlines()


@pytest.mark.parametrize(
    ("setting", "value"),
    [("polling.groups_interval", ".nan"), ("tenants.lab.graph_base_url", "http://127.0.0.1:0")],
)
def test_an_override_s_problem_names_the_flag_or_the_variable_not_the_file(
    tmp_path: Path, setting: str, value: str
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(base()))
    code, lines = cli_check(path, "--config.set", f"{setting}={value}")
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"--config.set {setting}: "), lines[0]

    variable = "ENTRA_DG_CONFIG__" + setting.upper().replace(".", "__")
    code, lines = cli_check(path, env={variable: value})
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"environment {variable}: "), lines[0]

    # Flags win over the environment: a good flag over a bad variable is no problem.
    good = "5m" if setting.startswith("polling") else "http://127.0.0.1:8080"
    code, lines = cli_check(path, "--config.set", f"{setting}={good}", env={variable: value})
    assert code == 0, lines


def test_a_section_check_blames_the_override_it_names(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(base()))
    code, lines = cli_check(path, "--config.set", "polling.retry_max_delay=1ms")
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("--config.set polling.retry_max_delay: "), lines[0]
