"""Storm attribution end to end: the real exporter ingests a simulated tenant's audit log (real
msgraph-sdk, real store), and names the trailing hour's trigger causes exactly: who made the
updates, which properties they changed, and how many dynamic rules read each property, in the
metrics, the readiness JSON and the landing page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.config.loading import load_config
from exporter.domain.attribution import Cause, top_causes
from exporter.http.app import running
from exporter.runtime.service import Exporter
from exporter.simulator.app import running_simulator
from exporter.simulator.tenant import HR_ACTOR, SYNC_ACTOR
from tests.harness import write_config
from tests.support.waiting import wait_until

QUIET = dict.fromkeys(
    (
        "user_updates_per_hour",
        "device_updates_per_hour",
        "user_adds_per_hour",
        "device_adds_per_hour",
        "manual_changes_per_hour",
        "group_updates_per_hour",
    ),
    0,
)
SCENARIO: dict[str, Any] = {
    "tenant": {"users": 600, "devices": 50, "dynamic_groups": 40, "administrative_units": 2},
    "load": QUIET,
    "timeline": [
        {
            "at": "2m",
            "action": "bulk_update",
            "object_type": "user",
            "count": 300,
            "set": {"extensionAttribute3": "wave-5"},
            "over": "20m",
            "actor": "hr",
        },
        {
            "at": "5m",
            "action": "bulk_update",
            "object_type": "user",
            "count": 40,
            "set": {"department": "Legal", "city": "Oslo"},
            "over": "5m",
            "actor": "sync",
        },
    ],
}


def samples(text: str, name: str, label: str) -> dict[str, float]:
    return {
        s.labels[label]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_top_causes_keep_five_and_sum_the_rest() -> None:
    counts = {f"app-{n}": n for n in range(1, 9)}
    assert top_causes(counts) == (
        Cause("app-8", 8),
        Cause("app-7", 7),
        Cause("app-6", 6),
        Cause("app-5", 5),
        Cause("app-4", 4),
        Cause("other", 6),
    )
    assert top_causes({}) == ()


async def test_trigger_causes_name_the_initiators_and_properties_exactly(
    tmp_path: Path,
) -> None:
    async with running_simulator("steady", overrides=SCENARIO, speed=0, history_days=0) as sim:
        users = sim.tenant.directory.users
        before = {
            name: list(users.columns[name])
            for name in ("extensionAttribute3", "department", "city")
        }
        await sim.advance(3000)  # both pushes done, all within the trailing hour
        changed = {
            name: sum(
                1 for old, new in zip(before[name], users.columns[name], strict=True) if old != new
            )
            for name in before
        }
        sync_updates = sum(
            1
            for i in range(len(users))
            if (before["department"][i], before["city"][i])
            != (users.get(i, "department"), users.get(i, "city"))
        )
        readers = {
            name: sum(
                1
                for c in sim.tenant.directory.containers
                if c.rule is not None and name in c.rule.properties and c.member_type == "user"
            )
            for name in before
        }
        config = load_config(write_config(tmp_path / "exporter.yml", sim.base_url))
        exporter = Exporter(config)
        await exporter.start()
        try:
            (runner,) = exporter.runners

            def ready() -> bool:
                audit = runner.audit
                return (
                    audit is not None
                    and audit.caught_up
                    and all(s.ever_succeeded for s in runner.statuses.values())
                    and runner.rule_usage.property_readers is not None
                )

            await wait_until(ready, within=60, what="a first poll of every collector")
            await runner.refresh_snapshot()
            async with (
                running(exporter.app(), "127.0.0.1:0") as where,
                httpx.AsyncClient() as http,
            ):
                metrics = (await http.get(f"{where.url}metrics")).text
                body = (await http.get(f"{where.url}api/v1/readiness")).json()
                landing = (await http.get(where.url)).text
        finally:
            await exporter.stop()

    assert changed["extensionAttribute3"] > 200
    assert samples(metrics, "entra_dynamic_trigger_changes_last_hour", "initiator") == {
        HR_ACTOR.display_name: changed["extensionAttribute3"],
        SYNC_ACTOR.principal: sync_updates,
    }
    assert samples(metrics, "entra_dynamic_trigger_property_changes_last_hour", "property") == {
        f"user.{name}": count for name, count in changed.items() if count
    }
    assert samples(metrics, "entra_dynamic_trigger_property_readers", "property") == {
        f"user.{name}": readers[name] for name, count in changed.items() if count
    }
    (entry,) = body["tenants"]
    causes = entry["trigger_causes"]
    assert causes["initiators"][0] == {
        "name": HR_ACTOR.display_name,
        "triggers": changed["extensionAttribute3"],
        "readers": None,
    }
    assert causes["properties"][0] == {
        "name": "user.extensionAttribute3",
        "triggers": changed["extensionAttribute3"],
        "readers": readers["extensionAttribute3"],
    }
    line = (
        f"user.extensionAttribute3: {changed['extensionAttribute3']:,} updates, read by "
        f"{readers['extensionAttribute3']:,} groups"
    )
    assert "Trigger causes, trailing hour" in landing
    assert line in landing
