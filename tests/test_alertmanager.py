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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from alerts import rules
from alerts.config import EXPORTER_URL
from exporter.simulator.app import RunningSimulator
from tests.e2e import alertmanager as shipped
from tests.ops_harness import small_storm, write_ops_config
from tests.prometheus_tools import REPO, run, tool
from tests.test_ops_gate import serving_exporter

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


@contextlib.asynccontextmanager
async def alertmanager(config: Path, directory: Path) -> AsyncIterator[str]:
    port = free_port()
    argv = shipped.argv(tool("prometheus-alertmanager"), config, directory, f"127.0.0.1:{port}")
    log = directory / "alertmanager.log"
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=log.open("wb")
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(trust_env=False) as client, asyncio.timeout(30):
            while True:
                assert process.returncode is None, log.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/-/ready")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)


async def notify(
    alerts: list[dict[str, Any]], config: Path, directory: Path, hook: shipped.Webhook
) -> None:
    """Post the alerts to a real Alertmanager running `config`, and wait until the chat has
    heard of every tenant and alert (and a little longer, for anything due in the same round)."""
    now = datetime.now(UTC)
    for alert in alerts:
        alert["startsAt"] = now.isoformat()
        alert["endsAt"] = (now + timedelta(hours=1)).isoformat()
    groups = {(a["labels"]["alertname"], a["labels"].get("tenant")) for a in alerts}
    async with (
        alertmanager(config, directory) as url,
        httpx.AsyncClient(trust_env=False, timeout=10) as client,
    ):
        posted = await client.post(f"{url}/api/v2/alerts", json=alerts)
        assert posted.status_code == 200, posted.text
        for _ in range(300):  # up to 60 s
            if len(hook.chat_messages()) >= len(groups):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


async def test_notifications_say_what_to_do_and_their_runbook_links_open(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    with shipped.webhook() as hook:
        async with serving_exporter(write_ops_config(tmp_path, sim)) as url:
            exporter = url.rstrip("/")
            derived = tmp_path / "alertmanager.yml"
            derived.write_text(shipped.derive_config(hook.url))
            checked = run("amtool", ["check-config", str(derived)])
            assert checked.returncode == 0, checked.stdout + checked.stderr
            alerts = rendered_alerts(exporter)
            await notify(alerts, derived, tmp_path, hook)
            runbook = await asyncio.to_thread(httpx.get, f"{exporter}/runbook", trust_env=False)
            landing = await asyncio.to_thread(httpx.get, exporter + "/", trust_env=False)
    pager = hook.at(shipped.PAGER_PATH)
    messages = hook.chat_messages()
    print(f"{len(hook.at(shipped.CHAT_PATH))} chat and {len(pager)} pager notifications")

    # What a reader of the channel sees: one message per tenant and alert, saying what fired,
    # what to do next with the tenant filled in, and where the runbook is.
    ready = messages["[FIRING] EntraDynamicResumeReady (contoso)"]
    print(ready)
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
        "Next: pause now: `entra-dg-exporter pause --tenant contoso --all --except-critical "
        "--reason '<why>' --apply`"
    ) in warranted
    for title, body in messages.items():
        assert "Next: " in body, title
        if "(" in title:  # a tenant's alert names the tenant in its next action
            tenant = title.rsplit("(", 1)[1].rstrip(")")
            assert f"tenant {tenant}" in body, title
    # The pager gets the critical alerts (the chat hears them too).
    paged = {a["labels"]["alertname"] for m in pager for a in m["alerts"]}
    critical = {a["labels"]["alertname"] for a in alerts if a["labels"]["severity"] == "critical"}
    assert paged == critical

    # Every link in every notification opens its section on the exporter.
    links = set(re.findall(r"Runbook: (\S+)", "\n".join(messages.values())))
    links |= {a["annotations"]["runbook_url"] for m in pager for a in m["alerts"]}
    fragments = {link.rsplit("#", 1)[1] for link in links}
    assert fragments == {name.lower() for name in rules.ALERT_NAMES}
    assert runbook.status_code == 200
    for link in links:
        where, fragment = link.split("#")
        assert where == f"{exporter}/runbook", link
        assert f'id="{fragment}"' in runbook.text, link

    # The landing page links to the same sections.
    sections = re.findall(r'href="runbook#([^"]+)"', landing.text)
    assert {"entradynamicpausewarranted", "entradynamicresumeready"} <= set(sections)
    for fragment in sections:
        assert f'id="{fragment}"' in runbook.text, fragment
