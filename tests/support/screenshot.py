"""Regenerate README's picture of the console: `python -m tests.support.screenshot [PNG]`.

Runs README's demo (on a faster clock), waits until the staged resume is under way, so every
chart has its story (the storm, the pause, the steps down), and has Chromium photograph the
top of the landing page. Needs the dev dependencies and Chromium (`bash .ci/install-tools`).
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

from playwright.async_api import async_playwright

from tests.support.processes import start_cli
from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS

DEFAULT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
MOMENT = r"batch 3 of \d+ resumed"
SPEED = "900"


async def photograph(target: Path, within: float = 300.0) -> None:
    process = await start_cli(
        "demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--speed",
        SPEED,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    url = None
    try:
        async with asyncio.timeout(within):
            while line := (await process.stdout.readline()).decode():
                print(line, end="", flush=True)
                if match := re.match(r"Console:\s+(\S+)", line):
                    url = match.group(1)
                if re.search(MOMENT, line):
                    break
        if url is None:
            raise SystemExit("the demo printed no console URL")
        await asyncio.sleep(1.5)  # the console's cache lives for a second
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1100, "height": 2100})
            await page.goto(url)
            await page.screenshot(path=str(target))
            await browser.close()
        print(f"wrote {target}")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await process.wait()


if __name__ == "__main__":
    asyncio.run(photograph(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))
