"""The end-to-end test's children: started in order, stopped in reverse order, always; each a
`tests.support.processes.ChildProcess` (own process group, log file quoted by failures)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import CLI, ChildProcess


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
        return self.start(name, [*CLI, *args])

    def logs(self) -> str:
        return "\n".join(child.log_tail() for child in self.children)

    def stop_all(self) -> dict[str, int]:
        return {child.name: child.stop() for child in reversed(self.children)}


@contextmanager
def process_group(log_dir: Path, cwd: Path) -> Iterator[ProcessGroup]:
    group = ProcessGroup(log_dir, cwd)
    try:
        yield group
    finally:
        group.stop_all()
