"""`entra-dg-exporter lint-rules`: Microsoft's efficiency guidance applied to membership rules.

Exit status: 0 when no finding reaches `--fail-on` (default error), 1 when one does, 2 when the
input cannot be used. Rules come from a `RuleSource`; `select_rule_source` picks one from the
command's options: a file (`--rules-file`), or a tenant of the exporter's configuration
(`--config.file`, `--tenant`) whose dynamic groups and dynamic administrative units are listed
through Graph with the tenant's own credential.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click
import orjson
import yaml
from rich.console import Console
from rich.markup import escape

from exporter.cli.options import option
from exporter.config.loading import ConfigError, load_config
from exporter.config.models import Config, Tenant
from exporter.domain.lint import (
    OPERATOR_USAGE_KEYS,
    Finding,
    Severity,
    lint_rule,
    operator_usage,
)
from exporter.domain.rules import render_caret
from exporter.graph.retry import RetryPolicy

if TYPE_CHECKING:
    from exporter.cli.hygiene_report import TenantHygiene

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_UNUSABLE_INPUT = 2


@dataclass(frozen=True, slots=True)
class RuleRecord:
    """One rule to lint: where it comes from (`id`, e.g. a group id or `line 3`), a name for
    people (a group's displayName) and the rule text."""

    id: str
    name: str | None
    rule: str
    kind: str | None = None
    """`group` or `administrative_unit` for a tenant's rules; None for a file's."""


class RuleSourceError(Exception):
    """The rules cannot be read; the message is one line naming the problem and the fix."""


class RuleSource(Protocol):
    def describe(self) -> str:
        """Where the rules come from, for messages (`rules.yaml`, `tenant contoso`)."""
        ...

    async def load(self) -> Sequence[RuleRecord]:
        """Every rule; RuleSourceError if they cannot be read."""
        ...


class FileRuleSource:
    """Rules from a file (`-` is stdin) in one of these forms:

    * plain text: one rule per line; blank lines and lines starting with `#` are skipped;
    * a YAML or JSON list of rules, as strings or as mappings `{id, name, rule}`;
    * Graph's own answer to `GET /groups?$select=id,displayName,membershipRule`
      (`{"value": [...]}`), so a saved Graph Explorer response can be linted as is.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def describe(self) -> str:
        return "stdin" if self.path == "-" else self.path

    async def load(self) -> Sequence[RuleRecord]:
        return parse_rules_text(self._read(), self.describe())

    def _read(self) -> str:
        if self.path == "-":
            return sys.stdin.read()
        try:
            return Path(self.path).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise RuleSourceError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise RuleSourceError(
                f"{self.path}: is a directory, expected a file of rules"
            ) from None
        except UnicodeDecodeError:
            raise RuleSourceError(f"{self.path}: not UTF-8 text") from None
        except OSError as exc:
            raise RuleSourceError(f"{self.path}: cannot read it ({exc.strerror})") from None


class TenantRuleSource:
    """Every dynamic group's and dynamic administrative unit's rule in a configured tenant,
    listed through Graph (`GroupMember.Read.All`, `AdministrativeUnit.Read.All`) as the
    exporter's pollers list them. Groups first, then units, each by display name."""

    def __init__(self, config: Config, tenant: Tenant, *, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.tenant = tenant
        self._retry = retry or CLI_RETRY

    def describe(self) -> str:
        return f"tenant {self.tenant.name}"

    async def load(self) -> Sequence[RuleRecord]:
        # Graph's SDK takes seconds to import: only this source needs it, not a file's lint.
        from exporter.graph.credentials import CredentialError
        from exporter.graph.errors import GraphError
        from exporter.graph.factory import build_graph_client

        where = self.describe()
        try:
            graph = build_graph_client(self.config, self.tenant, retry=self._retry)
        except CredentialError as exc:
            raise RuleSourceError(f"{where}: {exc}") from None
        try:
            groups = await graph.list_dynamic_groups()
            units = await graph.list_dynamic_administrative_units()
        except GraphError as exc:
            raise RuleSourceError(f"{where}: {exc}") from None
        finally:
            await graph.close()
        return [
            RuleRecord(o.id, o.name, o.rule, o.kind.value)
            for listing in (groups, units)
            for o in sorted(listing, key=lambda o: (o.name.casefold(), o.id))
        ]

    async def hygiene(
        self, records: Sequence[RuleRecord], *, count_members: bool, inactive_days: int | None
    ) -> TenantHygiene:
        """The tenant-hygiene report on the listed rules (exporter.cli.hygiene_report)."""
        from exporter.cli.hygiene_report import assess_tenant_hygiene
        from exporter.clock import SimulatorClockUnavailable
        from exporter.domain.hygiene import HygieneObject
        from exporter.graph.credentials import CredentialError
        from exporter.graph.errors import GraphError
        from exporter.graph.factory import build_graph_client
        from exporter.store.hygiene import StoreTooOld

        where = self.describe()
        try:
            graph = build_graph_client(self.config, self.tenant, retry=self._retry)
        except CredentialError as exc:
            raise RuleSourceError(f"{where}: {exc}") from None
        try:
            return await assess_tenant_hygiene(
                self.config,
                self.tenant,
                graph,
                [HygieneObject(r.kind or "group", r.id, r.name or r.id, r.rule) for r in records],
                count_members=count_members,
                inactive_days=inactive_days or self.config.hygiene.inactive_days,
            )
        except (GraphError, StoreTooOld, SimulatorClockUnavailable) as exc:
            raise RuleSourceError(f"{where}: {exc}") from None
        finally:
            await graph.close()


CLI_RETRY = RetryPolicy(attempts=3, throttled_attempts=10, max_delay=10.0, max_retry_after=60.0)
"""A command someone waits for gives up sooner than the exporter's pollers."""


def select_rule_source(
    *,
    rules_file: str | None,
    config_file: Path | None = None,
    tenant: str | None = None,
) -> RuleSource:
    """The source the options name: a file, or a tenant of the exporter's configuration."""
    if rules_file is not None and config_file is not None:
        raise RuleSourceError(
            "pass either --rules-file (lint a file) or --config.file (lint a tenant), not both"
        )
    if rules_file is not None:
        if tenant is not None:
            raise RuleSourceError("--tenant needs --config.file; a --rules-file has no tenants")
        return FileRuleSource(rules_file)
    if config_file is None:
        raise RuleSourceError(
            "no rules to lint: pass --rules-file FILE (or - for stdin), or --config.file FILE "
            "[--tenant NAME] to lint a tenant's dynamic groups through Graph"
        )
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        raise RuleSourceError("; ".join(exc.problems)) from None
    names = [t.name for t in config.tenants]
    if tenant is None:
        if len(config.tenants) != 1:
            raise RuleSourceError(
                f"{config_file}: {len(names)} tenants ({', '.join(names)}); pick one with "
                "--tenant NAME"
            )
        return TenantRuleSource(config, config.tenants[0])
    chosen = next((t for t in config.tenants if t.name == tenant), None)
    if chosen is None:
        raise RuleSourceError(
            f"{config_file}: no tenant named {tenant!r}; the configured ones are {', '.join(names)}"
        )
    return TenantRuleSource(config, chosen)


def parse_rules_text(text: str, origin: str) -> list[RuleRecord]:
    """Rules from a file's text, in any of the forms FileRuleSource accepts."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            document: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RuleSourceError(
                f"{origin}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        records = _structured_records(document, origin)
    elif stripped.startswith(("- ", "-\n", "---")) or origin.endswith((".yaml", ".yml")):
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise RuleSourceError(f"{origin}: not valid YAML{where}") from None
        records = _structured_records(document, origin)
    else:
        records = [
            RuleRecord(f"line {number}", None, line.strip())
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    if not records:
        raise RuleSourceError(f"{origin}: no rules found")
    return records


def _structured_records(document: Any, origin: str) -> list[RuleRecord]:
    if isinstance(document, dict) and isinstance(document.get("value"), list):
        document = document["value"]  # a Graph collection response
    if not isinstance(document, list):
        raise RuleSourceError(
            f"{origin}: expected a list of rules (strings or {{id, name, rule}} mappings)"
        )
    records: list[RuleRecord] = []
    for index, item in enumerate(document, start=1):
        where = f"{origin}: item {index}"
        if isinstance(item, str):
            records.append(RuleRecord(f"item {index}", None, item))
            continue
        if not isinstance(item, dict):
            raise RuleSourceError(f"{where}: expected a rule string or a mapping with 'rule'")
        rule = item.get("rule", item.get("membershipRule"))
        if rule is None and ("rule" in item or "membershipRule" in item):
            continue  # a group without a rule (assigned membership) in a Graph listing
        if not isinstance(rule, str):
            raise RuleSourceError(f"{where}: expected the rule text under 'rule' (a string)")
        name = item.get("name", item.get("displayName"))
        records.append(
            RuleRecord(
                str(item.get("id", f"item {index}")),
                None if name is None else str(name),
                rule,
            )
        )
    return records


# ---------------------------------------------------------------------------------------------

_SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


@dataclass(frozen=True, slots=True)
class _Result:
    record: RuleRecord
    findings: list[Finding]


def _line_column(text: str, position: int) -> tuple[int, int]:
    line = text.count("\n", 0, position) + 1
    return line, position - (text.rfind("\n", 0, position) + 1) + 1


def _finding_json(rule: str, finding: Finding) -> dict[str, Any]:
    line, column = (None, None)
    if finding.position is not None:
        line, column = _line_column(rule, finding.position)
    return {
        "code": finding.code.value,
        "severity": finding.severity.value,
        "message": finding.message,
        "position": finding.position,
        "line": line,
        "column": column,
        "rewrite": finding.rewrite,
    }


def _summary(results: Sequence[_Result]) -> dict[str, int]:
    findings = [f for r in results for f in r.findings]
    return {
        "rules": len(results),
        "rules_with_findings": sum(1 for r in results if r.findings),
        **{
            severity.value: sum(1 for f in findings if f.severity is severity)
            for severity in Severity
        },
    }


def _write_json(
    results: Sequence[_Result], source: str, hygiene: TenantHygiene | None = None
) -> None:
    document: dict[str, Any] = {
        "source": source,
        "summary": _summary(results),
        "operator_usage": operator_usage(r.record.rule for r in results),
        "rules": [
            {
                "id": r.record.id,
                "name": r.record.name,
                "rule": r.record.rule,
                "findings": [_finding_json(r.record.rule, f) for f in r.findings],
            }
            for r in results
        ],
    }
    if hygiene is not None:
        from exporter.cli.hygiene_report import hygiene_json

        document["hygiene"] = hygiene_json(hygiene)
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


def _write_human(
    results: Sequence[_Result], source: str, hygiene: TenantHygiene | None = None
) -> None:
    console = Console(highlight=False, soft_wrap=True)
    for result in results:
        if not result.findings:
            continue
        record = result.record
        title = record.id if record.name is None else f"{record.name} ({record.id})"
        console.print(f"[bold]{escape(title)}[/bold]")
        for finding in result.findings:
            style = _SEVERITY_STYLE[finding.severity]
            where = ""
            if finding.position is not None:
                line, column = _line_column(record.rule, finding.position)
                where = f"{line}:{column} "
            console.print(
                f"  {where}[{style}]{finding.severity.value}[/{style}] "
                f"[dim]{finding.code.value}[/dim]: {escape(finding.message)}"
            )
            if finding.position is not None:
                for text in render_caret(record.rule, finding.position).split("\n"):
                    console.print("    " + escape(text))
            if finding.rewrite is not None:
                console.print(f"    [green]rewrite:[/green] {escape(finding.rewrite)}")
        console.print()
    summary = _summary(results)
    usage = operator_usage(r.record.rule for r in results)
    used = ", ".join(f"{key} {usage[key]}" for key in OPERATOR_USAGE_KEYS if usage[key])
    console.print(
        f"{escape(source)}: {summary['rules']} rule(s), {summary['rules_with_findings']} with "
        f"findings: {summary['error']} error(s), {summary['warning']} warning(s), "
        f"{summary['info']} info" + (f"; rules using inefficient operators: {used}" if used else "")
    )
    if hygiene is not None:
        from exporter.cli.hygiene_report import write_hygiene_table

        write_hygiene_table(hygiene, console)


@click.command("lint-rules")
@option(
    "--rules-file",
    "rules_file",
    metavar="FILE",
    help="Rules to lint: one per line, a YAML/JSON list of {id, name, rule}, or a saved Graph "
    "/groups response; - reads stdin.",
)
@option(
    "--config.file",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Lint a tenant instead: the exporter's configuration, whose credential lists the "
    "dynamic groups and administrative units through Graph.",
)
@option(
    "--tenant",
    "tenant",
    default=None,
    help="Which tenant of --config.file (needed when it has several).",
)
@option(
    "--hygiene/--no-hygiene",
    "hygiene",
    default=True,
    show_default=True,
    help="With a tenant: also report headroom and dead-weight candidates (inactive, empty, "
    "never matching, duplicate, memberOf groups); nothing is deleted.",
)
@option(
    "--count-members",
    "count_members",
    is_flag=True,
    help="With a tenant: read member counts the exporter's store lacks now, with $count, "
    "within hygiene.member_count_requests_per_minute.",
)
@option(
    "--inactive-days",
    "inactive_days",
    type=click.IntRange(min=1),
    default=None,
    help="With a tenant: days without a dynamic membership change that make a group inactive "
    "(default: hygiene.inactive_days, 90).",
)
@option("--json", "as_json", is_flag=True, help="Write findings as JSON on stdout.")
@option(
    "--fail-on",
    "fail_on",
    type=click.Choice([s.value for s in Severity]),
    default=Severity.ERROR.value,
    show_default=True,
    help="Exit 1 when a finding has this severity or a higher one.",
)
def lint_rules_command(
    rules_file: str | None,
    config_file: Path | None,
    tenant: str | None,
    hygiene: bool,
    count_members: bool,
    inactive_days: int | None,
    as_json: bool,
    fail_on: str,
) -> None:
    """Check dynamic membership rules against Microsoft's efficiency guidance and Entra's limits.

    Exit 0 when no finding reaches --fail-on, 1 when one does, 2 when the input is unusable.
    """
    ctx = click.get_current_context()
    if rules_file is not None and (
        ctx.get_parameter_source("config_file") is click.core.ParameterSource.ENVIRONMENT
    ):
        # ENTRA_DG_CONFIG_FILE set for every command (as the runbook assumes) must not turn
        # `lint-rules --rules-file F` into "pass either, not both": a flag given says which.
        config_file = None
    try:
        source = select_rule_source(rules_file=rules_file, config_file=config_file, tenant=tenant)
        records = asyncio.run(source.load())
        report = None
        if hygiene and isinstance(source, TenantRuleSource):
            report = asyncio.run(
                source.hygiene(records, count_members=count_members, inactive_days=inactive_days)
            )
    except RuleSourceError as exc:
        click.echo(f"lint-rules: {exc}", err=True)
        raise SystemExit(EXIT_UNUSABLE_INPUT) from None
    results = [_Result(record, lint_rule(record.rule)) for record in records]
    if as_json:
        _write_json(results, source.describe(), report)
    else:
        _write_human(results, source.describe(), report)
    threshold = Severity(fail_on).rank
    failing = any(f.severity.rank >= threshold for r in results for f in r.findings)
    raise SystemExit(EXIT_FINDINGS if failing else EXIT_CLEAN)
