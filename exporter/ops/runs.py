"""Running a command's changes as a ledger run: its options, the applier, and how the outcomes
sum up into the run's status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from exporter.ops.engine import Applier, Outcome
from exporter.ops.report import Status
from exporter.ops.session import OpsSession
from exporter.store.ledger import (
    OpStatus,
    RunStatus,
)


@dataclass(frozen=True, slots=True)
class RunOptions:
    apply: bool = False
    parallel: int = 4
    confirm: Callable[[str], bool] = lambda _question: True
    """Asked once before anything changes (the CLI prompts on a terminal unless --yes)."""
    on_outcome: Callable[[Outcome], None] = lambda _outcome: None
    on_total: Callable[[int, str], None] = lambda _total, _what: None
    """A batch of `total` changes is about to start (for a progress bar)."""
    stop: asyncio.Event | None = None
    """Set (first Ctrl-C) to stop after the requests in flight; their outcomes are recorded."""


def stop_event(options: RunOptions) -> asyncio.Event:
    return options.stop if options.stop is not None else asyncio.Event()


def build_applier(session: OpsSession, options: RunOptions) -> Applier:
    return Applier(
        tenant=session.name,
        graph=session.graph,
        store=session.store,
        ledger=session.ledger,
        clock=session.clock,
        parallel=options.parallel,
    )


def final_status(outcomes: Iterable[Outcome], stop: asyncio.Event) -> tuple[Status, RunStatus]:
    statuses = [o.status for o in outcomes]
    if stop.is_set() and OpStatus.PLANNED in statuses:
        return Status.INTERRUPTED, RunStatus.INTERRUPTED
    if OpStatus.FAILED in statuses:
        return Status.FAILED, RunStatus.FAILED
    return Status.COMPLETED, RunStatus.COMPLETED


def run_note(outcomes: Sequence[Outcome]) -> str:
    done = sum(o.status is OpStatus.DONE for o in outcomes)
    failed = sum(o.status is OpStatus.FAILED for o in outcomes)
    return f"{done} changed, {failed} failed, {len(outcomes) - done - failed} other"


RUN_STATUS = {
    Status.COMPLETED: RunStatus.COMPLETED,
    Status.FAILED: RunStatus.FAILED,
    Status.STOPPED: RunStatus.STOPPED,
    Status.INTERRUPTED: RunStatus.INTERRUPTED,
}
