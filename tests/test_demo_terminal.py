"""On a terminal, the demo's backfill progress bar never overwrites the URLs it printed: the bar
(rich's live display, which redraws itself by moving the cursor up) starts only after them."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time

from tests.support.processes import CLI

WITHIN = 120.0
LIVE_START = "\x1b[?25l"
"""rich hides the cursor when its live display starts."""
URL_LINES = ("Simulated tenant", "Console:", "Metrics:", "Resume:", "Press Ctrl-C to stop.")


def test_the_progress_bar_starts_below_the_printed_urls() -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*CLI, "demo", "--web.listen-address", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
        start_new_session=True,
    )
    os.close(follower)
    output = b""
    try:
        deadline = time.monotonic() + WITHIN
        while b"backfill complete" not in output:
            assert time.monotonic() < deadline, output.decode(errors="replace")[-2000:]
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    output += os.read(leader, 65536)
                except OSError:  # the demo exited: the terminal is gone
                    break
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        os.close(leader)
    text = output.decode(errors="replace")
    assert "backfill complete" in text, text[-2000:]
    assert LIVE_START in text, "no progress display on a terminal"
    live = text.index(LIVE_START)
    for line in URL_LINES:
        assert text.count(line) == 1, f"{line!r} printed {text.count(line)} times"
        assert text.index(line) < live, f"{line!r} was printed under the live progress bar"
    # Nothing before the bar moves the cursor up into the printed lines.
    assert "\x1b[1A" not in text[:live]
    assert "\x1b[A" not in text[:live]
