"""What every pause/resume/plan command works with: the tenant, its Graph client and clock, the
store and ledger, the readiness source, and (for `--apply`) the tenant's ops lock."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from exporter.clock import Clock, SimulatorClockUnavailable, command_clock
from exporter.config.models import Config, Tenant
from exporter.graph.client import GraphClient
from exporter.graph.credentials import CredentialError
from exporter.graph.factory import build_graph_client
from exporter.graph.retry import RetryPolicy
from exporter.ops.gate import LedgerCheckedReadiness, ReadinessSource
from exporter.store.database import Store
from exporter.store.errors import StoreError
from exporter.store.ledger import Ledger


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
        except StoreError as exc:  # already one line naming the file and the fix
            raise OpsError(str(exc)) from None
        except Exception as exc:  # sqlite3 errors, schema mismatch: name the file
            raise OpsError(f"cannot open the store {store_path}: {exc}") from None
        try:
            async with _clock_for(tenant) as clock:
                graph = _graph_client(config, tenant, retry)
                try:
                    ledger = Ledger(store)
                    checked = None
                    if readiness is not None:

                        async def paused(name: str) -> int:
                            return await store.call(ledger.paused_in_open_episodes, name)

                        checked = LedgerCheckedReadiness(readiness, paused)
                    yield OpsSession(config, tenant, store, ledger, graph, clock, operator, checked)
                finally:
                    await graph.close()
        finally:
            await store.close()


def _graph_client(config: Config, tenant: Tenant, retry: RetryPolicy | None) -> GraphClient:
    try:
        return build_graph_client(config, tenant, retry=retry)
    except CredentialError as exc:
        raise OpsError(str(exc)) from None


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
    try:
        async with command_clock(
            tenant.graph_base_url, simulated=tenant.clock == "simulator"
        ) as clock:
            yield clock
    except SimulatorClockUnavailable as exc:
        raise OpsError(str(exc)) from None


__all__ = [
    "OpsBusyError",
    "OpsError",
    "OpsSession",
    "choose_tenant",
    "default_operator",
    "open_session",
    "ops_lock",
]
