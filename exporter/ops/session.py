"""What every pause/resume/plan command works with: the tenant, its Graph client and clock, the
store and ledger, the readiness source, and (for `--apply`) the tenant's ops lock."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import getpass
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from exporter.clock import Clock, FollowingClock, SystemClock
from exporter.config import Config, Tenant
from exporter.graph.client import GraphClient
from exporter.graph.clouds import CLOUDS
from exporter.graph.credentials import CredentialError, build_credential
from exporter.graph.retry import RetryPolicy
from exporter.ops.gate import ReadinessSource
from exporter.ops.ledger import Ledger
from exporter.simulator_clock import keep_following, read_simulator_clock, simulator_clock_url
from exporter.store import Store


class OpsError(Exception):
    """A problem that stops a command before it changes anything; one line, naming the fix."""


class OpsBusyError(OpsError):
    """Another pause/resume run holds the tenant's lock."""


def choose_tenant(config: Config, name: str | None) -> Tenant:
    names = [t.name for t in config.tenants]
    if name is None:
        if len(names) == 1:
            return config.tenants[0]
        raise OpsError(
            f"the config has several tenants ({', '.join(names)}): choose one with --tenant"
        )
    try:
        return config.tenant(name)
    except KeyError:
        raise OpsError(
            f"no tenant named {name!r} in the config (tenants: {', '.join(names)})"
        ) from None


def default_operator() -> str:
    """The OS user, when neither --operator nor its environment variable says who acts."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


@dataclass
class OpsSession:
    config: Config
    tenant: Tenant
    store: Store
    ledger: Ledger
    graph: GraphClient
    clock: Clock
    operator: str
    readiness: ReadinessSource | None

    @property
    def name(self) -> str:
        return self.tenant.name


@contextlib.asynccontextmanager
async def open_session(
    config: Config,
    tenant: Tenant,
    *,
    operator: str,
    readiness: ReadinessSource | None,
    lock: bool,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[OpsSession]:
    """Open the store (the exporter's file: the ledger must be where the exporter reads it),
    build the Graph client, follow the simulator's clock when the tenant says so, and take the
    tenant's ops lock when the command will change anything."""
    store_path = Path(config.store.path)
    if str(store_path) == ":memory:":
        raise OpsError("store.path is :memory:: the ledger needs the exporter's store file")
    with contextlib.ExitStack() as stack:
        if lock:
            stack.enter_context(ops_lock(store_path, tenant.name))
        store = Store(store_path)
        try:
            await store.open()
        except Exception as exc:  # sqlite3 errors, schema mismatch: name the file
            raise OpsError(f"cannot open the store {store_path}: {exc}") from None
        try:
            async with _clock_for(tenant) as clock:
                graph = _graph_client(config, tenant, retry)
                try:
                    ledger = Ledger(store)
                    await store.call(ledger.create_schema)
                    yield OpsSession(
                        config, tenant, store, ledger, graph, clock, operator, readiness
                    )
                finally:
                    await graph.close()
        finally:
            await store.close()


def _graph_client(config: Config, tenant: Tenant, retry: RetryPolicy | None) -> GraphClient:
    polling = config.polling
    cloud = CLOUDS[tenant.cloud]
    try:
        credential = build_credential(tenant)
    except CredentialError as exc:
        raise OpsError(str(exc)) from None
    return GraphClient(
        root_url=tenant.graph_base_url or cloud.graph,
        credential=credential,
        scopes=[cloud.scope],
        audit_requests_per_10s=polling.audit_requests_per_10s,
        retry=retry
        or RetryPolicy(
            attempts=polling.retry_attempts,
            initial_delay=polling.retry_initial_delay,
            max_delay=polling.retry_max_delay,
        ),
        request_timeout=polling.request_timeout,
    )


@contextlib.contextmanager
def ops_lock(store_path: Path, tenant: str) -> Iterator[None]:
    """One changing run per tenant and store at a time. An OS lock on a file next to the
    store: the kernel releases it when the holder dies, so a killed run never blocks the next."""
    lock_path = store_path.with_name(f"{store_path.name}.ops-{tenant}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise OpsBusyError(
                f"another pause/resume run is changing tenant {tenant!r} (pid {holder}); "
                "wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def _clock_for(tenant: Tenant) -> AsyncIterator[Clock]:
    """The system clock, or (`clock: simulator`) the simulated tenant's, followed as the
    exporter follows it: the ledger's times must be on the exporter's timeline."""
    if tenant.clock != "simulator":
        yield SystemClock()
        return
    url = simulator_clock_url(tenant)
    async with httpx.AsyncClient(timeout=5.0) as client:
        reading = await read_simulator_clock(client, url)
        if reading is None:
            raise OpsError(f"cannot read the simulator's clock at {url}: is it running?")
        clock = FollowingClock(*reading)

        task = asyncio.create_task(
            keep_following(client, url, clock, asyncio.sleep), name="ops-clock"
        )
        try:
            yield clock
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = [
    "OpsBusyError",
    "OpsError",
    "OpsSession",
    "choose_tenant",
    "default_operator",
    "open_session",
    "ops_lock",
]
