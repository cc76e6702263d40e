"""The generated Prometheus rules: fresh, valid (promtool), unit-tested (promtool), linked to their
runbook sections, and consistent with the exporter's defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import build, rules
from alerts import config as c
from exporter.domain.settings import ResumeSettings, Thresholds
from tests.monitoring_contract import ALERTS_DIR, RUNBOOK
from tests.prometheus_tools import REPO, run

UNIT_TESTS = sorted((ALERTS_DIR / "tests").glob("*.yml"))
DESIGN_SUBCOMMANDS = {
    "serve", "demo", "simulate", "check-resume", "pause", "resume", "plan", "lint-rules", "config",
}  # fmt: skip


def test_committed_rule_files_are_what_the_source_generates() -> None:
    assert build.stale_files() == [], "run: python -m alerts.build"


def test_promtool_check_rules_is_clean() -> None:
    result = run("promtool", ["check", "rules", *map(str, build_paths())])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no promtool unit tests under alerts/tests"
    result = run("promtool", ["test", "rules", *map(str, UNIT_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def build_paths() -> list[Path]:
    return [build.RULES_DIR / build.RECORDING_FILE, build.RULES_DIR / build.ALERTING_FILE]


def _unit_test_groups() -> list[dict[str, Any]]:
    return [
        group
        for path in UNIT_TESTS
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    ]


def test_every_alert_has_a_silent_early_and_a_full_later_evaluation() -> None:
    def seconds(duration: str) -> int:
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", duration))

    cases: dict[str, list[dict[str, Any]]] = {}
    for group in _unit_test_groups():
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case)
    for alert in rules.ALERTS:
        mine = cases.get(alert.name, [])
        firing = [
            (seconds(case["eval_time"]), a)
            for case in mine
            for a in case["exp_alerts"]
            if a["exp_labels"].get("severity") == alert.severity.value
        ]
        assert firing, f"{alert.name} ({alert.severity}): no unit test expects it to fire"
        first_fire = min(t for t, _ in firing)
        assert any(
            not case["exp_alerts"] and seconds(case["eval_time"]) < first_fire for case in mine
        ), f"{alert.name}: no evaluation before it fires that asserts silence"
        for _, expected in firing:
            assert set(expected["exp_annotations"]) == {"summary", "description", "runbook_url"}
            assert expected["exp_annotations"]["runbook_url"] == alert.runbook_url()


def test_every_recording_rule_is_asserted_by_value() -> None:
    asserted = {
        sample["labels"].split("{")[0]
        for group in _unit_test_groups()
        for case in group.get("promql_expr_test", [])
        for sample in case["exp_samples"]
    }
    missing = {r.record for r in rules.RECORDING_RULES} - asserted
    assert not missing, f"recording rules without a promtool value test: {sorted(missing)}"


def test_alert_conventions() -> None:
    for rule in yaml.safe_load((build.RULES_DIR / build.ALERTING_FILE).read_text())["groups"][0][
        "rules"
    ]:
        name = rule["alert"]
        assert re.fullmatch(r"EntraDynamic[A-Z][A-Za-z0-9]+", name), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        notes = rule["annotations"]
        assert "{{" not in notes["summary"], f"{name}: the summary must be static"
        assert "{{" in notes["description"], f"{name}: the description must be templated"
        assert notes["runbook_url"] == f"{c.EXPORTER_URL}/runbook#{name.lower()}", name
        # The notification alone says what to do: the description ends with the next action,
        # a command or a decision, with the tenant filled in where the alert has one.
        next_action = notes["description"].split(" Next: ")[-1]
        assert " Next: " in notes["description"], name
        if "tenant" in rule["expr"]:
            assert "{{ $labels.tenant }}" in next_action, name
        assert "`entra-dg-exporter " in next_action or "decide" in next_action, name


def test_recording_rule_names_are_level_metric_operations() -> None:
    for rule in yaml.safe_load((build.RULES_DIR / build.RECORDING_FILE).read_text())["groups"][0][
        "rules"
    ]:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_invalid_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="level:metric:operations"):
        rules.Recording("tenant_rate5m", "x")
    with pytest.raises(ValueError, match="prefix EntraDynamic"):
        rules.Alert("PauseWarranted", rules.Severity.INFO, "x", 0, "s", "d {{ $value }}")
    with pytest.raises(ValueError, match="summary is static"):
        rules.Alert("EntraDynamicX", rules.Severity.INFO, "x", 0, "{{ $value }}", "{{ $value }}")
    with pytest.raises(ValueError, match="must be templated"):
        rules.Alert("EntraDynamicX", rules.Severity.INFO, "x", 0, "s", "static")
    with pytest.raises(ValueError, match="say what to do next"):
        rules.Alert("EntraDynamicX", rules.Severity.INFO, "x", 0, "s", "{{ $value }}")


# --- runbook ---------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and GitLab) give a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def _runbook_sections() -> dict[str, str]:
    text = RUNBOOK.read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_runbook_url_points_at_an_existing_anchor() -> None:
    anchors = {github_anchor(heading) for heading in _runbook_sections()}
    for alert in rules.ALERTS:
        path, fragment = alert.runbook_url(base_url="https://git.example.com/r").split("#")
        assert path == f"https://git.example.com/r/{c.RUNBOOK_PATH}", alert.name
        assert (REPO / c.RUNBOOK_PATH).resolve() == RUNBOOK.resolve()
        assert fragment in anchors, f"{alert.name}: runbook.md has no anchor #{fragment}"
        served, same = alert.runbook_url().split("#")
        assert served == f"{c.EXPORTER_URL}/runbook"
        assert same == fragment


def test_runbook_has_one_complete_section_per_alert() -> None:
    sections = _runbook_sections()
    alert_sections = {h for h in sections if h.startswith("EntraDynamic")}
    assert alert_sections == set(rules.ALERT_NAMES), "one ## section per alert name, no other"
    for name in rules.ALERT_NAMES:
        body = sections[name]
        for part in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Action.**"):
            assert part in body, f"runbook {name}: missing {part}"
        assert "```promql" in body, f"runbook {name}: no PromQL to diagnose with"
        assert re.search(r"entra-dg-exporter [a-z]", body) or "docker compose" in body, name


def test_runbook_commands_are_the_designed_subcommands() -> None:
    used = set(re.findall(r"entra-dg-exporter ([a-z][a-z-]*)", RUNBOOK.read_text()))
    assert used, "the runbook names no command"
    assert used <= DESIGN_SUBCOMMANDS, f"unknown subcommands: {sorted(used - DESIGN_SUBCOMMANDS)}"
    assert {"check-resume", "plan", "pause", "resume", "lint-rules"} <= used


def test_runbook_quotes_microsoft_with_sources() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    for source in (
        "https://learn.microsoft.com/en-us/entra/identity/users/manage-dynamic-group",
        "troubleshoot-dynamic-group-processing",
        "https://learn.microsoft.com/en-us/graph/throttling-limits",
    ):
        assert source in text
    for figure in ("20,000", "500 groups", "24 hours", "12 hours", "100 groups at a time"):
        assert figure in text, figure


# --- one source of truth with the exporter -------------------------------------------------------


def test_microsoft_figures_match_the_exporter_defaults() -> None:
    defaults = Thresholds()
    assert defaults.membership_changes_per_hour == c.MEMBERSHIP_CHANGES_PER_HOUR
    assert defaults.groups_changed_per_hour == c.GROUPS_CHANGED_PER_HOUR
    assert defaults.minimum_pause == c.MINIMUM_PAUSE_SECONDS
    assert defaults.trigger_rate_factor == c.TRIGGER_RATE_FACTOR
    assert defaults.recovery_tolerance == c.RECOVERY_TOLERANCE
    assert defaults.processing_lag == c.PROCESSING_LAG_SECONDS
    assert defaults.watermark_max_age == c.WATERMARK_MAX_AGE_SECONDS
    assert ResumeSettings().batch_size == 100  # the runbook's "batches of 100"


# --- rules for an end-to-end test ----------------------------------------------------------------


def test_short_for_rendering_is_loadable(tmp_path: Path) -> None:
    paths = build.write_rule_files(tmp_path, for_override="10s")
    alerting = yaml.safe_load((tmp_path / build.ALERTING_FILE).read_text())
    durations = {rule["for"] for rule in alerting["groups"][0]["rules"]}
    assert durations == {"10s"}
    result = run("promtool", ["check", "rules", *map(str, paths)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_check_reports_stale_files(tmp_path: Path) -> None:
    build.write_rule_files(tmp_path)
    assert build.stale_files(tmp_path) == []
    (tmp_path / build.ALERTING_FILE).write_text("groups: []\n")
    assert build.stale_files(tmp_path) == [build.ALERTING_FILE]
    assert build.main(["--check", "--output-dir", str(tmp_path)]) == 1


# --- runbook links for a deployment ------------------------------------------------------------


def test_a_runbook_base_url_makes_every_link_absolute(tmp_path: Path) -> None:
    base = "https://git.example.com/ops/entra-dg-exporter/-/blob/main/"
    assert build.main(["--output-dir", str(tmp_path), "--runbook-base-url", base]) == 0
    alerting = yaml.safe_load((tmp_path / build.ALERTING_FILE).read_text())
    for rule in alerting["groups"][0]["rules"]:
        expected = f"{base}{c.RUNBOOK_PATH}#{rule['alert'].lower()}"
        assert rule["annotations"]["runbook_url"] == expected
    assert build.main(["--check", "--output-dir", str(tmp_path), "--runbook-base-url", base]) == 0
    assert build.main(["--check", "--output-dir", str(tmp_path)]) == 1


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("github.com/OWNER/REPO/blob/main", "not an http(s) URL with a host"),
        ("file:///srv/repo", "not an http(s) URL with a host"),
        ("https://github.com/OWNER/REPO/blob/main#top", "has a query or fragment"),
    ],
)
def test_a_bad_runbook_base_url_is_refused_on_one_line(
    url: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build.main(["--output-dir", str(tmp_path), "--runbook-base-url", url])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert problem in error
    assert "https://github.com/OWNER/REPO/blob/main" in error or "top level" in error
    assert not (tmp_path / build.ALERTING_FILE).exists()


def test_the_committed_files_keep_the_default_links(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build.main(["--runbook-base-url", "https://github.com/OWNER/REPO/blob/main"])
    assert "--exporter-url need --output-dir outside alerts/" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build.main(["--exporter-url", "https://exporter.example.com"])
    assert "--exporter-url need --output-dir outside alerts/" in capsys.readouterr().err
    assert build.stale_files() == []


def test_an_exporter_url_links_every_alert_to_its_runbook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://exporter.example.com:9717/"
    assert build.main(["--output-dir", str(tmp_path), "--exporter-url", url]) == 0
    alerting = yaml.safe_load((tmp_path / build.ALERTING_FILE).read_text())
    for rule in alerting["groups"][0]["rules"]:
        expected = f"https://exporter.example.com:9717/runbook#{rule['alert'].lower()}"
        assert rule["annotations"]["runbook_url"] == expected
    with pytest.raises(SystemExit):
        build.main(["--output-dir", str(tmp_path), "--exporter-url", "exporter:9717"])
    assert "give the address on-call's browser reaches the exporter at" in capsys.readouterr().err
