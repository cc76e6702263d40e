"""Does the tenant's state in Graph match what this store's ledger knows (#14)?

The ledger lives in the exporter's store. Two ops runs with *different* stores for one tenant
(a laptop and a jump host, each with its own store.path) each keep a ledger the other never
sees: one pauses, the other finds everything paused with no episode of its own, and its resume
gate and plan reason without the pause's history. Nothing in Graph says which store paused what,
so this cannot be prevented; it can be noticed: a pause-sized wave of paused objects with no
open episode in this ledger is warned about, naming the store."""

from __future__ import annotations

from pathlib import Path

from exporter.domain.events import ProcessingState
from exporter.ops.targets import Inventory


def ledger_disagreement(
    inventory: Inventory, *, open_episode: bool, store_path: Path, min_objects: int
) -> str | None:
    """One line when `min_objects` or more objects are paused in Graph but this ledger has no
    open pause episode; else None (a few long-parked groups are not a pause)."""
    if open_episode:
        return None
    paused = len(inventory.with_state(ProcessingState.PAUSED))
    if paused < min_objects:
        return None
    return (
        f"{paused} objects are paused in Graph but the ledger in {store_path} records no open "
        "pause: another pause/resume run with a different store.path, or a pause made outside "
        "this tool; run every ops command with the exporter's store, or record the pause here "
        "with pause --adopt"
    )
