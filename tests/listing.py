"""A group listing for store-level tests: changes by the dynamic-processing app count as
dynamic only on groups a listing showed dynamic (#13), so such tests list their groups first."""

from __future__ import annotations

from collections.abc import Iterable

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.records import DirectoryObject
from exporter.store.database import Store


async def list_dynamic_groups(
    store: Store, tenant: str, group_ids: Iterable[str], at: float = 0.0
) -> None:
    objects = [
        DirectoryObject(
            DirectoryObjectKind.GROUP, g, g, 'user.department -eq "Sales"', ProcessingState.ON
        )
        for g in group_ids
    ]
    await store.call(store.record_directory_poll, tenant, DirectoryObjectKind.GROUP, objects, at)
