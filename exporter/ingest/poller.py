"""Running a poller on an interval and recording how it fares (success, duration, last success),
node_exporter style, so that one failing source never hides the others."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from exporter.clock import Clock, SystemClock
from exporter.graph.errors import GraphError
from exporter.ingest.commit.parent import AuditCommitError
from exporter.logs import get_logger
from exporter.store.errors import StoreError

log = get_logger(__name__)


class Poller(Protocol):
    name: str
    """The `collector` label: audit, groups, administrative_units, critical_status."""

    @property
    def interval(self) -> float:
        """Clock seconds between the end of one poll and the start of the next."""
        ...

    async def poll(self, status: CollectorStatus) -> None:
        """One poll. Raise to report failure. Long polls (backfill) may call
        `status.progressed(now)` after each unit of work that was committed."""
        ...


@dataclass(slots=True)
class CollectorStatus:
    """Mutable, owned by the poller's loop; the snapshot copies it."""

    name: str
    success: bool | None = None
    """None until the first poll (or unit of progress) ends."""
    duration: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    polls: int = 0
    failures: int = 0

    def progressed(self, now: float) -> None:
        self.success = True
        self.last_success = now
        self.last_error = None

    @property
    def ever_succeeded(self) -> bool:
        return self.last_success is not None


async def run_poller(
    poller: Poller,
    status: CollectorStatus,
    clock: Clock,
    *,
    tenant: str,
    on_poll_end: Callable[[], Awaitable[None]] | None = None,
    wall: Clock | None = None,
) -> None:
    """Poll forever (until cancelled). Errors are recorded and logged, never raised."""
    wall = wall or SystemClock()
    while True:
        started = wall.now()
        try:
            await poller.poll(status)
        except asyncio.CancelledError:
            raise
        except GraphError as exc:
            _failed(status, str(exc), tenant)
        except STORAGE_ERRORS as exc:
            _storage_failed(status, exc, tenant, wall.now())
        except Exception as exc:
            log.exception("poll crashed", tenant=tenant, collector=status.name)
            _failed(status, f"{type(exc).__name__}: {exc}", tenant)
        else:
            status.progressed(clock.now())
        finally:
            status.polls += 1
            status.duration = wall.now() - started
        # The next poll is due an interval after this one ended, whatever `on_poll_end` takes
        # (it may wait for an assessment): read before it, in the same step as the status, so
        # that a clock moved while it runs (a simulator driven step by step) cannot push the
        # next poll a whole interval past the time the status promised.
        due = clock.now() + poller.interval
        if on_poll_end is not None:
            await on_poll_end()
        await clock.sleep(max(0.0, due - clock.now()))


def _failed(status: CollectorStatus, message: str, tenant: str) -> None:
    first = status.last_error != message
    status.success = False
    status.failures += 1
    status.last_error = message
    # The same error again is logged at debug level: a tenant that is down for hours must not
    # flood the log, and the metrics say it is still failing.
    (log.warning if first else log.debug)(
        "poll failed", tenant=tenant, collector=status.name, error=message
    )


STORAGE_ERRORS = (sqlite3.Error, StoreError, AuditCommitError)
"""The store could not be written (a full disk, an I/O error): the poll fails, the next retries
from the watermark, nothing is lost."""
STORAGE_WARNING_INTERVAL = 60.0
_storage_warned: dict[str, float] = {}
"""failure kind -> when it was last warned about (wall clock)."""


def _storage_failed(status: CollectorStatus, exc: BaseException, tenant: str, now: float) -> None:
    status.success = False
    status.failures += 1
    status.last_error = report_storage_failure(exc, tenant=tenant, collector=status.name, now=now)


def report_storage_failure(exc: BaseException, *, tenant: str, collector: str, now: float) -> str:
    """A storage failure is one warning per kind per minute at most, whoever meets it (a full
    disk fails every poll of every tenant, and the tasks beside them), the traceback at debug
    level only. Returns the failure as one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kind = getattr(exc, "sqlite_errorname", None) or text
    message = f"the store could not be written: {text}"
    log.debug("poll failed (storage)", tenant=tenant, collector=collector, exc_info=exc)
    last = _storage_warned.get(kind)
    if last is None or now - last >= STORAGE_WARNING_INTERVAL:
        _storage_warned[kind] = now
        log.warning(
            "poll failed: the store could not be written (free space or fix the disk; the "
            "exporter keeps serving and catches up when it can write again)",
            tenant=tenant,
            collector=collector,
            error=text,
        )
    return message
