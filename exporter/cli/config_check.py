"""`entra-dg-exporter config check FILE`: validate a config file, one line per problem."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.config.loading import ConfigError, load_config
from exporter.store.errors import store_path_problem


@click.group("config")
def config_group() -> None:
    """Work with configuration files."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
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
    help="Do not check that secret env vars and files exist (e.g. on a build machine).",
)
def check_command(file: Path, overrides: tuple[str, ...], no_secrets: bool) -> None:
    """Validate FILE (with environment and --config.set overrides); exit 0 if valid, 1 if not."""
    try:
        config = load_config(file, overrides=overrides, check_secrets=not no_secrets)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(1) from None
    unusable = store_path_problem(config.store.path)
    if unusable is not None:
        click.echo(f"{file}: store.path: {unusable}", err=True)
        raise SystemExit(1)
    names = ", ".join(t.name for t in config.tenants)
    click.echo(f"{file}: valid ({len(config.tenants)} tenant(s): {names})")
