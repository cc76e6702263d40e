"""Graph JSON for the tenant-hygiene report: a `$count` answer, and the property changes of
"Update user" / "Update device" events (the names in "Included Updated Properties"), which
weigh each dynamic rule by the changes that make Entra evaluate it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.events import TRIGGER_ACTIVITIES, ObjectType
from exporter.domain.records import ModifiedProperty
from exporter.domain.relevance import listed_properties
from exporter.graph.retry import TransientError


def parse_member_count(body: bytes | None) -> int:
    """`GET .../members/$count` answers a bare integer as text/plain."""
    text = (body or b"").strip()
    if not text.isdigit():
        raise TransientError(f"a member count that is not a number: {text[:40]!r}")
    return int(text)


@dataclass(slots=True)
class TriggerChangeSample:
    """Changes to users and devices read from the audit log: (object type, the changed
    property names, or None for an object added or deleted) -> events."""

    counts: Counter[tuple[ObjectType, frozenset[str] | None]] = field(default_factory=Counter)
    events: int = 0
    oldest: str | None = None
    """activityDateTime of the oldest event read (ISO 8601, as Graph wrote it)."""
    newest: str | None = None
    complete: bool = True
    """False when reading stopped at the event cap before the window's end."""
    mode: AuditQueryMode = AuditQueryMode.NARROW
    """How Graph was asked (`GraphClient.trigger_changes` steps down when it refuses)."""


def add_trigger_page(sample: TriggerChangeSample, body: bytes | None) -> str | None:
    """Count one page of trigger events into `sample`; the page's nextLink."""
    if not body:
        raise TransientError("empty response body")
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise TransientError("a directoryAudits page that is not JSON") from None
    for event in document.get("value") or ():
        if not isinstance(event, dict):
            continue
        trigger = TRIGGER_ACTIVITIES.get(str(event.get("activityDisplayName")))
        if trigger is None:
            continue
        object_type, action = ObjectType(trigger[0]), trigger[1]
        properties: frozenset[str] | None = None
        if action == "update":
            properties = _updated_properties(event)
        sample.counts[(object_type, properties)] += 1
        sample.events += 1
        when = event.get("activityDateTime")
        if isinstance(when, str):
            sample.oldest = when if sample.oldest is None else min(sample.oldest, when)
            sample.newest = when if sample.newest is None else max(sample.newest, when)
    link = document.get("@odata.nextLink")
    return link if isinstance(link, str) and link else None


def _updated_properties(event: dict[str, Any]) -> frozenset[str]:
    """The names "Included Updated Properties" lists (the one reading of it,
    `exporter.domain.relevance.listed_properties`), else the modified properties' names."""
    targets = event.get("targetResources") or ()
    first = targets[0] if targets and isinstance(targets[0], dict) else {}
    modified = [
        ModifiedProperty(
            str(prop.get("displayName") or ""),
            _text(prop.get("oldValue")),
            _text(prop.get("newValue")),
        )
        for prop in first.get("modifiedProperties") or ()
        if isinstance(prop, dict)
    ]
    listed = listed_properties(modified)
    if listed is not None:
        return frozenset(listed)
    return frozenset(p.name for p in modified if p.name)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) or value is None else orjson.dumps(value).decode()
