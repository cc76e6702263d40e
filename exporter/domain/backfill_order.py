"""The order a backfill reads the past in: the present first.

On a fresh install of a big tenant the backfill takes Graph's budget for an hour or more
(30 days, 1.5 million events: 3,000 s at 5 requests per 10 s whatever the client). Read oldest
first, the current hour - the one that says whether to pause now - would come last. So the live
window reads the current and the previous six clock hours first (`present_start`), and the
backfill then reads, one piece at a time:

1. `partial`: the rest of a piece a failed read left half done (its seen ids are kept until it
   is finished, so it is read before anything else);
2. `baseline`: the hours the baseline of the current, previous and next hour reads
   (`exporter.domain.baseline`: the same hour on the previous 7 days and 4 weeks), newest first,
   the three consecutive hours of one day or week in one piece;
3. `rest`: everything else, newest to oldest, in pieces of at most `chunk` seconds.

A window costs a request however few events it holds, and its last page is partly empty:
`piece_plan` sizes the pieces by the rate the live window found (`PIECE_PAGES` pages' worth at
least, so that the partial last page is a small part of the piece's requests), and leaves the
baseline phase out for a tenant too quiet for pieces of one to three hours to be worth their
requests (its whole month is a few pages).

Pieces are half-open, [start, end), on clock-hour boundaries, and never overlap what is covered:
each event is read by exactly one piece (a piece that resumes a half-done one starts at the last
event time read, inclusive, and relies on the seen ids for the events at that very instant).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from exporter.domain.baseline import DAYS_OF_HISTORY, WEEKS_OF_HISTORY
from exporter.domain.history import DAY, HOUR, WEEK, Interval, floor_to


class PieceKind(StrEnum):
    PARTIAL = "partial"
    BASELINE = "baseline"
    REST = "rest"


@dataclass(frozen=True, slots=True)
class Piece:
    start: float
    end: float
    kind: PieceKind


PRESENT_HOURS = 6
"""Clock hours before the current one that the first live window reads, in time order. The
trailing hour needs two; the processing queue's reading (`exporter.domain.queue`) needs every
trigger still waiting and the changes that passed it, in event time order, for the lag
estimator pairs each change with the triggers before it: read newest first, a change comes
before its trigger. Six hours hold a queue past the 4 h page of `processing_lag` (the drill's
was 4.6 h) for about six times the requests of two."""


def present_start(now: float) -> float:
    """Start of the live window on a fresh install (or after a gap): `PRESENT_HOURS` clock hours
    before the current one, read first and in time order."""
    return floor_to(now, HOUR) - PRESENT_HOURS * HOUR


def backfill_start(now: float, backfill_seconds: float) -> float:
    """The oldest instant a fresh install reads back to: on an hour boundary (at most an hour
    short of `backfill_seconds`), so that every piece is whole hours."""
    return math.ceil((now - backfill_seconds) / HOUR) * HOUR


def gaps(wanted: Interval, coverage: Iterable[Interval]) -> list[Interval]:
    """The parts of `wanted` ([start, end)) that no coverage interval holds, oldest first."""
    start, end = wanted
    found: list[Interval] = []
    cursor = start
    for c_start, c_end in sorted(coverage):
        if c_end <= cursor:
            continue
        if c_start >= end:
            break
        if c_start > cursor:
            found.append((cursor, min(c_start, end)))
        cursor = max(cursor, c_end)
        if cursor >= end:
            break
    if cursor < end:
        found.append((cursor, end))
    return found


def baseline_hours(now: float) -> list[float]:
    """Starts of the clock hours the baselines of the previous, current and next hour read,
    newest first."""
    current = floor_to(now, HOUR)
    hours: set[float] = set()
    for hour in (current - HOUR, current, current + HOUR):
        hours.update(hour - k * DAY for k in range(1, DAYS_OF_HISTORY + 1))
        hours.update(hour - k * WEEK for k in range(1, WEEKS_OF_HISTORY + 1))
    return sorted(hours, reverse=True)


def piece_plan(events_per_hour: float | None, page_size: int) -> tuple[float, bool]:
    """(longest piece, whether the baseline's hours go first) for a tenant whose present holds
    `events_per_hour` (None: not known). Every window costs a request however few events it
    holds, so pieces are at least `PIECE_PAGES` pages' worth long: a quiet tenant's month is a
    few requests, newest first, and baseline pieces of one to three hours would cost it more
    than they save."""
    if events_per_hour is None:
        return DEFAULT_CHUNK, True
    if events_per_hour <= 0:
        return math.inf, False
    hours = max(DEFAULT_CHUNK / HOUR, math.ceil(PIECE_PAGES * page_size / events_per_hour))
    return hours * HOUR, events_per_hour >= page_size / 2


DEFAULT_CHUNK = 6 * HOUR
PIECE_PAGES = 12
"""A rest piece holds this many pages' worth of events at least: its partly empty last page is
then about half a page in twelve of its requests (6 h pieces of the fleet benchmark's largest
tenant, ~1,260 events an hour, took 8 requests for 7.6 pages), and the largest tenant, bound by
its own 5 requests per 10 s, pays every extra request in time."""


def next_piece(
    wanted: Interval,
    coverage: Sequence[Interval],
    now: float,
    chunk: float = DEFAULT_CHUNK,
    *,
    baseline_first: bool = True,
) -> Piece | None:
    """What to read next (None: `wanted` is covered)."""
    missing = gaps(wanted, coverage)
    if not missing:
        return None
    for start, end in missing:
        if start > wanted[0] and start % HOUR:
            return Piece(start, min(end, floor_to(start, HOUR) + HOUR), PieceKind.PARTIAL)
    hours = baseline_hours(now) if baseline_first else []
    for hour in hours:
        for start, end in missing:
            if start < hour + HOUR and hour < end:
                piece_start = max(start, hour)
                # The older baseline hours next to it (the same day's previous and current
                # hour) go in the same request: one partial last page instead of three.
                while piece_start == floor_to(piece_start, HOUR) and (
                    piece_start - HOUR in hours and piece_start - HOUR >= start
                ):
                    piece_start -= HOUR
                return Piece(piece_start, min(end, hour + HOUR), PieceKind.BASELINE)
    start, end = missing[-1]
    piece_start = start if end - start <= chunk else max(start, floor_to(end - chunk, HOUR))
    if piece_start >= end:  # a gap shorter than an hour that ends off a boundary
        piece_start = start
    return Piece(piece_start, end, PieceKind.REST)


def backlog_requests(
    wanted: Interval,
    coverage: Iterable[Interval],
    events_per_hour: float | None,
    page_size: int,
) -> float:
    """About how many requests the rest of the backfill of `wanted` takes (0: none), for the
    app budget's makespan-first order (`exporter.graph.budget`): the missing time at the rate
    the present showed, in pages; in hours when the rate is not known yet."""
    missing = sum(end - start for start, end in gaps(wanted, coverage))
    if missing <= 0:
        return 0.0
    if events_per_hour is None:
        return missing / HOUR
    return max(1.0, missing / HOUR * events_per_hour / page_size)


def covered_seconds(wanted: Interval, coverage: Iterable[Interval]) -> float:
    """How much of `wanted` is covered (for the backfill's progress)."""
    return (wanted[1] - wanted[0]) - sum(end - start for start, end in gaps(wanted, coverage))


__all__ = [
    "Piece",
    "PieceKind",
    "backfill_start",
    "backlog_requests",
    "baseline_hours",
    "covered_seconds",
    "gaps",
    "next_piece",
    "piece_plan",
    "present_start",
]
