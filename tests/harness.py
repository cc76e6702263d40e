"""Running the exporter against the simulator in tests: config files, waiting, ground truth."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from exporter.domain.events import INGESTED_ACTIVITIES, Series
from exporter.runtime.service import Exporter
from exporter.runtime.tenant_runner import TenantRunner
from exporter.simulator.app import RunningSimulator
from exporter.simulator.exporter_config import simulated_tenant_config, write_config_file
from exporter.simulator.truth import audit_counts
from tests.support.waiting import wait_until

TOKEN = "test-token"
SERIES = tuple(s.value for s in Series)

FAST_POLLING: dict[str, Any] = {
    "audit_interval": "5m",
    "groups_interval": "5m",
    "critical_status_interval": "5m",
    "lateness_allowance": "30m",
    "backfill_days": 1,
    "audit_requests_per_10s": 1000,
    "request_timeout": "10s",
    "retry_attempts": 8,
    "retry_initial_delay": "0.05s",
    "retry_max_delay": "0.5s",
}


def write_config(
    path: Path,
    graph_url: str,
    *,
    tenant: str = "sim",
    polling: Mapping[str, Any] | None = None,
    critical_groups: list[str] | None = None,
    extra_tenants: list[dict[str, Any]] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    store: Mapping[str, Any] | None = None,
) -> Path:
    """A config file for one simulated tenant (static token, simulator clock), polling fast."""
    return write_config_file(
        path,
        simulated_tenant_config(
            graph_url,
            path.parent / "state.sqlite3",
            token=TOKEN,
            tenant=tenant,
            critical_groups=critical_groups or (),
            extra_tenants=extra_tenants or (),
            polling={**FAST_POLLING, **(polling or {})},
            thresholds=thresholds or {},
            store=store or {},
        ),
    )


def add_probe(path: Path, probe: Mapping[str, Any], *, tenant: int = 0) -> Path:
    """Give a written config's tenant a canary probe (`tenants[].probe`, #20)."""
    document = yaml.safe_load(path.read_text("utf-8"))
    document["tenants"][tenant]["probe"] = dict(probe)
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


def truth(sim: RunningSimulator, since: float) -> dict[str, int]:
    """What the simulated tenant wrote with activityDateTime >= since and visible by now, of the
    activities the exporter ingests."""
    counts = audit_counts(
        sim.tenant, since=since, visible_by=sim.clock.now(), only=INGESTED_ACTIVITIES
    )
    return {k: v for k, v in counts["series"].items() if v}


def counted(totals: Mapping[str, int]) -> dict[str, int]:
    """The exporter's totals by Series (duplicates and malformed left out)."""
    return {k: v for k, v in totals.items() if k in SERIES and v}


class TcpProxy:
    """A loopback TCP forwarder that can be taken down and brought back on the same port: Graph
    becoming unreachable (connections refused, open ones cut) and coming back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()


async def caught_up(runner: TenantRunner, now: float) -> None:
    def done() -> bool:
        audit = runner.audit
        return (
            audit is not None
            and audit.caught_up
            and audit.progress is not None
            and audit.progress.watermark >= now
            and runner.statuses["audit"].success is True
        )

    await wait_until(done, within=120, what="the audit poller to catch up")


async def counts_exactly(exporter: Exporter, sim: RunningSimulator) -> dict[str, int]:
    """Once the audit poller has caught up with the simulator: the store's counts are its
    ground truth. Returns the totals."""
    await caught_up(exporter.runners[0], sim.clock.now())
    state = await exporter.store.call(exporter.store.audit_state, "sim")
    assert state is not None
    totals = await exporter.store.call(exporter.store.totals, "sim")
    assert counted(totals) == truth(sim, state.backfill_start)
    return totals
