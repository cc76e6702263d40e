"""The pause ledger in the store: episodes as the signals read them, intent before outcome,
interrupted runs, and another process's writes seen through the cache."""

from __future__ import annotations

from pathlib import Path

from exporter.domain.episode import EpisodeSource, detect_episode
from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.domain.groups import GroupState
from exporter.domain.settings import Thresholds
from exporter.store.database import Store
from exporter.store.ledger import (
    Command,
    Ledger,
    ObjectRef,
    OpStatus,
    Origin,
    PlannedOperation,
    RunStatus,
)

T0 = 1_767_600_000.0
GROUP = DirectoryObjectKind.GROUP
PAUSED, ON = ProcessingState.PAUSED, ProcessingState.ON


def ref(n: int) -> ObjectRef:
    return ObjectRef(f"{n:08d}-0000-4000-8000-000000000000", GROUP, f"group {n}")


async def test_an_episode_as_the_signals_read_it(store: Store) -> None:
    ledger = Ledger(store)
    assert await store.call(ledger.episodes, "t") == ()
    episode_id = await store.call(
        lambda: ledger.start_episode(
            "t", at=T0, by="alice", reason="storm", origin=Origin.PAUSE, already_paused=[ref(9)]
        )
    )
    run_id = await store.call(
        lambda: ledger.start_run(
            "t",
            command=Command.PAUSE,
            selection={"all": True},
            operator="alice",
            at=T0,
            episode_id=episode_id,
            reason="storm",
        )
    )
    await store.call(
        lambda: ledger.plan_operations(
            run_id, [PlannedOperation(ref(1), PAUSED), PlannedOperation(ref(2), PAUSED)], at=T0
        )
    )
    for n in (1, 2):
        await store.call(
            lambda n=n: ledger.intend(run_id, ref(n), PAUSED, at=T0 + n, episode_id=episode_id)
        )
    # The intent alone already makes the object the episode's: a crash after the PATCH
    # cannot leave it paused by us and recorded nowhere.
    (episode,) = await store.call(ledger.episodes, "t")
    assert episode.paused == (ref(1).id, ref(2).id)
    assert episode.already_paused == (ref(9).id,)
    assert episode.open
    assert episode.started_by == "alice"
    assert episode.reason == "storm"

    await store.call(
        lambda: ledger.record_outcome(
            run_id, ref(1).id, PAUSED, OpStatus.DONE, at=T0 + 5, tenant="t", episode_id=episode_id
        )
    )
    await store.call(
        lambda: ledger.record_outcome(
            run_id,
            ref(2).id,
            PAUSED,
            OpStatus.FAILED,
            at=T0 + 5,
            detail="HTTP 400",
            tenant="t",
            episode_id=episode_id,
        )
    )
    (episode,) = await store.call(ledger.episodes, "t")
    assert episode.paused == (ref(1).id,)

    groups = [
        GroupState(ref(1).id, "g1", GROUP, PAUSED, paused_since=T0 + 60),
        GroupState(ref(9).id, "g9", GROUP, PAUSED, paused_since=T0 + 120),  # seen late
        GroupState(ref(2).id, "g2", GROUP, ON),
    ]
    detected = detect_episode(groups, [episode], now=T0 + 3600, thresholds=Thresholds())
    assert detected is not None
    assert detected.source is EpisodeSource.LEDGER
    assert detected.group_ids == (ref(1).id,)
    assert detected.paused_before == (ref(9).id,)

    # Resumed: recorded on the episode; ended episodes are context, the open ones come first.
    resume_id = await store.call(
        lambda: ledger.start_run(
            "t",
            command=Command.RESUME,
            selection={"groups": [ref(1).id]},
            operator="bob",
            at=T0 + 86400,
            episode_id=episode_id,
        )
    )
    await store.call(
        lambda: ledger.plan_operations(resume_id, [PlannedOperation(ref(1), ON, batch=1)], at=T0)
    )
    await store.call(
        lambda: ledger.record_outcome(
            resume_id,
            ref(1).id,
            ON,
            OpStatus.DONE,
            at=T0 + 86401,
            tenant="t",
            episode_id=episode_id,
        )
    )
    objects = {o.id: o for o in await store.call(ledger.episode_objects, episode_id)}
    assert objects[ref(1).id].resumed_at == T0 + 86401
    assert objects[ref(1).id].resumed_by_run == resume_id
    await store.call(lambda: ledger.end_episode(episode_id, at=T0 + 86402, note="all On"))
    (ended,) = await store.call(ledger.episodes, "t")
    assert not ended.open
    assert ended.ended_at == T0 + 86402
    assert await store.call(lambda: ledger.episodes("t", ended_limit=0)) == ()


async def test_interrupted_runs_are_found_and_superseded(store: Store) -> None:
    ledger = Ledger(store)
    run_id = await store.call(
        lambda: ledger.start_run(
            "t", command=Command.PAUSE, selection={}, operator="a", at=T0, episode_id=None
        )
    )
    await store.call(
        lambda: ledger.plan_operations(
            run_id, [PlannedOperation(ref(n), PAUSED) for n in range(3)], at=T0
        )
    )
    await store.call(lambda: ledger.intend(run_id, ref(0), PAUSED, at=T0, episode_id=None))
    (unfinished,) = await store.call(ledger.unfinished_runs, "t")
    assert unfinished.id == run_id
    assert unfinished.status is RunStatus.RUNNING
    sending = await store.call(ledger.operations, run_id, [OpStatus.SENDING])
    assert [op.object.id for op in sending] == [ref(0).id]
    assert sending[0].attempts == 1
    assert await store.call(lambda: ledger.supersede(run_id, at=T0 + 1, note="x")) == 3
    assert await store.call(ledger.unfinished_runs, "t") == []
    run = await store.call(ledger.run, run_id)
    assert run is not None
    assert run.status is RunStatus.INTERRUPTED


async def test_writes_of_another_process_invalidate_the_cache(tmp_path: Path) -> None:
    exporter_store, ops_store = Store(tmp_path / "s.sqlite3"), Store(tmp_path / "s.sqlite3")
    await exporter_store.open()
    await ops_store.open()
    try:
        reader, writer = Ledger(exporter_store), Ledger(ops_store)
        assert await exporter_store.call(reader.episodes, "t") == ()
        await ops_store.call(
            lambda: writer.start_episode(
                "t",
                at=T0,
                by="a",
                reason="r",
                origin=Origin.ADOPT,
                already_paused=[],
                adopted=[(ref(1), T0 - 60)],
            )
        )
        (episode,) = await exporter_store.call(reader.episodes, "t")
        assert episode.paused == (ref(1).id,)
    finally:
        await exporter_store.close()
        await ops_store.close()
