"""Find Prometheus's command-line tools for tests: promtool, prometheus, amtool,
prometheus-alertmanager (Debian's names).

They come from PATH, or from where `.ci/install-tools` unpacks Debian's packages
(.ci/cache/tools/usr/bin). A missing tool FAILS the test with the command that installs it: a
skipped check would look like a passing one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CI_TOOLS_BIN = REPO / ".ci" / "cache" / "tools" / "usr" / "bin"


def tool(name: str) -> Path:
    found = shutil.which(name) or shutil.which(name, path=str(CI_TOOLS_BIN))
    if found is None:
        pytest.fail(
            f"{name} not found on PATH or in {CI_TOOLS_BIN}: run `bash .ci/install-tools` "
            "(it unpacks Debian's prometheus and prometheus-alertmanager packages there)",
            pytrace=False,
        )
    return Path(found)


def run(
    name: str, args: Sequence[str], *, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool; the result carries stdout and stderr for the assertion message."""
    return subprocess.run(
        [str(tool(name)), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=120,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
