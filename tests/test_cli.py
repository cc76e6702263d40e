from click.testing import CliRunner

from exporter.cli.main import cli
from exporter.cli.options import envvar_for


def test_envvar_convention() -> None:
    assert envvar_for("--web.listen-address") == "ENTRA_DG_WEB_LISTEN_ADDRESS"
    assert envvar_for("--config.file") == "ENTRA_DG_CONFIG_FILE"


def test_help_lists_env_vars_and_imports_nothing_heavy() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert "ENTRA_DG_LOG_LEVEL" in result.output


def test_bad_log_format_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["--log.format", "xml", "any-subcommand"])
    assert result.exit_code == 2
    assert "xml" in result.output
