"""The wheel as pip builds it: it carries the LICENSE pyproject declares (MIT) and, when the
builder wrote one, the source revision that `--version` and build_info report."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.prometheus_tools import REPO

pytestmark = pytest.mark.slow


def test_the_wheel_carries_the_license_and_the_revision_it_was_built_from(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "exporter", source / "exporter", ignore=shutil.ignore_patterns("__pycache__")
    )
    # What the Dockerfile does from its REVISION build argument (no .git in a build context).
    (source / "exporter" / "REVISION").write_text("0123abcd\n", encoding="utf-8")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("entra_dg_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(license_name) == (REPO / "LICENSE").read_bytes()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        assert "License-Expression: MIT" in archive.read(metadata).decode()
        assert "exporter/REVISION" in names
        archive.extractall(tmp_path / "installed")
    revision = subprocess.run(
        [sys.executable, "-c", "import exporter; print(exporter.source_revision())"],
        cwd=tmp_path / "installed", capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert revision.stdout.strip() == "0123abcd"
    assert "MIT License" in (REPO / "LICENSE").read_text(encoding="utf-8")
