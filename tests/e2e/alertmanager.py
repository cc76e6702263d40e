"""A real Alertmanager for the tests (Debian's `prometheus-alertmanager`, on 127.0.0.1, no
gossip port) running alerts/alertmanager.yml, and the webhook that stands in for its pager and
chat receivers.

`derive_config` keeps the shipped routing, grouping, inhibition and receivers; it only points the
receivers at the local webhook and shortens the waits, so that a notification arrives within a
second rather than after `group_wait` (30 s) and `group_interval` (5 min).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.prometheus_tools import REPO

SHIPPED_CONFIG = REPO / "alerts" / "alertmanager.yml"
EXAMPLE_RECEIVER = "http://127.0.0.1:5001"
"""Where alerts/alertmanager.yml sends notifications; replaced by the local webhook."""
TEMPLATES = Path("/usr/share/prometheus/alertmanager")
"""Debian's build reads its notification templates there (no flag); .ci/install-tools puts them."""
CHAT_PATH = "/entra-dg/chat"
PAGER_PATH = "/entra-dg/critical"


def derive_config(receiver_url: str) -> str:
    text = SHIPPED_CONFIG.read_text("utf-8")
    assert EXAMPLE_RECEIVER in text, f"{SHIPPED_CONFIG} no longer sends to {EXAMPLE_RECEIVER}"
    text = text.replace(EXAMPLE_RECEIVER, receiver_url)
    return text.replace("group_wait: 30s", "group_wait: 1s").replace(
        "group_interval: 5m", "group_interval: 1s"
    )


def argv(binary: Path, config: Path, directory: Path, listen: str) -> list[str]:
    if not (TEMPLATES / "default.tmpl").is_file():
        pytest.fail(
            f"{TEMPLATES}/default.tmpl is missing (Debian's alertmanager reads it there): "
            "run `bash .ci/install-tools`",
            pytrace=False,
        )
    return [
        str(binary),
        f"--config.file={config}",
        f"--storage.path={directory / 'alertmanager-data'}",
        f"--web.listen-address={listen}",
        "--cluster.listen-address=",  # no gossip port: a single instance on loopback
    ]


@dataclass
class Webhook:
    """Every notification POSTed to the pager's and the chat's URLs, in arrival order."""

    url: str = ""
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.received if p == path]

    def chat_messages(self) -> dict[str, str]:
        """Chat title -> text, the latest of each (Slack's incoming-webhook format)."""
        return {
            m["attachments"][0]["title"]: m["attachments"][0]["text"] for m in self.at(CHAT_PATH)
        }


@contextmanager
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with hook.lock:
                hook.received.append((self.path, body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
