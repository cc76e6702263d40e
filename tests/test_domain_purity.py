"""The domain is pure: it imports nothing that does I/O and never reads the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).parent.parent / "exporter" / "domain"
FORBIDDEN_MODULES = (
    "exporter.graph",
    "exporter.store",
    "exporter.web",
    "exporter.collector",
    "exporter.ops",
    "exporter.clock",
    "time",
    "os",
    "socket",
    "sqlite3",
    "aiohttp",
    "httpx",
    "msgraph",
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(DOMAIN.glob("*.py")), ids=lambda p: p.name)
def test_domain_module_imports_nothing_that_does_io(path: Path) -> None:
    bad = {
        name
        for name in imported_modules(path)
        for forbidden in FORBIDDEN_MODULES
        if name == forbidden or name.startswith(forbidden + ".")
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"
    assert "datetime.now" not in path.read_text("utf-8")
