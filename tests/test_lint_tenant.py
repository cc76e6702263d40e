"""`lint-rules --config.file`: a tenant's dynamic rules listed through Graph (the real SDK over
HTTP against the simulator) and linted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from exporter.cli.main import cli
from exporter.domain.events import DirectoryObjectKind
from exporter.domain.lint import operator_usage
from exporter.simulator.access import ALL_PERMISSIONS
from exporter.simulator.app import running_simulator
from tests.harness import write_config

SMALL_TENANT = {
    "tenant": {"users": 300, "devices": 60, "dynamic_groups": 40, "administrative_units": 4}
}


def lint(*args: str) -> Result:
    return CliRunner().invoke(cli, ["lint-rules", *args], catch_exceptions=False)


async def test_every_dynamic_group_and_unit_of_the_tenant_is_linted(tmp_path: Path) -> None:
    async with running_simulator("steady", overrides=SMALL_TENANT, speed=0) as sim:
        config = write_config(tmp_path / "config.yml", sim.base_url)
        result = await asyncio.to_thread(
            lint, "--config.file", str(config), "--json", "--fail-on", "error"
        )
        human = await asyncio.to_thread(lint, "--config.file", str(config), "--tenant", "sim")
    dynamic = [c for c in sim.tenant.directory.containers if c.rule is not None]
    assert {c.kind for c in dynamic} == set(DirectoryObjectKind)  # groups and units both
    body = orjson.loads(result.stdout)
    assert body["source"] == "tenant sim"
    listed = {r["id"]: r for r in body["rules"]}
    assert {c.id: (c.display_name, c.rule.text) for c in dynamic if c.rule is not None} == {
        i: (r["name"], r["rule"]) for i, r in listed.items()
    }
    assert len(body["rules"]) == len(listed)  # each once
    assert body["operator_usage"] == operator_usage(
        c.rule.text for c in dynamic if c.rule is not None
    )
    assert body["summary"]["rules"] == len(dynamic)
    failing = body["summary"]["error"] > 0
    assert result.exit_code == (1 if failing else 0), result.stderr
    assert f"tenant sim: {len(dynamic)} rule(s)" in human.stdout
    assert human.exit_code == result.exit_code


async def test_graph_refusing_the_credential_is_one_clear_line(tmp_path: Path) -> None:
    async with running_simulator("steady", overrides=SMALL_TENANT, speed=0) as sim:
        sim.set_tokens({"someone-else": ALL_PERMISSIONS})
        config = write_config(tmp_path / "config.yml", sim.base_url)
        result = await asyncio.to_thread(lint, "--config.file", str(config))
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("lint-rules: tenant sim: ")
    assert "rejected the credentials" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rules-file", "rules.txt", "--config.file", "{config}"], "not both"),
        (["--rules-file", "rules.txt", "--tenant", "sim"], "--tenant needs --config.file"),
        (["--config.file", "{config}"], "2 tenants (sim, other); pick one with --tenant NAME"),
        (["--config.file", "{config}", "--tenant", "nope"], "no tenant named 'nope'"),
        ([], "pass --rules-file FILE"),
        (["--config.file", "{missing}"], "cannot read the config file"),
    ],
)
def test_unusable_options_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    other = {
        "name": "other",
        "graph_base_url": "http://127.0.0.1:9",
        "auth": {"method": "static_token", "token": "x"},
    }
    config = write_config(tmp_path / "config.yml", "http://127.0.0.1:9", extra_tenants=[other])
    filled = [a.format(config=config, missing=tmp_path / "missing.yml") for a in args]
    result = lint(*filled)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert message in line, line
