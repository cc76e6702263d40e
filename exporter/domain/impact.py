"""Impact preflight: which dynamic groups and administrative units a planned attribute change
re-evaluates, and the members each would gain and lose, before anyone makes the change.

Microsoft's guidance ("Understand and manage dynamic group processing", seeds): pause when you
plan "changes to more than 500 groups or ... more than 20,000 membership changes". Nothing in
Entra tells those numbers in advance; this module computes them with the same rule evaluator
the simulator's processing uses (`exporter.domain.rules`), so against the simulator the
prediction is exact.

How it stays fast (30,000 changed users against 15,000 rules in seconds):

* `RuleIndex` maps (object type, property) to the rules that read it; a changed object is
  evaluated only against the rules that read a property whose value actually changes;
* a rule's answer depends only on the properties it reads, so the changed objects are grouped
  by their (before, after) values of those properties, and each rule is evaluated once per
  distinct pair rather than once per object (a bulk change sets the same few values).

Paused groups are predicted too but kept out of the totals: Entra skips them now and makes
their changes in the full re-evaluation that follows a resume.

memberOf rules read no attribute, but a change that moves users into a group moves them into
every group whose rule reads `memberOf` that group: the cascade is predicted
(`_member_of_cascade`, within Microsoft's documented limits), counted in the totals, and each
such target says which source groups it changes through (`TargetImpact.via`).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from exporter.domain.rules import (
    MEMBER_OF_PROPERTY,
    Comparison,
    ListValue,
    NullValue,
    ObjectType,
    Property,
    PropertyKind,
    Rule,
    RuleSyntaxError,
    Value,
    canonical_property_name,
    member_of_sources,
    necessary_condition,
    parse,
    parse_expression,
    property_kind,
)
from exporter.domain.settings import Thresholds

GROUP_CHANGES_THRESHOLD: Final = Thresholds().groups_changed_per_hour
"""Microsoft: pause when you plan "changes to more than 500 groups" (the exporter's default
`thresholds.groups_changed_per_hour`, one definition)."""
MEMBERSHIP_CHANGES_THRESHOLD: Final = Thresholds().membership_changes_per_hour
"""Microsoft: ... "or make more than 20,000 membership changes"."""

ID_COLUMNS: Final = ("id", "objectid", "object id")
"""Headers that name the object id column of a bulk-update CSV (case-insensitive)."""
LIST_SEPARATOR: Final = ";"
"""Items of a multi-valued property in one CSV cell (`smtp:a@x;smtp:b@x`)."""
NULL_CELL: Final = "<null>"
"""A CSV cell that clears the property (an empty cell leaves it unchanged)."""


class ChangeSpecError(ValueError):
    """A change specification that cannot be used; the message is one line naming the problem
    and the fix."""


@dataclass(frozen=True, slots=True)
class Target:
    """A dynamic group or administrative unit whose rule the prediction evaluates."""

    id: str
    name: str
    kind: str
    """`group` or `administrativeUnit`."""
    rule: Rule
    paused: bool = False
    critical: bool = False


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """New values for some properties of one object (property name -> value)."""

    id: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """A planned change: new property values for objects of one type."""

    object_type: ObjectType
    changes: tuple[ObjectChange, ...]
    description: str

    @property
    def properties(self) -> frozenset[str]:
        return frozenset(name for change in self.changes for name in change.values)


class RuleIndex:
    """The targets, and for each (object type, property) the targets whose rule reads it."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = tuple(targets)
        self.conditions = tuple(necessary_condition(t.rule.ast) for t in self.targets)
        """Per target: a property and the values it must have for the rule to hold, if any."""
        self._readers: dict[tuple[str, str], list[int]] = defaultdict(list)
        for position, target in enumerate(self.targets):
            for name in target.rule.properties:
                self._readers[(str(target.rule.object_type), name)].append(position)

    def readers(self, object_type: str, properties: Iterable[str]) -> list[int]:
        """Positions of the targets whose rule reads any of these properties, in order."""
        found: set[int] = set()
        for name in properties:
            found.update(self._readers.get((object_type, name), ()))
        return sorted(found)

    def properties(self, object_type: str) -> frozenset[str]:
        """Every property of this object type that some rule reads: what to `$select`."""
        return frozenset(name for (kind, name) in self._readers if kind == object_type)


@dataclass(frozen=True, slots=True)
class TargetImpact:
    target: Target
    added: tuple[str, ...]
    removed: tuple[str, ...]
    via: tuple[Target, ...] = ()
    """For a memberOf rule: the source groups whose membership change passes on to it (its rule
    reads none of the changed properties); empty for a rule that reads them."""

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.removed)


@dataclass(frozen=True, slots=True)
class Totals:
    objects_changed: int
    """Objects whose values really change (setting a value an object already has is nothing)."""
    groups_reevaluated: int
    """Active targets whose rule reads a changed property: Entra evaluates each of them."""
    groups_changed: int
    """Active targets whose membership changes."""
    membership_changes: int
    added: int
    removed: int


@dataclass(frozen=True, slots=True)
class Impact:
    change: ChangeSet
    targets: tuple[TargetImpact, ...]
    """Every target whose rule reads a changed property, paused ones included, most changes
    first."""
    totals: Totals
    """Active (not paused) targets only: the work processing would do now."""
    deferred: Totals
    """Paused targets: changes their full re-evaluation makes on resume."""
    pause_warranted: bool
    reasons: tuple[str, ...]
    spare: tuple[Target, ...]
    """Critical targets the change does not touch: a pause can leave them running."""
    group_changes_threshold: int = GROUP_CHANGES_THRESHOLD
    membership_changes_threshold: int = MEMBERSHIP_CHANGES_THRESHOLD
    unchanged_objects: int = 0
    """Objects of the change set that already have the new values."""
    extra: Mapping[str, Any] = field(default_factory=dict)


def predict(
    index: RuleIndex,
    objects: Mapping[str, Mapping[str, Any]],
    change: ChangeSet,
    now: float,
    *,
    group_changes_threshold: int = GROUP_CHANGES_THRESHOLD,
    membership_changes_threshold: int = MEMBERSHIP_CHANGES_THRESHOLD,
    current_members: Mapping[str, frozenset[str]] | None = None,
) -> Impact:
    """The impact of `change` on the targets of `index`, over `objects` (id -> properties, at
    least the ones the rules read; ids lower-case). ChangeSpecError for ids not in `objects`.
    `current_members`: the current members (ids, lower case) of memberOf targets
    (`member_of_targets_moved_by` says which), so that the cascade knows who is in already."""
    object_type = str(change.object_type)
    missing = [c.id for c in change.changes if c.id.lower() not in objects]
    if missing:
        raise ChangeSpecError(
            f"{len(missing)} object id(s) of the change are not {object_type}s of the tenant "
            f"(first: {missing[0]}); check the ids, or refresh the stored objects"
        )
    # Per changed object: the properties whose value really changes, and the object after.
    befores: list[Mapping[str, Any]] = []
    afters: list[dict[str, Any]] = []
    changed_names: list[frozenset[str]] = []
    ids: list[str] = []
    unchanged = 0
    for item in change.changes:
        before = objects[item.id.lower()]
        differing = frozenset(
            name for name, value in item.values.items() if _key(before.get(name)) != _key(value)
        )
        if not differing:
            unchanged += 1
            continue
        after = dict(before)
        after.update(item.values)
        befores.append(before)
        afters.append(after)
        changed_names.append(differing)
        ids.append(item.id.lower())
    touched_names = frozenset().union(*changed_names) if changed_names else frozenset()
    readers = index.readers(object_type, touched_names)

    # Group the targets by the properties their rules read (their "shape"); within a shape,
    # group the objects by (before, after) values of those properties.
    by_shape: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for position in readers:
        by_shape[tuple(sorted(index.targets[position].rule.properties))].append(position)
    results: list[TargetImpact] = []
    for names, positions in by_shape.items():
        shape = frozenset(names)
        pairs: dict[tuple[Any, Any], tuple[Mapping[str, Any], Mapping[str, Any], list[str]]] = {}
        for before, after, differing, object_id in zip(
            befores, afters, changed_names, ids, strict=True
        ):
            if not differing & shape:
                continue
            key = (
                tuple(_key(before.get(n)) for n in names),
                tuple(_key(after.get(n)) for n in names),
            )
            entry = pairs.get(key)
            if entry is None:
                pairs[key] = (before, after, [object_id])
            else:
                entry[2].append(object_id)
        entries = list(pairs.values())
        keys = list(pairs)
        everything = range(len(entries))
        by_value: dict[str, tuple[dict[str, set[int]], list[int]]] = {}
        for position in positions:
            target = index.targets[position]
            rule = target.rule
            added: list[str] = []
            removed: list[str] = []
            candidates: Iterable[int] = everything
            condition = index.conditions[position]
            if condition is not None:
                # A rule that needs `department -eq "Sales"` can change its answer only for
                # objects that had or get one of its values (thousands of cost-centre rules
                # each look at their own few objects, not at all of them).
                name, values = condition
                if name not in by_value:
                    by_value[name] = _value_index(keys, names.index(name))
                found, unsure = by_value[name]
                picked = set(unsure)
                for value in values:
                    picked.update(found.get(value, ()))
                candidates = sorted(picked)
            for number in candidates:
                old, new, members = entries[number]
                was = rule.matches(old, now)
                will = rule.matches(new, now)
                if was != will:
                    (added if will else removed).extend(members)
            results.append(TargetImpact(target, tuple(sorted(added)), tuple(sorted(removed))))
    results.extend(
        _member_of_cascade(
            index, results, object_type, objects, frozenset(ids), now, current_members or {}
        )
    )
    results.sort(key=lambda r: (-r.changes, r.target.name.casefold(), r.target.id))
    active = [r for r in results if not r.target.paused]
    paused = [r for r in results if r.target.paused]
    totals = _totals(active, len(ids))
    reasons: list[str] = []
    if totals.groups_changed > group_changes_threshold:
        reasons.append(
            f"{totals.groups_changed:,} groups change membership (pause above "
            f"{group_changes_threshold:,})"
        )
    if totals.membership_changes > membership_changes_threshold:
        reasons.append(
            f"{totals.membership_changes:,} membership changes (pause above "
            f"{membership_changes_threshold:,})"
        )
    touched = {r.target.id for r in results}
    spare = tuple(
        sorted(
            (t for t in index.targets if t.critical and not t.paused and t.id not in touched),
            key=lambda t: (t.name.casefold(), t.id),
        )
    )
    return Impact(
        change=change,
        targets=tuple(results),
        totals=totals,
        deferred=_totals(paused, len(ids)),
        pause_warranted=bool(reasons),
        reasons=tuple(reasons),
        spare=spare,
        group_changes_threshold=group_changes_threshold,
        membership_changes_threshold=membership_changes_threshold,
        unchanged_objects=unchanged,
    )


def _member_of_cascade(
    index: RuleIndex,
    direct: Sequence[TargetImpact],
    object_type: str,
    objects: Mapping[str, Mapping[str, Any]],
    changed: frozenset[str],
    now: float,
    members: Mapping[str, frozenset[str]],
) -> list[TargetImpact]:
    """Groups whose rule reads `memberOf` a group the change moves members into or out of.

    Microsoft's preview limitations ("Configure dynamic membership groups with the memberOf
    attribute") decide how far it goes, and the simulator's processing does the same:
    * only direct members of a source group count, and a memberOf group cannot define another
      memberOf group's membership: a memberOf group's own changes go no further, so the
      cascade is one step (its fixed point) and no cycle can form;
    * its members "remain members of the memberOf dynamic group until the rule is modified"
      when a source loses them: the cascade only adds;
    * a paused source changes nothing now (its changes wait for its resume), and neither does
      a paused memberOf group (deferred, as any paused target).
    Who is in a memberOf group already (through an assigned source, or kept from a source it
    left) is known from `members` when given (read from Graph by the command); without them a
    user the change moves into a source counts as added unless a dynamic source already
    selects them (an assigned source's members are not known: over-counted, never missed)."""
    moved = {
        r.target.id.lower(): r
        for r in direct
        if r.changes and not r.target.paused and MEMBER_OF_PROPERTY not in r.target.rule.properties
    }
    readers = index.readers(object_type, (MEMBER_OF_PROPERTY,))
    if not moved or not readers:
        return []
    targets_by_id = {t.id.lower(): t for t in index.targets}
    results: list[TargetImpact] = []
    for position in readers:
        target = index.targets[position]
        sources = member_of_sources(target.rule)
        moving = [moved[s] for s in sorted(sources) if s in moved]
        if not moving:
            continue
        candidates = {m for r in moving for m in (*r.added, *r.removed)} & changed
        added: list[str] = []
        current = members.get(target.id.lower())
        for member in sorted(candidates):
            if current is not None:
                # Every source is read `-any`: a member entering one is in, unless in already.
                if member not in current and any(member in r.added for r in moving):
                    added.append(member)
                continue
            obj = objects[member]
            before: list[str] = []
            after: list[str] = []
            for source in sorted(sources):
                impact = moved.get(source)
                if impact is not None and member in impact.added:
                    after.append(source)
                elif impact is not None and member in impact.removed:
                    before.append(source)
                else:
                    known = targets_by_id.get(source)
                    if known is not None and known.rule.matches(obj, now):
                        before.append(source)
                        after.append(source)
            if target.rule.matches({MEMBER_OF_PROPERTY: after}, now) and not target.rule.matches(
                {MEMBER_OF_PROPERTY: before}, now
            ):
                added.append(member)
        results.append(TargetImpact(target, tuple(added), (), via=tuple(r.target for r in moving)))
    return results


def member_of_targets_moved_by(index: RuleIndex, change: ChangeSet) -> list[Target]:
    """The memberOf targets a change can reach: those naming a group whose rule reads a
    property the change sets (what the command reads the members of, for the cascade)."""
    object_type = str(change.object_type)
    touched = {index.targets[p].id.lower() for p in index.readers(object_type, change.properties)}
    return [
        index.targets[p]
        for p in index.readers(object_type, (MEMBER_OF_PROPERTY,))
        if member_of_sources(index.targets[p].rule) & touched
    ]


def _value_index(
    keys: Sequence[tuple[tuple[Any, ...], tuple[Any, ...]]], position: int
) -> tuple[dict[str, set[int]], list[int]]:
    """For the pairs' (before, after) keys: text value of one property -> pairs that have it
    before or after; and the pairs whose value there is neither text nor null (a list: any
    item may match, so they are always evaluated)."""
    found: dict[str, set[int]] = defaultdict(set)
    unsure: list[int] = []
    for number, (before, after) in enumerate(keys):
        for value in (before[position], after[position]):
            if isinstance(value, str):
                found[value].add(number)
            elif value is not None:
                unsure.append(number)
    return found, unsure


def _totals(impacts: Sequence[TargetImpact], objects_changed: int) -> Totals:
    added = sum(len(r.added) for r in impacts)
    removed = sum(len(r.removed) for r in impacts)
    return Totals(
        objects_changed=objects_changed,
        groups_reevaluated=len(impacts),
        groups_changed=sum(1 for r in impacts if r.changes),
        membership_changes=added + removed,
        added=added,
        removed=removed,
    )


def _key(value: Any) -> Any:
    """A hashable form of a property value, equal for values the evaluator cannot tell apart
    (null and "" alike; strings ignore case, as every comparison does)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list | tuple):
        return tuple(_key(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _key(v)) for k, v in value.items()))
    return value


# ---------------------------------------------------------------------------------------------
# Change specifications


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    rows: list[list[str]]
    header: list[str]
    id_column: int | None
    key_column: int | None
    properties: dict[int, tuple[str, PropertyKind]]


def _csv_layout(
    text: str, object_type: ObjectType, origin: str, key_column: str | None
) -> _CsvLayout:
    rows = [
        row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if any(c.strip() for c in row)
    ]
    if not rows:
        raise ChangeSpecError(f"{origin}: empty; expected a header row (id,<property>,...)")
    header = [cell.strip() for cell in rows[0]]
    lowered = [h.lower() for h in header]
    id_column = next((i for i, h in enumerate(lowered) if h in ID_COLUMNS), None)
    key = None
    if key_column is not None:
        key = next((i for i, h in enumerate(lowered) if h == key_column.lower()), None)
    if id_column is None and key is None:
        accepted = ", ".join(["id", "objectId", *([key_column] if key_column else [])])
        raise ChangeSpecError(f"{origin}: no id column; name one of the columns {accepted}")
    properties: dict[int, tuple[str, PropertyKind]] = {}
    for position, name in enumerate(header):
        if position in (id_column, key):
            continue
        canonical = _property_name(object_type, name, f"{origin}: column {name!r}")
        properties[position] = (canonical, property_kind(object_type, canonical))
    if not properties:
        raise ChangeSpecError(f"{origin}: no property columns; add one column per property")
    return _CsvLayout(rows, header, id_column, key, properties)


def csv_properties(
    text: str, object_type: ObjectType, origin: str, *, key_column: str | None = None
) -> frozenset[str]:
    """The properties a bulk-update file sets (its header), for reading their current values."""
    layout = _csv_layout(text, object_type, origin, key_column)
    return frozenset(name for name, _ in layout.properties.values())


def changes_from_csv(
    text: str,
    object_type: ObjectType,
    origin: str,
    *,
    key_column: str | None = None,
    keys: Mapping[str, str] | None = None,
) -> ChangeSet:
    """A bulk-update file: a header row with an id column (`id`, `objectId`, or `key_column`
    such as `userPrincipalName`, whose lower-cased values `keys` maps to ids) and one column
    per property to set. An empty cell leaves the property as it is, `<null>` clears it; items
    of multi-valued properties are separated by `;`."""
    layout = _csv_layout(text, object_type, origin, key_column)
    header = layout.header
    lookup_column = layout.id_column if layout.id_column is not None else layout.key_column
    assert lookup_column is not None
    changes: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(layout.rows[1:], start=2):
        if len(row) > len(header):
            raise ChangeSpecError(
                f"{origin}: line {number} has {len(row)} cells, the header {len(header)}; "
                "quote cells that contain commas"
            )
        raw_key = row[lookup_column].strip() if lookup_column < len(row) else ""
        if not raw_key:
            raise ChangeSpecError(f"{origin}: line {number} has no object id")
        if layout.id_column is None:
            object_id = (keys or {}).get(raw_key.lower())
            if object_id is None:
                raise ChangeSpecError(
                    f"{origin}: line {number}: no {object_type} {raw_key!r} in the tenant; check "
                    "the name, or refresh the stored objects"
                )
        else:
            object_id = raw_key.lower()
        values = changes.setdefault(object_id, {})
        for position, (name, kind) in layout.properties.items():
            cell = row[position] if position < len(row) else ""
            if cell == "":
                continue
            values[name] = _cell_value(cell, kind)
    change_list = tuple(ObjectChange(i, v) for i, v in changes.items() if v)
    if not change_list:
        raise ChangeSpecError(f"{origin}: no values to set (every cell is empty)")
    return ChangeSet(object_type, change_list, f"{origin}: {len(change_list):,} {object_type}(s)")


def _cell_value(cell: str, kind: PropertyKind) -> Any:
    if cell.strip() == NULL_CELL:
        return None
    if kind is PropertyKind.BOOLEAN and cell.strip().lower() in ("true", "false"):
        return cell.strip().lower() == "true"
    if kind is PropertyKind.STRING_COLLECTION:
        return [item.strip() for item in cell.split(LIST_SEPARATOR) if item.strip()]
    return cell


def _property_name(object_type: ObjectType, name: str, where: str) -> str:
    canonical = canonical_property_name(object_type, name)
    kind = property_kind(object_type, canonical)
    if kind is PropertyKind.UNKNOWN:
        raise ChangeSpecError(
            f"{where}: not a {object_type} property a rule can read; use a name from Microsoft's "
            "list (department, extensionAttribute3, extension_<appId>_<name>, ...)"
        )
    if kind in (PropertyKind.PLAN_COLLECTION, PropertyKind.GROUP_COLLECTION, PropertyKind.DATE):
        raise ChangeSpecError(
            f"{where}: {canonical} cannot be set by an attribute change here; plan changes of "
            "string, boolean and string-list properties"
        )
    return canonical


@dataclass(frozen=True, slots=True)
class Assignment:
    """`user.extensionAttribute3 = "wave-5"`: one property and its new value."""

    object_type: ObjectType
    name: str
    value: Any
    text: str = ""
    """As given, for people."""


def parse_assignment(text: str) -> Assignment:
    """`PROPERTY = VALUE` in the rule syntax: `user.department = "Sales"`, `device.isRooted =
    false`, `user.otherMails = ["a@x", "b@x"]`, `user.extensionAttribute5 = null`."""
    head, sep, tail = text.partition("=")
    if not sep or not head.strip() or not tail.strip():
        raise ChangeSpecError(
            f"--set {text!r}: expected PROPERTY = VALUE, e.g. --set 'user.extensionAttribute3 = "
            '"wave-5"\''
        )
    tail = tail.strip()
    # The rule grammar reads the property and the value: one definition of the syntax.
    operator = "-in" if tail.startswith("[") else "-eq"
    try:
        node = parse_expression(f"{head.strip()} {operator} {tail}")
    except RuleSyntaxError as exc:
        raise ChangeSpecError(f"--set {text!r}: {exc.args[0].splitlines()[0]}") from None
    if not isinstance(node, Comparison) or not isinstance(node.subject, Property):
        raise ChangeSpecError(f"--set {text!r}: expected one property and one value")
    subject = node.subject
    name = _property_name(subject.object_type, subject.name, f"--set {text!r}")
    return Assignment(subject.object_type, name, _literal(node.value), f"{head.strip()} = {tail}")


def _literal(value: Value) -> Any:
    if isinstance(value, NullValue):
        return None
    if isinstance(value, ListValue):
        return [_literal(item) for item in value.items]
    raw = getattr(value, "value", None)
    if isinstance(raw, bool | str):
        return raw
    return str(raw)


def changes_from_assignments(
    assignments: Sequence[Assignment],
    matching: str | None,
    objects: Mapping[str, Mapping[str, Any]],
    now: float,
) -> ChangeSet:
    """ "set PROPERTY = VALUE on objects matching RULE": the assignments applied to every object
    the rule selects (every object of the type without a rule)."""
    if not assignments:
        raise ChangeSpecError("nothing to set: pass --set 'user.PROPERTY = VALUE'")
    types = {a.object_type for a in assignments}
    if len(types) != 1:
        raise ChangeSpecError("--set: every assignment must be for users, or every one for devices")
    object_type = types.pop()
    selector: Rule | None = None
    if matching is not None:
        try:
            selector = parse(matching)
        except RuleSyntaxError as exc:
            raise ChangeSpecError(f"--matching: {exc.args[0].splitlines()[0]}") from None
        if selector.object_type != object_type:
            raise ChangeSpecError(
                f"--matching selects {selector.object_type}s but --set changes {object_type}s; "
                "use one object type"
            )
    values = {a.name: a.value for a in assignments}
    changes = tuple(
        ObjectChange(object_id, values)
        for object_id, obj in objects.items()
        if selector is None or selector.matches(obj, now)
    )
    what = ", ".join(a.text or f"{object_type}.{a.name}" for a in assignments)
    where = f" on {object_type}s matching {matching}" if matching else f" on every {object_type}"
    return ChangeSet(object_type, changes, f"set {what}{where}: {len(changes):,} {object_type}(s)")
