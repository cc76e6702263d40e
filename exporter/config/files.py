"""Reading a settings file (the exporter's config, the web config): one way to read it, parse
its YAML and say what is wrong, so both files fail with the same one-line messages."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


class SettingsFileError(Exception):
    """Every problem found in a settings file, one line each, each naming the file and key."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def read_yaml_mapping(
    path: Path, *, kind: str, error: type[SettingsFileError] = SettingsFileError
) -> dict[str, Any]:
    """The file's top-level mapping (empty for an empty file). Raises `error` with one line:
    the file cannot be read, is not YAML (with line and column), or is not a mapping."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error([f"{source}: cannot read the {kind}: {exc.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error([f"{source}: not valid YAML{where}: {problem}"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise error([f"{source}: the top level must be a mapping of settings"])
    return raw
