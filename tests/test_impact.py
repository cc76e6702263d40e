"""`entra-dg-exporter impact` against the simulator: the real msgraph-sdk over HTTP lists the
rules and reads users and devices (delta queries), the real store keeps them, and the predicted
adds and removes per group equal exactly what the simulator's processing makes when the same
change is applied to the simulated tenant."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from exporter.cli.main import cli
from exporter.simulator.app import running_simulator
from exporter.simulator.generate import CUSTOM_EXTENSION
from exporter.simulator.model import DEVICE, USER
from exporter.simulator.tenant import OPERATOR_ACTOR, SimulatedTenant
from tests.harness import write_config

QUIET_LOAD = {
    "user_updates_per_hour": 0,
    "device_updates_per_hour": 0,
    "user_adds_per_hour": 0,
    "device_adds_per_hour": 0,
    "manual_changes_per_hour": 0,
    "group_updates_per_hour": 0,
}
NO_GROUP = "00000000-0000-0000-0000-000000000000"
WAVE_5 = 'user.extensionAttribute3 -eq "wave-5"'
GROUPS: list[dict[str, Any]] = [
    {"name": "Wave 5", "rule": WAVE_5},
    {"name": "Waves 1 or 5", "rule": 'user.extensionAttribute3 -in ["wave-1", "wave-5"]'},
    {
        "name": "Sales in a wave",
        "rule": '(user.department -eq "Sales") -and (user.extensionAttribute3 -startsWith "wave-")',
    },
    {"name": "Early waves", "rule": 'user.extensionAttribute3 -match "^wave-[12]$"'},
    {"name": "Contains ve-5", "rule": 'user.extensionAttribute3 -contains "ve-5"'},
    {"name": "Not wave 1", "rule": 'user.extensionAttribute3 -ne "wave-1"'},
    {"name": "Partners", "rule": 'user.otherMails -any (_ -endsWith "@partner.example")'},
    {"name": "SMTP only", "rule": 'user.proxyAddresses -all (_ -startsWith "smtp:")'},
    {"name": "Cost centre 9", "rule": f'user.{CUSTOM_EXTENSION} -eq "CC-9"'},
    {"name": "Kiosks", "rule": 'device.extensionAttribute5 -eq "kiosk"'},
    {
        "name": "Ordered kiosks",
        "rule": 'device.devicePhysicalIds -any (_ -contains "[OrderID]:Kiosk")',
    },
    {
        "name": "AU wave 5",
        "rule": 'user.extensionAttribute3 -eq "wave-5"',
        "administrative_unit": True,
    },
    {
        "name": "Paused wave 5",
        "rule": 'user.extensionAttribute3 -startsWith "wave-5"',
        "paused": True,
    },
    # memberOf cannot be combined with other criteria (Microsoft), so an attribute change never
    # re-evaluates it; its source group is set once the simulator has named its static groups.
    {"name": "Team 1 members", "rule": f'user.memberOf -any (group.objectId -in ["{NO_GROUP}"])'},
    # A memberOf rule on a dynamic group the change moves users into and out of (#19): its
    # source is set once the simulator has named the groups.
    {"name": "Wave 5 members", "rule": f'user.memberOf -any (group.objectId -in ["{NO_GROUP}"])'},
    {"name": "Legal (critical)", "rule": 'user.department -eq "Legal"', "critical": True},
    {
        "name": "Wave 5 (critical)",
        "rule": 'user.extensionAttribute3 -eq "wave-5"',
        "critical": True,
    },
]
TENANT = {
    "tenant": {
        "users": 400,
        "devices": 80,
        "dynamic_groups": 30,
        "administrative_units": 3,
        "paused_groups": 0,
        "critical_groups": 0,
        "groups": GROUPS,
    },
    "load": QUIET_LOAD,
}


def impact(*args: str) -> Result:
    return CliRunner().invoke(cli, ["impact", *args], catch_exceptions=False)


def memberships(tenant: SimulatedTenant) -> dict[str, set[str]]:
    directory = tenant.directory
    return {
        c.id: {directory.tables[c.member_type].ids[m] for m in c.members}
        for c in directory.containers
        if c.rule is not None
    }


async def settle(sim: Any) -> None:
    """Run the simulated tenant until its processing queue is empty."""
    for _ in range(200):
        await sim.advance(600)
        queue = sim.tenant.queue
        if not queue.pending and queue.service is None:
            return
    raise AssertionError("the simulator's processing queue did not drain")


def user_csv(tenant: SimulatedTenant) -> tuple[str, dict[str, dict[str, Any]]]:
    """A bulk-update file touching every rule shape above, and the same change as values."""
    users = tenant.directory.users
    rows: list[dict[str, str]] = []
    applied: dict[str, dict[str, Any]] = {}
    for index in range(0, 240, 2):
        object_id = users.ids[index]
        row = {"id": object_id, "extensionAttribute3": "", "otherMails": "", "proxyAddresses": ""}
        row[CUSTOM_EXTENSION] = ""
        values: dict[str, Any] = {}
        if index % 3 == 0:
            row["extensionAttribute3"] = values["extensionAttribute3"] = "wave-5"
        if index % 10 == 0:
            row["extensionAttribute3"] = values["extensionAttribute3"] = "wave-1"
        if index % 7 == 0:
            mails = ["x@partner.example", "y@contoso.example"]
            row["otherMails"] = ";".join(mails)
            values["otherMails"] = mails
        if index % 11 == 0:
            addresses = ["SMTP:a@contoso.example", "x500:/o=Contoso"]
            row["proxyAddresses"] = ";".join(addresses)
            values["proxyAddresses"] = addresses
        if index % 5 == 0:
            row[CUSTOM_EXTENSION] = values[CUSTOM_EXTENSION] = "CC-9"
        if values:
            rows.append(row)
            applied[object_id] = values
    out = io.StringIO()
    writer = csv.DictWriter(
        out, ["id", "extensionAttribute3", "otherMails", "proxyAddresses", CUSTOM_EXTENSION]
    )
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), applied


def predicted(body: Mapping[str, Any]) -> dict[str, tuple[set[str], set[str]]]:
    return {
        t["id"]: (set(t["added"]), set(t["removed"]))
        for t in body["targets"]
        if not t["paused"] and (t["added"] or t["removed"])
    }


def actual(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, Any]:
    return {
        group: (after[group] - before[group], before[group] - after[group])
        for group in before
        if after[group] != before[group]
    }


async def test_predicted_changes_equal_the_simulators_processing_exactly(tmp_path: Path) -> None:
    async with running_simulator("steady", overrides=TENANT, speed=0, history_days=0) as sim:
        tenant = sim.tenant
        team = tenant.find("Team 001")
        members_of = tenant.find("Team 1 members")
        tenant.edit_rule(
            members_of,
            f'user.memberOf -any (group.objectId -in ["{team.id}"])',
            OPERATOR_ACTOR,
        )
        wave_5 = tenant.find("Wave 5")
        cascade = tenant.find("Wave 5 members")
        users = tenant.directory.users
        # some already in wave 5: those the change moves to wave 1 leave Wave 5 (index % 10)
        early = {users.ids[i]: {"extensionAttribute3": "wave-5"} for i in (0, 10, 20, 1, 3)}
        tenant.apply_object_changes(USER, early)
        tenant.edit_rule(
            cascade,
            f'user.memberOf -any (group.objectId -in ["{team.id}", "{wave_5.id}"])',
            OPERATOR_ACTOR,
        )
        await settle(sim)
        assert members_of.members == team.members != set()
        assert cascade.members == wave_5.members | team.members
        assert wave_5.members
        critical = [c.id for c in tenant.directory.containers if c.critical]
        config = write_config(tmp_path / "config.yml", sim.base_url, critical_groups=critical)
        text, applied = user_csv(tenant)
        (tmp_path / "change.csv").write_text(text)
        result = await asyncio.to_thread(
            impact, "--config.file", str(config), "--csv", str(tmp_path / "change.csv"), "--json"
        )
        assert result.exit_code == 0, result.stderr
        body = orjson.loads(result.stdout)
        before = memberships(tenant)
        tenant.apply_object_changes(USER, applied)
        await settle(sim)
        after = memberships(tenant)

    expected = actual(before, after)
    assert predicted(body) == expected
    by_name = {t["name"]: t for t in body["targets"]}
    # every rule shape saw changes, so the equality above covers each of them
    for name in (
        "Wave 5", "Waves 1 or 5", "Sales in a wave", "Early waves", "Contains ve-5",
        "Not wave 1", "Partners", "SMTP only", "Cost centre 9", "AU wave 5",
    ):  # fmt: skip
        assert by_name[name]["added"] or by_name[name]["removed"], name
    assert by_name["AU wave 5"]["kind"] == "administrativeUnit"
    # a paused group's changes are predicted but wait for its resume: the simulator made none
    paused = by_name["Paused wave 5"]
    assert paused["paused"]
    assert paused["added"]
    assert tenant.find("Paused wave 5").id not in expected
    assert "Team 1 members" not in by_name  # not re-evaluated, and the simulator agrees:
    assert members_of.id not in expected
    # the memberOf cascade: users moved into Wave 5 join the group that reads memberOf Wave 5;
    # those moved out stay (Microsoft: until the rule is modified), and the simulator agrees
    through = by_name["Wave 5 members"]
    assert through["added"]
    assert through["removed"] == []
    assert [v["name"] for v in through["via"]] == ["Wave 5"]
    assert by_name["Wave 5"]["removed"]
    assert set(by_name["Wave 5"]["removed"]) <= after[cascade.id]
    # ... unless in already through the assigned source (the command read who is in)
    in_team = set(before[cascade.id]) & set(by_name["Wave 5"]["added"])
    assert in_team
    assert set(through["added"]) == set(by_name["Wave 5"]["added"]) - in_team
    totals = body["totals"]
    assert totals["groups_changed"] == len(expected)
    assert totals["membership_changes"] == sum(len(a) + len(r) for a, r in expected.values())
    assert body["deferred_by_pause"]["added"] == len(paused["added"])
    assert body["pause_warranted"] is False
    assert body["reasons"] == []
    assert [s["name"] for s in body["spare"]] == ["Legal (critical)"]
    assert body["objects"]["read"] == "full"
    assert body["objects"]["stored"] == 400


async def test_set_on_objects_matching_a_rule_for_devices(tmp_path: Path) -> None:
    async with running_simulator("steady", overrides=TENANT, speed=0, history_days=0) as sim:
        tenant = sim.tenant
        config = write_config(tmp_path / "config.yml", sim.base_url)
        args = (
            "--config.file", str(config),
            "--set", 'device.extensionAttribute5 = "kiosk"',
            "--set", 'device.devicePhysicalIds = ["[OrderID]:Kiosk-2"]',
            "--matching", 'device.deviceOSType -eq "Windows"',
            "--json",
        )  # fmt: skip
        result = await asyncio.to_thread(impact, *args)
        assert result.exit_code == 0, result.stderr
        body = orjson.loads(result.stdout)
        devices = tenant.directory.devices
        chosen = {
            devices.ids[i]: {
                "extensionAttribute5": "kiosk",
                "devicePhysicalIds": ["[OrderID]:Kiosk-2"],
            }
            for i in range(len(devices))
            if devices.get(i, "deviceOSType") == "Windows"
        }
        assert body["change"]["objects"] == len(chosen) > 0
        before = memberships(tenant)
        tenant.apply_object_changes(DEVICE, chosen)
        await settle(sim)
        after = memberships(tenant)
    expected = actual(before, after)
    p_, e_ = predicted(body), expected
    for k in set(p_) | set(e_):
        if p_.get(k) != e_.get(k):
            pa, pr = p_.get(k, (set(), set()))
            ea, er = e_.get(k, (set(), set()))
            print("DIFF", k, len(pa), len(ea), pa - ea, ea - pa, pr ^ er)
    assert predicted(body) == expected
    kiosk_groups = {tenant.find("Kiosks").id, tenant.find("Ordered kiosks").id}
    assert kiosk_groups <= set(expected)


async def test_a_second_preflight_reads_only_the_changes_and_an_expired_token_resyncs(
    tmp_path: Path,
) -> None:
    async with running_simulator("steady", overrides=TENANT, speed=0, history_days=0) as sim:
        tenant = sim.tenant
        config = write_config(tmp_path / "config.yml", sim.base_url)
        args = ("--config.file", str(config), "--set", 'user.department = "Legal"', "--json")
        first = orjson.loads((await asyncio.to_thread(impact, *args)).stdout)
        users = tenant.directory.users
        # someone changes three users' wave behind our back: the delta read must bring it
        moved = {users.ids[i]: {"extensionAttribute3": "wave-9"} for i in (1, 3, 5)}
        tenant.apply_object_changes(USER, moved)
        await settle(sim)
        second_result = await asyncio.to_thread(
            impact, *args[:-1], "--matching", 'user.extensionAttribute3 -eq "wave-9"', "--json"
        )
        second = orjson.loads(second_result.stdout)
        stored = await asyncio.to_thread(
            impact, *args[:-1], "--matching", 'user.extensionAttribute3 -eq "wave-9"',
            "--no-refresh", "--json",
        )  # fmt: skip
        await sim.advance(8 * 86400)  # Graph keeps delta tokens 7 days
        third = orjson.loads((await asyncio.to_thread(impact, *args)).stdout)
    assert first["objects"]["read"] == "full"
    assert second["objects"]["read"] == "delta"
    assert second["objects"]["requests"] == 1
    assert second["change"]["objects"] == 3  # the delta brought the three new values
    assert orjson.loads(stored.stdout)["objects"]["read"] == "stored"
    assert orjson.loads(stored.stdout)["change"]["objects"] == 3
    assert third["objects"]["read"] == "resync"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no change to predict"),
        (["--csv", "x.csv", "--set", 'user.department = "x"'], "not both"),
        (["--matching", 'user.department -eq "x"'], "it needs --set"),
        (["--set", "user.department"], "expected PROPERTY = VALUE"),
        (["--set", 'user.departmnt = "x"'], "not a user property a rule can read"),
        (["--csv", "{missing}"], "no such file"),
        (["--csv", "{bad_header}"], "no id column"),
        (["--set", 'user.department = "x"'], "pass --config.file"),
    ],
)
def test_unusable_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.csv").write_text("name,department\nada,Sales\n")
    values = {"missing": str(tmp_path / "nope.csv"), "bad_header": str(tmp_path / "bad.csv")}
    result = impact(*(a.format(**values) for a in args))
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("impact: ")
    assert message in line


async def test_a_change_above_the_thresholds_warrants_a_pause_exit_1(tmp_path: Path) -> None:
    async with running_simulator("steady", overrides=TENANT, speed=0, history_days=0) as sim:
        critical = [c.id for c in sim.tenant.directory.containers if c.critical]
        # the configured thresholds (Microsoft's 500 / 20,000 by default), lowered to this tenant
        config = write_config(
            tmp_path / "config.yml",
            sim.base_url,
            critical_groups=critical,
            thresholds={"membership_changes_per_hour": 50, "groups_changed_per_hour": 3},
        )
        args = ("--config.file", str(config), "--set", 'user.extensionAttribute3 = "wave-5"')
        human = await asyncio.to_thread(impact, *args, "--rows", "3")
        body = orjson.loads((await asyncio.to_thread(impact, *args, "--json")).stdout)
    assert human.exit_code == 1, human.stderr
    assert body["pause_warranted"] is True
    changes = body["totals"]["membership_changes"]
    groups = body["totals"]["groups_changed"]
    assert body["reasons"] == [
        f"{groups:,} groups change membership (pause above 3)",
        f"{changes:,} membership changes (pause above 50)",
    ]
    out = human.stdout
    assert f"Pause warranted: {groups:,} groups change membership" in out
    assert "Thresholds: 3 groups, 50 membership changes (configured)" in out
    assert "A pause can spare these critical groups (untouched): Legal (critical)" in out
    shown = [t["name"] for t in body["targets"] if t["added"] or t["removed"]][:3]
    assert all(name in out for name in shown)
