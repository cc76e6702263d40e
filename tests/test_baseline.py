"""Baseline: seasonal medians with fallbacks, gaps versus zeros, the floor, interpolation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.baseline import Baseline, BaselineMethod, Measure, deviation_ratio
from exporter.domain.events import Series
from exporter.domain.history import DAY, HOUR, CountHistory
from tests.domain_builders import MONDAY, WEEK, HistoryBuilder

USER = Series.TRIGGER_USER
FLOOR = 20.0


def user_baseline(history: CountHistory, floor: float = FLOOR) -> Baseline:
    return Baseline(history, Measure.USER_CHANGES, floor)


def hour_of_week_rate(h: int) -> int:
    """A distinct count for every hour of the week, so a wrong slot shows."""
    return 100 + ((h - MONDAY) // HOUR) % (7 * 24)


@pytest.mark.parametrize(
    ("weeks", "counts", "method", "expected"),
    [
        pytest.param(4, [100, 100, 5000, 100], BaselineMethod.HOUR_OF_WEEK, 100, id="spike"),
        pytest.param(4, [100, 200, 300, 400], BaselineMethod.HOUR_OF_WEEK, 250, id="median-of-4"),
        pytest.param(3, [100, 5000, 300], BaselineMethod.HOUR_OF_WEEK, 300, id="three-weeks"),
        pytest.param(4, [0, 0, 0, 0], BaselineMethod.HOUR_OF_WEEK, FLOOR, id="zeros-floor"),
        pytest.param(4, [2, 3, 2, 3], BaselineMethod.HOUR_OF_WEEK, FLOOR, id="small-floor"),
    ],
)
def test_hour_of_week_median_ignores_a_spike_and_respects_the_floor(
    weeks: int, counts: list[int], method: BaselineMethod, expected: float
) -> None:
    target = MONDAY + 10 * HOUR
    b = HistoryBuilder(target - weeks * WEEK, target)
    for k, n in enumerate(counts, start=1):
        b.hour(USER, target - k * WEEK, n)
    result = user_baseline(b.build()).hour(target)
    assert result.method is method
    assert result.expected == expected
    assert result.samples == weeks


def test_no_history_has_no_baseline() -> None:
    empty = CountHistory({}, {}, ())
    result = user_baseline(empty).hour(MONDAY)
    assert result.method is BaselineMethod.NONE
    assert result.expected is None
    assert user_baseline(empty).trailing_hour(MONDAY + 1800).expected is None


def test_short_history_falls_back_to_hour_of_day_then_recent_hours() -> None:
    target = MONDAY + 14 * HOUR
    # 10 days: only 1 previous same hour-of-week, but 7 previous same hours-of-day.
    ten_days = HistoryBuilder(target - 10 * DAY, target).rate(
        USER, lambda h: 50 + (h % DAY) // HOUR
    )
    result = user_baseline(ten_days.build()).hour(target)
    assert (result.method, result.samples, result.expected) == (BaselineMethod.HOUR_OF_DAY, 7, 64)
    # 2 days: 2 same hours-of-day (< 3), 48 recent hours (>= 6).
    two_days = HistoryBuilder(target - 2 * DAY, target).rate(USER, 40)
    result = user_baseline(two_days.build()).hour(target)
    assert (result.method, result.samples, result.expected) == (BaselineMethod.RECENT_HOURS, 48, 40)
    # 5 hours: not enough for anything.
    five_hours = HistoryBuilder(target - 5 * HOUR, target).rate(USER, 40)
    assert user_baseline(five_hours.build()).hour(target).method is BaselineMethod.NONE


def test_gaps_are_not_zeros() -> None:
    target = MONDAY + 9 * HOUR
    zeros = HistoryBuilder(target - 4 * WEEK, target).rate(USER, 300)
    gaps = HistoryBuilder(target - 4 * WEEK, target).rate(USER, 300)
    for k in (1, 2):  # two of the four weekly samples: quiet hours vs hours nobody saw
        zeros.gap(target - k * WEEK, target - k * WEEK + HOUR)
        zeros.coverage.append((target - k * WEEK, target - k * WEEK + HOUR))
        zeros.coverage.sort()
        gaps.gap(target - k * WEEK, target - k * WEEK + HOUR)
    with_zeros = user_baseline(zeros.build()).hour(target)
    assert with_zeros.method is BaselineMethod.HOUR_OF_WEEK
    assert with_zeros.raw == 150  # median of 0, 0, 300, 300
    with_gaps = user_baseline(gaps.build()).hour(target)
    assert with_gaps.method is BaselineMethod.HOUR_OF_DAY  # 2 weekly samples are too few
    assert with_gaps.raw == 300


def test_week_wrap_sunday_to_monday_uses_each_slot_and_interpolates() -> None:
    b = HistoryBuilder(MONDAY - 4 * WEEK, MONDAY + HOUR).rate(USER, hour_of_week_rate)
    baseline = user_baseline(b.build())
    sunday_23 = baseline.hour(MONDAY - HOUR)
    monday_00 = baseline.hour(MONDAY)
    assert sunday_23.method is monday_00.method is BaselineMethod.HOUR_OF_WEEK
    assert sunday_23.expected == 100 + 167
    assert monday_00.expected == 100
    # The trailing hour at Monday 00:15 is 3/4 Sunday 23:xx and 1/4 Monday 00:xx.
    assert baseline.trailing_hour(MONDAY + 900).expected == pytest.approx(0.75 * 267 + 0.25 * 100)
    # Exactly on the hour, the trailing hour is the whole previous clock hour.
    assert baseline.trailing_hour(MONDAY).expected == 267


def test_hour_must_be_aligned_and_ratio_needs_a_baseline() -> None:
    with pytest.raises(ValueError, match="start of a clock hour"):
        user_baseline(CountHistory({}, {}, ())).hour(MONDAY + 1)
    assert deviation_ratio(100, 20) == 5
    assert deviation_ratio(100, None) is None
    assert deviation_ratio(0, 0.0) is None


def test_bad_history_input_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="not a multiple of 3600"):
        CountHistory({}, {USER: {MONDAY + 5: 1}}, ())
    with pytest.raises(ValueError, match="ends before it starts"):
        CountHistory({}, {}, ((MONDAY, MONDAY - 1),))


def test_from_rows_merges_touching_coverage() -> None:
    history = CountHistory.from_rows(
        [("trigger_user", MONDAY, 3)],
        [("trigger_user", MONDAY, 3), ("trigger_user", MONDAY, 2)],
        [(MONDAY, MONDAY + 1800), (MONDAY + 1800, MONDAY + HOUR)],
    )
    assert history.coverage_start == MONDAY
    assert history.coverage_end == MONDAY + HOUR
    assert len(history.coverage) == 1
    assert history.hour_count((USER,), MONDAY) == 5


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.one_of(st.none(), st.integers(0, 10_000)), min_size=28, max_size=28),
    floor=st.floats(0, 500),
    offset=st.integers(0, 7 * 24 - 1),
)
def test_baseline_is_never_below_the_floor(
    counts: list[int | None], floor: float, offset: int
) -> None:
    """Daily samples of one hour over 4 weeks; None is a gap."""
    target = MONDAY + offset * HOUR
    coverage, hourly = [], {}
    for k, n in enumerate(counts, start=1):
        h = target - k * DAY
        if n is not None:
            coverage.append((h, h + HOUR))
            hourly[h] = n
    history = CountHistory({}, {USER: hourly}, tuple(coverage))
    result = user_baseline(history, floor).hour(target)
    if result.expected is not None:
        assert result.expected >= floor
        assert result.raw is not None
        assert result.expected == max(result.raw, floor)
