"""Every benchmark of `python -m bench` still runs, at tiny sizes (the figures are not checked:
benchmarks are not timed tests; bench/RESULTS.md has the real ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, Plan, render, run_all

pytestmark = pytest.mark.slow


async def test_every_benchmark_runs_at_smoke_size(tmp_path: Path) -> None:
    plan = Plan(smoke=True, runs=1, scrape_seconds=0.5)
    sections = await run_all(plan, BENCHMARKS, tmp_path)
    assert [s.key for s in sections] == list(BENCHMARKS)
    for section in sections:
        assert section.rows, section.key
        assert all(row.value for row in section.rows), section.key
    text = render(sections, plan=plan, load_before="0", load_after="0", seconds=1.0)
    assert "## Summary" in text
    for section in sections:
        assert f"\n## {section.title}\n" in text
