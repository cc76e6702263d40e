"""`entra-dg-exporter demo`: a simulated tenant in a storm, and the exporter watching it.

No credentials, no network beyond loopback: the simulator (a fake Microsoft Graph) runs the
`storm` scenario on an accelerated clock in this process, and the exporter follows that clock.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import click

from exporter.cli.options import option
from exporter.cli.progress import BackfillDisplay
from exporter.config.models import Config
from exporter.http.app import Link, ListenError, Listening, serve, stop_on_signals
from exporter.runtime.service import Exporter
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.exporter_config import simulated_tenant_config
from exporter.simulator.throttle import ThrottleSettings

DEMO_TENANT = "demo"
DEMO_TOKEN = "demo-token"
DEMO_AUDIT_REQUESTS_PER_10S = 50
"""Ten times Graph's limit: the demo's clock runs hundreds of times faster than real time."""


def demo_config(sim: RunningSimulator, state_dir: Path, listen_address: str) -> Config:
    critical = [c.id for c in sim.tenant.directory.containers if c.critical and c.rule]
    return Config.model_validate(
        simulated_tenant_config(
            sim.base_url,
            state_dir / "state.sqlite3",
            token=DEMO_TOKEN,
            tenant=DEMO_TENANT,
            critical_groups=critical,
            listen_address=listen_address,
            polling={
                "audit_interval": "1m",
                "groups_interval": "5m",
                "critical_status_interval": "5m",
                "audit_requests_per_10s": DEMO_AUDIT_REQUESTS_PER_10S,
                "retry_initial_delay": "0.2s",
                "retry_max_delay": "5s",
            },
        )
    )


async def run_demo(listen_address: str, speed: float | None, stop: asyncio.Event) -> None:
    with tempfile.TemporaryDirectory(prefix="entra-dg-demo-") as state_dir:
        async with running_simulator(
            "storm",
            speed=speed,
            throttle=ThrottleSettings(requests=DEMO_AUDIT_REQUESTS_PER_10S),
            operator_actions=True,
        ) as sim:
            config = demo_config(sim, Path(state_dir), listen_address)
            with BackfillDisplay([DEMO_TENANT]) as display:
                exporter = Exporter(config, on_progress=display.update)
                await exporter.start()
                links = [
                    Link(f"{sim.base_url}/_sim/status", "simulator", "the simulated tenant"),
                    Link(
                        f"{sim.base_url}/_sim/truth/audit?visible=true",
                        "ground truth",
                        "what the simulated audit log really holds",
                    ),
                ]

                def announce(where: Listening) -> None:
                    click.echo(
                        "\n".join(
                            [
                                f"Simulated tenant (storm scenario, clock x{sim.clock.speed:g}): "
                                f"{sim.base_url}/_sim/status",
                                f"Exporter:  {where.url}",
                                f"Metrics:   {where.url}metrics",
                                f"Resume:    {where.url}api/v1/readiness  (or: "
                                f"entra-dg-exporter check-resume --url {where.url})",
                                "Press Ctrl-C to stop.",
                            ]
                        )
                    )

                try:
                    with stop_on_signals(stop):
                        await serve(
                            exporter.app(links=links),
                            config.web.listen_address,
                            stop=stop,
                            on_listening=announce,
                        )
                finally:
                    await exporter.stop()


@click.command("demo")
@option(
    "--web.listen-address",
    "listen_address",
    default="127.0.0.1:9717",
    show_default=True,
    help="HOST:PORT for the exporter (port 0: any free port).",
)
@option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Simulated seconds per real second (default: the storm scenario's, 600).",
)
def demo_command(listen_address: str, speed: float | None) -> None:
    """Run a simulated tenant through a storm, and the exporter against it."""
    try:
        asyncio.run(run_demo(listen_address, speed, asyncio.Event()))
    except ListenError as exc:
        click.echo(exc.strerror or str(exc), err=True)  # without OSError's "[Errno 98]"
        raise SystemExit(1) from None
