"""Graph going away and the exporter being killed: it keeps serving, recovers on its own, and
its counts stay exact (real HTTP, real SDK, the simulator as Graph)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.config.loading import load_config
from exporter.http.app import running
from exporter.runtime.service import Exporter
from exporter.simulator.access import ALL_PERMISSIONS, TokenGrant
from exporter.simulator.app import running_simulator
from tests.harness import TOKEN, TcpProxy, counted, counts_exactly, truth, write_config
from tests.support.processes import start_cli
from tests.support.waiting import eventually, wait_until

SMALL = {"tenant": {"users": 600, "devices": 100, "dynamic_groups": 20, "administrative_units": 2}}
SMALL_STORM = {
    "tenant": {"users": 2500, "devices": 400, "dynamic_groups": 80, "administrative_units": 3}
}


def sample(exposition: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


async def test_graph_unreachable_keeps_serving_and_recovers(tmp_path: Path) -> None:
    async with running_simulator(
        "steady", overrides=SMALL, speed=60, throttle=False, history_days=1
    ) as sim:
        proxy = TcpProxy(sim.port)
        await proxy.start()
        config = load_config(
            write_config(
                tmp_path / "config.yml",
                proxy.url,
                polling={"audit_interval": "1m", "groups_interval": "1m", "retry_attempts": 2},
            )
        )
        exporter = Exporter(config)
        await exporter.start()
        try:
            async with running(exporter.app(), "127.0.0.1:0") as where, httpx.AsyncClient() as web:

                def collectors_are(value: float) -> Callable[[], Awaitable[bool]]:
                    async def check() -> bool:
                        text = (await web.get(f"{where.url}metrics")).text
                        return all(
                            sample(
                                text,
                                "entra_dynamic_collector_success",
                                {"tenant": "sim", "collector": c},
                            )
                            == value
                            for c in ("audit", "groups", "administrative_units")
                        )

                    return check

                await eventually(collectors_are(1), within=60, what="the first polls")
                await proxy.stop()
                await eventually(collectors_are(0), within=60, what="the polls to fail")
                assert (await web.get(f"{where.url}readyz")).status_code == 200
                await proxy.start()
                await eventually(collectors_are(1), within=60, what="recovery")

            # Nothing was lost while Graph was away.
            # Freeze the simulated time past any poll the exporter has scheduled (its clock,
            # extrapolating, may be a little ahead), so that it settles at a fixed point.
            sim.clock.set_speed(0)
            await sim.advance(180)
            await counts_exactly(exporter, sim)
        finally:
            await exporter.stop()
            await proxy.stop()


def read_state(db: Path) -> tuple[float, float, dict[str, int]] | None:
    """(backfill start + the event time covered since, backfill start, totals) as a reader sees
    them, or None before any commit. The backfill reads present-first (#18): how far it got is
    the coverage, not the watermark."""
    if not db.exists():
        return None
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            row = conn.execute("SELECT backfill_start FROM audit_state").fetchone()
            coverage = list(conn.execute("SELECT start, end FROM audit_coverage ORDER BY start"))
            totals = dict(conn.execute("SELECT kind, count FROM totals"))
        except sqlite3.OperationalError:  # the schema is being created
            return None
    conn.close()
    if not row:
        return None
    start = row[0]
    covered, cursor = 0.0, start
    for begin, end in coverage:  # oldest first; rows may overlap until they are merged
        covered += max(0.0, end - max(begin, cursor))
        cursor = max(cursor, end)
    return (start + covered, start, totals)


async def serve_process(config: Path, *overrides: str) -> asyncio.subprocess.Process:
    args = [f"--config.set={o}" for o in overrides]
    return await start_cli(
        "serve",
        "--config.file",
        str(config),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_kill_9_mid_backfill_then_restart_counts_exactly(tmp_path: Path) -> None:
    async with running_simulator(
        "storm", overrides=SMALL_STORM, speed=0, throttle=False, history_days=2
    ) as sim:
        await sim.advance(3 * 3600)
        now = sim.clock.now()
        config = write_config(tmp_path / "config.yml", sim.base_url, polling={"backfill_days": 2})
        db = tmp_path / "state.sqlite3"

        def progress() -> float:
            state = read_state(db)
            if state is None:
                return 0.0
            watermark, start, _ = state
            return (watermark - start) / (now - start)

        # Slowly (1.5 requests per second), so that the kill lands mid-backfill.
        first = await serve_process(config, "polling.audit_requests_per_10s=15")
        try:
            await wait_until(lambda: progress() > 0.25, within=120, what="backfill progress")
        finally:
            first.kill()
            await first.wait()
        killed_at = progress()
        assert 0.25 < killed_at < 0.95, killed_at

        second = await serve_process(config)
        try:
            await wait_until(lambda: progress() >= 1.0, within=120, what="the backfill to end")
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 30) == 0

        state = read_state(db)
        assert state is not None
        _, backfill_start, totals = state
        assert counted(totals) == truth(sim, backfill_start)


async def test_a_failing_tenant_never_stops_the_others(tmp_path: Path) -> None:
    async with running_simulator(
        "steady", overrides=SMALL, speed=0, throttle=False, history_days=1
    ) as sim:
        sim.set_tokens({TOKEN: TokenGrant(permissions=tuple(sorted(ALL_PERMISSIONS.permissions)))})
        rejected = {
            "name": "rejected",
            "graph_base_url": sim.base_url,
            "clock": "simulator",
            "auth": {"method": "static_token", "token": "revoked-token"},
        }
        config = load_config(
            write_config(tmp_path / "config.yml", sim.base_url, extra_tenants=[rejected])
        )
        exporter = Exporter(config)
        await exporter.start()
        try:
            good, bad = exporter.runners
            now = sim.clock.now()
            await wait_until(
                lambda: (
                    good.audit is not None
                    and good.audit.caught_up
                    and good.audit.progress is not None
                    and good.audit.progress.watermark >= now
                    and all(s.success is False for s in bad.statuses.values())
                ),
                within=60,
                what="one tenant done, the other failing",
            )
            assert "rejected the credentials" in (bad.statuses["audit"].last_error or "")
            state = await exporter.store.call(exporter.store.audit_state, "sim")
            assert state is not None
            totals = await exporter.store.call(exporter.store.totals, "sim")
            assert counted(totals) == truth(sim, state.backfill_start)
            readiness = exporter.readiness()
            assert readiness.tenants["sim"].ready
            assert not readiness.tenants["rejected"].ready
            assert not readiness.ready
        finally:
            await exporter.stop()
