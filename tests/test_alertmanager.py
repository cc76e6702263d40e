"""What reaches on-call: a real Alertmanager (Debian's binary, on 127.0.0.1) running
alerts/alertmanager.yml, with its receivers pointed at a local webhook standing in for the pager
and the chat channel, notifies the alerts of the real rule files; the test reads the text that
arrives and follows every runbook link in it to the running exporter, which must serve the
section it names.

The alerts posted are the rules' own, rendered by Prometheus's template engine: the expected
labels and annotations of the promtool unit tests in alerts/tests/ (checked here with
`promtool test rules` against the committed rule files). Only the address in `runbook_url`
changes: the committed rules link to the exporter's default address, this exporter listens on a
free port (`python -m alerts.build --exporter-url` renders the same links for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from alerts import rules
from alerts.config import EXPORTER_URL
from exporter.simulator.app import RunningSimulator
from tests.ops_harness import small_storm, write_ops_config
from tests.prometheus_tools import REPO, run, tool
from tests.test_ops_gate import serving_exporter

ALERTMANAGER_CONFIG = REPO / "alerts" / "alertmanager.yml"
EXAMPLE_RECEIVER = "http://127.0.0.1:5001"
"""Where alerts/alertmanager.yml sends notifications; replaced by the local receiver."""
AM_TEMPLATES = Path("/usr/share/prometheus/alertmanager")
PROMTOOL_TESTS = sorted((REPO / "alerts" / "tests").glob("*_test.yml"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rendered_alerts(exporter_url: str) -> list[dict[str, Any]]:
    """One alert per alert name, severity and label set expected by the promtool tests, as
    Prometheus would send it to Alertmanager."""
    result = run("promtool", ["test", "rules", *map(str, PROMTOOL_TESTS)], cwd=REPO / "alerts")
    assert result.returncode == 0, result.stdout + result.stderr
    seen: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for path in PROMTOOL_TESTS:
        for test in yaml.safe_load(path.read_text("utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                for expected in case.get("exp_alerts") or []:
                    labels = {"alertname": case["alertname"], **expected["exp_labels"]}
                    notes = dict(expected["exp_annotations"])
                    assert notes["runbook_url"].startswith(EXPORTER_URL + "/runbook#")
                    notes["runbook_url"] = exporter_url + notes["runbook_url"][len(EXPORTER_URL) :]
                    seen[tuple(sorted(labels.items()))] = {"labels": labels, "annotations": notes}
    alerts = list(seen.values())
    assert {a["labels"]["alertname"] for a in alerts} == set(rules.ALERT_NAMES)
    return alerts


@dataclass
class Receiver:
    url: str
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def at(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.received if p == path]


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    """The pager's and the chat's webhooks: records every POST."""
    receiver = Receiver("")

    async def record(request: web.Request) -> web.Response:
        receiver.received.append((request.path, await request.json()))
        receiver.arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def alertmanager(config: Path, directory: Path) -> AsyncIterator[str]:
    if not (AM_TEMPLATES / "default.tmpl").is_file():
        pytest.fail(
            f"{AM_TEMPLATES}/default.tmpl is missing (Debian's alertmanager reads it there): "
            "run `bash .ci/install-tools`",
            pytrace=False,
        )
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(tool("prometheus-alertmanager")),
        f"--config.file={config}",
        f"--storage.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: a single instance on loopback
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(directory / "alertmanager.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(trust_env=False) as client, asyncio.timeout(30):
            while True:
                assert process.returncode is None, (directory / "alertmanager.log").read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/-/ready")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


async def test_notifications_say_what_to_do_and_their_runbook_links_open(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = write_ops_config(tmp_path, sim)
    async with serving_exporter(config) as exporter, receiving() as receiver:
        exporter = exporter.rstrip("/")
        derived = tmp_path / "alertmanager.yml"
        text = ALERTMANAGER_CONFIG.read_text("utf-8").replace(EXAMPLE_RECEIVER, receiver.url)
        assert receiver.url in text
        # Notify at once rather than after 30 s; routing, grouping and receivers as shipped.
        derived.write_text(text.replace("group_wait: 30s", "group_wait: 1s"))
        checked = run("amtool", ["check-config", str(derived)])
        assert checked.returncode == 0, checked.stdout + checked.stderr

        alerts = rendered_alerts(exporter)
        now = datetime.now(UTC)
        for alert in alerts:
            alert["startsAt"] = now.isoformat()
            alert["endsAt"] = (now + timedelta(hours=1)).isoformat()
        async with (
            alertmanager(derived, tmp_path) as am,
            httpx.AsyncClient(trust_env=False, timeout=10) as client,
        ):
            posted = await client.post(f"{am}/api/v2/alerts", json=alerts)
            assert posted.status_code == 200, posted.text
            groups = {(a["labels"]["alertname"], a["labels"].get("tenant")) for a in alerts}
            async with asyncio.timeout(60):
                while len({m["attachments"][0]["title"] for m in receiver.at("/entra-dg/chat")}) < (
                    len(groups)
                ):
                    await receiver.arrived.wait()
                    receiver.arrived.clear()
            await asyncio.sleep(1.5)  # anything else due in the same round

            chat = receiver.at("/entra-dg/chat")
            pager = receiver.at("/entra-dg/critical")
            messages = {m["attachments"][0]["title"]: m["attachments"][0]["text"] for m in chat}

            # What a reader of the channel sees: one message per tenant and alert, saying what
            # fired, what to do next with the tenant filled in, and where the runbook is.
            ready = messages["[FIRING] EntraDynamicResumeReady (contoso)"]
            print(f"{len(chat)} chat and {len(pager)} pager notifications; one reads:\n{ready}")
            assert ready.startswith("*It is safe to resume dynamic group processing.* (info)\n")
            assert (
                "Next: `entra-dg-exporter plan --tenant contoso`, then `entra-dg-exporter resume "
                "--tenant contoso --group <critical ids> --apply`, then `entra-dg-exporter resume "
                "--tenant contoso --non-critical --all-batches --apply`.\n"
            ) in ready
            assert f"Runbook: {exporter}/runbook#entradynamicresumeready" in ready
            warranted = messages["[FIRING] EntraDynamicPauseWarranted (contoso)"]
            assert "(critical)" in warranted
            assert "(warning)" not in warranted, "the critical tier inhibits the warning tier"
            assert (
                "Next: pause now: `entra-dg-exporter pause --tenant contoso --all "
                "--except-critical --reason '<why>' --apply`"
            ) in warranted
            for title, body in messages.items():
                assert "Next: " in body, title
                if "(" in title:  # a tenant's alert names the tenant in its next action
                    tenant = title.rsplit("(", 1)[1].rstrip(")")
                    assert f"--tenant {tenant}" in body or f"tenant {tenant}" in body, title
            # The pager gets the critical alerts, with the same annotations.
            paged = {a["labels"]["alertname"] for m in pager for a in m["alerts"]}
            critical = {
                a["labels"]["alertname"] for a in alerts if a["labels"]["severity"] == "critical"
            }
            assert paged == critical

            # Every link in every notification opens its section on the exporter.
            links = set(re.findall(r"Runbook: (\S+)", "\n".join(messages.values())))
            links |= {a["annotations"]["runbook_url"] for m in pager for a in m["alerts"]}
            assert {link.rsplit("#", 1)[1] for link in links} == {
                name.lower() for name in rules.ALERT_NAMES
            }
            page = await client.get(f"{exporter}/runbook")
            assert page.status_code == 200
            for link in links:
                where, fragment = link.split("#")
                assert where == f"{exporter}/runbook", link
                assert f'id="{fragment}"' in page.text, link

            # The landing page links to the same sections.
            landing = (await client.get(exporter + "/")).text
            sections = re.findall(r'href="runbook#([^"]+)"', landing)
            assert {"entradynamicpausewarranted", "entradynamicresumeready"} <= set(sections)
            for fragment in sections:
                assert f'id="{fragment}"' in page.text, fragment
