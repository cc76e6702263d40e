"""README's first command tells the whole story, on the console and in the browser.

One real `entra-dg-exporter demo` (a faster clock than the default, so the story fits in the
test budget): its stdout must tell each turn of the story in order, and Chromium, driven by
Playwright, reads the landing page at the storm, the pause and the resume readiness (the
screenshots are kept in the test's tmp dir: `pytest --basetemp=DIR` to look at them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import signal
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.support.processes import start_cli
from tests.test_web_browser import browser, chromium  # noqa: F401 (fixtures)

SPEED = "900"
"""Simulated seconds per real second: 23 h of story in ~90 s, on top of the backfill."""
WITHIN = 240.0
STOP_WITHIN = 45.0

TURNS = [
    ("caught up", r"backfill complete: 7\.0 days of audit log read"),
    (
        "storm",
        r"trigger rate \d[\d,]*x baseline \(user changes\): pause warranted \(.*trigger_rate",
    ),
    ("pause", r"4\d\d groups paused by the operator"),
    ("blocked", r"not ready to resume: blocked by .*minimum_pause"),
    ("ready", r"ready to resume: all 5 conditions met; plan: 6 batches"),
    ("batch 1", r"batch 1 of 6 resumed: 6 groups"),
    ("batch 2", r"batch 2 of 6 resumed: 100 groups"),
    ("batch 6", r"batch 6 of 6 resumed"),
    ("over", r"nothing left to resume: the episode is over"),
]
LINE = re.compile(r"^\w{3} \d\d \w{3} \d\d:\d\d UTC  ")


class Narrative:
    """The demo's stdout, read as it comes: the console URL, then the story's lines."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self.url: str | None = None
        self._stream = stream
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while line := (await self._stream.readline()).decode():
            self.lines.append(line.rstrip("\n"))
            if match := re.match(r"Console:\s+(\S+)", line):
                self.url = match.group(1)
            self._changed.set()
        self._changed.set()

    async def wait_for(self, pattern: str, within: float = WITHIN) -> str:
        async def seen() -> str:
            while True:
                found = next((line for line in self.lines if re.search(pattern, line)), None)
                if found is not None:
                    return found
                if self.task.done():
                    raise AssertionError(
                        f"the demo ended before {pattern!r}:\n" + "\n".join(self.lines)
                    )
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(seen(), within)
        except TimeoutError:
            raise AssertionError(
                f"no {pattern!r} within {within:g} s; the demo said:\n" + "\n".join(self.lines)
            ) from None


async def look(page: Page, url: str, shot: Path) -> None:
    await page.goto(url)
    await page.screenshot(path=str(shot), full_page=True)


async def paused_steps(page: Page) -> list[int]:
    values = await page.get_attribute('svg[data-chart="paused"] polyline.paused', "data-values")
    assert values, "the paused-groups chart has no line"
    return [int(v) for v in values.split(",")]


@pytest.mark.timeout(300)
async def test_the_demo_tells_the_story_in_order_and_the_console_shows_it(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "demo.log"
    log = log_path.open("wb")
    process = await start_cli(
        "demo", "--web.listen-address", "127.0.0.1:0", "--speed", SPEED, stderr=log
    )
    assert process.stdout is not None
    narrative = Narrative(process.stdout)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        await narrative.wait_for(r"^Console:", within=60)
        url = narrative.url
        assert url is not None

        await narrative.wait_for(TURNS[1][1])
        await look(page, url, tmp_path / "storm.png")
        # The verdict first: the storm is on (the trigger rate stays high for an hour of the
        # tenant's clock, 4 s here, so the page is read straight after the line is printed).
        verdict = page.locator("[data-verdict]").first
        assert await verdict.get_attribute("data-verdict") == "warranted", await page.content()
        assert await page.locator('[data-reason="trigger_rate"]').count() == 1
        await narrative.wait_for(TURNS[2][1])
        await asyncio.sleep(1)  # the console's cache lives for one second
        await look(page, url, tmp_path / "pause.png")
        assert max(await paused_steps(page)) > 400
        # The storm's hours stand above the baseline band (baseline to factor x baseline).
        hours = await page.locator('svg[data-chart="triggers"] rect.user[data-band]').evaluate_all(
            "bars => bars.map(b => [Number(b.dataset.total), Number(b.dataset.band)])"
        )
        assert hours, "no hour of the trigger chart has a baseline band"
        peak, band = max(hours)
        assert peak > band, f"the trigger chart's peak ({peak}) is inside its band ({band})"
        assert sum(total > band for total, band in hours) <= 3, "only the storm is above it"
        assert await page.locator('line.moment[data-kind="pause"]').count() >= 1
        assert await page.locator('table.paused tr[data-critical="true"]').count() >= 5
        first_row = page.locator("table.paused tbody tr").first
        assert await first_row.get_attribute("data-critical") == "true", "critical first"

        await narrative.wait_for(TURNS[4][1])
        await look(page, url, tmp_path / "ready.png")
        readiness = await page.locator("[data-readiness]").first.get_attribute("data-readiness")
        assert readiness == "ready"
        statuses = await page.locator("tr[data-condition]").evaluate_all(
            "rows => rows.map(r => r.dataset.status)"
        )
        # The canary probe's condition does not apply: the demo configures no probe (#20).
        assert statuses == ["met"] * 5 + ["not_applicable"], statuses
        first_batch = page.locator('ul.batches li[data-batch="1"]')
        assert "(critical): 6 groups" in (await first_batch.inner_text()), "the plan's next batch"

        await narrative.wait_for(TURNS[-1][1])
        await asyncio.sleep(1)
        await look(page, url, tmp_path / "resumed.png")
        steps = await paused_steps(page)
        top = steps.index(max(steps))
        falling = steps[top:]
        assert all(b < a for a, b in itertools.pairwise(falling)), steps
        assert len(falling) >= 6, f"the paused groups did not fall in steps: {steps}"
        assert await page.locator('line.moment[data-kind="resume"]').count() >= 6
    finally:
        await page.close()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_WITHIN)
        if process.returncode is None:
            process.kill()
            await process.wait()
        narrative.task.cancel()
        log.close()
    story = [line for line in narrative.lines if LINE.match(line)]
    positions = []
    for name, pattern in TURNS:
        index = next((i for i, line in enumerate(story) if re.search(pattern, line)), None)
        assert index is not None, f"{name}: no {pattern!r} in:\n" + "\n".join(story)
        positions.append(index)
    assert positions == sorted(positions), "the story is told out of order:\n" + "\n".join(story)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    assert process.returncode == 0, f"the demo did not stop cleanly on SIGTERM:\n{tail}"
