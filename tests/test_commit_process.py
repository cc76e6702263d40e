"""The audit commit process: a real child (`python -m exporter.ingest.commit.child`) on a real store
file, against the same commits made on the store's own thread."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.domain.events import ObjectType, ProcessingState, Series
from exporter.domain.records import ClassifiedEvent, MalformedEvent
from exporter.ingest.commit.parent import AuditCommitError, CommitProcess
from exporter.store.database import PageBatch, Store
from exporter.store.lag import ProcessingLagConsumer
from tests.listing import list_dynamic_groups
from tests.support.waiting import wait_until
from tests.test_processing_lag import G1, HOUR, T0, _contents, change, page, trigger

HORIZON = 48 * HOUR


def consumer() -> ProcessingLagConsumer:
    return ProcessingLagConsumer(horizon=HORIZON, sample_window=HOUR)


def pages() -> list[PageBatch]:
    """Every kind of event the store and the lag consumer treat apart: triggers and the changes
    they cause, a resumed group and a rule change, a manual change, a duplicate on a later page
    and across a grouped commit, malformed events with and without a time."""
    first = page(
        [
            trigger(1, "u1", T0),
            trigger(2, "u2", T0 + 10),
            ClassifiedEvent("m1", T0 + 20, Series.MANUAL_ADD, "g2", "u3", None, ObjectType.USER),
            ClassifiedEvent("o1", T0 + 30, Series.OTHER, None, None, None),
        ],
        T0 + 30,
    )
    second = replace(
        page(
            [
                change(1, "u1", T0 + 600),
                ClassifiedEvent(
                    "p1",
                    T0 + 650,
                    Series.PROCESSING_STATE_CHANGE,
                    "g3",
                    None,
                    ProcessingState.ON,
                ),
                first.events[0],  # Graph's duplicate
            ],
            T0 + 650,
        ),
        malformed=[MalformedEvent("bad1", T0 + 640, "missing_group")],
    )
    third = replace(
        page(
            [
                change(2, "u2", T0 + 900, group="g2"),
                ClassifiedEvent("r1", T0 + 950, Series.RULE_CHANGE, "g3", None, None),
                second.events[0],
            ],
            T0 + 950,
        ),
        malformed=[MalformedEvent("digest:x", None, "not_an_object")],
    )
    return [first, second, third]


def groups() -> list[Sequence[PageBatch]]:
    one, two, three = pages()
    return [[one], [two, three]]


async def watermark(store: Store) -> float | None:
    state = await store.call(store.audit_state, "t")
    return None if state is None else state.watermark


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(tmp_path / "state.sqlite3", [consumer()])
    await store.open()
    await list_dynamic_groups(store, "t", [G1, "g2"])
    yield store
    await store.close()


@pytest.fixture
async def process(store: Store) -> AsyncIterator[CommitProcess]:
    process = CommitProcess(store.path, lag_horizon=HORIZON, lag_window=HOUR)
    await process.start()
    yield process
    await process.close()


async def test_commits_in_the_child_leave_what_the_stores_thread_leaves(
    store: Store, process: CommitProcess, tmp_path: Path
) -> None:
    in_thread = Store(tmp_path / "reference.sqlite3", [consumer()])
    await in_thread.open()
    await list_dynamic_groups(in_thread, "t", [G1, "g2"])
    try:
        for group in groups():
            expected = await in_thread.call(in_thread.commit_audit_pages, "t", group)
            outcome = await process.commit_audit_pages("t", group)
            assert outcome == expected
        reference = await in_thread.run(lambda: _contents(in_thread))
    finally:
        await in_thread.close()
    contents = await store.run(lambda: _contents(store))
    assert contents == reference
    assert process.committed == 2
    assert len(contents["seen_events"]) == 8  # 8 events once each (malformed: by content)
    assert len(contents["lag_samples"]) == 2  # u1 and u2: trigger -> change


async def test_a_failed_commit_raises_and_writes_nothing(
    store: Store, process: CommitProcess
) -> None:
    first, second = groups()
    await process.commit_audit_pages("t", first)
    totals = await store.call(store.totals, "t")
    await store.run(lambda: store.db.execute("DROP TABLE group_last_change"))
    with pytest.raises(AuditCommitError, match="no such table: group_last_change"):
        await process.commit_audit_pages("t", second)
    assert await store.call(store.totals, "t") == totals
    assert await watermark(store) == first[-1].watermark
    assert process.restarts == 0  # the child is still there for the next commit


async def test_a_child_that_dies_fails_its_commit_and_the_next_one_starts_a_new_child(
    store: Store, process: CommitProcess
) -> None:
    first, second = groups()
    await process.commit_audit_pages("t", first)
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # holds the next request in flight until the kill
    in_flight = asyncio.create_task(process.commit_audit_pages("t", second))
    await asyncio.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(AuditCommitError, match="exited with code -9"):
        await in_flight
    assert await watermark(store) == first[-1].watermark
    outcome = await process.commit_audit_pages("t", second)
    assert process.restarts == 1
    assert process.pid not in (None, pid)
    assert outcome.counted["duplicate"] == 2  # t1 again, and c1 within the group


async def test_tenants_that_find_the_child_gone_at_once_start_one_new_child(
    store: Store, process: CommitProcess
) -> None:
    await process.commit_audit_pages("a", groups()[0])
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: process.pid != pid, within=10, what="the reader to see the end")
    await asyncio.gather(*(process.commit_audit_pages(t, groups()[0]) for t in "bcd"))
    assert process.restarts == 1
    assert {
        t: (await store.call(store.totals, t))["trigger_user"] for t in "abcd"
    } == dict.fromkeys("abcd", 2)


async def test_ctrl_c_reaches_the_child_but_does_not_stop_it(
    store: Store, process: CommitProcess
) -> None:
    """A terminal's Ctrl-C (or a service manager's SIGTERM) reaches every process of the group:
    the parent decides when its child stops, after its last commits."""
    # A first commit answered: the child has set its handlers (a fixed sleep was not enough
    # on a loaded machine).
    await process.commit_audit_pages("s", groups()[0])
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    await process.commit_audit_pages("t", groups()[0])
    assert process.pid == pid
    assert process.restarts == 0


async def test_a_store_that_cannot_open_is_named(store: Store) -> None:
    await store.run(lambda: store.db.execute("UPDATE meta SET value='99'"))
    process = CommitProcess(store.path, lag_horizon=HORIZON, lag_window=HOUR)
    await process.start()
    try:
        with pytest.raises(AuditCommitError, match=r"did not open.*schema version 99"):
            await process.commit_audit_pages("t", groups()[0])
    finally:
        await process.close()


async def test_close_waits_for_the_commits_sent(store: Store) -> None:
    process = CommitProcess(store.path, lag_horizon=HORIZON, lag_window=HOUR)
    await process.start()
    commits = [asyncio.create_task(process.commit_audit_pages("t", g)) for g in groups()]
    await asyncio.sleep(0)  # both requests are written
    await process.close()
    assert all(c.done() and c.exception() is None for c in commits)
    with pytest.raises(RuntimeError, match="closed"):
        await process.commit_audit_pages("t", groups()[0])
    totals = await store.call(store.totals, "t")
    assert totals["duplicate"] == 2


def test_the_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    """kill -9 of the exporter: its child sees its stdin end and exits (no orphan writing to
    the store when a new exporter starts)."""
    sqlite3.connect(tmp_path / "state.sqlite3").close()
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import asyncio
                from exporter.ingest.commit.parent import CommitProcess
                from exporter.store.database import Store

                async def main():
                    store = Store({str(tmp_path / "state.sqlite3")!r})
                    await store.open()
                    process = CommitProcess(store.path, lag_horizon=3600.0, lag_window=3600.0)
                    await process.start()
                    print(process.pid, flush=True)
                    await asyncio.sleep(60)

                asyncio.run(main())
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the commit process outlived its parent"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
