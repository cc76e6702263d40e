"""Audit-log ingestion: the present first, then the backfill, with live windows between.

Windows. A live window reaches the present: from the stored `next_start` (the watermark pulled
back by what may still arrive late: `min(watermark, query time - lateness allowance)`, so a live
poll overlaps the previous window by the allowance), or, on a fresh install or after an absence
longer than a backfill piece, from the start of the previous clock hour. What the backfill wants
(`backfill` seconds back, clamped to the audit retention) and the coverage does not hold is then
read in pieces present-first (`exporter.domain.backfill_order`: the baseline's hours, then the
rest newest to oldest), half-open so that each event is read by one piece, with a live window
again every `interval` (docs/scale.md).

Pages. Each page is classified and committed in one transaction (dedupe by id, counts,
watermark; `exporter.store.database`), together with the pages that arrived while the previous
commit ran (up to `MAX_PAGES_PER_COMMIT`; the next commit starts the moment the previous one
ends): in a backfill the store then writes fewer, larger transactions, and a live poll's single
page commits alone. Within a window the watermark moves to the last event time of each page when
Graph returns the window oldest-first as asked; if a page is ever out of order it waits for the
end of the window. The next page is fetched while the previous one commits.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from exporter.clock import Clock
from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.backfill_order import (
    PieceKind,
    backfill_start,
    backlog_requests,
    covered_seconds,
    next_piece,
    piece_plan,
    present_start,
)
from exporter.domain.classify import classify, updated_property_names
from exporter.domain.events import INGESTED_ACTIVITIES, Series
from exporter.domain.history import HOUR, Interval
from exporter.domain.records import ClassifiedEvent
from exporter.domain.relevance import RuleProperties
from exporter.graph.audit import AuditPage, format_time
from exporter.graph.budget import AuditPriority
from exporter.graph.client import AUDIT_PAGE_SIZE
from exporter.graph.errors import GraphRequestError, refuses_query
from exporter.ingest.event_times import MAX_CLOCK_SKEW, TimeBounds, screen_times
from exporter.ingest.poller import CollectorStatus
from exporter.logs import get_logger
from exporter.store.database import AuditState, PageBatch, PageOutcome, Store
from exporter.store.lateness import RECONCILED

log = get_logger(__name__)

BACKFILL_CHUNK = 6 * 3600.0
RETENTION = 30 * 86400.0
RETENTION_MARGIN = 600.0
"""Graph rejects a start older than its retention with a 400: stay this far inside it."""
SEEN_MARGIN = 60.0
_EDGE = 0.001
"""Window bounds go to Graph with microsecond precision; allow for the rounding."""
_INGESTED = frozenset(INGESTED_ACTIVITIES)
_MAX_LOGGED_PROPERTY_NAMES = 200
MAX_PAGES_PER_COMMIT = 16
"""Pages that arrive while the store commits wait for the next commit, and go in one
transaction (fewer, larger writes); beyond this many the poller waits for the store."""


RULES_WAIT = 120.0
"""How long a poll waits for the tenant's rules to be first known (trigger relevance) before it
counts updates as of unknown relevance."""

CommitPages = Callable[[str, Sequence[PageBatch]], Awaitable[PageOutcome]]
"""Commits a tenant's consecutive pages as one transaction: on the store's thread by default,
or in the audit commit process
(`exporter.ingest.commit.parent.CommitProcess.commit_audit_pages`)."""


class AuditSource(Protocol):
    """What the ingestor needs from Graph (GraphClient provides it)."""

    def audit_pages(
        self,
        start: float,
        end: float,
        mode: AuditQueryMode = AuditQueryMode.NARROW,
        priority: AuditPriority = AuditPriority.LIVE,
    ) -> AsyncGenerator[AuditPage, None]: ...


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    start: float
    watermark: float
    target: float
    """The time the ingestion is catching up to (the clock when the poll began)."""

    @property
    def fraction(self) -> float:
        span = self.target - self.start
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.watermark - self.start) / span))


class AuditPoller:
    name = "audit"

    def __init__(
        self,
        *,
        tenant: str,
        graph: AuditSource,
        store: Store,
        clock: Clock,
        interval: float,
        lateness: float,
        backfill: float,
        on_progress: Callable[[BackfillProgress], None] | None = None,
        commit_pages: CommitPages | None = None,
        reconcile_interval: float = 0.0,
        reconcile_reach: float = 0.0,
        rules: Callable[[float], Awaitable[RuleProperties | None]] | None = None,
        on_present: Callable[[], Awaitable[None]] | None = None,
        on_backlog: Callable[[float], None] | None = None,
    ) -> None:
        """`rules(wait)`: the properties the tenant's rules read (None: unknown), for the
        relevance of user and device updates (`exporter.domain.relevance`). `on_present`: called
        after each live window of a poll that is still backfilling, so that the present is
        assessed and exported without waiting for the backfill's end. `on_backlog`: the
        requests the rest of the backfill takes, about (0 when it is over), before each piece
        (the app budget serves the tenants with the most left first)."""
        self.tenant = tenant
        self.interval = interval
        self._graph = graph
        self._store = store
        self._commit_pages = commit_pages or functools.partial(store.call, store.commit_audit_pages)
        self._clock = clock
        self._lateness = lateness
        self._backfill = min(backfill, RETENTION - RETENTION_MARGIN)
        self._on_progress = on_progress
        self._logged_names: set[str] = set()
        self._rules = rules
        self._rule_properties: RuleProperties | None = None
        self.query_mode: AuditQueryMode | None = None
        """How Graph is asked (`exporter.domain.audit_query`): read from the store at the first
        poll, stepped down when Graph refuses it."""
        self.progress: BackfillProgress | None = None
        self.caught_up = False
        """The last poll reached the present (backfill is over)."""
        self._repaired = False
        self._reconcile_interval = reconcile_interval
        self._reconcile_reach = reconcile_reach if reconcile_interval > 0 else 0.0
        self._next_reconcile: float | None = None
        """Due time of the next reconciliation pass: one interval after the first poll."""
        self._reconciled_until: float | None = None
        """Where the last pass ended: the next one continues from there."""
        self._measuring = False
        self._on_present = on_present
        self._on_backlog = on_backlog
        self._lived = False
        """A live window ran in this process (the next one measures lateness)."""
        self._live_watermark = -math.inf
        """The last live window's next start: seen ids from there on are kept."""
        self._backfilling = True
        self._live_reached = -math.inf
        self._hourly_estimate: float | None = None
        """Audit events per hour in the first long live window: sizes the backfill's pieces."""
        self._window_records = 0
        """Records Graph returned in the current window."""
        """Pieces of the backfill are missing (until a poll finds none)."""

    async def _repair_once(self, now: float) -> None:
        """At the first poll: a watermark dated in the future (written before event times were
        screened) would make every assessment distrust the data forever."""
        if self._repaired:
            return
        store = self._store
        found = await store.call(store.clamp_future_watermark, self.tenant, now + MAX_CLOCK_SKEW)
        self._repaired = True
        state = await store.call(store.audit_state, self.tenant)
        if state is not None and await store.call(store.seen_kept_from, self.tenant) is None:
            # A store from before #14 kept seen ids for the lateness allowance only.
            await store.call(store.note_seen_kept_from, self.tenant, state.next_start - SEEN_MARGIN)
        if found is not None:
            log.warning(
                "the stored audit watermark was in the future (an event with an impossible "
                "time, stored by an older version); clamped to the last commit",
                tenant=self.tenant,
                watermark=format_time_safe(found),
            )

    async def poll(self, status: CollectorStatus) -> None:
        """The live window (from the stored `next_start`, or on a fresh install or after a gap
        from the previous clock hour), then, while anything of the backfill is missing, its
        pieces present-first (`exporter.domain.backfill_order`), with a live window again every
        `interval`: a long backfill never keeps the present waiting."""
        store = self._store
        if self._rules is not None:
            # Until the rules have been known once, wait for them (the source bounds the wait);
            # after that, take the latest.
            wait = RULES_WAIT if self._rule_properties is None else 0.0
            self._rule_properties = await self._rules(wait)
        if self.query_mode is None:
            self.query_mode = await store.call(store.audit_query_mode, self.tenant)
            if self.query_mode is not AuditQueryMode.NARROW:
                log.info("audit query mode", tenant=self.tenant, mode=self.query_mode.value)
        await self._repair_once(self._clock.now())
        # Before the live window, so that the poll's data is current when the poll ends.
        await self._reconcile_if_due(status)
        while True:
            due = self._clock.now() + self.interval
            wanted = await self._live(status)
            if await self._read_backfill(wanted, due, status):
                self.caught_up = True
                return
            self.caught_up = False

    async def _live(self, status: CollectorStatus) -> Interval:
        """Read the live window; returns what the backfill wants covered, [start, end)."""
        store = self._store
        now = self._clock.now()
        state = await store.call(store.audit_state, self.tenant)
        present = present_start(now)
        oldest = now - (RETENTION - RETENTION_MARGIN)
        if state is None:
            wanted_start = max(backfill_start(now, self._backfill), oldest)
            # Never before what the backfill wants (a backfill shorter than the present window).
            start = coverage_start = max(present, wanted_start)
            log.info("audit backfill starts", tenant=self.tenant, days=self._backfill / 86400)
        else:
            wanted_start = state.backfill_start
            start, coverage_start = state.next_start, state.coverage_start
            if start < oldest:
                log.warning(
                    "audit events older than the retention are lost",
                    tenant=self.tenant,
                    gap_seconds=round(oldest - start),
                )
            if start < min(present, now - BACKFILL_CHUNK):
                # Down for a while: the present first; from the stored next_start on (events
                # after it may have arrived late) is backfilled present-first like the rest. A
                # shorter absence is one live window, as long as a backfill piece.
                await store.call(store.clip_coverage, self.tenant, start)
                start = coverage_start = max(present, wanted_start)
                self._backfilling = True
        wanted_start = max(wanted_start, oldest)
        # Lateness is measured by live windows that follow one another: not the first one
        # after a start, which reads what may have settled long ago.
        self._measuring = self._lived
        watermark = await self._window(
            start,
            now,
            now,
            wanted_start,
            coverage_start,
            AuditPriority.LIVE,
            status,
            functools.partial(self._live_progress, wanted_start, now),
        )
        if self._hourly_estimate is None and now - start >= HOUR / 2:
            self._hourly_estimate = self._window_records * HOUR / (now - start)
        self._lived = True
        self._live_reached = watermark
        self._live_watermark = min(watermark, now - self._lateness)
        if not self._backfilling:
            await self._prune()
        return (wanted_start, max(wanted_start, min(start, present)))

    async def _read_backfill(self, wanted: Interval, due: float, status: CollectorStatus) -> bool:
        """Read missing pieces of `wanted` until it is covered (True) or the next live window
        is `due` (False).

        A piece's last pages may still be on their way to the store when the next piece's first
        request goes out: the largest tenant of a fleet is bound by its own 5 requests per 10 s,
        and waiting for each piece's last commit left its limit unused (~2 s a piece in the
        fleet benchmark). The next piece is chosen as if the one just read were covered (it is,
        once its commits end: each event is read by one piece), and the seen ids are pruned
        once every commit of the poll has ended, never while a piece is half committed (a piece
        a failure leaves half done resumes at its last event time with that instant's ids)."""
        if not self._backfilling:
            # Nothing was missing, and only a gap the live window leaves (above) adds to it.
            return True
        unsettled: list[_PageCommits] = []
        try:
            done, read_any = await self._read_pieces(wanted, due, status, unsettled)
        finally:
            for commits in unsettled:
                await commits.finish()
        if read_any:
            # Every piece read so far is whole: the seen ids no window reads again may go.
            await self._prune(merge=True)
        return done

    async def _read_pieces(
        self,
        wanted: Interval,
        due: float,
        status: CollectorStatus,
        unsettled: list[_PageCommits],
    ) -> tuple[bool, bool]:
        """(covered, any piece read); leaves the last piece's commits in `unsettled`."""
        store = self._store
        first = True
        last_read: Interval | None = None
        while True:
            coverage = await store.call(store.coverage, self.tenant)
            if last_read is not None:
                coverage = [*coverage, last_read]  # covered once its commits end
            now = self._clock.now()
            chunk, baseline_first = piece_plan(self._hourly_estimate, AUDIT_PAGE_SIZE)
            piece = next_piece(wanted, coverage, now, chunk, baseline_first=baseline_first)
            if piece is None or now >= due:
                # The progress below is final for this poll: no commit callback may follow it.
                while unsettled:
                    await unsettled.pop(0).finish()
            self._backfilling = piece is not None
            covered = covered_seconds(wanted, coverage)
            if piece is None:
                reached = self._live_reached
                self.progress = BackfillProgress(wanted[0], reached, reached)
            else:
                self.progress = BackfillProgress(wanted[0], wanted[0] + covered, wanted[1])
            if self._on_progress is not None:
                self._on_progress(self.progress)
            if self._on_backlog is not None:
                self._on_backlog(
                    0.0
                    if piece is None
                    else backlog_requests(wanted, coverage, self._hourly_estimate, AUDIT_PAGE_SIZE)
                )
            if piece is None:
                return True, not first
            if now >= due:
                return False, not first
            if first and self._on_present is not None:
                # The present is in: assess and export it before the past is read.
                await self._on_present()
            first = False
            priority = (
                AuditPriority.LIVE
                if piece.kind is PieceKind.PARTIAL
                else AuditPriority.BASELINE
                if piece.kind is PieceKind.BASELINE
                else AuditPriority.BACKFILL
            )
            self._measuring = False
            await self._window(
                piece.start,
                piece.end,
                now,
                wanted[0],
                piece.start,
                priority,
                status,
                functools.partial(self._piece_progress, wanted, covered, piece.start),
                end_exclusive=True,
                unsettled=unsettled,
            )
            last_read = (piece.start, piece.end)
            # One piece's commits at most stay on their way while the next piece is read.
            while len(unsettled) > 1:
                await unsettled.pop(0).finish()

    async def _prune(self, *, merge: bool = False) -> None:
        """Seen ids are kept as far back as the live windows and the reconciliation pass
        re-read (and, if a pass came late, until it has re-read them: passes leave no gap)."""
        now = self._clock.now()
        next_start = self._live_watermark
        keep_from = min(next_start, now - self._reconcile_reach)
        if self._reconciled_until is not None:
            keep_from = min(keep_from, self._reconciled_until)
        await self._store.call(self._store.prune, self.tenant, now, keep_from - SEEN_MARGIN)
        if self._backfilling or merge:
            await self._store.call(self._store.merge_coverage, self.tenant)

    def _live_progress(self, wanted_start: float, target: float, watermark: float) -> None:
        if not self._backfilling:
            self.progress = BackfillProgress(wanted_start, watermark, min(target, watermark))

    def _piece_progress(
        self, wanted: Interval, covered: float, piece_start: float, watermark: float
    ) -> None:
        done = covered + max(0.0, watermark - piece_start)
        previous = self.progress
        if previous is not None and previous.watermark > wanted[0] + done:
            return  # the previous piece's last commit, ending while the next piece is read
        self.progress = BackfillProgress(wanted[0], wanted[0] + done, wanted[1])

    async def _reconcile_if_due(self, status: CollectorStatus) -> None:
        """The low-priority pass, about once per `reconcile_interval` (at the start of a poll
        after a poll that reached the present): re-read the slice of event time that has just
        become `reconcile_reach` old - [previous end, now - reach + interval] - and count the
        events that appeared there after the live polls read it, exactly once (the seen ids of
        that span are kept). Each moment of event time is re-read once, about `reach` after it:
        one extra read of the audit log's volume, through the same rate limit as every other
        request, whatever the reach."""
        if self._reconcile_interval <= 0 or not self.caught_up:
            return
        now = self._clock.now()
        if self._next_reconcile is None:
            self._next_reconcile = now + self._reconcile_interval
            return
        if now < self._next_reconcile:
            return
        self._next_reconcile = now + self._reconcile_interval
        store = self._store
        state = await store.call(store.audit_state, self.tenant)
        kept_from = await store.call(store.seen_kept_from, self.tenant)
        if state is None:
            return
        oldest = now - self._reconcile_reach
        start = max(
            oldest if self._reconciled_until is None else self._reconciled_until,
            state.coverage_start,
            state.next_start if kept_from is None else kept_from,
        )
        end = min(oldest + self._reconcile_interval, now - self._lateness, state.watermark)
        if end <= start:
            return
        found = await self._reconcile_window(start, end, now, state)
        self._reconciled_until = end
        log.info(
            "audit reconciliation pass",
            tenant=self.tenant,
            window_seconds=round(end - start),
            late_events_found=found,
        )
        status.progressed(self._clock.now())

    async def _reconcile_window(
        self, start: float, end: float, queried_at: float, state: AuditState
    ) -> int:
        pages = self._graph.audit_pages(start, end)
        found = 0

        def committed(_: float) -> None:
            pass

        async def commit(batches: Sequence[PageBatch]) -> PageOutcome:
            nonlocal found
            outcome = await self._commit_pages(self.tenant, batches)
            found += outcome.counted.get(RECONCILED, 0)
            return outcome

        commits = _PageCommits(commit, committed)
        try:
            async for fetched in pages:
                page = screen_times(fetched, TimeBounds.at(self._clock.now(), RETENTION))
                await commits.add(
                    PageBatch(
                        events=self._classify(page, start - _EDGE, end + _EDGE),
                        malformed=page.malformed,
                        watermark=state.watermark,
                        next_start=state.next_start,
                        backfill_start=state.backfill_start,
                        now=self._clock.now(),
                        malformed_time=start,
                        coverage_start=state.coverage_start,
                        lateness_from=queried_at,
                        reconciling=True,
                    )
                )
        finally:
            await pages.aclose()
            await commits.finish()
        return found

    async def _window(
        self,
        start: float,
        end: float,
        queried_at: float,
        backfill_start: float,
        coverage_start: float,
        priority: AuditPriority,
        status: CollectorStatus,
        progress: Callable[[float], None],
        *,
        end_exclusive: bool = False,
        unsettled: list[_PageCommits] | None = None,
    ) -> float:
        """Ingest [start, end] ([start, end) with `end_exclusive`: a backfill piece, whose end
        the newer piece or window counts); returns the watermark reached (end, the window
        complete). With `unsettled`, a window read whole returns before its last commits end,
        and leaves them there (the caller finishes them); a failed one has finished them. If
        Graph refuses the query (400) before the first page, the query mode steps down and the
        window is asked again."""
        while True:
            mode = self.query_mode or AuditQueryMode.NARROW
            try:
                return await self._window_in_mode(
                    mode,
                    start,
                    end,
                    queried_at,
                    backfill_start,
                    coverage_start,
                    priority,
                    status,
                    progress,
                    end_exclusive,
                    unsettled,
                )
            except _QueryRefused as refused:
                lower = mode.step_down()
                if lower is None:
                    raise refused.error from None
                log.warning(
                    "Graph refused the audit query; asking for the time range only and "
                    "filtering here (more pages per window, same counts)",
                    tenant=self.tenant,
                    refused_mode=mode.value,
                    mode=lower.value,
                    error=str(refused.error),
                )
                await self._store.call(
                    self._store.set_audit_query_mode, self.tenant, lower, self._clock.now()
                )
                self.query_mode = lower

    async def _window_in_mode(
        self,
        mode: AuditQueryMode,
        start: float,
        end: float,
        queried_at: float,
        backfill_start: float,
        coverage_start: float,
        priority: AuditPriority,
        status: CollectorStatus,
        progress: Callable[[float], None],
        end_exclusive: bool,
        unsettled: list[_PageCommits] | None = None,
    ) -> float:
        pages = self._graph.audit_pages(start, end, mode, priority)
        self._window_records = 0
        last = end if end_exclusive else end + _EDGE
        watermark = start
        first = True
        ordered = True
        commits = _PageCommits(
            functools.partial(self._commit_pages, self.tenant),
            functools.partial(self._committed, progress, status),
        )
        try:
            while True:
                try:
                    fetched = await anext(pages)
                except StopAsyncIteration:
                    break
                except GraphRequestError as exc:
                    if first and refuses_query(exc):
                        raise _QueryRefused(exc) from None
                    raise
                first_page, first = first, False
                self._window_records += len(fetched.records)
                page = screen_times(fetched, TimeBounds.at(self._clock.now(), RETENTION))
                if first_page and priority is AuditPriority.LIVE:
                    self._early_backlog(page, start, backfill_start)
                if page.next_link is None:
                    watermark = max(watermark, end)
                elif ordered and page.ascending and page.last_time is not None:
                    if page.last_time >= watermark:
                        watermark = page.last_time
                    else:
                        ordered = False
                elif page.records:
                    ordered = False
                # The next page is requested while this one waits for or goes to the store.
                await commits.add(
                    PageBatch(
                        events=self._classify(page, start - _EDGE, last, end_exclusive),
                        malformed=page.malformed,
                        watermark=watermark,
                        next_start=min(watermark, queried_at - self._lateness),
                        backfill_start=backfill_start,
                        now=self._clock.now(),
                        malformed_time=start,
                        coverage_start=coverage_start,
                        lateness_from=queried_at if self._measuring else None,
                        # A backfill piece is older than the live stream the time-ordered lag
                        # estimator follows: its changes would arrive before their triggers.
                        past=end_exclusive,
                    )
                )
        except BaseException:
            await pages.aclose()
            # Even when cancelled: the pages fetched are committed, never half-written (and
            # never, when a commit before them failed: its exception goes on).
            await commits.finish()
            raise
        await pages.aclose()
        if unsettled is None:
            await commits.finish()
        else:
            unsettled.append(commits)
        return watermark

    def _early_backlog(self, page: AuditPage, start: float, backfill_start: float) -> None:
        """On a fresh install (or after a gap) the first page of the present already tells
        how busy the tenant is: its backfill's size goes to the app budget at once, so that the
        largest tenants' present (at live priority too) is read first among 100 starting
        together, instead of after every other tenant's (~10 s of the largest one's limit in
        the fleet benchmark)."""
        if (
            self._on_backlog is None
            or not self._backfilling
            or self._hourly_estimate is not None
            or page.next_link is None
            or page.last_time is None
            or page.last_time <= start
            or start <= backfill_start
        ):
            return
        per_hour = self._window_records * HOUR / (page.last_time - start)
        self._on_backlog(backlog_requests((backfill_start, start), (), per_hour, AUDIT_PAGE_SIZE))

    def _committed(
        self, progress: Callable[[float], None], status: CollectorStatus, watermark: float
    ) -> None:
        status.progressed(self._clock.now())
        progress(watermark)
        if self._on_progress is not None and self.progress is not None:
            self._on_progress(self.progress)

    def _classify(
        self, page: AuditPage, start: float, end: float, end_exclusive: bool = False
    ) -> list[ClassifiedEvent]:
        # Events outside the window or of other activities are not ours to count here (a
        # server that ignored part of the $filter); the window they belong to counts them.
        rules = self._rule_properties
        if end_exclusive:
            events = [
                classify(r, rules)
                for r in page.records
                if r.activity in _INGESTED and start <= r.time < end
            ]
        else:
            events = [
                classify(r, rules)
                for r in page.records
                if r.activity in _INGESTED and start <= r.time <= end
            ]
        if len(self._logged_names) < _MAX_LOGGED_PROPERTY_NAMES:
            self._log_unrecognised_updates(page, events)
        return events

    def _log_unrecognised_updates(self, page: AuditPage, events: list[ClassifiedEvent]) -> None:
        """Property names of group updates are unverified: say once which ones were not
        understood, so that the classifier can learn them."""
        others = {e.id for e in events if e.series is Series.GROUP_UPDATE_OTHER}
        if not others:
            return
        for record in page.records:
            if record.id not in others:
                continue
            for name in updated_property_names(record.modified):
                if name not in self._logged_names:
                    self._logged_names.add(name)
                    log.info(
                        "group update property not used for classification",
                        tenant=self.tenant,
                        property=name,
                    )


class _QueryRefused(Exception):
    """Graph answered 400 to a window's first request: the query mode is not accepted."""

    def __init__(self, error: GraphRequestError) -> None:
        super().__init__(str(error))
        self.error = error


class _PageCommits:
    """One window's pages on their way to the store, strictly in order: a page that arrives
    while a commit runs waits, with any others, for the next commit, which starts the moment
    the previous one ends (up to `MAX_PAGES_PER_COMMIT` pages wait; beyond that `add` waits
    too). After a failed commit nothing more is committed: later pages would move the
    watermark past the failed ones."""

    def __init__(
        self,
        commit_pages: Callable[[Sequence[PageBatch]], Awaitable[PageOutcome]],
        on_committed: Callable[[float], None],
    ) -> None:
        self._commit_pages = commit_pages
        self._on_committed = on_committed
        self._queued: list[PageBatch] = []
        self._running: asyncio.Future[PageOutcome] | None = None

    async def add(self, batch: PageBatch) -> None:
        running = self._running
        if running is not None and running.done():
            running.result()  # a failed commit's exception goes on: the poll fails
        self._queued.append(batch)
        self._advance()
        while len(self._queued) >= MAX_PAGES_PER_COMMIT and self._running is not None:
            # Shielded: cancelling the poll (shutdown) never abandons a started commit.
            await asyncio.shield(self._running)
            self._advance()

    async def finish(self) -> None:
        """Wait until every page added is committed; raises the first commit's failure."""
        while self._running is not None:
            running = self._running
            await asyncio.shield(running)  # a failure is raised here, as it was by the commit
            self._advance()
            if self._running is running:
                return  # nothing left to start

    def _advance(self) -> None:
        """Start the next commit with every page waiting, unless one runs or one failed."""
        running = self._running
        if not self._queued or (
            running is not None
            and (not running.done() or running.cancelled() or running.exception() is not None)
        ):
            return
        group = tuple(self._queued)
        self._queued.clear()
        self._running = asyncio.ensure_future(self._commit_pages(group))
        self._running.add_done_callback(functools.partial(self._ended, group[-1].watermark))

    def _ended(self, watermark: float, commit: asyncio.Future[PageOutcome]) -> None:
        if commit.cancelled() or commit.exception() is not None:
            return
        self._on_committed(watermark)
        self._advance()


def format_time_safe(epoch: float) -> str:
    """An epoch for a log line, even one no datetime can hold."""
    try:
        return format_time(epoch)
    except (OverflowError, OSError, ValueError):
        return f"{epoch:.0f} (epoch seconds)"
