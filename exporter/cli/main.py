"""The one console script, `entra-dg-exporter`, and the conventions every subcommand follows.

Subcommands live next to the code they drive and are imported only when invoked, so that
`entra-dg-exporter --help` or `check-resume` do not pay for importing msgraph (~0.3 s, ~30 MiB).

Flag conventions: exporter/cli/options.py.
"""

from __future__ import annotations

import importlib
import platform
import sys

import click

from exporter import __version__, source_revision
from exporter.cli.options import envvar_for
from exporter.logs import LogFormat, configure_logging

# name -> ("module:attribute" of a click.Command, one-line help). Imported only when invoked;
# the help line is kept here so that `--help` imports nothing. Add a line when a subcommand lands.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check-resume": (
        "exporter.cli.check_resume:check_resume_command",
        "Ask the running exporter whether paused processing may be resumed (exit 0/1/2).",
    ),
    "config": ("exporter.cli.config_check:config_group", "Validate configuration files."),
    "serve": ("exporter.cli.serve:serve_command", "Run the exporter for the configured tenants."),
    "demo": (
        "exporter.cli.demo:demo_command",
        "A simulated tenant in a storm, and the exporter watching it (no credentials).",
    ),
    "impact": (
        "exporter.cli.impact:impact_command",
        "Predict a planned attribute change's membership changes per group (exit 0/1/2).",
    ),
    "lint-rules": (
        "exporter.cli.lint_rules:lint_rules_command",
        "Check membership rules against Microsoft's efficiency guidance and Entra's limits.",
    ),
    "pause": (
        "exporter.cli.ops:pause_command",
        "Pause dynamic group processing (all, some, all except some; or adopt a pause).",
    ),
    "resume": (
        "exporter.cli.ops:resume_command",
        "Resume paused groups: critical first, then the rest in batches, gated by readiness.",
    ),
    "plan": (
        "exporter.cli.ops:plan_command",
        "Show what a resume would do, batch by batch.",
    ),
    "simulate": (
        "exporter.cli.simulate:simulate_command",
        "Serve a simulated tenant's Microsoft Graph.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return super().get_command(ctx, cmd_name)
        target, _ = SUBCOMMANDS[cmd_name]
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return _with_log_options(command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in sorted(SUBCOMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
"""exporter-toolkit spells warning `warn`; both are accepted."""


def _print_version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    # node_exporter's shape: name, version and revision on one line, the runtime below.
    click.echo(
        f"entra-dg-exporter, version {__version__} (revision: {source_revision()})\n"
        f"  python version: {platform.python_version()}"
    )
    ctx.exit()


def _set_logging(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Apply --log.level/--log.format wherever they were given (before the subcommand, after
    it, or both: the later one wins), merged with the other one's current value."""
    if value is None or ctx.resilient_parsing:
        return
    settings = ctx.find_root().meta.setdefault(_LOG_SETTINGS, {"level": "info", "fmt": "logfmt"})
    settings["level" if param.name == "log_level" else "fmt"] = value.lower()
    level = "warning" if settings["level"] == "warn" else settings["level"]
    configure_logging(level=level, fmt=LogFormat(settings["fmt"]))


_LOG_SETTINGS = "entra_dg.log"


def _log_options(*, envvar: bool) -> list[click.Option]:
    """The two logging flags. The group's read the environment; each subcommand's copy only
    takes a flag written after the subcommand, so the environment is applied once."""
    level_env = envvar_for("--log.level") if envvar else None
    format_env = envvar_for("--log.format") if envvar else None
    return [
        click.Option(
            ["--log.level", "log_level"],
            type=click.Choice(LOG_LEVELS, case_sensitive=False),
            default="info" if envvar else None,
            show_default=envvar,
            callback=_set_logging,
            expose_value=False,
            is_eager=True,
            help="Only log messages at or above this level.",
            envvar=level_env,
            show_envvar=envvar,
        ),
        click.Option(
            ["--log.format", "log_format"],
            type=click.Choice([f.value for f in LogFormat]),
            default=LogFormat.LOGFMT.value if envvar else None,
            show_default=envvar,
            callback=_set_logging,
            expose_value=False,
            is_eager=True,
            help="logfmt for people and grep, json for log pipelines.",
            envvar=format_env,
            show_envvar=envvar,
        ),
    ]


def _with_log_options(command: click.Command) -> click.Command:
    """Give a subcommand (and its own subcommands) the logging flags, once."""
    names = {p.name for p in command.params}
    if "log_level" not in names:
        command.params.extend(_log_options(envvar=False))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_log_options(sub)
    return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and the source revision, then exit.",
)
def cli() -> None:
    """Observe Microsoft Entra ID dynamic group processing, and pause or resume it safely."""


cli.params.extend(_log_options(envvar=True))


def main() -> None:
    sys.exit(cli.main(prog_name="entra-dg-exporter", standalone_mode=True))
