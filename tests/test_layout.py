"""The layout is the architecture (docs/architecture.md, "Layers"): the domain is pure, no
module imports a layer above its own or a sibling room of the same layer, and there are no
import circles. Imports inside functions and under TYPE_CHECKING count like any other."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "exporter"

# room -> layer. A module may import its own room and rooms of a lower layer, nothing else.
LAYERS: dict[str, int] = {
    "exporter": 0,  # the package's face: __version__
    "exporter.domain": 0,
    "exporter.clock": 0,
    "exporter.logs": 0,
    "exporter.config": 1,
    "exporter.graph": 2,
    "exporter.store": 2,
    "exporter.ingest": 3,
    "exporter.readiness": 3,
    "exporter.http": 4,
    "exporter.runtime": 5,
    "exporter.ops": 6,
    "exporter.simulator": 6,
    "exporter.cli": 7,
}
TOP_LEVEL_FILES = {"__init__.py", "clock.py", "logs.py", "py.typed"}

# The domain takes `now` and its inputs as arguments: nothing that does I/O, reads the clock,
# or validates configuration.
DOMAIN_FORBIDDEN = (
    "time",
    "os",
    "socket",
    "sqlite3",
    "asyncio",
    "aiohttp",
    "httpx",
    "msgraph",
    "pydantic",
    "yaml",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, `from x import y` counted as x.y when x.y is a module."""
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def room_of(module: str) -> str:
    best = ""
    for room in LAYERS:
        if (module == room or module.startswith(room + ".")) and len(room) > len(best):
            best = room
    return best


def internal_imports(module: str) -> set[str]:
    return {name for name in imports_of(MODULES[module]) if name in MODULES and name != module}


def test_every_module_has_a_room() -> None:
    roomless = sorted(m for m in MODULES if not room_of(m))
    assert not roomless, f"modules outside every room of LAYERS: {roomless}"


def test_top_level_holds_only_the_foundations() -> None:
    files = {p.name for p in PACKAGE.iterdir() if p.is_file()}
    assert files <= TOP_LEVEL_FILES, f"put {sorted(files - TOP_LEVEL_FILES)} in a room"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_reaches_up_or_sideways(module: str) -> None:
    room = room_of(module)
    offending = []
    for name in sorted(internal_imports(module)):
        target = room_of(name)
        if target == room or target == "exporter":
            continue
        if LAYERS[target] >= LAYERS[room]:
            offending.append(f"{module} imports {name} ({target}: layer {LAYERS[target]})")
    assert not offending, f"{room} is layer {LAYERS[room]}; " + "; ".join(offending)


def test_no_import_circles() -> None:
    graph = {module: internal_imports(module) for module in MODULES}
    # Tarjan's strongly connected components; any with two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if room_of(m) == "exporter.domain"), ids=str
)
def test_domain_is_pure(module: str) -> None:
    path = MODULES[module]
    bad = sorted(
        name
        for name in imports_of(path)
        if (name.startswith("exporter.") and room_of(name) != "exporter.domain")
        or any(name == f or name.startswith(f + ".") for f in DOMAIN_FORBIDDEN)
    )
    assert not bad, f"{module} imports {bad}: the domain imports only itself and the stdlib"
    assert "datetime.now" not in path.read_text("utf-8")


def test_the_rules_can_fail() -> None:
    """The checks above see a violation when there is one (so they are not vacuous)."""
    assert room_of("exporter.domain.signals") == "exporter.domain"
    assert LAYERS[room_of("exporter.config.models")] > LAYERS[room_of("exporter.domain.rules")]
    assert "exporter.config.models" in imports_of(MODULES["exporter.graph.factory"])


# The guide fixes the top level; Dockerfile builds the image docker-compose.yml runs.
REPOSITORY_TOP_LEVEL = {
    ".ci",
    ".gitattributes",
    ".gitignore",
    "Dockerfile",
    "LICENSE",
    "README.md",
    "alerts",
    "bench",
    "dashboards",
    "docker-compose.yml",
    "docs",
    "exporter",
    "pyproject.toml",
    "tests",
}


def test_the_repository_top_level_is_the_fixed_one() -> None:
    """A file committed beside them (a downloaded wheel, a scratch script) belongs elsewhere or
    nowhere."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing committed to check")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    top = {path.split("/", 1)[0] for path in listed.split("\0") if path}
    assert top <= REPOSITORY_TOP_LEVEL, (
        f"committed at the top level: {sorted(top - REPOSITORY_TOP_LEVEL)}"
    )
