"""Storage problems as one line that names the file and what to do (#14).

SQLite says `unable to open database file` or `attempt to write a readonly database`; an
operator needs the path, the cause and the fix. `describe` turns an error from opening or
writing the store into that line, by SQLite's error code (Python 3.11 carries it)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

_FRESH = "move it aside to start afresh (the exporter backfills from the audit log)"


class StoreError(Exception):
    """The store cannot be used; the message is one line naming the file and the fix."""


def describe(path: Path | str, exc: BaseException) -> StoreError:
    """One line for an error met while opening or writing the store at `path`."""
    if isinstance(exc, StoreError):
        return exc
    where = Path(path)
    folder = where.parent if str(where.parent) else Path(".")
    if isinstance(exc, OSError):  # making the directory or the lock file
        name = exc.filename or where
        if isinstance(exc, IsADirectoryError):
            return StoreError(f"{name}: is a directory; set store.path to a file name")
        if exc.errno == errno.ENOSPC:
            return StoreError(f"{name}: the disk is full; free space in {folder} and start again")
        return StoreError(
            f"{name}: {exc.strerror or exc}; make {folder} writable by this user, "
            "or set store.path to a writable place"
        )
    code = getattr(exc, "sqlite_errorname", "") or ""
    if code.startswith("SQLITE_CANTOPEN"):
        if where.is_dir():
            return StoreError(f"{where}: is a directory; set store.path to a file name")
        return StoreError(
            f"{where}: cannot open or create the store: {folder} does not exist or is not "
            "writable by this user; fix its permissions or set store.path to a writable place"
        )
    if code.startswith("SQLITE_READONLY"):
        return StoreError(
            f"{where}: the store is read-only (the file, its -wal/-shm files or {folder} are not "
            "writable by this user, or the disk is mounted read-only); make them writable"
        )
    if code.startswith("SQLITE_NOTADB"):
        return StoreError(
            f"{where}: is not an SQLite database (or its header is damaged); check store.path, "
            f"or {_FRESH}"
        )
    if code.startswith("SQLITE_CORRUPT"):
        return StoreError(f"{where}: the store is corrupt or truncated; {_FRESH}")
    if code.startswith("SQLITE_FULL"):
        return StoreError(f"{where}: the disk is full; free space in {folder} and start again")
    if code.startswith("SQLITE_IOERR"):
        return StoreError(
            f"{where}: the disk failed while reading or writing the store ({code}); check the "
            f"disk and free space in {folder}"
        )
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(
            f"{where}: the store stayed locked by another process; stop other programs using it"
        )
    return StoreError(f"{where}: cannot use the store: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


SQLITE_HEADER = b"SQLite format 3\x00"


def store_path_problem(path: Path | str) -> str | None:
    """What would stop the exporter from using a store at `path`, without opening it for
    writing (for `config check`): a directory, an unwritable file or directory, a file that is
    not SQLite. None when it looks usable."""
    if str(path) == ":memory:":
        return None
    where = Path(path)
    if where.is_dir():
        return f"{where} is a directory; set store.path to a file name"
    if where.exists():
        try:
            with where.open("rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except OSError as exc:
            return f"{where}: {exc.strerror}; make it readable and writable by this user"
        if header and header != SQLITE_HEADER:
            return f"{where} is not an SQLite database; check store.path, or {_FRESH}"
        if not os.access(where, os.W_OK):
            return f"{where} is read-only; make it writable by this user"
    folder = where.parent if str(where.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory, so {where} cannot be created"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (
            f"{existing} is not writable by this user, so the store (and its -wal, -shm and "
            ".lock files) cannot be written there; fix its permissions or set store.path"
        )
    return None
