"""`GET /runbook`: the alerts' runbook (alerts/runbook.md), rendered read-only, one anchor per
heading, so that every alert's `runbook_url` opens its own section from a chat message.

* The exporter serves it itself: the link works wherever the exporter is reachable, with no
  repository browser. It is served like every other route (the web config's TLS, basic auth,
  headers and rate limit apply: `create_app(extra_routes=...)`).
* Anchors are the ones GitHub and GitLab give a heading (`## EntraDynamicPauseWarranted` ->
  `#entradynamicpausewarranted`), so the same fragment works on a repository browser too
  (`python -m alerts.build --runbook-base-url`).
* Safe to render: raw HTML in the Markdown is escaped, not passed through; markdown-it refuses
  `javascript:` and similar links; the page has no scripts and no external assets (inline CSS).

The Markdown ships inside the package as exporter/http/runbook.md, a symbolic link to
alerts/runbook.md (one file: what the repository shows is what the exporter serves). It is read
and rendered once per process, on first request.
"""

from __future__ import annotations

import functools
import html
import re
from importlib import resources

from aiohttp import hdrs, web
from markdown_it import MarkdownIt

from exporter.http.app import PRODUCT

RUNBOOK_ROUTE = "/runbook"
RUNBOOK_RESOURCE = "runbook.md"


def anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case; punctuation other than `-` and `_` dropped; spaces
    become `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


_STYLE = """
:root { color-scheme: light dark; --fg: #1b1b1f; --bg: #fdfdfd; --muted: #4a4a55;
  --line: #d0d0d8; --link: #0b57d0; --code: #f1f1f4; --mark: #fff3c4; }
@media (prefers-color-scheme: dark) { :root { --fg: #ececf1; --bg: #16161a; --muted: #b8b8c4;
  --line: #3a3a44; --link: #8ab4f8; --code: #24242b; --mark: #4a3f10; } }
body { font: 1rem/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); max-width: 56rem; margin: 0 auto; padding: 1.5rem 1rem 4rem; }
h1 { font-size: 1.75rem; }
h2 { font-size: 1.3rem; margin-top: 2.5rem; border-bottom: 1px solid var(--line); }
h2:target, h3:target { background: var(--mark); }
a { color: var(--link); }
a:focus-visible { outline: 3px solid var(--link); outline-offset: 2px; }
code, pre { font-family: ui-monospace, "Cascadia Mono", Menlo, Consolas, monospace;
  font-size: .92em; background: var(--code); }
pre { padding: .75rem; overflow-x: auto; }
table { border-collapse: collapse; display: block; overflow-x: auto; }
th, td { text-align: left; padding: .35rem .6rem; border: 1px solid var(--line);
  vertical-align: top; }
nav.back { color: var(--muted); }
"""


def render_runbook(markdown: str) -> str:
    """The HTML page for the runbook's Markdown: every heading gets its anchor as `id`."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    seen: dict[str, int] = {}
    title = PRODUCT + " runbook"
    for i, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        text = tokens[i + 1].content
        if token.tag == "h1":
            title = text
        slug = anchor(text)
        # GitHub's rule for repeated headings: -1, -2, ... after the first.
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        token.attrSet("id", f"{slug}-{count}" if count else slug)
    body = md.renderer.render(tokens, md.options, {})
    e = html.escape
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<nav class="back"><a href="./">{e(PRODUCT)}</a></nav>
<main>
{body}</main>
</body>
</html>
"""


@functools.cache
def runbook_page() -> bytes:
    text = resources.files("exporter.http").joinpath(RUNBOOK_RESOURCE).read_text("utf-8")
    return render_runbook(text).encode()


def runbook_routes() -> list[web.RouteDef]:
    """The route to pass to `create_app(extra_routes=...)`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=runbook_page(),
            content_type="text/html",
            charset="utf-8",
            headers={hdrs.CACHE_CONTROL: "no-cache"},
        )

    return [web.get(RUNBOOK_ROUTE, handler)]


__all__ = ["RUNBOOK_ROUTE", "anchor", "render_runbook", "runbook_page", "runbook_routes"]
