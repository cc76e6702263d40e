"""The docs run as written: every shell command that invokes `entra-dg-exporter` in README.md,
docs/*.md and alerts/runbook.md is run here, as its own process through bash, against the
simulated tenant - or its code block is marked `<!-- example: adapt -->` on the line before the
fence (a command that installs, or names a host only docker compose has).

The sandbox the commands run in is what the docs assume of the reader's shell: the tenant is
called `contoso`; ENTRA_DG_CONFIG_FILE names its config (the runbook says so); the files the
commands name (exporter.yml, rules.txt, ...) are in the working directory; the exporter runs at
the config's listen address. `pause`, `resume` and `plan` are dry runs unless given --apply, and
no documented command gives --apply (the test refuses one). Long-running commands (`serve`,
`simulate`) are run until they say where they serve, on port 0 instead of their fixed port.
Commands written inline in a sentence are run too, without their --apply (the dry run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.simulator.app import RunningSimulator
from exporter.simulator.exporter_config import simulated_tenant_config, write_config_file
from tests.ops_harness import TOKEN, small_storm
from tests.prometheus_tools import REPO

pytestmark = pytest.mark.slow

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "alerts" / "runbook.md"]
EXAMPLE_MARK = "<!-- example: adapt -->"
SHELLS = {"", "sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)

EXIT_CODES = {"check-resume": {0, 1, 2, 3}, "lint-rules": {0, 1}, "impact": {0, 1}}
"""The documented exit codes of commands whose answer is not always 0; every other: 0."""

LONG_RUNNING = {
    "serve": re.compile(r"Serving metrics at \S+"),
    "simulate": re.compile(r"Simulated Microsoft Graph for scenario"),
}
FIXED_PORTS = {":9717": "127.0.0.1:0", "127.0.0.1:8089": "127.0.0.1:0"}
"""Fixed ports in long-running commands, replaced so that parallel test runs do not collide."""

SANDBOX_FILES = {
    "rules.txt": '(user.department -eq "Sales")\n(user.city -contains "ondon")\n',
    "rules.yaml": '- id: g1\n  name: Sales\n  rule: (user.department -eq "Sales")\n',
    "groups.json": '{"value": [{"id": "g1", "displayName": "Sales", '
    '"membershipRule": "(user.department -eq \\"Sales\\")"}]}',
}


@dataclass(frozen=True)
class DocCommand:
    where: str
    line: str
    example: bool
    inline: bool = False
    """In a sentence (`...`) rather than a code block: it may say --apply, and is run as the
    dry run the docs tell the reader to look at first."""


INLINE = re.compile(r"`(entra-dg-exporter [^`]+)`")


def doc_commands() -> list[DocCommand]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for span in INLINE.finditer(prose.replace("\n", " ")):
            # `entra-dg-exporter pause` names a command; with an option it is one to run
            if any(w.startswith("-") for w in span[1].split()):
                line = prose[: span.start()].count("\n") + 1
                where = f"{path.relative_to(REPO)}:{line}"
                found.append(DocCommand(where, span[1], example=False, inline=True))
        for fence in FENCE.finditer(text):
            if fence["lang"] not in SHELLS:
                continue
            before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            body = fence["body"].replace("\\\n", " ")
            first = text[: fence.start()].count("\n") + 1
            for offset, raw in enumerate(body.splitlines(), start=1):
                line = raw.strip()
                words = shlex.split(line, comments=True)
                if not any(w.endswith("entra-dg-exporter") for w in words):
                    continue  # a comment or another tool (docker compose, journalctl)
                where = f"{path.relative_to(REPO)}:{first + offset}"
                found.append(DocCommand(where, line, example=before == EXAMPLE_MARK))
    return found


COMMANDS = doc_commands()


def subcommand(line: str) -> str:
    words = shlex.split(line, comments=True)
    at = next(i for i, w in enumerate(words) if w.endswith("entra-dg-exporter"))
    rest = [w for w in words[at + 1 :] if not w.startswith("-")]
    return rest[0] if rest else ""


def test_the_docs_have_commands_and_every_example_is_marked_as_such() -> None:
    assert len([c for c in COMMANDS if not c.example]) >= 30
    assert len([c for c in COMMANDS if c.inline]) >= 8
    examples = [c for c in COMMANDS if c.example]
    # Marking is for what cannot run here; keep it the exception.
    assert len(examples) <= 4, [c.where for c in examples]


def test_no_code_block_command_acts() -> None:
    acting = [
        c.where
        for c in COMMANDS
        if not c.inline and "--apply" in shlex.split(c.line, comments=True)
    ]
    assert not acting, f"copy-paste commands with --apply would act on a tenant: {acting}"


def dry(command: DocCommand) -> str:
    """The command as run here: an inline one without --apply (its dry run)."""
    if not command.inline:
        return command.line
    return shlex.join(w for w in shlex.split(command.line) if w != "--apply")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with small_storm() as running:
        yield running


@contextlib.asynccontextmanager
async def exporter_at(config: Path, env: dict[str, str]) -> AsyncIterator[None]:
    process = await asyncio.create_subprocess_exec(
        *_cli(), "serve", "--config.file", str(config),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        async with asyncio.timeout(60):
            while "Serving metrics at" not in (await process.stderr.readline()).decode():
                assert process.returncode is None
        drain = asyncio.create_task(process.stderr.read())
        yield
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=60)
        with contextlib.suppress(UnboundLocalError):
            await drain


def _cli() -> list[str]:
    return [sys.executable, "-c", "from exporter.cli.main import main; main()"]


async def _run(line: str, cwd: Path, env: dict[str, str]) -> tuple[int | None, str]:
    """Run a documented line through bash; a long-running command until it says it serves."""
    name = subcommand(line)
    ready = LONG_RUNNING.get(name)
    if ready is not None:
        for fixed, free in FIXED_PORTS.items():
            line = line.replace(fixed, free)
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", line, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    if ready is None:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        return process.returncode, out.decode()
    seen = ""
    try:
        async with asyncio.timeout(60):
            while not ready.search(seen):
                chunk = (await process.stdout.readline()).decode()
                if not chunk:
                    break
                seen += chunk
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        await asyncio.wait_for(process.wait(), timeout=60)
    return (0 if ready.search(seen) else process.returncode), seen


async def test_every_documented_command_runs_against_the_simulator(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    port = _free_port()
    config = write_config_file(
        tmp_path / "config.yml",
        simulated_tenant_config(
            sim.base_url,
            tmp_path / "state.sqlite3",
            token=TOKEN,
            tenant="contoso",
            listen_address=f"127.0.0.1:{port}",
        ),
    )
    write_config_file(
        tmp_path / "exporter.yml",
        simulated_tenant_config(
            sim.base_url, tmp_path / "other.sqlite3", token=TOKEN, tenant="contoso"
        ),
    )
    for name, text in SANDBOX_FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    critical = "".join(f"{c.id}\n" for c in sim.tenant.critical_groups())
    (tmp_path / "critical.txt").write_text(critical, encoding="utf-8")
    # An admin's bulk-update file for `impact --csv`: three users move department.
    users = sim.tenant.directory.users.ids[:3]
    (tmp_path / "hr-update.csv").write_text(
        "id,department\n" + "".join(f"{u},Sales\n" for u in users), encoding="utf-8"
    )
    env = {
        **os.environ,
        "ENTRA_DG_CONFIG_FILE": str(config),
        "ENTRA_DG_OPERATOR": "docs-test",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "NO_COLOR": "1",
    }
    failures = []
    async with exporter_at(config, env):
        for command in COMMANDS:
            if command.example:
                continue
            code, output = await _run(dry(command), tmp_path, env)
            expected = EXIT_CODES.get(subcommand(command.line), {0})
            shows = "--show" not in command.line or "tenants:" in output  # the settings
            if code not in expected or not shows or "Usage:" in output or "Traceback" in output:
                failures.append(f"{command.where}: {command.line}\n  exit {code}: {output[-600:]}")
    assert not failures, "\n".join(failures)
