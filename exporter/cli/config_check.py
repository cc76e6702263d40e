"""`entra-dg-exporter config check --config.file FILE`: validate a config file, one line per
problem; `--show` prints the effective settings (file, environment and --config.set applied,
secrets redacted)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import yaml

from exporter.cli.options import option
from exporter.config.loading import ConfigError, load_config
from exporter.config.models import Config
from exporter.domain.probe import canary_rule_problem
from exporter.graph.credentials import CredentialError
from exporter.graph.errors import GraphError
from exporter.graph.factory import build_graph_client
from exporter.store.errors import store_path_problem


@click.group("config")
def config_group() -> None:
    """Work with configuration files."""


@config_group.command("check")
@click.argument(
    "file", required=False, default=None, type=click.Path(dir_okay=False, path_type=Path)
)
@option(
    "--config.file",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The exporter's YAML configuration, as every other command takes it (or FILE).",
)
@click.option(
    "--config.set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a setting by dotted path, as serve would (repeatable).",
)
@click.option(
    "--no-secrets",
    is_flag=True,
    help="Do not check that secret env vars and files exist (e.g. on a build machine); this "
    "also skips reading each canary probe's group through Graph.",
)
@click.option(
    "--show",
    is_flag=True,
    help="Print the effective settings as YAML (defaults, environment and --config.set "
    "applied; secrets redacted).",
)
def check_command(
    file: Path | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    no_secrets: bool,
    show: bool,
) -> None:
    """Validate the config (FILE or --config.file, with environment and --config.set
    overrides); exit 0 if valid, 1 if not."""
    ctx = click.get_current_context()
    if file is not None and (
        ctx.get_parameter_source("config_file") is click.core.ParameterSource.ENVIRONMENT
    ):
        config_file = None  # FILE on the command line says which; ENTRA_DG_CONFIG_FILE is a default
    if file is not None and config_file is not None and file != config_file:
        raise click.UsageError(f"two config files given ({file} and {config_file}); give one")
    path = file or config_file
    if path is None:
        raise click.UsageError(
            "no config file: give --config.file FILE (or set ENTRA_DG_CONFIG_FILE)"
        )
    try:
        config = load_config(path, overrides=overrides, check_secrets=not no_secrets)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(1) from None
    unusable = store_path_problem(config.store.path)
    if unusable is not None:
        click.echo(f"{file}: store.path: {unusable}", err=True)
        raise SystemExit(1)
    if not no_secrets:
        probe_problems = asyncio.run(check_probes(config))
        for problem in probe_problems:
            click.echo(f"{path}: {problem}", err=True)
        if probe_problems:
            raise SystemExit(1)
    names = ", ".join(t.name for t in config.tenants)
    if show:
        # JSON mode renders SecretStr as "**********": no secret reaches the terminal.
        settings = config.model_dump(mode="json", exclude_none=True)
        click.echo(yaml.safe_dump(settings, sort_keys=False).rstrip())
    click.echo(f"{path}: valid ({len(config.tenants)} tenant(s): {names})", err=show)


async def check_probes(config: Config) -> list[str]:
    """For each tenant with a canary probe (#20), read its canary group through Graph and check
    with the rule evaluator that the rule reads the probe's property and selects exactly its
    match value; and that the canary object can be read. One line per problem."""
    problems: list[str] = []
    for tenant in config.tenants:
        probe = tenant.probe
        if probe is None:
            continue
        where = f"tenants.{tenant.name}.probe"
        settings = probe.settings()
        try:
            graph = build_graph_client(config, tenant)
        except CredentialError as exc:
            problems.append(f"{where}: cannot check the canary group: {exc}")
            continue
        try:
            group = await graph.get_group(settings.group_id)
            problem = canary_rule_problem(group.rule or None, settings)
            if problem is not None:
                problems.append(f"{where}: group {group.name!r} ({group.id}): {problem}")
            await graph.is_member(str(settings.object_type), settings.object_id, settings.group_id)
        except GraphError as exc:
            problems.append(f"{where}: {exc}")
        finally:
            await graph.close()
    return problems
