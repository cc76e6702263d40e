"""How the audit poller hands a window's pages to the store: in order, the pages that arrived
during a commit together in the next, started the moment the previous one ends; nothing after
a failed commit."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, Sequence

import pytest

from exporter.clock import VirtualClock
from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.events import ADD_MEMBER
from exporter.domain.records import AuditRecord
from exporter.graph.audit import AuditPage
from exporter.graph.budget import AuditPriority
from exporter.ingest.audit_poller import MAX_PAGES_PER_COMMIT, AuditPoller
from exporter.ingest.poller import CollectorStatus
from exporter.store.database import PageBatch, PageOutcome, Store
from tests.support.waiting import wait_until

NOW = 1_767_600_000.0
BACKFILL = 3600.0


class Pages:
    """A window of one-event pages, oldest first; `hold(n)` keeps page n back until
    `release(n)`."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._held: dict[int, asyncio.Event] = {}
        self.served = 0

    def hold(self, number: int) -> None:
        self._held[number] = asyncio.Event()

    def release(self, number: int) -> None:
        self._held[number].set()

    async def audit_pages(
        self,
        start: float,
        end: float,
        mode: AuditQueryMode = AuditQueryMode.NARROW,
        priority: AuditPriority = AuditPriority.LIVE,
    ) -> AsyncGenerator[AuditPage, None]:
        for number in range(1, self.count + 1):
            if number in self._held:
                await self._held[number].wait()
            at = start + number
            record = AuditRecord(
                f"e{number}", at, ADD_MEMBER, "success", None, None, False, "User", "u", "g", ()
            )
            last = number == self.count
            self.served = number
            yield AuditPage([record], [], None if last else f"next-{number}", at, True)


class Commits:
    """Stands in for the store's commits: records each group (by page event id) and finishes
    a commit only when the test says so."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self._ends: list[asyncio.Future[None]] = []
        self.started = asyncio.Event()

    async def __call__(self, tenant: str, batches: Sequence[PageBatch]) -> PageOutcome:
        self.groups.append([b.events[0].id for b in batches])
        end: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ends.append(end)
        self.started.set()
        await end
        return PageOutcome(Counter())

    async def wait_for(self, groups: int) -> None:
        while len(self.groups) < groups:
            self.started.clear()
            await asyncio.wait_for(self.started.wait(), 5)

    def end(self, index: int, error: Exception | None = None) -> None:
        if error is None:
            self._ends[index].set_result(None)
        else:
            self._ends[index].set_exception(error)


def poller(store: Store, pages: Pages, commits: Commits) -> AuditPoller:
    return AuditPoller(
        tenant="t",
        graph=pages,
        store=store,
        clock=VirtualClock(NOW, 0.0),
        interval=60,
        lateness=1800,
        backfill=BACKFILL,
        commit_pages=commits,
    )


async def test_the_next_commit_starts_when_the_previous_ends_with_every_page_waiting(
    store: Store,
) -> None:
    pages, commits = Pages(7), Commits()
    pages.hold(6)
    poll = asyncio.create_task(poller(store, pages, commits).poll(CollectorStatus("audit")))
    await commits.wait_for(1)
    await wait_until(
        lambda: pages.served == 5, within=5, what="pages 2-5 to arrive while the first commits"
    )
    commits.end(0)
    # Page 6 has not come: the waiting pages go at once, not when the next page arrives.
    await commits.wait_for(2)
    assert commits.groups == [["e1"], ["e2", "e3", "e4", "e5"]]
    pages.release(6)
    await wait_until(lambda: pages.served == 7, within=5, what="the last pages")
    commits.end(1)
    await commits.wait_for(3)
    commits.end(2)
    await poll
    assert commits.groups == [["e1"], ["e2", "e3", "e4", "e5"], ["e6", "e7"]]


async def test_no_page_is_committed_after_a_failed_commit(store: Store) -> None:
    pages, commits = Pages(5), Commits()
    audit = poller(store, pages, commits)
    poll = asyncio.create_task(audit.poll(CollectorStatus("audit")))
    await commits.wait_for(1)
    await wait_until(
        lambda: pages.served == 5, within=5, what="the pages to arrive while the first commits"
    )
    commits.end(0, RuntimeError("disk full"))
    with pytest.raises(RuntimeError, match="disk full"):
        await poll
    # Committing pages 2-5 would move the watermark past page 1, which is not in the store.
    assert commits.groups == [["e1"]]
    assert audit.progress is None  # and no progress was reported


async def test_a_full_queue_makes_the_poller_wait_for_the_store(store: Store) -> None:
    pages, commits = Pages(MAX_PAGES_PER_COMMIT + 3), Commits()
    poll = asyncio.create_task(poller(store, pages, commits).poll(CollectorStatus("audit")))
    await commits.wait_for(1)
    await wait_until(
        lambda: pages.served == MAX_PAGES_PER_COMMIT + 1, within=5, what="the queue to fill"
    )
    await asyncio.sleep(0.1)
    assert pages.served == MAX_PAGES_PER_COMMIT + 1  # no further page is fetched meanwhile
    commits.end(0)
    await commits.wait_for(2)
    assert len(commits.groups[1]) == MAX_PAGES_PER_COMMIT
    commits.end(1)
    await commits.wait_for(3)
    commits.end(2)
    await poll
    assert sum(map(len, commits.groups)) == MAX_PAGES_PER_COMMIT + 3


def membership_change(record_id: str, at: float) -> AuditRecord:
    """A manual add of user u to group g: what these tests read matters, not what it is."""
    return AuditRecord(
        record_id, at, ADD_MEMBER, "success", None, None, False, "User", "u", "g", ()
    )


class Windows:
    """One page a window; the live window holds enough events an hour that the backfill comes
    in several pieces."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []

    async def audit_pages(
        self,
        start: float,
        end: float,
        mode: AuditQueryMode = AuditQueryMode.NARROW,
        priority: AuditPriority = AuditPriority.LIVE,
    ) -> AsyncGenerator[AuditPage, None]:
        self.asked.append((start, end))
        window = len(self.asked)
        count = 4_000 if window == 1 else 1
        records = [membership_change(f"w{window}-{i}", start + 1 + i) for i in range(count)]
        yield AuditPage(records, [], None, records[-1].time, True)


async def test_the_next_piece_is_asked_for_while_the_last_pages_of_one_commit(
    store: Store,
) -> None:
    """A fleet's largest tenant is bound by its own limit: waiting for each piece's last commit
    before the next piece's first request left that limit unused."""
    windows, commits = Windows(), Commits()
    reader = AuditPoller(
        tenant="t",
        graph=windows,
        store=store,
        clock=VirtualClock(NOW, 0.0),
        interval=60,
        lateness=1800,
        backfill=2 * 86400.0,
        commit_pages=commits,
    )
    poll = asyncio.create_task(reader.poll(CollectorStatus("audit")))
    await commits.wait_for(1)
    commits.end(0)  # the live window
    await commits.wait_for(2)  # the first piece's page, its commit held
    await wait_until(
        lambda: len(windows.asked) >= 3, within=5, what="the second piece asked for meanwhile"
    )
    assert windows.asked[2][1] <= windows.asked[1][0]  # an older piece: none read twice
    poll.cancel()  # the commits here write nothing: the backfill would never be covered
    ended = 1
    while not poll.done():
        while ended < len(commits.groups):
            commits.end(ended)
            ended += 1
        await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await poll


async def test_the_first_page_of_the_present_tells_how_much_backfill_is_left(
    store: Store,
) -> None:
    """On a fresh install the app budget learns the backfill's size from the first page of the
    present, before the rest of the present window is asked for."""
    reported: list[float] = []
    seen_before_second_page: list[list[float]] = []

    class Present:
        async def audit_pages(
            self,
            start: float,
            end: float,
            mode: AuditQueryMode = AuditQueryMode.NARROW,
            priority: AuditPriority = AuditPriority.LIVE,
        ) -> AsyncGenerator[AuditPage, None]:
            records = [membership_change(f"e{i}", start + i) for i in range(1_000)]
            yield AuditPage(records, [], "next", records[-1].time, True)
            seen_before_second_page.append(list(reported))
            raise asyncio.CancelledError  # enough: the rest of the poll is not this test's

    async def commit(tenant: str, batches: Sequence[PageBatch]) -> PageOutcome:
        return PageOutcome(Counter())

    reader = AuditPoller(
        tenant="t",
        graph=Present(),
        store=store,
        clock=VirtualClock(NOW, 0.0),
        interval=60,
        lateness=1800,
        backfill=2 * 86400.0,
        commit_pages=commit,
        on_backlog=reported.append,
    )
    with pytest.raises(asyncio.CancelledError):
        await reader.poll(CollectorStatus("audit"))
    assert len(seen_before_second_page) == 1
    # 1,000 events in 999 s of the present, ~3,600 an hour: the 2 days before the present's
    # 7 hours are ~150 pages.
    assert seen_before_second_page[0]
    assert seen_before_second_page[0][0] > 100
