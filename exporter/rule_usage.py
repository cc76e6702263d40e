"""`entra_dynamic_rules_using_operator`: how many dynamic rules use each operator Microsoft
calls inefficient, recomputed only when the listed rules change (not on every scrape, not on
every poll that finds the same rules)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from exporter.domain.events import DirectoryObjectKind
from exporter.domain.lint import operator_usage
from exporter.domain.records import DirectoryObject


class RuleUsageTracker:
    """Fed by the groups and administrative-units pollers with each complete listing."""

    def __init__(self) -> None:
        self._rules: dict[DirectoryObjectKind, dict[str, str]] = {}
        self._digest: bytes | None = None
        self.usage: Mapping[str, int] | None = None
        """operator -> rules using it (every key of OPERATOR_USAGE_KEYS); None before the
        first listing."""
        self.computations = 0

    async def listed(self, kind: DirectoryObjectKind, objects: Iterable[DirectoryObject]) -> None:
        self._rules[kind] = {o.id: o.rule for o in objects}
        digest = self._fingerprint()
        if digest == self._digest:
            return
        rules = [rule for listing in self._rules.values() for rule in listing.values()]
        # Parsing 15,000 rules the first time takes a while: not on the event loop.
        usage = await asyncio.to_thread(operator_usage, rules)
        self.usage = MappingProxyType(usage)
        self._digest = digest
        self.computations += 1

    def _fingerprint(self) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for kind in sorted(self._rules):
            for object_id, rule in sorted(self._rules[kind].items()):
                h.update(object_id.encode())
                h.update(b"\0")
                h.update(rule.encode())
                h.update(b"\0")
        return h.digest()
