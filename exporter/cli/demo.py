"""`entra-dg-exporter demo`: a simulated tenant in a storm, and the exporter watching it.

No credentials, no network beyond loopback: the simulator (a fake Microsoft Graph) runs the
`storm` scenario on an accelerated clock in this process, and the exporter follows that clock.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from exporter.cli.options import option
from exporter.cli.progress import BackfillDisplay
from exporter.config.models import Config
from exporter.http.app import Link, ListenError, Listening, serve, stop_on_signals
from exporter.ingest.audit_poller import BackfillProgress
from exporter.logs import get_logger
from exporter.runtime.service import Exporter
from exporter.runtime.story import Story
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.exporter_config import simulated_tenant_config
from exporter.simulator.throttle import ThrottleSettings

log = get_logger(__name__)

DEMO_TENANT = "demo"
DEMO_TOKEN = "demo-token"
DEMO_AUDIT_REQUESTS_PER_10S = 50
"""Ten times Graph's limit: the demo's clock runs hundreds of times faster than real time."""


DEMO_MINIMUM_PAUSE = "12h"
"""The support article's wait (the management guide says 24 h): the demo's story is half as
long, and the scenario's operator waits for it (DEMO_TIMELINE)."""
DEMO_TIMELINE: list[dict[str, Any]] = [
    # The storm scenario's story, compressed to 23 hours of the tenant's clock (2.5 minutes at
    # x600): the push, the operator pausing everything once the lag builds, resuming the
    # critical groups an hour after the exporter says it is safe, then 100 groups an hour.
    {
        "at": "1h",
        "action": "bulk_update",
        "object_type": "user",
        "fraction": 0.8,
        "set": {"extensionAttribute3": "wave-5"},
        "over": "30m",
    },
    {"at": "5h", "action": "pause", "groups": "all"},
    {"at": "18h", "action": "resume", "groups": "critical"},
    {
        "at": "19h",
        "action": "resume",
        "groups": "non_critical",
        "batch_size": 100,
        "interval": "1h",
    },
]


DEMO_SECTIONS: dict[str, dict[str, Any]] = {
    "polling": {
        "audit_interval": "1m",
        "groups_interval": "5m",
        "critical_status_interval": "5m",
        "audit_requests_per_10s": DEMO_AUDIT_REQUESTS_PER_10S,
        "retry_initial_delay": "0.2s",
        "retry_max_delay": "5s",
    },
    # The scenario's operator resumes all 6 critical objects at once, then 100 at a
    # time: the same plan as the exporter's, so "batch 2 of 6" means one thing.
    "resume": {"max_critical_groups": 10},
    "thresholds": {
        "minimum_pause": DEMO_MINIMUM_PAUSE,
        # An hour of the demo's clock is 6 s of wall time: a busy machine's hiccup
        # would otherwise read as stale data and flap resume readiness.
        "collector_max_age": "1h",
        "watermark_max_age": "2h",
    },
}
"""The demo's config sections beyond the simulated tenant (its pace and its story's thresholds);
the end-to-end test of the demo's monitoring runs the exporter with them too."""


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
            polling=DEMO_SECTIONS["polling"],
            resume=DEMO_SECTIONS["resume"],
            thresholds=DEMO_SECTIONS["thresholds"],
        )
    )


DEMO_CONSOLE_REFRESH = 3.0
"""Seconds between two reloads of the console in the browser (half an hour of the demo's
clock at x600)."""
STORY_INTERVAL = 0.25
"""Wall seconds between two looks at the snapshot for the narrative (an accelerated hour is a
few seconds long)."""


async def tell_story(exporter: Exporter, echo: Callable[[str], None]) -> None:
    """Print one line per turn of each tenant's story, until cancelled."""
    stories = {runner.name: Story(runner.name) for runner in exporter.runners}
    while True:
        for part in exporter.holder.current.tenants:
            story = stories.get(part.tenant)
            if story is not None:
                for line in story.observe(part):
                    echo(line)
        await asyncio.sleep(STORY_INTERVAL)


async def run_demo(listen_address: str, speed: float | None, stop: asyncio.Event) -> None:
    with tempfile.TemporaryDirectory(prefix="entra-dg-demo-") as state_dir:
        # The tenant's clock stands still until the exporter has read the 7 days of history:
        # otherwise, on a slow machine, the storm would come and go during the backfill and
        # the exporter would only ever see it as history (no signal fires on the past).
        async with running_simulator(
            "storm",
            overrides={"timeline": DEMO_TIMELINE},
            speed=0,
            throttle=ThrottleSettings(requests=DEMO_AUDIT_REQUESTS_PER_10S),
            operator_actions=True,
        ) as sim:
            run_speed = speed if speed is not None else sim.tenant.scenario.speed
            config = demo_config(sim, Path(state_dir), listen_address)
            display = BackfillDisplay([DEMO_TENANT])
            caught_up: set[str] = set()

            def on_progress(tenant: str, progress: BackfillProgress) -> None:
                display.update(tenant, progress)
                if progress.fraction >= 1.0 and tenant not in caught_up:
                    caught_up.add(tenant)
                    if caught_up >= {DEMO_TENANT}:
                        sim.clock.set_speed(run_speed)

            exporter = Exporter(config, on_progress=on_progress)
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
                            f"Simulated tenant (storm scenario, clock x{run_speed:g} once the "
                            f"backfill is done): {sim.base_url}/_sim/status",
                            f"Console:   {where.url}",
                            f"Metrics:   {where.url}metrics",
                            f"Resume:    {where.url}api/v1/readiness  (or: "
                            f"entra-dg-exporter check-resume --url {where.url})",
                            "Press Ctrl-C to stop.",
                        ]
                    )
                )
                # After the URLs, never before: the bar lives below them and cannot hide them.
                display.start()

            story = asyncio.create_task(tell_story(exporter, click.echo))
            try:
                with display, stop_on_signals(stop):
                    await serve(
                        exporter.app(links=links, console_refresh=DEMO_CONSOLE_REFRESH),
                        config.web.listen_address,
                        stop=stop,
                        on_listening=announce,
                    )
            finally:
                story.cancel()
                # Whatever became of the story, the exporter stops (its pollers, the commit
                # process and the store): a failed narrative must not keep the process alive.
                (outcome,) = await asyncio.gather(story, return_exceptions=True)
                if isinstance(outcome, Exception):
                    log.error("the demo's narrative failed", error=repr(outcome))
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
