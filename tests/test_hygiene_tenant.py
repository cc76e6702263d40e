"""`lint-rules --config.file ...`: the tenant-hygiene report on the simulated tenant, exact.

The real exporter ingests 12 days of the simulator's audit history into its store (real
SQLite), then the command lists the rules, counts members with `$count` and reads the week's
changes, all through the real msgraph-sdk over HTTP. Every candidate is checked against the
simulator's ground truth (its members, its audit log), in both directions."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli.main import cli
from exporter.config.loading import load_config
from exporter.domain.audit_query import AuditQueryMode
from exporter.http.app import running
from exporter.runtime.service import Exporter
from exporter.simulator.access import GROUP_READ, UNIT_READ, TokenGrant
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.model import Container
from exporter.simulator.truth import audit_counts
from exporter.store.database import Store
from tests.harness import TOKEN, write_config
from tests.support.waiting import wait_until

TENANT = {"tenant": {"users": 400, "devices": 60, "dynamic_groups": 40, "administrative_units": 2}}
DAY = 86400.0
INACTIVE_DAYS = 7


def lint(*args: str) -> Result:
    return CliRunner().invoke(cli, ["lint-rules", *args], catch_exceptions=False)


def config_with_hygiene(path: Path, sim: RunningSimulator) -> Path:
    write_config(path, sim.base_url, polling={"backfill_days": 12, "audit_interval": "1m"})
    document = yaml.safe_load(path.read_text())
    document["hygiene"] = {
        "inactive_days": INACTIVE_DAYS,
        "member_count_requests_per_minute": 600,
        "change_sample_events": 4000,
    }
    path.write_text(yaml.safe_dump(document))
    return path


async def ingest_history(config: Path, sim: RunningSimulator) -> str:
    """Run the exporter until it has the 12 days of history and every member count; its
    /metrics then."""
    exporter = Exporter(load_config(config))
    await exporter.start()
    try:
        runner = exporter.runners[0]
        now = sim.clock.now()

        def caught_up() -> bool:
            audit = runner.audit
            return (
                audit is not None
                and audit.caught_up
                and audit.progress is not None
                and audit.progress.watermark >= now
                and runner.statuses["groups"].ever_succeeded
            )

        await wait_until(caught_up, within=240, what="12 days of history ingested")

        def counted() -> bool:
            summary = runner.hygiene.summary
            return summary is not None and not any(summary.not_judged.values())

        await wait_until(counted, within=60, what="every group's members counted")
        await runner.refresh_snapshot()
        async with (
            running(exporter.app(), "127.0.0.1:0") as where,
            httpx.AsyncClient() as http,
        ):
            response = await http.get(f"{where.url}metrics")
            response.raise_for_status()
            landing = await http.get(where.url)
            landing.raise_for_status()
            return response.text + "\n# landing page\n" + landing.text
    finally:
        await exporter.stop()


def samples(text: str, name: str) -> dict[str, float]:
    """{reason (or "") -> value} of one family in an exposition."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text.split("# landing page", 1)[0]):
        for sample in family.samples:
            if sample.name == name:
                found[sample.labels.get("reason", "")] = sample.value
    return found


def by_reason(body: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for candidate in body["hygiene"]["candidates"]:
        found[candidate["reason"]].add(candidate["name"])
    return found


async def test_every_candidate_and_no_false_one(tmp_path: Path) -> None:
    async with running_simulator(
        "steady", overrides=TENANT, speed=0, throttle=False, history_days=12
    ) as sim:
        config = config_with_hygiene(tmp_path / "config.yml", sim)
        exposition = await ingest_history(config, sim)
        now = sim.clock.now()
        before = [(c.id, c.rule, c.state) for c in sim.tenant.directory.containers]
        args = ["--config.file", str(config), "--count-members"]
        result = await asyncio.to_thread(lint, *args, "--json")
        human = await asyncio.to_thread(lint, *args, "--inactive-days", str(INACTIVE_DAYS))
        truth = audit_counts(sim.tenant, since=now - INACTIVE_DAYS * DAY, by=["group"])
        after = [(c.id, c.rule, c.state) for c in sim.tenant.directory.containers]
        count_requests = sum(n for path, n in sim.state.requests.items() if "$count" in path)
    assert result.exit_code in (0, 1), result.stderr
    body = orjson.loads(result.stdout)
    hygiene = body["hygiene"]
    found = by_reason(body)
    containers = sim.tenant.directory.containers
    dynamic = [c for c in containers if c.rule is not None]
    groups = [c for c in dynamic if c.kind.value == "group"]
    names = {c.display_name: c for c in containers}

    # Headroom: every dynamic group and unit against 15,000.
    assert hygiene["headroom"] == {
        "dynamic_groups": len(groups),
        "dynamic_administrative_units": len(dynamic) - len(groups),
        "limit": 15_000,
        "ratio": round(len(dynamic) / 15_000, 4),
        "level": "ok",
    }

    # Empty: exactly the groups with no member in the simulator (counted with $count).
    assert found["empty"] == {g.display_name for g in groups if not g.members}
    assert hygiene["member_counts_read_now"] == 0
    # The exporter counted each group once; each run of the command read none again (the
    # store's counts are fresh): --json, then the table.
    assert count_requests == len(groups)

    # Never matches: the two contradictory rules, each with its contradiction shown.
    assert found["never_matches"] == {"DG Sales in Finance", "DG Retired sites"}
    shown = {c["name"]: c["evidence"] for c in hygiene["candidates"]}
    assert "cannot both hold" in shown["DG Sales in Finance"]
    assert "-in [] selects nothing" in shown["DG Retired sites"]
    assert all(not names[n].members for n in found["never_matches"])

    # memberOf: the groups whose rule reads memberOf, with Microsoft's recommendation.
    assert found["memberof"] == {
        c.display_name for c in dynamic if c.rule is not None and "memberOf" in c.rule.properties
    }
    assert len(found["memberof"]) == 2
    recommended = {c["recommendation"] for c in hygiene["candidates"] if c["reason"] == "memberof"}
    assert recommended == {
        'Microsoft: "The recommendation is to delete existing memberOf groups in your tenant."'
    }

    # Duplicates: listed together; equivalent rules select the same members.
    sets = {frozenset(names_of(s, containers)) for s in hygiene["duplicate_sets"]}
    assert sets == {
        frozenset({"DG Sales or Marketing", "DG Marketing and Sales"}),
        frozenset({"DG Engineering Berlin", "DG Berlin engineers"}),
    }
    for same in sets:
        assert len({frozenset(names[n].members) for n in same}) == 1
    assert found["duplicate"] == set().union(*sets)

    # Inactive: exactly the groups without a dynamic membership change in the audit log of
    # the last 7 days, judged on the store's 12 days of history.
    changed = {
        group_id
        for group_id, row in truth["groups"].items()
        if row["series"].get("dynamic_add", 0) + row["series"].get("dynamic_remove", 0)
    }
    expected_inactive = {g.display_name for g in groups if g.id not in changed}
    assert found["inactive"] == expected_inactive
    assert {"DG Tailspin guests", "DG Decommissioned"} <= expected_inactive  # dormant ones
    assert len(expected_inactive) < len(groups)  # and active ones exist
    assert 11.5 <= hygiene["history_days"] <= 12.5
    assert hygiene["not_judged"] == {"inactive": 0, "empty": 0}

    # The share of evaluations the candidates cost, from the week's changes.
    cost = hygiene["evaluation_cost"]
    assert cost["changes_read"] >= 4000
    assert 0 < cost["by_candidates"] < cost["evaluations"]
    assert cost["share"] == round(cost["by_candidates"] / cost["evaluations"], 4)
    by_reason_share = cost["share_by_reason"]
    assert set(by_reason_share) == {"inactive", "empty", "never_matches", "duplicate", "memberof"}
    # memberOf rules read no property a user update changes: only added or deleted users
    # (which every user rule evaluates) cost them anything.
    assert 0 < by_reason_share["memberof"] < by_reason_share["never_matches"]
    assert 0 < by_reason_share["duplicate"] <= cost["share"]
    print("hygiene:", hygiene["candidates_by_reason"], "share", cost["share"])

    # The running exporter's metrics say the same, bounded by reason; and the headroom.
    assert samples(exposition, "entra_dynamic_hygiene_candidates") == {
        k: float(v) for k, v in hygiene["candidates_by_reason"].items()
    }
    assert samples(exposition, "entra_dynamic_object_limit") == {"": 15_000.0}
    assert samples(exposition, "entra_dynamic_hygiene_not_judged") == {"inactive": 0, "empty": 0}

    # The landing page shows the headroom.
    page = exposition.split("# landing page", 1)[1]
    assert "Dynamic group limit" in page
    assert (
        f"<td>{len(groups)}</td><td>{len(dynamic) - len(groups)}</td>"
        f"<td>{len(dynamic)} of 15,000</td>"
    ) in page

    # A table on a terminal, and nothing deleted or changed.
    assert "Tenant hygiene" in human.stdout
    assert "nothing is deleted" in human.stdout
    assert "DG Retired sites" in human.stdout
    assert after == before


def names_of(ids: list[str], containers: list[Container]) -> list[str]:
    by_id = {c.id: c.display_name for c in containers}
    return [by_id[i] for i in ids]


async def test_without_a_store_or_audit_permission_the_report_says_what_it_cannot_judge(
    tmp_path: Path,
) -> None:
    async with running_simulator("steady", overrides=TENANT, speed=0, throttle=False) as sim:
        # The listing permissions only: no AuditLog.Read.All for the week's changes.
        sim.set_tokens({TOKEN: TokenGrant(permissions=tuple(sorted(GROUP_READ | UNIT_READ)))})
        config = config_with_hygiene(tmp_path / "config.yml", sim)
        result = await asyncio.to_thread(lint, "--config.file", str(config), "--json")
        human = await asyncio.to_thread(lint, "--config.file", str(config))
        without = await asyncio.to_thread(
            lint, "--config.file", str(config), "--json", "--no-hygiene"
        )
        counting = await asyncio.to_thread(
            lint, "--config.file", str(config), "--json", "--count-members"
        )
        count_requests = sum(n for path, n in sim.state.requests.items() if "$count" in path)
    groups = [c for c in sim.tenant.directory.containers if c.rule and c.kind.value == "group"]
    hygiene = orjson.loads(result.stdout)["hygiene"]
    assert hygiene["store"] is None  # the exporter never ran: no history, no counts
    assert hygiene["not_judged"] == {"inactive": len(groups), "empty": len(groups)}
    assert hygiene["candidates_by_reason"]["inactive"] == 0
    assert hygiene["candidates_by_reason"]["empty"] == 0
    assert hygiene["candidates_by_reason"]["never_matches"] == 2  # the rules alone tell
    assert hygiene["evaluation_cost"] is None
    assert "permission denied" in hygiene["evaluation_cost_error"]
    assert "AuditLog.Read.All" in hygiene["evaluation_cost_error"]
    assert "no exporter store found" in human.stdout
    assert "the share of evaluations is unknown" in human.stdout
    assert "hygiene" not in orjson.loads(without.stdout)
    # --count-members: the command reads every group's count itself (the store has none).
    counted = orjson.loads(counting.stdout)["hygiene"]
    assert counted["member_counts_read_now"] == len(groups) == count_requests
    assert counted["not_judged"]["empty"] == 0
    empty = {c["name"] for c in counted["candidates"] if c["reason"] == "empty"}
    assert empty == {g.display_name for g in groups if not g.members}


async def test_the_trigger_sample_asks_as_the_exporter_last_asked(tmp_path: Path) -> None:
    """#13: the exporter stepped down to the time range only before (stored): the report's
    trigger sample starts there instead of being refused again."""
    async with running_simulator(
        "steady", overrides=TENANT, speed=0, throttle=False, history_days=1
    ) as sim:
        config = config_with_hygiene(tmp_path / "config.yml", sim)
        store = Store(load_config(config).store.path)
        await store.open()
        await store.call(store.set_audit_query_mode, "sim", AuditQueryMode.TIME_ONLY, 0.0)
        await store.close()
        result = await asyncio.to_thread(lint, "--config.file", str(config), "--json")
    cost = orjson.loads(result.stdout)["hygiene"]["evaluation_cost"]
    assert cost["query_mode"] == "time_only"
    assert cost["changes_read"] > 0
