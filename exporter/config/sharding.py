"""Shards beyond one machine: which of the configured tenants this replica watches.

Every replica reads the same configuration; `shard: {index: i, count: n}` (or `serve --shard
i/n`) keeps the tenants whose stable hash falls to shard i. The hash is of the tenant's name
(SHA-256, not Python's salted `hash`), so every replica, on any machine and after any restart,
agrees on where each tenant goes, and a tenant moves only when the count changes. The app-wide
audit budget (`polling.app_audit_requests_per_10s`) is divided by the count: the replicas do not
talk to one another, and their shares add up to the budget whatever the tenants' spread.
"""

from __future__ import annotations

import hashlib

from exporter.config.models import Config


def shard_of(tenant: str, count: int) -> int:
    """The shard (1..count) a tenant name belongs to."""
    digest = hashlib.sha256(tenant.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` -> (i, n); ValueError naming the form otherwise."""
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"{text!r} is not a shard: give INDEX/COUNT, such as 1/2")
    i, n = int(index), int(count)
    if not 1 <= i <= n:
        raise ValueError(f"shard {text}: the index must be 1..{n}")
    return i, n


def select_shard(config: Config) -> Config:
    """The configuration this replica runs: its tenants, its share of the app-wide budget."""
    shard = config.shard
    if shard.count == 1:
        return config
    tenants = tuple(t for t in config.tenants if shard_of(t.name, shard.count) == shard.index)
    polling = config.polling.model_copy(
        update={
            "app_audit_requests_per_10s": config.polling.app_audit_requests_per_10s / shard.count
        }
    )
    return config.model_copy(update={"tenants": tenants, "polling": polling})


__all__ = ["parse_shard", "select_shard", "shard_of"]
