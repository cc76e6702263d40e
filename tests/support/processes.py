"""Child processes of tests and benchmarks: the console script as an asyncio subprocess, and any
command as a logged child in its own process group that dies with its parent and is always
stopped (SIGTERM to the group, SIGKILL if it lingers); failures quote its log."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-c", "from exporter.cli.main import main; main()"]
"""`entra-dg-exporter` with this interpreter (no console script on PATH needed)."""


async def start_cli(
    *args: str, env: Mapping[str, str] | None = None, **streams: Any
) -> asyncio.subprocess.Process:
    """`entra-dg-exporter ARGS` as its own process; `streams` may replace stdin/stdout/stderr
    (by default: no input, both outputs captured); `env` is added to this process's."""
    chosen = {
        "stdin": asyncio.subprocess.DEVNULL,
        "stdout": asyncio.subprocess.PIPE,
        "stderr": asyncio.subprocess.PIPE,
        **streams,
    }
    return await asyncio.create_subprocess_exec(
        *CLI, *args, env={**os.environ, **(env or {})}, **chosen
    )


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

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        with log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(env or {})},
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
        regex = re.compile(pattern, re.MULTILINE)
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
