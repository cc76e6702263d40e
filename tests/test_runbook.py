"""The runbook the exporter serves at /runbook: rendered from alerts/runbook.md, an anchor for
every alert, nothing from the Markdown passed through as HTML, behind the web config's TLS and
basic auth like every other route."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import bcrypt
import httpx
from prometheus_client import CollectorRegistry

from alerts import rules
from exporter.config.web import load_web_config
from exporter.http.app import Readiness, create_app, running
from exporter.http.runbook import (
    RUNBOOK_ROUTE,
    anchor,
    render_runbook,
    runbook_page,
    runbook_routes,
)
from tests.certs import make_tls_files

REPO = Path(__file__).resolve().parent.parent


def test_the_served_runbook_is_alerts_runbook_md() -> None:
    packaged = REPO / "exporter" / "http" / "runbook.md"
    assert packaged.is_symlink(), "one file: the package links to alerts/runbook.md"
    assert packaged.resolve() == (REPO / "alerts" / "runbook.md").resolve()
    page = runbook_page().decode()
    for name in rules.ALERT_NAMES:
        assert f'<h2 id="{anchor(name)}">{name}</h2>' in page, name
    assert "<script" not in page
    assert not re.search(r"""<(link|img|script)[^>]+(href|src)=["']https?:""", page)


def test_markdown_is_escaped_and_dangerous_links_are_not_links() -> None:
    page = render_runbook(
        "# T\n\n## Entra Dynamic: X!\n\n<script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "[click](javascript:alert(1)) [ok](https://learn.microsoft.com/x)\n\n## Entra Dynamic: X!\n"
    )
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript' not in page
    assert '<a href="https://learn.microsoft.com/x">ok</a>' in page
    assert '<h2 id="entra-dynamic-x">' in page
    assert '<h2 id="entra-dynamic-x-1">' in page, "a repeated heading gets its own anchor"
    assert "<title>T</title>" in page


async def test_the_runbook_route_honours_basic_auth_over_tls(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    web_file = tmp_path / "web.yml"
    web_file.write_text(
        f"tls_server_config:\n  cert_file: {tls.server.cert}\n  key_file: {tls.server.key}\n"
        f"basic_auth_users:\n  alice: {hashed}\n"
    )
    app = create_app(
        registry=CollectorRegistry(),
        readiness=lambda: Readiness.of({}),
        extra_routes=runbook_routes(),
        web_config=load_web_config(web_file),
    )
    async with running(app, "127.0.0.1:0") as where:
        assert where.url.startswith("https://")
        url = where.url.rstrip("/") + RUNBOOK_ROUTE
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(tls.ca.cert)), trust_env=False
        ) as client:
            refused = await client.get(url)
            assert refused.status_code == 401
            served = await client.get(url, auth=("alice", "s3cret"))
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/html")
    assert f'id="{anchor("EntraDynamicResumeReady")}"' in served.text
