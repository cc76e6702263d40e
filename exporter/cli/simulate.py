"""`entra-dg-exporter simulate`: serve a simulated tenant's Graph until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click
import yaml
from pydantic import ValidationError

from exporter.cli.options import envvar_for, option
from exporter.simulator.faults import FaultSettings
from exporter.simulator.scenarios import ScenarioError
from exporter.simulator.throttle import ThrottleSettings
from exporter.simulator.timefmt import parse_iso_seconds


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise click.BadParameter(
            f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:8089 (port 0: any)"
        )
    return host.strip("[]"), int(port)


def _faults(path: Path | None) -> FaultSettings | None:
    if path is None:
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return FaultSettings.model_validate(raw)
    except OSError as exc:
        raise click.BadParameter(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError:
        raise click.BadParameter(f"{path}: not valid YAML") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise click.BadParameter(f"{path}: {where}: {first['msg']}") from None


@click.command("simulate")
@option(
    "--listen",
    default="127.0.0.1:8089",
    show_default=True,
    help="HOST:PORT to serve on (port 0: any free port).",
)
@option(
    "--scenario",
    default="steady",
    show_default=True,
    help="steady, storm, rule-edit, or a scenario .yaml file.",
)
@option(
    "--speed",
    type=float,
    default=None,
    help="Simulated seconds per real second (default: the scenario's).",
)
@option(
    "--seed",
    type=int,
    default=None,
    help="Random seed (default: the scenario's). Same seed, same log.",
)
@option(
    "--start",
    default=None,
    help="Simulated start time, ISO-8601 UTC (default: the scenario's, else this hour).",
)
@option(
    "--history-days",
    type=float,
    default=None,
    help="Days of audit history to pre-write (default: the scenario's).",
)
@option(
    "--history-cache-mib",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Keep up to this much rendered history in memory, so pages read again are served as "
    "fast as live ones (benchmarks; 0: render on demand).",
)
@option(
    "--throttle/--no-throttle",
    envvar=envvar_for("--throttle"),
    default=True,
    show_default=True,
    help="Enforce the audit log's 5 requests per 10 s.",
)
@option(
    "--operator-actions/--no-operator-actions",
    envvar=envvar_for("--operator-actions"),
    default=None,
    help="Run the scenario's pause/resume steps (default: the scenario's).",
)
@option(
    "--faults",
    "faults_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML file of fault settings (see docs/simulator.md).",
)
@option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML file: token -> {permissions: [...]}; default: any bearer token, all permissions.",
)
@option(
    "--fleet",
    "fleet_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML file: tenant name -> {scenario: ..., overrides: {...}}; serves every tenant "
    "under /tenants/NAME with Graph's app-wide audit limit across them (docs/simulator.md).",
)
def simulate_command(
    listen: str,
    scenario: str,
    speed: float | None,
    seed: int | None,
    start: str | None,
    history_days: float | None,
    history_cache_mib: float,
    throttle: bool,
    operator_actions: bool | None,
    faults_file: Path | None,
    tokens_file: Path | None,
    fleet_file: Path | None,
) -> None:
    """Serve a simulated Entra tenant's Microsoft Graph (and its /_sim/ control API)."""
    host, port = _listen(listen)
    try:
        start_seconds = None if start is None else parse_iso_seconds(start)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from None
    if speed is not None and speed < 0:
        raise click.BadParameter("must be >= 0", param_hint="--speed")
    faults = _faults(faults_file)
    from exporter.simulator.app import load_tokens, running_simulator

    try:
        tokens = None if tokens_file is None else load_tokens(tokens_file)
        if fleet_file is not None:
            from exporter.simulator.fleet import load_fleet, running_fleet

            asyncio.run(
                _serve_fleet(
                    running_fleet(
                        load_fleet(fleet_file),
                        seed=seed,
                        start=start_seconds,
                        speed=speed,
                        throttle=throttle,
                        history_days=history_days,
                        tokens=tokens,
                        host=host,
                        port=port,
                        history_cache_mib=history_cache_mib,
                    )
                )
            )
            return
        asyncio.run(
            _serve(
                running_simulator(
                    scenario,
                    seed=seed,
                    start=start_seconds,
                    speed=speed,
                    throttle=ThrottleSettings(enabled=throttle),
                    faults=faults,
                    operator_actions=operator_actions,
                    history_days=history_days,
                    tokens=tokens,
                    host=host,
                    port=port,
                    history_cache_mib=history_cache_mib,
                )
            )
        )
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen}: {exc.strerror or exc}") from None


async def _serve_fleet(fleet: contextlib.AbstractAsyncContextManager[object]) -> None:
    from exporter.simulator.fleet import RunningFleet

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with fleet as running:
        assert isinstance(running, RunningFleet)
        click.echo(
            f"Simulated Microsoft Graph for a fleet of {len(running.states)} tenants "
            f"(graph_base_url {running.base_url}/tenants/NAME) at {running.base_url}"
        )
        await stop.wait()


async def _serve(simulator: contextlib.AbstractAsyncContextManager[object]) -> None:
    from exporter.simulator.app import RunningSimulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with simulator as sim:
        assert isinstance(sim, RunningSimulator)
        tenant = sim.tenant
        click.echo(
            f"Simulated Microsoft Graph for scenario {tenant.scenario.name!r} (seed {tenant.seed}, "
            f"speed {tenant.clock.speed:g}) at {sim.base_url}",
        )
        click.echo(
            f"  Graph base URL: {sim.graph_url}   control and ground truth: {sim.base_url}/_sim/"
        )
        await stop.wait()
