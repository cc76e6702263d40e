"""entra-dg-exporter: observability and safe operations for Entra ID dynamic group processing."""

import functools
import subprocess
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path

try:
    __version__ = version("entra-dg-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

REVISION_FILE = "REVISION"
"""A package file holding the source revision, written by whoever builds a wheel or an image
outside a git checkout (the Dockerfile writes it from its REVISION build argument); a git
checkout (an editable install) needs none."""


@functools.cache
def source_revision() -> str:
    """The git commit the running code was built from: the packaged REVISION file, else
    `git rev-parse HEAD` when the package sits in a git checkout, else "unknown". Never the
    network; git is asked once per process, and only when the file is absent."""
    try:
        written = files(__name__).joinpath(REVISION_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError, OSError):
        written = ""
    if written:
        return written
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / ".git").exists():
        return "unknown"
    try:
        result = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"
