"""One writer per store (#14): the exporter holds an exclusive OS lock next to its store file.

Two exporters on one store (a rolling update on a shared volume, a second start by hand) would
each fetch and count every window: the seen-ids check is per transaction, and both pass it for
the same page in turn only when they do not overlap, so counters grow by up to 68%. The lock
file is `<store>.lock`; `flock` is released by the kernel when the holder dies (kill -9 too),
so a crash never blocks the next start. The holder's pid is written into the file for the
refusal message.

Only `serve` takes it. The audit commit process (the exporter's own child, committing for it)
and the ops commands (which write the ledger in their own short transactions, under their own
per-tenant ops lock) open the store beside the holder without it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from exporter.store.errors import StoreError, describe


class StoreLockedError(StoreError):
    """Another process holds the store's writer lock; one line naming the store and its pid."""


def lock_path(store_path: Path) -> Path:
    return store_path.with_name(f"{store_path.name}.lock")


class StoreLock:
    """The exclusive writer lock of one store file, held from `acquire()` to `release()` (or the
    process's end)."""

    def __init__(self, store_path: Path | str) -> None:
        self.store_path = Path(store_path)
        self.path = lock_path(self.store_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreLockedError; StoreError when the lock file cannot be
        created (a read-only directory)."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC (Python's default): a child never inherits, so never keeps, the lock.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise describe(self.store_path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"{self.store_path}: the store is in use by another exporter (pid {holder}); "
                "stop that one first, or give this one its own store.path"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # a full disk
            os.close(fd)
            raise describe(self.store_path, exc) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
