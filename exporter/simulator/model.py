"""The directory of the simulated tenant: users and devices with attributes, and the groups and
administrative units that hold them (dynamic ones with real rules).

Objects live in columns (one list per attribute, values shared), so that 200,000 users cost a
few tens of MiB. Rules are `exporter.domain.rules.Rule`s, indexed by the properties they read:
a change to an object's department re-evaluates only the rules that read `department`.

Membership is computed by *projection*: objects that agree on every property a rule reads get
the same answer, so a rule is evaluated once per distinct projection rather than once per
object. Rules generated from the same templates share projections, which is what makes a
tenant of 15,000 groups and 200,000 users buildable in seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import orjson

from exporter.domain import rules as rule_ast
from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.rules import (
    Operator,
    Rule,
    member_of_sources,
    necessary_condition,
    parse,
    walk,
)
from exporter.simulator.render import ContainerRef, MemberRef, enc, enc_quoted_json

USER = "user"
DEVICE = "device"
INEFFICIENT_OPERATORS = frozenset(
    {Operator.MATCH, Operator.NOT_MATCH, Operator.CONTAINS, Operator.NOT_CONTAINS}
)


class ObjectView(Mapping[str, Any]):
    """One object as the rule evaluator sees it: property name -> value, read from columns."""

    __slots__ = ("_index", "_table")

    def __init__(self, table: ObjectTable, index: int) -> None:
        self._table = table
        self._index = index

    def __getitem__(self, key: str) -> Any:
        column = self._table.columns.get(key)
        if column is None:
            raise KeyError(key)
        return column[self._index]

    def get(self, key: str, default: Any = None) -> Any:
        column = self._table.columns.get(key)
        return default if column is None else column[self._index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.columns)

    def __len__(self) -> int:
        return len(self._table.columns)


class MemberRefs(Sequence[MemberRef]):
    """The audit log's view of each object, encoded on demand (cheap) rather than held for
    every object (200,000 users would cost ~60 MiB)."""

    def __init__(self, table: ObjectTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table)

    def get(self, index: int) -> MemberRef:
        return self._table.ref(index)

    @overload
    def __getitem__(self, index: int) -> MemberRef: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[MemberRef]: ...
    def __getitem__(self, index: int | slice) -> MemberRef | Sequence[MemberRef]:
        if isinstance(index, slice):
            return [self._table.ref(i) for i in range(len(self._table))[index]]
        return self._table.ref(index)


class ObjectTable:
    """Users or devices. Index i is the object; `ids[i]` its GUID; `columns[name][i]` a value."""

    def __init__(self, object_type: str, attributes: Iterable[str]) -> None:
        self.object_type = object_type
        self.ids: list[str] = []
        self.columns: dict[str, list[Any]] = {name: [] for name in attributes}
        self.refs = MemberRefs(self)
        self.index_of: dict[str, int] = {}
        # attribute -> the values generated objects draw from (scales with the tenant)
        self.value_domains: dict[str, Sequence[Any]] = {}
        # Change numbers for delta queries (objects_api): `version` counts the table's changes,
        # `versions[i]` is the number of object i's last one (0: as generated).
        self.version = 0
        self.versions: list[int] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, object_id: str, attributes: Mapping[str, Any]) -> int:
        index = len(self.ids)
        self.ids.append(object_id)
        self.index_of[object_id] = index
        self.version += 1
        self.versions.append(self.version)
        for name, column in self.columns.items():
            column.append(attributes.get(name))
        unknown = set(attributes) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown {self.object_type} attribute(s): {sorted(unknown)}")
        return index

    def bulk_load(self, ids: list[str], columns: Mapping[str, list[Any]]) -> None:
        """Append many objects at once (the generator's fast path)."""
        count = len(ids)
        if any(len(values) != count for values in columns.values()):
            raise ValueError("every column must have one value per object")
        start = len(self.ids)
        self.ids.extend(ids)
        self.versions.extend([0] * count)
        for offset, object_id in enumerate(ids):
            self.index_of[object_id] = start + offset
        for name, column in self.columns.items():
            column.extend(columns.get(name) or [None] * count)

    def ref(self, index: int) -> MemberRef:
        object_id = b'"' + self.ids[index].encode() + b'"'
        if self.object_type == USER:
            upn = self.columns["userPrincipalName"][index]
            return MemberRef(object_id, b'"User"', b"null", orjson.dumps(upn))
        name = self.columns["displayName"][index]
        return MemberRef(object_id, b'"Device"', orjson.dumps(name), b"null")

    def view(self, index: int) -> ObjectView:
        return ObjectView(self, index)

    def get(self, index: int, name: str) -> Any:
        return self.columns[name][index]

    def set(self, index: int, name: str, value: Any) -> Any:
        """Set one attribute; returns the old value."""
        column = self.columns.get(name)
        if column is None:
            raise ValueError(f"unknown {self.object_type} attribute {name!r}")
        old = column[index]
        column[index] = value
        if old != value:
            self.version += 1
            self.versions[index] = self.version
        return old

    def display(self, index: int) -> str:
        key = "userPrincipalName" if self.object_type == USER else "displayName"
        return str(self.columns[key][index])


@dataclass(eq=False)
class Container:
    """A group or an administrative unit. Dynamic ones have a rule and a processing state."""

    index: int
    id: str
    kind: DirectoryObjectKind
    display_name: str
    created: float
    description: str | None = None
    rule: Rule | None = None
    state: ProcessingState = ProcessingState.ON
    critical: bool = False
    members: set[int] = field(default_factory=set)
    member_type: str = USER
    # processing status (beta membershipRuleProcessingStatus)
    evaluated: bool = False
    last_membership_updated: float | None = None
    error_message: str | None = None
    dormant: bool = False
    """The pre-written history gives it no dynamic membership change (a group nothing touches,
    for the tenant-hygiene report's inactive groups)."""
    ref: ContainerRef = field(init=False)
    cost_weight: float = field(init=False, default=1.0)
    # (property, lower-cased values): the rule can only hold if the property has one of them
    condition: tuple[str, frozenset[str]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.ref = ContainerRef(
            id=enc(self.id),
            id_quoted=enc_quoted_json(self.id),
            display_name=enc(self.display_name),
            display_name_quoted=enc_quoted_json(self.display_name),
            administrative_unit=self.kind is DirectoryObjectKind.ADMINISTRATIVE_UNIT,
        )
        if self.rule is not None:
            self._adopt_rule(self.rule)

    @property
    def dynamic(self) -> bool:
        return self.rule is not None

    @property
    def paused(self) -> bool:
        return self.state is ProcessingState.PAUSED

    def _adopt_rule(self, rule: Rule) -> None:
        self.rule = rule
        self.member_type = str(rule.object_type)
        inefficient = sum(
            1
            for node in walk(rule.ast)
            if isinstance(node, rule_ast.Comparison) and node.operator in INEFFICIENT_OPERATORS
        )
        # Microsoft names -match, -contains and memberOf as what slows processing down; the
        # weight scales the evaluation cost of this rule in the processing queue.
        self.cost_weight = 1.0 + 0.5 * inefficient + (2.0 if "memberOf" in rule.properties else 0.0)
        self.condition = necessary_condition(rule.ast)

    def set_rule(self, rule: Rule) -> None:
        self._adopt_rule(rule)

    def rename(self, display_name: str) -> None:
        self.display_name = display_name
        self.__post_init__()


class Directory:
    """Objects, containers, and the rule index."""

    def __init__(self, users: ObjectTable, devices: ObjectTable) -> None:
        self.tables = {USER: users, DEVICE: devices}
        self.containers: list[Container] = []
        self.by_id: dict[str, Container] = {}
        self._index: dict[tuple[str, str], set[int]] = defaultdict(set)
        self._member_of_sources: frozenset[str] | None = None

    def member_of_sources(self) -> frozenset[str]:
        """Ids of the groups some memberOf rule names (whose membership changes it reads)."""
        if self._member_of_sources is None:
            self._member_of_sources = frozenset(
                source
                for container in self.containers
                if container.rule is not None
                for source in member_of_sources(container.rule)
            )
        return self._member_of_sources

    @property
    def users(self) -> ObjectTable:
        return self.tables[USER]

    @property
    def devices(self) -> ObjectTable:
        return self.tables[DEVICE]

    def add_container(self, container: Container) -> Container:
        if container.index != len(self.containers):
            raise ValueError("container indexes are assigned in order")
        if container.id in self.by_id:
            raise ValueError(f"duplicate object id {container.id}")
        self.containers.append(container)
        self.by_id[container.id] = container
        self._index_rule(container)
        return container

    def _index_rule(self, container: Container) -> None:
        self._member_of_sources = None
        if container.rule is None:
            return
        for name in container.rule.properties:
            self._index[(container.member_type, name)].add(container.index)

    def _unindex_rule(self, container: Container) -> None:
        if container.rule is None:
            return
        for name in container.rule.properties:
            self._index[(container.member_type, name)].discard(container.index)

    def replace_rule(self, container: Container, rule: Rule) -> None:
        self._unindex_rule(container)
        container.set_rule(rule)
        self._index_rule(container)

    def affected(self, object_type: str, properties: Iterable[str]) -> set[int]:
        """Dynamic containers whose rule reads any of these properties of this object type."""
        result: set[int] = set()
        for name in properties:
            readers = self._index.get((object_type, name))
            if readers:
                result |= readers
        return result

    def readers_of(self, object_type: str, name: str) -> set[int]:
        return self._index.get((object_type, name), set())

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate_members(self, containers: list[Container], now: float) -> dict[int, set[int]]:
        """The members each rule selects right now, by projection (see module docstring)."""
        result: dict[int, set[int]] = {}
        by_shape: dict[tuple[str, tuple[str, ...]], list[Container]] = defaultdict(list)
        for container in containers:
            assert container.rule is not None
            shape = (container.member_type, tuple(sorted(container.rule.properties)))
            by_shape[shape].append(container)
        for (object_type, names), group in by_shape.items():
            table = self.tables[object_type]
            projections = self._projections(table, names)
            # Each projection is represented by its first object: same values on every
            # property the rule reads, so the same answer.
            representatives = [(table.view(ix[0]), ix) for ix in projections.values()]
            # For rules with a necessary condition (department -eq "Sales"), only projections
            # with that value can match: an index per plain-string property finds them.
            by_value: dict[str, dict[str, list[int]]] = {}
            for position, name in enumerate(names):
                value_index: dict[str, list[int]] = defaultdict(list)
                plain = True
                for number, key in enumerate(projections):
                    value = key[position]
                    if isinstance(value, str):
                        value_index[value.lower()].append(number)
                    elif value is not None:
                        plain = False
                        break
                if plain:
                    by_value[name] = value_index
            everything = range(len(representatives))
            for container in group:
                rule = container.rule
                assert rule is not None
                candidates: Iterable[int] = everything
                condition = container.condition
                if condition is not None and condition[0] in by_value:
                    found = by_value[condition[0]]
                    candidates = sorted({n for v in condition[1] for n in found.get(v, ())})
                members: set[int] = set()
                for number in candidates:
                    view, indexes = representatives[number]
                    if rule.matches(view, now):
                        members.update(indexes)
                result[container.index] = members
        return result

    @staticmethod
    def _projections(
        table: ObjectTable, names: tuple[str, ...]
    ) -> dict[tuple[Any, ...], list[int]]:
        columns = [table.columns.get(name) or [None] * len(table) for name in names]
        projections: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        if len(columns) == 1:
            (column,) = columns
            for index, value in enumerate(column):
                projections[(_hashable(value),)].append(index)
        else:
            for index, key in enumerate(zip(*columns, strict=True)):
                projections[tuple(_hashable(v) for v in key)].append(index)
        return projections

    def matches(self, container: Container, index: int, now: float) -> bool:
        assert container.rule is not None
        return container.rule.matches(self.tables[container.member_type].view(index), now)


def condition_allows(condition: tuple[str, frozenset[str]] | None, view: Mapping[str, Any]) -> bool:
    """False only when the object certainly fails the rule (see `necessary_condition`)."""
    if condition is None:
        return True
    value = view.get(condition[0])
    if isinstance(value, str):
        return value.lower() in condition[1]
    # null cannot satisfy -eq/-in with a string; other types (lists): evaluate to be sure
    return value is not None


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def parse_rule(text: str) -> Rule:
    return parse(text)
