"""Audit pages committed by a second process, so that ingestion uses two cores.

Reading a page (transport, decoding, classifying) and committing it (seen ids, counts, the lag
estimator, SQLite) cost about the same CPU per event, and in one process they take turns on
one GIL. `CommitProcess` runs the commits in a child (`exporter.ingest.commit.child`) with its own
connection to the same store: the event loop reads the next pages while the child commits the
last ones, which roughly doubles the backfill rate on a machine with a core to spare
(bench/RESULTS.md, ingest). Everything else (directory polls, snapshots, the ledger, pruning)
stays on the store's thread in this process; SQLite's WAL lets this process read while the
child writes.

Failure: a commit that fails in the child is rolled back there and raises `AuditCommitError`
here (the poll fails and the pages are fetched again next time, as with any store error). If
the child dies, every commit waiting on it fails the same way and the next one starts a new
child.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import Sequence

from exporter.ingest.commit.wire import (
    HEADER_SIZE,
    READY_ID,
    REPLY_DECODER,
    CommitReply,
    CommitRequest,
    frame,
    payload_size,
)
from exporter.logs import get_logger
from exporter.store.database import PageBatch, PageOutcome

log = get_logger(__name__)

STOP_TIMEOUT = 30.0
"""How long `close()` waits for the child to finish its last commit before killing it."""


class AuditCommitError(RuntimeError):
    """The commit process did not commit the pages (nothing of them was written)."""


class CommitProcess:
    def __init__(self, store_path: str, *, lag_horizon: float, lag_window: float) -> None:
        self._command = (
            sys.executable,
            "-m",
            "exporter.ingest.commit.child",
            "--store",
            store_path,
            "--lag-horizon",
            repr(lag_horizon),
            "--lag-window",
            repr(lag_window),
        )
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[CommitReply]] = {}
        self._next_id = READY_ID + 1
        self._failure: str | None = None
        self._closed = False
        self._starting = asyncio.Lock()
        """Commits of several tenants may find the child gone at once: one starts the next."""
        self.restarts = 0
        """Children started after the first (each one after a child died)."""
        self.committed = 0
        """Requests the children committed."""

    @property
    def pid(self) -> int | None:
        """The current child's process id (benchmarks add its CPU and memory)."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the child; it opens the store while this process goes on."""
        async with self._starting:
            if self._closed:
                raise RuntimeError("the audit commit process is closed")
            if self._process is not None:
                return
            if self._reader is not None:
                self.restarts += 1
            self._failure = None
            process = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self._process = process
            self._reader = asyncio.create_task(self._read(process), name="audit-commit-replies")

    async def commit_audit_pages(self, tenant: str, batches: Sequence[PageBatch]) -> PageOutcome:
        """Commit consecutive pages of one window as one transaction, in the child."""
        if self._process is None:
            await self.start()
        process = self._process
        assert process is not None
        assert process.stdin is not None
        request_id = self._next_id
        self._next_id += 1
        reply: asyncio.Future[CommitReply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        # Written whole before any await: a cancelled caller never leaves half a frame behind.
        process.stdin.write(frame(CommitRequest(request_id, tenant, list(batches))))
        with contextlib.suppress(ConnectionError):  # the reader reports the child's end
            await process.stdin.drain()
        answer = await reply
        if answer.error is not None:
            raise AuditCommitError(f"the audit commit process could not commit: {answer.error}")
        self.committed += 1
        return PageOutcome(Counter(answer.counted))

    async def close(self) -> None:
        """Let the child finish the commits it was sent, then let it exit (kill it after
        `STOP_TIMEOUT`)."""
        if self._closed:
            return
        self._closed = True
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.warning("the audit commit process did not stop: killed", pid=process.pid)
            process.kill()
            await process.wait()
        if self._reader is not None:
            await self._reader

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        stdout = process.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(HEADER_SIZE)
                reply = REPLY_DECODER.decode(await stdout.readexactly(payload_size(header)))
                if reply.id == READY_ID:
                    # Only a failure to open matters: the child exits after it, and the commits
                    # waiting then fail with this reason.
                    if reply.error is not None:
                        self._failure = f"the store did not open: {reply.error}"
                    continue
                waiting = self._pending.pop(reply.id, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(reply)
        except asyncio.IncompleteReadError:
            pass
        code = await process.wait()
        reason = self._failure or f"the audit commit process exited with code {code}"
        if not self._closed:
            log.warning("audit commit process ended", pid=process.pid, reason=reason)
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_result(CommitReply(-1, {}, reason))
        self._pending.clear()
        if self._process is process:
            self._process = None
