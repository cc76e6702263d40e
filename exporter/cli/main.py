"""The one console script, `entra-dg-exporter`, and the conventions every subcommand follows.

Subcommands live next to the code they drive and are imported only when invoked, so that
`entra-dg-exporter --help` or `check-resume` do not pay for importing msgraph (~0.3 s, ~30 MiB).

Flag conventions: exporter/cli/options.py.
"""

from __future__ import annotations

import importlib
import sys

import click

from exporter import __version__
from exporter.cli.options import option
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
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in sorted(SUBCOMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="entra-dg-exporter")
@option(
    "--log.level",
    "log_level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    help="Only log messages at or above this level.",
)
@option(
    "--log.format",
    "log_format",
    type=click.Choice([f.value for f in LogFormat]),
    default=LogFormat.LOGFMT.value,
    help="logfmt for people and grep, json for log pipelines.",
)
def cli(log_level: str, log_format: str) -> None:
    """Observe Microsoft Entra ID dynamic group processing, and pause or resume it safely."""
    configure_logging(level=log_level, fmt=LogFormat(log_format))


def main() -> None:
    sys.exit(cli.main(prog_name="entra-dg-exporter", standalone_mode=True))
