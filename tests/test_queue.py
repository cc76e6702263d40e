"""The work still waiting (#23): the queue's front, the waiting age and the drain estimate."""

from __future__ import annotations

from dataclasses import replace

from exporter.domain.events import Series
from exporter.domain.history import HOUR, MINUTE
from exporter.domain.lag import LagSummary
from exporter.domain.queue import (
    CAPACITY_MARGIN,
    MIN_WAITING_TRIGGERS,
    WaitingTriggers,
    estimate_queue,
    measured_capacity,
    queue_front,
)
from exporter.domain.settings import Thresholds
from exporter.domain.signals import processing_lag_signal
from tests.domain_builders import MONDAY, HistoryBuilder

NOW = MONDAY + 10 * HOUR


def test_one_pair_matched_to_a_later_trigger_does_not_move_the_front() -> None:
    # Forty changes in the last five minutes answer triggers from two hours ago; one object,
    # changed twice while queued, paired its change with its later trigger.
    pairs = [(NOW - 240 + k, NOW - 2 * HOUR + k) for k in range(40)]
    pairs.append((NOW - 10, NOW - 20 * MINUTE))
    front = queue_front(sorted(pairs), NOW)
    assert front is not None
    assert NOW - 2 * HOUR <= front <= NOW - 2 * HOUR + 40


def test_the_oldest_waiting_age_and_the_drain_at_the_recent_rate() -> None:
    history = HistoryBuilder(MONDAY - HOUR, NOW)
    # 600 relevant triggers an hour from 2 h ago: ten a minute.
    for minute in range(120):
        history.add(Series.TRIGGER_USER, NOW - 2 * HOUR + minute * MINUTE, 10)
    # The front moves 10 minutes of triggers in 15 minutes: 100 triggers, 400 an hour.
    pairs = tuple(
        (NOW - 20 * MINUTE + m * MINUTE, NOW - 2 * HOUR + m * 10 * MINUTE / 15) for m in range(21)
    )
    front = NOW - 2 * HOUR + 20 * 10 * MINUTE / 15
    waiting = WaitingTriggers(front, 1100, front, pairs)
    estimate = estimate_queue(waiting, history.build(), now=NOW)
    assert estimate.oldest_waiting_seconds == NOW - front
    assert estimate.rate_per_hour is not None
    assert abs(estimate.rate_per_hour - 400) < 30
    assert estimate.drain_seconds is not None
    assert abs(estimate.drain_seconds - 1100 / 400 * HOUR) < 0.1 * 1100 / 400 * HOUR
    # With every group paused the queue skips the work: nothing waits.
    paused = estimate_queue(waiting, history.build(), now=NOW, groups_on=0)
    assert paused.waiting_triggers == 0
    assert paused.drain_seconds == 0


def test_a_few_waiting_triggers_say_nothing() -> None:
    few = WaitingTriggers(NOW - HOUR, MIN_WAITING_TRIGGERS - 1, NOW - 5 * HOUR)
    estimate = estimate_queue(few, HistoryBuilder(MONDAY - HOUR, NOW).build(), now=NOW)
    assert estimate.oldest_waiting_seconds is None


def test_processing_lag_takes_the_oldest_waiting_age_when_finished_work_trails() -> None:
    history = HistoryBuilder(MONDAY - HOUR, NOW).build()
    # The queue's last change, a minute ago, answered a trigger of five hours ago.
    waiting = WaitingTriggers(
        NOW - 5 * HOUR, 5000, NOW - 5 * HOUR, ((NOW - MINUTE, NOW - 5 * HOUR),)
    )
    finished = LagSummary(HOUR, 200, 1800.0, 2400.0)
    signal = processing_lag_signal(
        finished, Thresholds(), estimate_queue(waiting, history, now=NOW)
    )
    assert signal.active
    assert signal.observed == 5 * HOUR
    assert "oldest of 5,000 waiting changes 5h" in signal.detail
    alone = processing_lag_signal(finished, Thresholds())
    assert not alone.active
    assert alone.observed == 1800.0


def _night_job() -> tuple[HistoryBuilder, WaitingTriggers]:
    """A night job: 300 relevant triggers from 20 to 5 minutes ago (20 a minute). Its last
    membership change, 5 minutes ago, answered a trigger of 10 minutes ago; the 100 triggers
    after it moved nothing, so no later change moves the front."""
    history = HistoryBuilder(MONDAY - HOUR, NOW)
    for minute in range(15):
        history.add(Series.TRIGGER_USER, NOW - 20 * MINUTE + minute * MINUTE, 20)
    front = NOW - 10 * MINUTE
    pairs = tuple((NOW - 5 * MINUTE - k, front - k) for k in range(5))[::-1]
    pending = tuple(front + 3 + k * 3 for k in range(100))
    return history, WaitingTriggers(front, len(pending), pending[0], pairs, pending_at=pending)


def test_a_night_jobs_triggers_that_moved_nothing_stop_waiting_once_the_capacity_passed_them() -> (
    None
):
    history, waiting = _night_job()
    # A capacity the bound reads as 600 triggers an hour: the 5 minutes since the last change
    # pass 600 x 5/60 = 50 of the job's triggers (2.5 minutes of them).
    estimate = estimate_queue(
        replace(waiting, capacity_per_hour=600.0 / CAPACITY_MARGIN), history.build(), now=NOW
    )
    assert estimate.waiting_triggers == 50
    # With twice that capacity, the job's triggers are all passed: nothing waits.
    passed = estimate_queue(
        replace(waiting, capacity_per_hour=1200.0 / CAPACITY_MARGIN), history.build(), now=NOW
    )
    assert passed.waiting_triggers == 0
    assert not passed.judged
    assert passed.drain_seconds == 0


def test_without_a_measured_capacity_the_front_is_not_advanced() -> None:
    history, waiting = _night_job()
    estimate = estimate_queue(waiting, history.build(), now=NOW)
    assert estimate.waiting_triggers == 100
    assert estimate.oldest_waiting_seconds == NOW - waiting.pending_at[0]  # type: ignore[index]


def test_a_storms_queue_is_still_seen_under_the_capacity_bound() -> None:
    history = HistoryBuilder(MONDAY - HOUR, NOW)
    # 100 triggers a minute for 2 hours; the front, moved by changes up to a minute ago, is
    # at 90 minutes ago: 9,000 wait. The capacity (3,000 an hour as the bound reads it) passes
    # 50 more in that minute.
    for minute in range(120):
        history.add(Series.TRIGGER_USER, NOW - 2 * HOUR + minute * MINUTE, 100)
    front = NOW - 90 * MINUTE
    pairs = tuple((NOW - MINUTE - k, front - k) for k in range(30))[::-1]
    pending = tuple(front + 0.6 * (k + 1) for k in range(9000))
    waiting = WaitingTriggers(
        front,
        len(pending),
        pending[0],
        pairs,
        pending_at=pending,
        capacity_per_hour=3000.0 / CAPACITY_MARGIN,
    )
    estimate = estimate_queue(waiting, history.build(), now=NOW)
    assert estimate.waiting_triggers == 9000 - 50
    assert estimate.oldest_waiting_seconds is not None
    assert abs(estimate.oldest_waiting_seconds - 90 * MINUTE) <= 31


def test_the_capacity_is_measured_while_a_queue_is_judged_before_any_bound() -> None:
    history, waiting = _night_job()
    pairs = tuple((NOW - 20 * MINUTE + m * MINUTE, NOW - 20 * MINUTE + m * 30) for m in range(16))
    judged = replace(waiting, pairs=pairs, capacity_per_hour=100_000.0)
    rate = measured_capacity(judged, history.build(), now=NOW)
    assert rate is not None
    assert (
        rate
        == estimate_queue(
            replace(judged, capacity_per_hour=None), history.build(), now=NOW
        ).rate_per_hour
    )
    few = replace(judged, count=MIN_WAITING_TRIGGERS - 1)
    assert measured_capacity(few, history.build(), now=NOW) is None


def test_a_stale_front_without_a_measured_capacity_says_nothing() -> None:
    """A fresh install of a quiet tenant: its last change six hours ago, 36 triggers since that
    moved nothing. Without a measured capacity that is no evidence of a queue; with one, the
    capacity bound judges it; with no finished work at all there is no front to judge from."""
    history = HistoryBuilder(MONDAY - HOUR, NOW)
    for hour in range(6):
        history.add(Series.TRIGGER_USER, NOW - 6 * HOUR + hour * HOUR + MINUTE, 6)
    front = NOW - 6 * HOUR - 2 * MINUTE
    pairs = ((NOW - 6 * HOUR, front),)
    quiet = WaitingTriggers(front, 36, NOW - 6 * HOUR + MINUTE, pairs)
    assert estimate_queue(quiet, history.build(), now=NOW).oldest_waiting_seconds is None
    unknown = WaitingTriggers(None, 36, NOW - HOUR, ())
    assert estimate_queue(unknown, history.build(), now=NOW).oldest_waiting_seconds is None
    # The same triggers an hour after the last change are still believed (a queue that stalled).
    recent = WaitingTriggers(NOW - HOUR, 36, NOW - 50 * MINUTE, ((NOW - 50 * MINUTE, NOW - HOUR),))
    assert estimate_queue(recent, history.build(), now=NOW).oldest_waiting_seconds == 50 * MINUTE
