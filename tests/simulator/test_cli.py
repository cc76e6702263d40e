"""`entra-dg-exporter simulate` as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx


def test_simulate_serves_on_an_ephemeral_port_until_interrupted() -> None:
    command = [
        str(Path(sys.executable).with_name("entra-dg-exporter")),
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--scenario",
        "steady",
        "--speed",
        "0",
        "--seed",
        "4",
        "--start",
        "2026-01-05T08:00:00Z",
        "--history-days",
        "1",
    ]
    env = {**os.environ, "ENTRA_DG_THROTTLE": "false"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.search(r"at (http://127\.0\.0\.1:(\d+))$", line.strip())
            assert match, line
            assert int(match.group(2)) > 0
            base = match.group(1)
            clock = httpx.get(base + "/_sim/clock", timeout=10).json()
            assert clock == {"now": 1767600000.0, "speed": 0.0}
            status = httpx.get(base + "/_sim/status", timeout=10).json()
            assert status["seed"] == 4
            assert status["throttle"]["enabled"] is False
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)
    assert process.returncode == 0


def test_bad_flags_are_usage_errors() -> None:
    executable = str(Path(sys.executable).with_name("entra-dg-exporter"))
    result = subprocess.run(
        [executable, "simulate", "--listen", "nowhere", "--speed", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr
    result = subprocess.run(
        [executable, "simulate", "--listen", "127.0.0.1:0", "--scenario", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown scenario 'nope'" in result.stderr
