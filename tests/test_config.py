"""Config: one fixture per validation error, each giving a clear single-line message."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli.main import cli
from exporter.config.durations import parse_duration
from exporter.config.loading import ConfigError, load_config
from exporter.simulator.exporter_config import simulated_tenant_config, write_config_file

FIXTURES = Path(__file__).parent / "fixtures" / "config"
INVALID = sorted(FIXTURES.glob("invalid-*.yml"))
ENV = {"CONTOSO_CLIENT_SECRET": "s3cret-value"}


def test_valid_fixture_loads_with_defaults_and_clamps_backfill() -> None:
    config = load_config(FIXTURES / "valid.yml", env=ENV)
    assert [t.name for t in config.tenants] == ["contoso", "lab"]
    assert config.polling.audit_interval == 60
    assert config.polling.lateness_allowance == 1800
    assert config.polling.backfill_seconds == 30 * 86400  # 45 days asked, retention is 30
    assert config.thresholds.minimum_pause == 12 * 3600
    assert config.thresholds.membership_changes_per_hour == 20_000
    assert "not-a-real-token" not in repr(config)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem.removeprefix("invalid-"))
def test_each_invalid_fixture_gives_its_message(path: Path) -> None:
    expected = path.with_suffix(".expect").read_text().strip()
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert any(expected in p for p in info.value.problems), info.value.problems
    for problem in info.value.problems:
        assert "\n" not in problem
        assert problem.startswith(str(path))
        assert "hunter2" not in problem


def test_there_is_a_fixture_per_error_kind() -> None:
    assert len(INVALID) >= 12
    assert all(p.with_suffix(".expect").is_file() for p in INVALID)


def test_missing_secret_env_is_named_but_never_read_out() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(FIXTURES / "valid.yml", env={})
    assert info.value.problems == [
        f"{FIXTURES / 'valid.yml'}: tenants.contoso.auth: "
        "environment variable CONTOSO_CLIENT_SECRET is not set or empty"
    ]


def test_env_and_flag_overrides_with_flags_winning() -> None:
    env = {**ENV, "ENTRA_DG_CONFIG__POLLING__AUDIT_INTERVAL": "5m"}
    config = load_config(FIXTURES / "valid.yml", env=env)
    assert config.polling.audit_interval == 300
    config = load_config(
        FIXTURES / "valid.yml",
        env=env,
        overrides=[
            "polling.audit_interval=10s",
            "tenants.lab.critical_groups=[AAAAAAAA-2222-3333-4444-555555555555]",
        ],
    )
    assert config.polling.audit_interval == 10
    assert config.tenant("lab").critical_groups == ("aaaaaaaa-2222-3333-4444-555555555555",)


def test_override_of_unknown_tenant_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no tenant named 'nope'"):
        load_config(FIXTURES / "valid.yml", env=ENV, overrides=["tenants.nope.cloud=china"])


def test_override_of_unknown_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        load_config(FIXTURES / "valid.yml", env=ENV, overrides=["polling.bogus=1"])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h30m", 5400),
        ("7d", 604800),
        (15, 15),
        ("2.5", 2.5),
        ("500ms", 0.5),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-3s", "1h 30m", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_config_check_command_exit_codes_and_output(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("CONTOSO_CLIENT_SECRET", "s3cret-value")
    ok = runner.invoke(cli, ["config", "check", str(FIXTURES / "valid.yml")])
    assert ok.exit_code == 0, ok.output
    assert "valid (2 tenant(s): contoso, lab)" in ok.output
    assert "s3cret-value" not in ok.output
    bad = runner.invoke(cli, ["config", "check", str(FIXTURES / "invalid-secret-in-file.yml")])
    assert bad.exit_code == 1
    assert "unknown key 'client_secret'" in bad.output
    assert "hunter2" not in bad.output
    missing = runner.invoke(cli, ["config", "check", str(FIXTURES / "does-not-exist.yml")])
    assert missing.exit_code == 1
    assert "cannot read the config file" in missing.output


def test_a_simulated_tenants_config_validates_and_merges_sections(tmp_path: Path) -> None:
    document = simulated_tenant_config(
        "http://127.0.0.1:1",
        tmp_path / "state.sqlite3",
        token="t",
        critical_groups=["11111111-0000-4000-8000-000000000001"],
        polling={"audit_interval": "2m"},
        store={"commit_process": False},
    )
    config = load_config(write_config_file(tmp_path / "config.yml", document))
    assert config.store.path == tmp_path / "state.sqlite3"  # kept beside the merged key
    assert config.store.commit_process is False
    assert config.polling.audit_interval == 120
    assert config.tenants[0].clock == "simulator"
    assert config.web.listen_address == "127.0.0.1:0"


@pytest.mark.parametrize(
    ("spelling", "cloud"),
    [
        ("global", "global"),
        ("AzureCloud", "global"),
        ("AzurePublicCloud", "global"),
        ("azure public cloud", "global"),
        ("AzureUSGovernment", "usgov"),
        ("USGov", "usgov"),
        ("GCC High", "usgov"),
        ("gcc-high", "usgov"),
        ("usgov", "usgov"),
        ("DoD", "usgov_dod"),
        ("USGovDoD", "usgov_dod"),
        ("usgov_dod", "usgov_dod"),
        ("AzureChinaCloud", "china"),
        ("China", "china"),
    ],
)
def test_cloud_accepts_microsofts_names(spelling: str, cloud: str) -> None:
    config = load_config(
        FIXTURES / "valid.yml", env=ENV, overrides=[f"tenants.lab.cloud={spelling}"]
    )
    assert config.tenant("lab").cloud.value == cloud


def test_an_unknown_cloud_lists_the_names_it_knows_on_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            FIXTURES / "valid.yml", env=ENV, overrides=["tenants.lab.cloud=AzureGermanCloud"]
        )
    (problem,) = info.value.problems
    assert "\n" not in problem
    assert "unknown cloud 'AzureGermanCloud'" in problem
    for name in ("AzureUSGovernment", "GCC High", "DoD", "AzureChinaCloud", "usgov_dod"):
        assert name in problem
