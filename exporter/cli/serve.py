"""`entra-dg-exporter serve`: the exporter."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from exporter.cli.options import option
from exporter.cli.progress import BackfillDisplay
from exporter.config.loading import ConfigError, load_config
from exporter.config.models import Config, parse_listen_address
from exporter.config.sharding import parse_shard, select_shard
from exporter.config.web import WebConfig, WebConfigError, load_web_config
from exporter.http.app import (
    DEFAULT_TELEMETRY_PATH,
    ListenError,
    Listening,
    check_telemetry_path,
)
from exporter.logs import LogFormat, current_format, get_logger
from exporter.runtime.service import run_exporter
from exporter.store.errors import StoreError

log = get_logger(__name__)


def load_or_exit(
    config_file: Path,
    overrides: tuple[str, ...],
    listen_address: str | None,
    web_file: Path | None,
    shard: str | None = None,
) -> tuple[Config, str, WebConfig | None]:
    """The config (flags applied), the listen address and the web config; on any problem,
    print one line per problem and exit 1."""
    extra = list(overrides)
    if shard is not None:
        try:
            index, count = parse_shard(shard)
        except ValueError as exc:
            _exit([f"--shard: {exc}"])
        extra += [f"shard.index={index}", f"shard.count={count}"]
    if listen_address is not None:
        # Checked here, not as a --config.set override: YAML would read `9717` as a number and
        # the complaint would blame the config file for a flag.
        try:
            parse_listen_address(listen_address)
        except ValueError as exc:
            _exit([f"--web.listen-address: {exc}"])
    if web_file is not None:
        extra.append(f"web.config_file={web_file}")
    try:
        config = load_config(config_file, overrides=extra)
        web_config = (
            load_web_config(config.web.config_file) if config.web.config_file is not None else None
        )
        if listen_address is None:
            parse_listen_address(config.web.listen_address)
    except ConfigError as exc:
        _exit(exc.problems)
    except WebConfigError as exc:
        _exit(exc.problems)
    except ValueError as exc:
        _exit([f"web.listen_address: {exc}"])
    return config, listen_address or config.web.listen_address, web_config


def _exit(problems: list[str]) -> None:
    for problem in problems:
        click.echo(problem, err=True)
    raise SystemExit(1)


@click.command("serve")
@option(
    "--config.file",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The exporter's YAML configuration.",
)
@option(
    "--config.set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a setting by dotted path, e.g. polling.audit_interval=2m (repeatable).",
)
@option(
    "--web.listen-address",
    "listen_address",
    default=None,
    help="[HOST]:PORT to serve on (default: web.listen_address in the config, 127.0.0.1:9717).",
)
@option(
    "--web.telemetry-path",
    "telemetry_path",
    default=DEFAULT_TELEMETRY_PATH,
    show_default=True,
    help="Path under which to expose metrics.",
)
@option(
    "--web.disable-exporter-metrics",
    "disable_exporter_metrics",
    is_flag=True,
    help="Exclude the exporter's own process_*, python_gc_* and python_info metrics (and the "
    "audit commit process's) from the telemetry path.",
)
@option(
    "--web.config.file",
    "web_config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TLS and basic auth settings, exporter-toolkit format.",
)
@option(
    "--shard",
    "shard",
    default=None,
    metavar="INDEX/COUNT",
    help="Watch only this replica's share of the configured tenants (stable hash of the name) "
    "with its share of the app-wide audit budget, e.g. 1/2 (docs/scale.md).",
)
def serve_command(
    config_file: Path,
    overrides: tuple[str, ...],
    listen_address: str | None,
    web_config_file: Path | None,
    telemetry_path: str,
    disable_exporter_metrics: bool,
    shard: str | None,
) -> None:
    """Watch the configured tenants and serve /metrics, /healthz and /readyz."""
    try:
        check_telemetry_path(telemetry_path)
    except ValueError as exc:
        _exit([str(exc)])
    config, address, web_config = load_or_exit(
        config_file, overrides, listen_address, web_config_file, shard
    )
    with BackfillDisplay([t.name for t in select_shard(config).tenants]) as display:

        def listening(where: Listening) -> None:
            url = where.url + telemetry_path.lstrip("/")
            if current_format() is LogFormat.JSON:
                log.info("serving metrics", url=url)  # a JSON log has only JSON lines
            else:
                click.echo(f"Serving metrics at {url}", err=True)
            display.start()  # below the address, which it would otherwise overwrite

        try:
            asyncio.run(
                run_exporter(
                    config,
                    listen_address=address,
                    web_config=web_config,
                    on_listening=listening,
                    on_progress=display.update,
                    telemetry_path=telemetry_path,
                    exporter_metrics=not disable_exporter_metrics,
                )
            )
        except ListenError as exc:
            _exit([exc.strerror or str(exc)])  # without OSError's "[Errno 98]" prefix
        except StoreError as exc:  # another exporter holds it, or it cannot be used
            _exit([str(exc)])
