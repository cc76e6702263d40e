"""`entra-dg-exporter impact`: the blast radius of a planned attribute change, before it is made.

Exit status: 0 below Microsoft's thresholds (500 groups, 20,000 membership changes), 1 when the
change warrants a pause, 2 when the input cannot be used. docs/impact.md explains the output.

The tenant's dynamic groups and units are listed through Graph (as `lint-rules --config.file`
does); its users or devices come from the store, brought up to date first with a delta query
(a full read the first time, or when the rules read properties the store does not have), with
`$select` of only the properties the rules read (`exporter.graph.objects`). The prediction
itself is pure (`exporter.domain.impact`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from exporter.cli.options import option
from exporter.clock import Clock, SimulatorClockUnavailable, command_clock
from exporter.config.loading import ConfigError, load_config
from exporter.config.models import Config, Tenant
from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.impact import (
    GROUP_CHANGES_THRESHOLD,
    MEMBERSHIP_CHANGES_THRESHOLD,
    ChangeSet,
    ChangeSpecError,
    Impact,
    RuleIndex,
    Target,
    Totals,
    changes_from_assignments,
    changes_from_csv,
    csv_properties,
    member_of_targets_moved_by,
    parse_assignment,
    predict,
)
from exporter.domain.records import DirectoryObject
from exporter.domain.rules import ObjectType, Rule, RuleSyntaxError, parse

EXIT_BELOW = 0
EXIT_PAUSE_WARRANTED = 1
EXIT_UNUSABLE_INPUT = 2


class ImpactInputError(Exception):
    """The command cannot run; the message is one line naming the problem and the fix."""


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """What the operator plans, as given on the command line."""

    csv_text: str | None = None
    csv_origin: str = "csv"
    object_type: ObjectType = ObjectType.USER
    assignments: tuple[str, ...] = ()
    matching: str | None = None

    def resolved_type(self) -> ObjectType:
        if self.assignments:
            return parse_assignment(self.assignments[0]).object_type
        return self.object_type


@dataclass(frozen=True, slots=True)
class ObjectRead:
    """How the objects were brought up to date."""

    mode: str
    """`full`, `delta`, `resync` (the delta link had expired), or `stored` (--no-refresh)."""
    requests: int
    objects: int
    properties: tuple[str, ...]
    seconds: float


@dataclass(frozen=True, slots=True)
class Preflight:
    tenant: str
    impact: Impact
    read: ObjectRead
    unreadable_rules: tuple[tuple[str, str], ...]
    """(group or unit name, why) for rules the parser refuses: not predicted."""
    predict_seconds: float


def targets_from(
    listing: Sequence[DirectoryObject], critical: frozenset[str]
) -> tuple[list[Target], list[tuple[str, str]]]:
    """Targets from Graph's dynamic groups and units, and the rules that could not be read."""
    targets: list[Target] = []
    unreadable: list[tuple[str, str]] = []
    for item in listing:
        try:
            rule: Rule = parse(item.rule)
        except (RuleSyntaxError, ValueError) as exc:
            unreadable.append((item.name, str(exc).splitlines()[0]))
            continue
        targets.append(
            Target(
                id=item.id.lower(),
                name=item.name,
                kind="administrativeUnit"
                if item.kind is DirectoryObjectKind.ADMINISTRATIVE_UNIT
                else "group",
                rule=rule,
                paused=item.state is ProcessingState.PAUSED,
                critical=item.id.lower() in critical,
            )
        )
    return targets, unreadable


def change_properties(request: ChangeRequest, object_type: ObjectType) -> set[str]:
    """The properties the change sets or selects by: their current values must be read too."""
    from exporter.graph.objects import NAME_FIELD

    names: set[str] = set()
    if request.csv_text is not None:
        names |= csv_properties(
            request.csv_text,
            object_type,
            request.csv_origin,
            key_column=NAME_FIELD[object_type] if object_type is ObjectType.USER else None,
        )
    for text in request.assignments:
        names.add(parse_assignment(text).name)
    if request.matching is not None:
        try:
            names |= parse(request.matching).properties
        except (RuleSyntaxError, ValueError) as exc:
            raise ChangeSpecError(f"--matching: {str(exc).splitlines()[0]}") from None
    return names


@contextlib.asynccontextmanager
async def tenant_clock(tenant: Tenant) -> AsyncIterator[Clock]:
    """The system clock, or the simulated tenant's (`clock: simulator`): rules that read
    system.now are evaluated at the tenant's time."""
    try:
        async with command_clock(
            tenant.graph_base_url, simulated=tenant.clock == "simulator"
        ) as clock:
            yield clock
    except SimulatorClockUnavailable as exc:
        raise ImpactInputError(str(exc)) from None


async def run_preflight(
    config: Config, tenant: Tenant, request: ChangeRequest, *, refresh: bool = True
) -> Preflight:
    """List the rules, bring the stored objects up to date, build the change and predict."""
    # Graph's SDK takes a while to import: only a run that gets this far needs it.
    from exporter.cli.lint_rules import CLI_RETRY
    from exporter.graph.credentials import CredentialError
    from exporter.graph.errors import GraphError
    from exporter.graph.factory import build_graph_client
    from exporter.graph.objects import NAME_FIELD, DeltaExpired, read_objects, selectable
    from exporter.store.database import Store
    from exporter.store.objects import ObjectCache

    object_type = request.resolved_type()
    kind = str(object_type)
    try:
        graph = build_graph_client(config, tenant, retry=CLI_RETRY)
    except CredentialError as exc:
        raise ImpactInputError(f"tenant {tenant.name}: {exc}") from None
    store = Store(config.store.path)
    try:
        await store.open()
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        await graph.close()
        raise ImpactInputError(f"cannot open the store {config.store.path}: {exc}") from None
    cache = ObjectCache(store)
    try:
        async with tenant_clock(tenant) as clock:
            try:
                listing = [
                    *await graph.list_dynamic_groups(),
                    *await graph.list_dynamic_administrative_units(),
                ]
            except GraphError as exc:
                raise ImpactInputError(f"tenant {tenant.name}: {exc}") from None
            targets, unreadable = targets_from(
                listing, frozenset(g.lower() for g in tenant.critical_groups)
            )
            index = RuleIndex(targets)
            wanted = selectable(
                object_type, index.properties(kind) | change_properties(request, object_type)
            )
            started = time.perf_counter()
            state = await store.call(cache.sync_state, tenant.name, kind)
            missing = sorted(set(wanted) - (state.properties if state else frozenset()))
            requests = 0
            if not refresh:
                if state is None:
                    raise ImpactInputError(
                        f"no {kind}s stored for tenant {tenant.name}: run once without "
                        "--no-refresh to read them from Graph"
                    )
                if missing:
                    raise ImpactInputError(
                        f"the stored {kind}s lack {', '.join(missing)} (read by the rules or the "
                        "change): run without --no-refresh to read them"
                    )
                mode = "stored"
            else:
                mode = "full"
                try:
                    if state is not None and not missing:
                        try:
                            read = await read_objects(graph, object_type, wanted, state.delta_link)
                            mode = "delta"
                        except DeltaExpired:
                            mode = "resync"
                            read = await read_objects(graph, object_type, wanted)
                    else:
                        read = await read_objects(graph, object_type, wanted)
                except GraphError as exc:
                    raise ImpactInputError(f"tenant {tenant.name}: {exc}") from None
                requests = read.requests
                now = clock.now()
                if read.full:
                    await store.call(
                        cache.replace, tenant.name, kind, wanted, read.objects, read.delta_link, now
                    )
                else:
                    await store.call(
                        cache.apply_delta,
                        tenant.name,
                        kind,
                        read.objects,
                        read.removed,
                        read.delta_link,
                        now,
                    )
            objects = await store.call(cache.objects, tenant.name, kind)
            stored = state.properties if mode == "stored" and state else frozenset(wanted)
            object_read = ObjectRead(
                mode,
                requests,
                len(objects),
                tuple(sorted(stored)),
                time.perf_counter() - started,
            )
            now = clock.now()
            started = time.perf_counter()
            change = build_change(request, object_type, objects, now, NAME_FIELD[object_type])
            thresholds = config.thresholds
            members: dict[str, frozenset[str]] = {}
            try:
                for reached in member_of_targets_moved_by(index, change):
                    # Who is in already (the memberOf cascade adds only those who are not).
                    members[reached.id.lower()] = await graph.member_ids(reached.id)
            except GraphError as exc:
                raise ImpactInputError(f"tenant {tenant.name}: {exc}") from None
            impact = predict(
                index,
                objects,
                change,
                now,
                group_changes_threshold=thresholds.groups_changed_per_hour,
                membership_changes_threshold=thresholds.membership_changes_per_hour,
                current_members=members,
            )
            return Preflight(
                tenant.name,
                impact,
                object_read,
                tuple(unreadable),
                time.perf_counter() - started,
            )
    finally:
        await graph.close()
        await store.close()


def build_change(
    request: ChangeRequest,
    object_type: ObjectType,
    objects: dict[str, dict[str, Any]],
    now: float,
    name_field: str,
) -> ChangeSet:
    if request.csv_text is not None:
        if object_type is not ObjectType.USER:
            return changes_from_csv(request.csv_text, object_type, request.csv_origin)
        # An admin's file often names users by userPrincipalName rather than by id.
        keys = {
            str(obj[name_field]).lower(): object_id
            for object_id, obj in objects.items()
            if obj.get(name_field)
        }
        return changes_from_csv(
            request.csv_text, object_type, request.csv_origin, key_column=name_field, keys=keys
        )
    return changes_from_assignments(
        [parse_assignment(a) for a in request.assignments], request.matching, objects, now
    )


# ---------------------------------------------------------------------------------------------
# Output


def _totals_json(totals: Totals) -> dict[str, int]:
    return {
        "objects_changed": totals.objects_changed,
        "groups_reevaluated": totals.groups_reevaluated,
        "groups_changed": totals.groups_changed,
        "membership_changes": totals.membership_changes,
        "added": totals.added,
        "removed": totals.removed,
    }


def preflight_json(result: Preflight) -> dict[str, Any]:
    impact = result.impact
    return {
        "tenant": result.tenant,
        "change": {
            "description": impact.change.description,
            "object_type": str(impact.change.object_type),
            "objects": len(impact.change.changes),
            "unchanged_objects": impact.unchanged_objects,
            "properties": sorted(impact.change.properties),
        },
        "totals": _totals_json(impact.totals),
        "deferred_by_pause": _totals_json(impact.deferred),
        "thresholds": {
            "groups_changed": impact.group_changes_threshold,
            "membership_changes": impact.membership_changes_threshold,
            "source": "thresholds.groups_changed_per_hour and membership_changes_per_hour of the "
            "configuration; by default Microsoft's: pause when you plan changes to more than 500 "
            "groups or more than 20,000 membership changes",
        },
        "pause_warranted": impact.pause_warranted,
        "reasons": list(impact.reasons),
        "spare": [{"id": t.id, "name": t.name, "kind": t.kind} for t in impact.spare],
        "targets": [
            {
                "id": r.target.id,
                "name": r.target.name,
                "kind": r.target.kind,
                "paused": r.target.paused,
                "critical": r.target.critical,
                "rule": r.target.rule.text,
                "added": list(r.added),
                "removed": list(r.removed),
                "via": [{"id": t.id, "name": t.name} for t in r.via],
            }
            for r in impact.targets
        ],
        "unreadable_rules": [{"name": n, "problem": p} for n, p in result.unreadable_rules],
        "objects": {
            "read": result.read.mode,
            "requests": result.read.requests,
            "stored": result.read.objects,
            "properties": list(result.read.properties),
            "seconds": round(result.read.seconds, 3),
        },
        "predict_seconds": round(result.predict_seconds, 3),
    }


def write_human(result: Preflight, console: Console, rows: int) -> None:
    impact = result.impact
    totals = impact.totals
    read = result.read
    console.print(
        f"[bold]{escape(impact.change.description)}[/bold] (tenant {escape(result.tenant)}; "
        f"{read.objects:,} {impact.change.object_type}s, {read.mode} read"
        + (f" in {read.requests} request(s)" if read.requests else "")
        + ")"
    )
    if impact.unchanged_objects:
        console.print(f"  {impact.unchanged_objects:,} object(s) already have the new values")
    table = Table(title=None, show_lines=False)
    table.add_column("group / unit")
    table.add_column("kind")
    table.add_column("added", justify="right")
    table.add_column("removed", justify="right")
    table.add_column("note")
    shown = [r for r in impact.targets if r.changes][:rows]
    for r in shown:
        notes = [
            n for n, on in (("critical", r.target.critical), ("paused", r.target.paused)) if on
        ]
        if r.via:
            notes.append("memberOf " + ", ".join(t.name for t in r.via))
        table.add_row(
            escape(r.target.name),
            "unit" if r.target.kind == "administrativeUnit" else "group",
            f"{len(r.added):,}",
            f"{len(r.removed):,}",
            ", ".join(notes),
        )
    changing = sum(1 for r in impact.targets if r.changes)
    if shown:
        console.print(table)
        if changing > len(shown):
            console.print(f"  ... and {changing - len(shown):,} more (--rows, or --json for all)")
    console.print(
        f"Re-evaluated: {totals.groups_reevaluated:,} groups/units; membership changes in "
        f"{totals.groups_changed:,} of them: {totals.membership_changes:,} "
        f"(+{totals.added:,} -{totals.removed:,})"
    )
    if impact.deferred.groups_reevaluated:
        console.print(
            f"Paused now: {impact.deferred.groups_reevaluated:,} groups/units read what changes; "
            f"{impact.deferred.membership_changes:,} changes wait for their resume"
        )
    console.print(
        f"Thresholds: {impact.group_changes_threshold:,} groups, "
        f"{impact.membership_changes_threshold:,} membership changes"
        + (
            " (Microsoft's)"
            if (impact.group_changes_threshold, impact.membership_changes_threshold)
            == (GROUP_CHANGES_THRESHOLD, MEMBERSHIP_CHANGES_THRESHOLD)
            else " (configured)"
        )
    )
    if impact.pause_warranted:
        console.print("[bold red]Pause warranted:[/bold red] " + escape("; ".join(impact.reasons)))
        if impact.spare:
            names = ", ".join(t.name for t in impact.spare)
            console.print(f"A pause can spare these critical groups (untouched): {escape(names)}")
    else:
        console.print("[green]Below the thresholds: no pause needed.[/green]")
    for name, problem in result.unreadable_rules:
        console.print(f"[yellow]not predicted[/yellow] {escape(name)}: {escape(problem)}")


@click.command("impact")
@option(
    "--config.file",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The exporter's configuration: its tenant's credential lists the rules and reads the "
    "objects; its store keeps them.",
)
@option("--tenant", "tenant", default=None, help="Which tenant (needed when there are several).")
@option(
    "--csv",
    "csv_file",
    metavar="FILE",
    default=None,
    help="A bulk-update file: an id column (id, objectId or userPrincipalName) and one column "
    "per property; an empty cell leaves it, <null> clears it, ; separates list items. - is stdin.",
)
@option(
    "--object-type",
    "object_type",
    type=click.Choice(["user", "device"]),
    default="user",
    show_default=True,
    help="What the rows of --csv are.",
)
@option(
    "--set",
    "assignments",
    multiple=True,
    # An environment variable of several values splits on whitespace, and values have spaces.
    envvar=None,
    show_envvar=False,
    metavar="'user.PROPERTY = VALUE'",
    help="Set a property (rule syntax for the value; repeatable), on the objects --matching "
    "selects.",
)
@option(
    "--matching",
    "matching",
    metavar="RULE",
    default=None,
    help="With --set: the objects to change, as a membership rule (default: every object).",
)
@option(
    "--no-refresh",
    "no_refresh",
    is_flag=True,
    help="Predict from the stored objects without asking Graph for changes.",
)
@option(
    "--rows",
    "rows",
    type=click.IntRange(min=0),
    default=25,
    show_default=True,
    help="Groups shown in the table (most changes first).",
)
@option("--json", "as_json", is_flag=True, help="Write the prediction as JSON on stdout.")
def impact_command(
    config_file: Path | None,
    tenant: str | None,
    csv_file: str | None,
    object_type: str,
    assignments: tuple[str, ...],
    matching: str | None,
    no_refresh: bool,
    rows: int,
    as_json: bool,
) -> None:
    """Predict which dynamic groups and units a planned attribute change re-evaluates, and the
    members each gains and loses; compare with Microsoft's pause thresholds.

    Exit 0 below the thresholds, 1 when a pause is warranted, 2 when the input is unusable.
    """
    try:
        request = _request(csv_file, object_type, assignments, matching)
        config, chosen = _tenant(config_file, tenant)
        result = asyncio.run(run_preflight(config, chosen, request, refresh=not no_refresh))
    except (ImpactInputError, ChangeSpecError) as exc:
        click.echo(f"impact: {exc}", err=True)
        raise SystemExit(EXIT_UNUSABLE_INPUT) from None
    if as_json:
        click.echo(orjson.dumps(preflight_json(result), option=orjson.OPT_INDENT_2).decode())
    else:
        write_human(result, Console(highlight=False, soft_wrap=True), rows)
    raise SystemExit(EXIT_PAUSE_WARRANTED if result.impact.pause_warranted else EXIT_BELOW)


def _request(
    csv_file: str | None, object_type: str, assignments: tuple[str, ...], matching: str | None
) -> ChangeRequest:
    if csv_file is not None and assignments:
        raise ImpactInputError("pass either --csv FILE or --set ..., not both")
    if matching is not None and not assignments:
        raise ImpactInputError("--matching selects the objects of --set; it needs --set")
    if csv_file is None and not assignments:
        raise ImpactInputError(
            "no change to predict: pass --csv FILE (a bulk-update file) or --set "
            "'user.PROPERTY = VALUE' [--matching RULE]"
        )
    if csv_file is None:
        for text in assignments:
            parse_assignment(text)  # a bad one fails before any Graph call
        return ChangeRequest(assignments=assignments, matching=matching)
    try:
        text = sys.stdin.read() if csv_file == "-" else Path(csv_file).read_text("utf-8-sig")
    except FileNotFoundError:
        raise ImpactInputError(f"{csv_file}: no such file") from None
    except UnicodeDecodeError:
        raise ImpactInputError(f"{csv_file}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise ImpactInputError(f"{csv_file}: cannot read it ({exc.strerror})") from None
    origin = "stdin" if csv_file == "-" else csv_file
    kind = ObjectType(object_type)
    csv_properties(text, kind, origin, key_column="userPrincipalName" if kind == "user" else None)
    return ChangeRequest(csv_text=text, csv_origin=origin, object_type=kind)


def _tenant(config_file: Path | None, name: str | None) -> tuple[Config, Tenant]:
    from exporter.ops.session import OpsError, choose_tenant

    if config_file is None:
        raise ImpactInputError(
            "no tenant: pass --config.file FILE [--tenant NAME] (the exporter's configuration)"
        )
    try:
        config = load_config(config_file)
        return config, choose_tenant(config, name)
    except ConfigError as exc:
        raise ImpactInputError("; ".join(exc.problems)) from None
    except OpsError as exc:
        raise ImpactInputError(str(exc)) from None
