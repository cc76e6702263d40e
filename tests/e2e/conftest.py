"""Fixtures of the end-to-end test: one stack per module, and every process's log appended to the
report of any test of it that fails, whatever raised."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support.processes import LOG_MARKER


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e")) as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    running = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(running, Stack) and LOG_MARKER not in str(report.longrepr):
        report.sections.append(("process logs", running.explain()))
    return report
