"""The work still waiting (#23): the queue's front, the waiting age and the drain estimate."""

from __future__ import annotations

from exporter.domain.events import Series
from exporter.domain.history import HOUR, MINUTE
from exporter.domain.lag import LagSummary
from exporter.domain.queue import (
    MIN_WAITING_TRIGGERS,
    WaitingTriggers,
    estimate_queue,
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
    waiting = WaitingTriggers(NOW - 5 * HOUR, 5000, NOW - 5 * HOUR)
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
