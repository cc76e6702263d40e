"""Whether a user or device change can matter to the tenant's dynamic rules (issue #13).

"Update user" and "Update device" name the changed properties in their modified property
`Included Updated Properties` (a comma-separated list, possibly empty). Many updates touch only
properties no rule can read (authentication methods, token timestamps, licence housekeeping):
such a storm cannot start re-evaluation. The rules tell which properties they read
(`Rule.properties`); names are compared case- and separator-insensitively, and the few audit
names that differ from the rule property they change are mapped (`_AUDIT_ALIASES`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from exporter.domain.events import PROPERTY_INCLUDED_UPDATED_PROPERTIES, ObjectType, Relevance
from exporter.domain.records import ModifiedProperty
from exporter.domain.rules import RuleSyntaxError, parse_expression, reads_of

_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_AUDIT_ALIASES = {
    # audit name (normalised) -> the rule property it changes (normalised)
    "assignedplan": "assignedplans",
    "othermail": "othermails",
    "proxyaddress": "proxyaddresses",
}


@functools.lru_cache(maxsize=4096)
def normalise_name(name: str) -> str:
    """Property names compared without case or separators (`Group.ObjectID` ~ `groupobjectid`)."""
    return _NOT_ALNUM.sub("", name.lower())


_INCLUDED = normalise_name(PROPERTY_INCLUDED_UPDATED_PROPERTIES)


@dataclass(frozen=True, slots=True)
class RuleProperties:
    """The properties the tenant's dynamic rules read, normalised, per object type."""

    user: frozenset[str]
    device: frozenset[str]

    def of(self, object_type: ObjectType) -> frozenset[str]:
        return self.user if object_type is ObjectType.USER else self.device


@functools.lru_cache(maxsize=32768)
def rule_reads(text: str) -> tuple[ObjectType, frozenset[str]] | None:
    """The object type a rule applies to and the properties it reads, as the rule names them;
    None if it does not parse. Cached by text, and not compiled (~25 us a rule): a tenant's
    listing repeats its rules every poll, and 15,000 rules are often a few thousand texts."""
    try:
        reads = reads_of(parse_expression(text))
    except (RuleSyntaxError, ValueError):
        return None
    return reads.object_type, reads.properties


def rule_properties(rules: Iterable[str]) -> RuleProperties:
    """From rule texts; a rule that does not parse reads nothing we can name (the linter
    reports it)."""
    names: dict[str, set[str]] = {ObjectType.USER.value: set(), ObjectType.DEVICE.value: set()}
    for text in rules:
        reads = rule_reads(text)
        if reads is not None:
            names[reads[0].value].update(normalise_name(p) for p in reads[1])
    return RuleProperties(
        frozenset(names[ObjectType.USER.value]), frozenset(names[ObjectType.DEVICE.value])
    )


def listed_properties(modified: Iterable[ModifiedProperty]) -> tuple[str, ...] | None:
    """The names `Included Updated Properties` lists, as the audit log spells them (the one
    reading of it: relevance and storm attribution); None when the event has none."""
    for prop in modified:
        if normalise_name(prop.name) == _INCLUDED:
            return _listed_names(prop.new_value)
    return None


# The caches below are keyed by what the audit log repeats: a tenant's updates list the same few
# property combinations over and over, and reading them was a third of classifying an update.
@functools.lru_cache(maxsize=4096)
def _listed_names(raw: str | None) -> tuple[str, ...]:
    listed = _decode(raw)
    if listed is None:
        return ()
    return tuple(part.strip() for part in listed.split(",") if part.strip())


@functools.lru_cache(maxsize=4096)
def _normalised_names(listed: tuple[str, ...]) -> tuple[str, ...]:
    names = (normalise_name(part) for part in listed)
    return tuple(_AUDIT_ALIASES.get(n, n) for n in names if n)


def relevance_of_listed(
    object_type: ObjectType,
    listed: tuple[str, ...] | None,
    properties: RuleProperties | None,
) -> Relevance:
    """`rule` if a changed property (a name `listed_properties` read) is read by a rule,
    `other` if none is, `unknown` without a property list (or before the tenant's rules are
    known)."""
    if listed is None or properties is None:
        return Relevance.UNKNOWN
    read = properties.of(object_type)
    changed = _normalised_names(listed)
    return Relevance.RULE if any(name in read for name in changed) else Relevance.OTHER


def _decode(raw: str | None) -> str | None:
    """The list is a JSON string (`"\\"Department, JobTitle\\""`); plain text is taken as is."""
    if raw is None:
        return None
    text = raw.strip()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value if isinstance(value, str) else None
