"""Which objects a command acts on: ids from flags and files, validated against the tenant.

An id must be a GUID, must exist, and must be a dynamic group or a dynamic administrative unit;
every id that is not is named, one line each, and the command does nothing (a typo in an
exclusion list must never let a critical group be paused). The inventory is one listing of the
tenant's dynamic groups and units (what Microsoft's scripts list too), so an id is looked up
once, whatever its kind; an id the listing does not show (the listing is an eventually
consistent query) is read directly before it is called unknown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.records import DirectoryObject
from exporter.graph.client import GraphClient
from exporter.graph.errors import GraphAuthError, GraphNotFoundError
from exporter.store.ledger import ObjectRef


class TargetError(Exception):
    """Ids that cannot be used; `problems` has one line per id."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def normalise_id(value: str) -> str | None:
    """A GUID in Graph's canonical form (lower case, hyphenated), or None."""
    text = value.strip()
    if len(text) != 36:
        return None
    try:
        return str(UUID(text))
    except ValueError:
        return None


def read_ids_file(path: Path) -> list[tuple[str, str]]:
    """(id text, where) pairs from a file: one id per line; blank lines and `#` comments are
    ignored, and so is anything after the first comma or whitespace (an export with names)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TargetError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    items: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        first = content.replace(",", " ").replace(";", " ").split()[0].strip("\"'")
        items.append((first, f"{path}:{number}"))
    return items


def parse_ids(values: Iterable[str], files: Iterable[Path], *, what: str) -> tuple[str, ...]:
    """Ids from repeated flags (each may hold several, comma-separated) and files, in order,
    without duplicates. Raises TargetError naming every id that is not a GUID."""
    raw: list[tuple[str, str]] = []
    for value in values:
        raw += [(part, what) for part in value.replace(",", " ").split()]
    for path in files:
        raw += read_ids_file(path)
    problems: list[str] = []
    ids: list[str] = []
    seen: set[str] = set()
    for text, where in raw:
        normal = normalise_id(text)
        if normal is None:
            problems.append(
                f"{where}: {_shown(text)} is not an object id (a GUID such as "
                "3f2504e0-4f89-41d3-9a0c-0305e82c3301)"
            )
        elif normal not in seen:
            seen.add(normal)
            ids.append(normal)
    if problems:
        raise TargetError(problems)
    return tuple(ids)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


@dataclass(frozen=True, slots=True)
class Inventory:
    """The tenant's dynamic groups and units, as one listing saw them."""

    objects: Mapping[str, DirectoryObject]
    unlisted_kinds: Mapping[DirectoryObjectKind, str] = field(default_factory=dict)
    """Kinds that could not be listed, with the reason (a missing read permission)."""

    def ref(self, object_id: str) -> ObjectRef:
        obj = self.objects[object_id]
        return ObjectRef(obj.id, obj.kind, obj.name)

    def with_state(self, state: ProcessingState) -> list[DirectoryObject]:
        return [o for o in self.objects.values() if o.state is state]


async def load_inventory(graph: GraphClient) -> Inventory:
    """Both listings. A kind the app may not read is left out and named (the command reports
    it); any other failure raises."""
    groups, units = await asyncio.gather(
        graph.list_dynamic_groups(),
        graph.list_dynamic_administrative_units(),
        return_exceptions=True,
    )
    objects: dict[str, DirectoryObject] = {}
    unlisted: dict[DirectoryObjectKind, str] = {}
    for kind, result in (
        (DirectoryObjectKind.GROUP, groups),
        (DirectoryObjectKind.ADMINISTRATIVE_UNIT, units),
    ):
        if isinstance(result, GraphAuthError):
            unlisted[kind] = str(result)
            continue
        if isinstance(result, BaseException):
            raise result
        for obj in result:
            objects[obj.id] = obj
    if len(unlisted) == 2:
        raise TargetError([unlisted[DirectoryObjectKind.GROUP]])
    return Inventory(objects, unlisted)


async def resolve(
    graph: GraphClient, inventory: Inventory, ids: Sequence[str], *, what: str
) -> list[DirectoryObject]:
    """Each id as a dynamic group or unit, reading those the listing did not show. Raises
    TargetError naming every id that does not exist or is not dynamic."""
    found: list[DirectoryObject | None] = [inventory.objects.get(i) for i in ids]
    missing = [i for i, obj in zip(ids, found, strict=True) if obj is None]
    looked_up = dict(
        zip(missing, await asyncio.gather(*(_read_one(graph, i) for i in missing)), strict=True)
    )
    problems: list[str] = []
    result: list[DirectoryObject] = []
    for object_id, obj in zip(ids, found, strict=True):
        if obj is None:
            obj, problem = looked_up[object_id]
            if problem is not None:
                problems.append(f"{what} {object_id}: {problem}")
                continue
        assert obj is not None
        result.append(obj)
    if problems:
        raise TargetError(problems)
    return result


async def _read_one(
    graph: GraphClient, object_id: str
) -> tuple[DirectoryObject | None, str | None]:
    for read in (graph.get_group, graph.get_administrative_unit):
        try:
            obj = await read(object_id)
        except GraphNotFoundError:
            continue
        if obj.state is None:
            noun = "group" if obj.kind is DirectoryObjectKind.GROUP else "administrative unit"
            return None, (
                f"{noun} {obj.name!r} is not dynamic (it has no membership rule processing "
                "state); only dynamic groups and units can be paused or resumed"
            )
        return obj, None
    return None, "no such group or administrative unit in this tenant"


__all__ = [
    "Inventory",
    "TargetError",
    "load_inventory",
    "normalise_id",
    "parse_ids",
    "read_ids_file",
    "resolve",
]
