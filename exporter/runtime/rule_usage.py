"""`entra_dynamic_rules_using_operator`: how many dynamic rules use each operator Microsoft
calls inefficient, recomputed only when the listed rules change (not on every scrape, not on
every poll that finds the same rules), and never on a poller's path."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType

from exporter.domain.attribution import property_readers
from exporter.domain.events import DirectoryObjectKind
from exporter.domain.lint import operator_usage
from exporter.domain.records import DirectoryObject
from exporter.domain.relevance import RuleProperties, rule_properties


class RuleUsageTracker:
    """Fed by the groups and administrative-units pollers with each complete listing; `run()`
    (a task of the tenant) computes the usage off the pollers' path: parsing 15,000 rules the
    first time takes a while, and a listing poll that waited for it kept the groups out of the
    first exposition (the cold start)."""

    def __init__(self) -> None:
        self._rules: dict[DirectoryObjectKind, dict[str, str]] = {}
        self._digest: bytes | None = None
        self._listed = asyncio.Event()
        self.usage: Mapping[str, int] | None = None
        """operator -> rules using it (every key of OPERATOR_USAGE_KEYS); None before the
        first listing has been parsed."""
        self.properties: RuleProperties | None = None
        """The properties the listed rules read (trigger relevance, #13); None before the
        first listing has been parsed."""
        self.complete = False
        """Both kinds (groups and administrative units) have been listed and parsed, or primed
        from the store."""
        self.property_readers: Mapping[str, int] | None = None
        """`user.department` -> rules reading it (storm attribution maps the changed
        properties to the groups they re-evaluate); None before the first listing."""
        self.computations = 0
        self._updating = asyncio.Lock()
        """One update at a time: priming's must not land after a listing's."""

    async def listed(self, kind: DirectoryObjectKind, objects: Iterable[DirectoryObject]) -> None:
        self._rules[kind] = {o.id: o.rule for o in objects}
        self._listed.set()

    async def prime(self, stored: Iterable[DirectoryObject]) -> None:
        """The rules the last run listed (kept in the store), until this run lists its own: a
        kind with nothing stored counts as listed empty. Does nothing once a listing came."""
        if self._rules:
            return
        rules: dict[DirectoryObjectKind, dict[str, str]] = {k: {} for k in DirectoryObjectKind}
        for obj in stored:
            rules[obj.kind][obj.id] = obj.rule
        self._rules = rules
        await self.update()

    async def run(self, on_update: Callable[[], Awaitable[None]] | None = None) -> None:
        """Recompute after each listing whose rules differ from those last parsed; then
        `on_update` (the tenant refreshes its snapshot)."""
        while True:
            await self._listed.wait()
            self._listed.clear()
            if await self.update() and on_update is not None:
                await on_update()

    async def update(self) -> bool:
        """Parse the listed rules unless they are those parsed last; True if it did."""
        async with self._updating:
            return await self._update()

    async def _update(self) -> bool:
        digest = self._fingerprint()
        if digest == self._digest:
            return False
        rules = [rule for listing in self._rules.values() for rule in listing.values()]
        # CPU work: not on the event loop; one hop, each rule text parsed once (cached by text).
        usage, properties, readers = await asyncio.to_thread(_readings, rules)
        self.usage = MappingProxyType(usage)
        self.properties = properties
        self.property_readers = MappingProxyType(readers)
        self.complete = set(self._rules) == set(DirectoryObjectKind)
        self._digest = digest
        self.computations += 1
        return True

    def _fingerprint(self) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for kind in sorted(self._rules):
            h.update(kind.value.encode())  # an empty listing of a kind is a listing too
            h.update(b"\0")
            for object_id, rule in sorted(self._rules[kind].items()):
                h.update(object_id.encode())
                h.update(b"\0")
                h.update(rule.encode())
                h.update(b"\0")
        return h.digest()


def _readings(rules: list[str]) -> tuple[dict[str, int], RuleProperties, dict[str, int]]:
    return operator_usage(rules), rule_properties(rules), property_readers(rules)
