"""Signals first on a fresh install: the backfill reads the present first (the current and
previous hour), then the hours the baseline reads, then the rest newest to oldest; every event
is counted exactly once and the coverage ends as one exact interval."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from exporter.domain.audit_query import AuditQueryMode
from exporter.domain.backfill_order import (
    PIECE_PAGES,
    PRESENT_HOURS,
    Piece,
    PieceKind,
    backfill_start,
    backlog_requests,
    baseline_hours,
    gaps,
    next_piece,
    piece_plan,
    present_start,
)
from exporter.domain.history import DAY, HOUR, Interval
from exporter.graph.audit import AuditPage
from exporter.graph.budget import AuditPriority
from exporter.graph.client import GraphClient
from exporter.graph.credentials import StaticTokenCredential
from exporter.graph.retry import RetryPolicy
from exporter.ingest.audit_poller import BACKFILL_CHUNK, AuditPoller
from exporter.ingest.poller import CollectorStatus
from exporter.simulator.app import RunningSimulator, running_simulator
from exporter.simulator.truth import audit_counts
from exporter.store.database import Store
from tests.harness import counted

NOW = 1_796_418_000.0 + 1234.5  # 2026-12-04T21:20:34.5Z
DAYS = 2


def _read_all(wanted: Interval, now: float) -> list[Piece]:
    coverage: list[Interval] = []
    pieces: list[Piece] = []
    while (piece := next_piece(wanted, coverage, now, BACKFILL_CHUNK)) is not None:
        assert piece.start < piece.end
        assert not any(s < piece.end and piece.start < e for s, e in coverage), "overlap"
        pieces.append(piece)
        coverage.append((piece.start, piece.end))
        assert len(pieces) < 1000
    assert gaps(wanted, coverage) == []
    return pieces


def test_pieces_cover_the_past_once_baseline_hours_first_then_newest_to_oldest() -> None:
    wanted = (backfill_start(NOW, 30 * DAY), present_start(NOW))
    assert wanted[0] % HOUR == 0
    assert wanted[1] == 1_796_418_000.0 - PRESENT_HOURS * HOUR
    pieces = _read_all(wanted, NOW)
    assert sum(p.end - p.start for p in pieces) == wanted[1] - wanted[0]
    kinds = [p.kind for p in pieces]
    first_rest = kinds.index(PieceKind.REST)
    assert set(kinds[:first_rest]) == {PieceKind.BASELINE}
    assert PieceKind.BASELINE not in kinds[first_rest:]
    baseline = pieces[:first_rest]
    # The same hours yesterday (the next, current and previous hour) come first, in one piece.
    current = NOW - NOW % HOUR
    assert (baseline[0].start, baseline[0].end) == (current - HOUR - DAY, current + 2 * HOUR - DAY)
    baseline_read = {hour for p in baseline for hour in range(int(p.start), int(p.end), int(HOUR))}
    assert baseline_read == {h for h in baseline_hours(NOW) if h >= wanted[0]}
    assert len(baseline) < len(baseline_read)
    starts = [p.start for p in pieces[first_rest:]]
    assert starts == sorted(starts, reverse=True)
    assert all(p.end - p.start <= BACKFILL_CHUNK for p in pieces)
    assert all(p.start % HOUR == 0 and p.end % HOUR == 0 for p in pieces)


def test_a_half_read_piece_is_finished_before_anything_else() -> None:
    wanted = (NOW - NOW % HOUR - 10 * DAY, present_start(NOW))
    half = NOW - NOW % HOUR - 5 * DAY + 1234.25  # a page's last event time
    coverage = [(NOW - NOW % HOUR - 5 * DAY, half), (NOW - NOW % HOUR - 4 * DAY, wanted[1])]
    piece = next_piece(wanted, coverage, NOW, BACKFILL_CHUNK)
    assert piece == Piece(half, NOW - NOW % HOUR - 5 * DAY + HOUR, PieceKind.PARTIAL)


class RecordingSource:
    """The real GraphClient, with the windows the poller asked for recorded in order."""

    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph
        self.windows: list[tuple[float, float, AuditPriority]] = []

    def audit_pages(
        self,
        start: float,
        end: float,
        mode: AuditQueryMode = AuditQueryMode.NARROW,
        priority: AuditPriority = AuditPriority.LIVE,
    ) -> AsyncGenerator[AuditPage, None]:
        self.windows.append((start, end, priority))
        return self.graph.audit_pages(start, end, mode, priority)


async def _trailing(store: Store, now: float) -> dict[str, int]:
    counts = await store.call(store.counts_between, "t", now - HOUR, now)
    return counted({series.value: n for series, n in counts.items()})


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(
        "steady",
        overrides={
            "tenant": {"users": 500, "devices": 80, "dynamic_groups": 12},
            "load": {"user_updates_per_hour": 700, "device_updates_per_hour": 40},
        },
        speed=0,
        throttle=False,
        history_days=DAYS + 1,
        start=NOW,
    ) as running:
        yield running


async def test_a_fresh_install_reads_the_present_first_and_counts_every_event_once(
    sim: RunningSimulator, store: Store
) -> None:
    graph = GraphClient(
        root_url=sim.base_url,
        credential=StaticTokenCredential("any"),
        scopes=["https://graph.microsoft.com/.default"],
        audit_requests_per_10s=1000,
        retry=RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05),
    )
    source = RecordingSource(graph)
    now = sim.clock.now()
    present = present_start(now)
    trailing_at_present: list[dict[str, int]] = []

    async def on_present() -> None:
        # What the signals read once the live window is in, before any of the past.
        trailing_at_present.append(await _trailing(store, now))

    poller = AuditPoller(
        tenant="t",
        graph=source,
        store=store,
        clock=sim.clock,
        interval=60,
        lateness=1800,
        backfill=DAYS * DAY,
        on_present=on_present,
    )
    try:
        await poller.poll(CollectorStatus("audit"))
    finally:
        await graph.close()

    first_start, first_end, first_priority = source.windows[0]
    assert (first_start, first_end, first_priority) == (present, now, AuditPriority.LIVE)
    # The trailing hour was complete before any of the past was read: the backfill did not
    # change it.
    trailing_at_end = await _trailing(store, now)
    assert trailing_at_present == [trailing_at_end]
    assert sum(trailing_at_end.values()) > 100, "the trailing hour had events to count"
    priorities = [priority for _, _, priority in source.windows[1:]]
    assert priorities == sorted(priorities)  # baseline hours before the rest
    assert priorities[0] is AuditPriority.BASELINE
    rest = [start for start, _, priority in source.windows if priority is AuditPriority.BACKFILL]
    assert rest == sorted(rest, reverse=True)

    state = await store.call(store.audit_state, "t")
    assert state is not None
    assert state.backfill_start == backfill_start(now, DAYS * DAY)
    truth = audit_counts(sim.tenant, since=state.backfill_start, visible_by=now)
    totals = await store.call(store.totals, "t")
    # Without rules or a group listing the relevance of triggers is unknown and the dynamic
    # changes wait for a listing (undecided): the same events, counted once each.
    undecided = await store.call(store.undecided_count, "t")
    assert sum(counted(totals).values()) + undecided == sum(truth["series"].values())
    assert totals.get("duplicate", 0) == 0
    assert await store.call(store.coverage, "t") == [(state.backfill_start, now)]
    assert poller.caught_up


def test_rest_pieces_hold_enough_pages_that_the_partial_last_one_is_a_small_part() -> None:
    chunk, baseline_first = piece_plan(1_260.0, 1_000)
    assert chunk / HOUR * 1_260 >= PIECE_PAGES * 1_000
    assert baseline_first
    assert piece_plan(30_000.0, 1_000)[0] == BACKFILL_CHUNK  # a busy tenant: 6 h pieces


def test_the_backlog_is_the_missing_time_in_pages_at_the_present_rate() -> None:
    wanted = (0.0, 10 * HOUR)
    coverage = [(0.0, 2 * HOUR), (6 * HOUR, 10 * HOUR)]
    assert backlog_requests(wanted, coverage, 2_500.0, 1_000) == 10.0
    assert backlog_requests(wanted, coverage, None, 1_000) == 4.0  # hours, the rate unknown
    assert backlog_requests(wanted, coverage, 1.0, 1_000) == 1.0  # a request at least
    assert backlog_requests(wanted, [wanted], 2_500.0, 1_000) == 0.0
