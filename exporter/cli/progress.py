"""A progress display of the audit backfill, on a terminal only (rich)."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from exporter.ingest.audit_poller import BackfillProgress


class BackfillDisplay:
    """One bar per tenant, from the first backfilled event time to the present. Inactive (a
    no-op) when stderr is not a terminal, so logs stay clean in containers and CI."""

    def __init__(self, tenants: list[str], *, force: bool = False) -> None:
        self.active = force or sys.stderr.isatty()
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._done: set[str] = set()
        self._started = False
        self._stopped = False
        if self.active:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[detail]}"),
                console=Console(stderr=True),
                transient=False,
                redirect_stderr=True,
            )
            for name in tenants:
                self._tasks[name] = self._progress.add_task(
                    f"backfill {name}", total=1.0, detail="waiting for the first page"
                )

    def update(self, tenant: str, progress: BackfillProgress) -> None:
        if self._progress is None or tenant in self._done or tenant not in self._tasks:
            return
        remaining_hours = max(0.0, progress.target - progress.watermark) / 3600
        self._progress.update(
            self._tasks[tenant],
            completed=progress.fraction,
            detail=f"{remaining_hours:,.1f} h of audit log to go",
        )
        if progress.fraction >= 1.0:
            self._done.add(tenant)
            self._progress.update(self._tasks[tenant], detail="caught up")
            if self._done >= set(self._tasks):
                self._stop()

    def start(self) -> None:
        """Show the display (once): call it after printing what must stay above it."""
        if self._progress is not None and not self._started and not self._stopped:
            self._started = True
            self._progress.start()

    def __enter__(self) -> BackfillDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None and not self._stopped:
            self._stopped = True
            if self._started:
                self._progress.stop()
