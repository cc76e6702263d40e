"""`entra-dg-exporter lint-rules`: Microsoft's efficiency guidance applied to membership rules.

Exit status: 0 when no finding reaches `--fail-on` (default error), 1 when one does, 2 when the
input cannot be used. Rules come from a `RuleSource`; `select_rule_source` picks one from the
command's options. Today that is a file (`--rules-file`); a tenant source that lists the dynamic
groups' rules through Graph plugs in behind the same protocol.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import click
import orjson
import yaml
from rich.console import Console
from rich.markup import escape

from exporter.cli import option
from exporter.domain.lint import (
    OPERATOR_USAGE_KEYS,
    Finding,
    Severity,
    lint_rule,
    operator_usage,
)
from exporter.domain.rules import render_caret

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


def select_rule_source(*, rules_file: str | None) -> RuleSource:
    """The source the options name. A tenant source (`--config.file`, `--tenant`) joins here."""
    if rules_file is None:
        raise RuleSourceError("no rules to lint: pass --rules-file FILE (or - for stdin)")
    return FileRuleSource(rules_file)


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


def _write_json(results: Sequence[_Result], source: str) -> None:
    document = {
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
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


def _write_human(results: Sequence[_Result], source: str) -> None:
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


@click.command("lint-rules")
@option(
    "--rules-file",
    "rules_file",
    metavar="FILE",
    help="Rules to lint: one per line, a YAML/JSON list of {id, name, rule}, or a saved Graph "
    "/groups response; - reads stdin.",
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
def lint_rules_command(rules_file: str | None, as_json: bool, fail_on: str) -> None:
    """Check dynamic membership rules against Microsoft's efficiency guidance and Entra's limits.

    Exit 0 when no finding reaches --fail-on, 1 when one does, 2 when the input is unusable.
    """
    try:
        source = select_rule_source(rules_file=rules_file)
        records = asyncio.run(source.load())
    except RuleSourceError as exc:
        click.echo(f"lint-rules: {exc}", err=True)
        raise SystemExit(EXIT_UNUSABLE_INPUT) from None
    results = [_Result(record, lint_rule(record.rule)) for record in records]
    if as_json:
        _write_json(results, source.describe())
    else:
        _write_human(results, source.describe())
    threshold = Severity(fail_on).rank
    failing = any(f.severity.rank >= threshold for r in results for f in r.findings)
    raise SystemExit(EXIT_FINDINGS if failing else EXIT_CLEAN)
