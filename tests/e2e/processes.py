"""Child processes of the end-to-end test: each in its own process group, its output in a log file
that failures quote, always stopped (SIGTERM to the group, SIGKILL if it lingers)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

LOG_TAIL_LINES = 40
LOG_MARKER = "--- log of"
STOP_TIMEOUT = 15.0


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies, even by SIGKILL itself
    (when no finalizer can run). Linux only; elsewhere the finalizers are all there is."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1


class ProcessFailure(AssertionError):
    """A child process did not do what the test waited for; the message carries its log."""


class ChildProcess:
    """One command, started in a new session (its own process group), output to `log_path`."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"},
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def exit_status(self) -> int | None:
        return self._popen.poll()

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        tail = self.log().splitlines()[-lines:]
        status = self.exit_status
        state = "running" if status is None else f"exited with status {status}"
        header = f"{LOG_MARKER} {self.name} (pid {self.pid}, {state}): {self.log_path}, last lines"
        return "\n".join([header, *tail])

    def wait_for_line(self, pattern: str, *, within: float) -> re.Match[str]:
        """The first match of `pattern` in the log, waiting up to `within` seconds; fails with the
        log when the process exits first or time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        while True:
            match = regex.search(self.log())
            if match is not None:
                return match
            if self.exit_status is not None:
                raise ProcessFailure(
                    f"{self.name} exited before logging /{pattern}/\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ProcessFailure(
                    f"{self.name} did not log /{pattern}/ within {within:.0f}s\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM to the whole group, SIGKILL after STOP_TIMEOUT; returns the exit status."""
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._popen.wait(STOP_TIMEOUT)
        # Whatever the leader left behind in its group goes too.
        self._signal_group(signal.SIGKILL)
        return self._popen.returncode

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)


class ProcessGroup:
    """Every child of one test run: started in order, stopped in reverse order, always."""

    def __init__(self, log_dir: Path, cwd: Path) -> None:
        self.log_dir = log_dir
        self.cwd = cwd
        self.children: list[ChildProcess] = []

    def start(self, name: str, argv: Sequence[str]) -> ChildProcess:
        child = ChildProcess(name, argv, self.log_dir / f"{name}.log", self.cwd)
        self.children.append(child)
        return child

    def start_python(self, name: str, args: Sequence[str]) -> ChildProcess:
        """`entra-dg-exporter ARGS` with this interpreter (no console script on PATH needed)."""
        return self.start(name, [sys.executable, "-c", _CLI, *args])

    def logs(self) -> str:
        return "\n".join(child.log_tail() for child in self.children)

    def stop_all(self) -> dict[str, int]:
        return {child.name: child.stop() for child in reversed(self.children)}


_CLI = "from exporter.cli.main import main; main()"


@contextmanager
def process_group(log_dir: Path, cwd: Path) -> Iterator[ProcessGroup]:
    group = ProcessGroup(log_dir, cwd)
    try:
        yield group
    finally:
        group.stop_all()


def wait_until(
    check: Callable[[], bool],
    *,
    within: float,
    what: str,
    explain: Callable[[], str],
    interval: float = 0.25,
) -> None:
    """Poll `check` until it holds; on timeout fail with `what` and `explain()` (the logs)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise ProcessFailure(f"timed out after {within:.0f}s waiting for {what}\n{explain()}")
        time.sleep(interval)
