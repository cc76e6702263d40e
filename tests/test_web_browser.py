"""The landing page in a real browser: Debian's headless Chromium, driven by playwright.

Chromium comes from `.ci/install-tools` (apt-get); playwright only drives it and never downloads
a browser of its own.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from exporter.http.app import Link, Readiness, TenantReadiness, running
from tests.certs import make_tls_files
from tests.test_web import HASH, PASSWORD, make_app, write_web_config

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Without these, Chromium on a machine with no way out hangs on background connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

MIXED = Readiness.of(
    {
        "contoso": TenantReadiness(True, "audit log ingested to 2024-05-02 12:03:00 UTC"),
        "fabrikam": TenantReadiness(False, "waiting for the first audit log poll"),
    }
)
READY = Readiness.of({"contoso": TenantReadiness(True, "audit log ingested")})


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing; install it with: bash .ci/install-tools")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # playwright gives every launch a fresh temporary --user-data-dir.
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()


async def api(request: web.Request) -> web.Response:
    return web.json_response({"resume_ready": False})


def app_with_links(state: dict[str, Readiness], **kwargs: object) -> web.Application:
    return make_app(
        readiness=lambda: state["now"],
        extra_routes=[web.get("/api/v1/readiness", api)],
        links=[Link("api/v1/readiness", "/api/v1/readiness", "resume readiness as JSON")],
        **kwargs,  # type: ignore[arg-type]
    )


async def follow_every_link(page: Page, base: str) -> dict[str, int]:
    hrefs = await page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    statuses = {}
    for href in hrefs:
        response = await page.goto(href)
        assert response is not None
        statuses[href.removeprefix(base)] = response.status
    return statuses


async def test_landing_page_renders_and_every_link_resolves(
    browser: Browser, tmp_path: Path
) -> None:
    state = {"now": MIXED}
    async with running(app_with_links(state), "127.0.0.1:0") as server:
        page = await browser.new_page(viewport={"width": 1000, "height": 700})
        requested: list[str] = []
        failed: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page.on("pageerror", lambda exc: failed.append(str(exc)))

        response = await page.goto(server.url)
        assert response is not None
        assert response.status == 200
        assert await page.title() == "entra-dg-exporter"
        assert await page.get_attribute("html", "lang") == "en"
        await page.get_by_role("heading", level=1, name="entra-dg-exporter").wait_for()
        await page.get_by_role("heading", level=2, name="Exporter status").wait_for()
        fabrikam = page.get_by_role("row", name="fabrikam")
        assert "not ready" in await fabrikam.inner_text()
        assert "waiting for the first audit log poll" in await fabrikam.inner_text()
        contoso = page.get_by_role("row", name="contoso")
        assert "not ready" not in await contoso.inner_text()
        assert await page.locator("script").count() == 0
        assert "1 of 2 tenants ready" in await page.inner_text("main")
        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)
            await page.screenshot(path=tmp_path / f"landing-{scheme}.png", full_page=True)
            assert (tmp_path / f"landing-{scheme}.png").stat().st_size > 10_000

        # a click works like a person's
        await page.get_by_role("link", name="/metrics").click()
        assert page.url == server.url + "metrics"
        assert "entra_dynamic_resume_ready" in await page.inner_text("body")

        state["now"] = READY
        await page.goto(server.url)
        statuses = await follow_every_link(page, server.url)
        assert statuses == {
            "metrics": 200,
            "healthz": 200,
            "readyz": 200,
            "api/v1/readiness": 200,
        }
        # no external assets: everything the page pulled came from the exporter itself
        assert all(url.startswith(server.url) for url in requested), requested
        # Chromium asks for /favicon.ico on the plain-text pages; the landing page has none.
        assert [url for url in failed if url != server.url + "favicon.ico"] == []


async def test_basic_auth_over_tls_from_the_browser(browser: Browser, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    config = write_web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {tls.server.cert}\n  key_file: {tls.server.key}\n"
        f"basic_auth_users:\n  alice: {HASH}\n",
    )
    state = {"now": READY}
    async with running(app_with_links(state, web_config=config), "127.0.0.1:0") as server:
        assert server.url.startswith("https://")
        # The test CA is not in Chromium's store; trusting it is not what is under test here.
        # Without credentials headless Chromium cannot prompt, so it ends the navigation with
        # its own error; the 401 and its challenge are still seen on the wire.
        anonymous = await browser.new_context(ignore_https_errors=True)
        seen: list[tuple[int, str | None]] = []
        anonymous.on(
            "response", lambda r: seen.append((r.status, r.headers.get("www-authenticate")))
        )
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            await (await anonymous.new_page()).goto(server.url)
        assert seen == [(401, 'Basic realm="entra-dg-exporter", charset="UTF-8"')]

        wrong = await browser.new_context(
            ignore_https_errors=True, http_credentials={"username": "alice", "password": "no"}
        )
        response = await (await wrong.new_page()).goto(server.url)
        assert response is not None
        assert response.status == 401
        assert "401 Unauthorized" in await response.text()

        alice = await browser.new_context(
            ignore_https_errors=True,
            http_credentials={"username": "alice", "password": PASSWORD},
        )
        page = await alice.new_page()
        response = await page.goto(server.url)
        assert response is not None
        assert response.status == 200
        await page.get_by_role("heading", level=1, name="entra-dg-exporter").wait_for()
        statuses = await follow_every_link(page, server.url)
        assert set(statuses.values()) == {200}, statuses
        assert len(statuses) == 4
