"""Storm attribution: who and what caused the trailing hour's triggers of re-evaluation.

Each `Update user` / `Update device` names its initiator (a user principal name, or an app's
display name) and, in Entra's "Included Updated Properties", the properties it changed. The
store counts both per minute (`Store.trigger_causes`); this module keeps the top few of each,
so that the metrics' label sets stay bounded whatever a storm looks like, and maps each
property to the dynamic rules that read it ("extensionAttribute5: 30,412 updates by
svc-hr-sync, read by 212 groups").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final

# exporter.domain.rules is imported where it is used: the store imports this module for its
# counting types, and the audit commit process (which imports the store) should not pay the
# rule parser's ~50 ms of import before it sets its signal handlers.

TOP: Final = 5
"""Causes kept of each kind: the metrics' label values are at most these (and `other`)."""
OTHER: Final = "other"
UNKNOWN_INITIATOR: Final = "unknown"


@dataclass(frozen=True, slots=True)
class Cause:
    name: str
    """An initiator, or a property as `user.extensionAttribute5`."""
    triggers: int
    readers: int | None = None
    """For a property: dynamic groups and units whose rule reads it (None: not known yet)."""


@dataclass(frozen=True, slots=True)
class TriggerCauses:
    """The trailing hour's triggers by initiator and by changed property, top `TOP` each and
    the rest summed as `other` (one update may change several properties)."""

    initiators: tuple[Cause, ...]
    properties: tuple[Cause, ...]


@functools.lru_cache(maxsize=4096)
def property_key(object_type: str, name: str) -> str:
    """`user.extensionAttribute5` from the audit log's `ExtensionAttribute5` of a user update:
    the rules' spelling, so that a property and the rules that read it meet."""
    from exporter.domain.rules import ObjectType, canonical_property_name

    kind = ObjectType.DEVICE if object_type == "device" else ObjectType.USER
    name = name.strip()
    if name.lower().startswith("extension_"):  # extension_<appId>_<name>, as rules write it
        return f"{kind.value}.extension_{name[len('extension_') :]}"
    return f"{kind.value}.{canonical_property_name(kind, name)}"


def top_causes(counts: Mapping[str, int], limit: int = TOP) -> tuple[Cause, ...]:
    """The `limit` largest counts (ties by name), then `other` for the rest if any."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = tuple(Cause(name, n) for name, n in ranked[:limit] if n > 0)
    rest = sum(n for _, n in ranked[limit:])
    return (*kept, Cause(OTHER, rest)) if rest else kept


def property_readers(rules: Iterable[str]) -> dict[str, int]:
    """`user.department` -> rules reading it, over the rules the parser accepts."""
    from exporter.domain.relevance import rule_reads

    readers: dict[str, int] = {}
    for text in rules:
        reads = rule_reads(text)
        if reads is None:
            continue
        object_type, names = reads
        for name in names:
            key = f"{object_type.value}.{name}"
            readers[key] = readers.get(key, 0) + 1
    return readers


def with_readers(causes: TriggerCauses, readers: Mapping[str, int] | None) -> TriggerCauses:
    """The causes with each property's readers filled in (0 for a property no rule reads)."""
    if readers is None:
        return causes
    return replace(
        causes,
        properties=tuple(
            c if c.name == OTHER else replace(c, readers=readers.get(c.name, 0))
            for c in causes.properties
        ),
    )


def describe(cause: Cause) -> str:
    """One line for people: `user.extensionAttribute5: 30,412 updates, read by 212 groups`."""
    text = f"{cause.name}: {cause.triggers:,} updates"
    if cause.readers is not None:
        text += f", read by {cause.readers:,} groups"
    return text


def cause_lines(causes: TriggerCauses | None) -> tuple[str, ...]:
    """For people (the landing page): who and what caused the trailing hour's triggers."""
    if causes is None or not (causes.initiators or causes.properties):
        return ()
    lines = []
    if causes.initiators:
        lines.append(
            "by initiator: " + ", ".join(f"{c.name} {c.triggers:,}" for c in causes.initiators)
        )
    lines.extend(describe(c) for c in causes.properties)
    return tuple(lines)
