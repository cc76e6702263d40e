"""The single entry point: a storm, a pause and a recovery, and the JSON it presents."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import structlog
from jsonschema import Draft202012Validator, FormatChecker

from exporter.domain.assessment import TenantAssessment, TenantObservations, assess_tenant
from exporter.domain.baseline import Measure
from exporter.domain.episode import EpisodeSource
from exporter.domain.events import ObjectType, Series
from exporter.domain.groups import LedgerEpisode, MembershipProcessingStatus
from exporter.domain.history import HOUR, MINUTE, CountHistory
from exporter.domain.lag import LagSample
from exporter.domain.readiness import CollectorHealth, ReadinessState
from exporter.domain.settings import ResumeSettings, Thresholds
from exporter.domain.signals import PauseReason
from exporter.readiness.wire import Assessment
from exporter.runtime.assessor import log_changes
from tests.domain_builders import MONDAY, WEEK, HistoryBuilder, gid, group

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "docs" / "readiness.schema.json").read_text("utf-8")
)
STORM = MONDAY + 9 * HOUR
T, R = Thresholds(), ResumeSettings()
CRITICAL = (gid(9000), gid(9001))


def collectors(now: float) -> tuple[CollectorHealth, ...]:
    names = ("audit", "groups", "administrative_units", "critical_status")
    return tuple(CollectorHealth(n, True, now - 60) for n in names)


def tenant_history(end: float, storm_until: float, paused_from: float | None) -> CountHistory:
    """Normal: 100 user and 40 device changes, 200 membership changes an hour. From STORM a
    device roll-out (3,600 an hour) until `storm_until`, driving 24,000 membership changes an
    hour until the pause, then almost none."""
    b = (
        HistoryBuilder(MONDAY - 4 * WEEK, end)
        .rate(Series.TRIGGER_USER, 100)
        .rate(Series.TRIGGER_DEVICE, 40)
    )
    b.rate(Series.DYNAMIC_ADD, 200, MONDAY - 4 * WEEK, STORM)
    b.rate(Series.TRIGGER_DEVICE, 3600, STORM, min(end, storm_until))
    b.rate(Series.DYNAMIC_ADD, 24_000, STORM, min(end, paused_from or end))
    if paused_from is not None:
        b.rate(Series.DYNAMIC_ADD, 2, paused_from, end)
    return b.build()


def groups(paused_at: float | None) -> tuple:  # type: ignore[type-arg]
    regular = tuple(group(i, paused_since=paused_at) for i in range(1, 1201))
    critical = tuple(
        group(n, critical=True, status=MembershipProcessingStatus.SUCCEEDED, name=f"crit {n}")
        for n in range(9000, 9002)
    )
    parked = (group(8000, paused_since=MONDAY - 300 * 86400),)
    return regular + critical + parked


def observe(now: float, *, paused_at: float | None, storm_until: float) -> TenantObservations:
    return TenantObservations(
        tenant="contoso",
        history=tenant_history(now, storm_until, paused_at),
        groups=groups(paused_at),
        group_last_change={gid(i): min(now, (paused_at or now)) - 60 for i in range(1, 801)},
        ledger=(
            ()
            if paused_at is None
            else (
                LedgerEpisode(
                    "ep-1",
                    paused_at,
                    "alice@contoso.example",
                    "device roll-out storm",
                    tuple(gid(i) for i in range(1, 1201)),
                    (gid(8000),),
                ),
            )
        ),
        collectors=collectors(now),
        audit_watermark=now - 10 * MINUTE,
        lag_samples=tuple(
            LagSample(now - i * 30, 5 * HOUR + i, ObjectType.DEVICE) for i in range(50)
        ),
        critical_priority=CRITICAL,
    )


def validate(assessment: TenantAssessment) -> dict[str, Any]:
    # What the web layer sends: the wire format, encoded, and back.
    round_trip = orjson.loads(msgspec.json.encode(Assessment.of(assessment)))
    Draft202012Validator(SCHEMA, format_checker=FormatChecker()).validate(round_trip)
    return round_trip  # type: ignore[no-any-return]


def test_during_the_storm_a_pause_is_warranted_and_resume_is_moot() -> None:
    now = STORM + 90 * MINUTE
    a = assess_tenant(
        observe(now, paused_at=None, storm_until=now), thresholds=T, resume=R, now=now
    )
    active = {s.reason for s in a.pause_signals if s.active}
    assert active == {
        PauseReason.MEMBERSHIP_CHANGES,
        PauseReason.GROUPS_CHANGED,
        PauseReason.TRIGGER_RATE,
        PauseReason.PROCESSING_LAG,
    }
    assert a.pause_warranted
    assert a.readiness.state is ReadinessState.NOT_PAUSED
    assert a.episode is None
    devices = a.rate(Measure.DEVICE_CHANGES)
    assert devices.deviation_ratio == pytest.approx(3640 / 40, rel=0.01)
    doc = validate(a)
    assert doc["evaluated_at"] == "2026-11-30T10:30:00Z"
    assert doc["plan"]["excluded"]["no_pause_episode"] == 1  # the parked group
    assert doc["groups_changed_last_hour"] == 800


def test_after_the_pause_and_recovery_resume_is_ready_with_a_plan() -> None:
    paused_at = STORM + 2 * HOUR
    storm_until = STORM + 20 * HOUR
    now = paused_at + 26 * HOUR
    obs = observe(now, paused_at=paused_at, storm_until=storm_until)
    a = assess_tenant(obs, thresholds=T, resume=R, now=now)
    # The lag samples given are old news (5 h), but still in the window: the only signal.
    assert {s.reason for s in a.pause_signals if s.active} == {PauseReason.PROCESSING_LAG}
    assert a.readiness.state is ReadinessState.READY, a.readiness.detail
    assert a.readiness.ready
    assert a.episode is not None
    assert a.episode.source is EpisodeSource.LEDGER
    assert len(a.episode.group_ids) == 1200
    assert a.episode.paused_before == (gid(8000),)
    assert (a.plan.critical_groups, a.plan.other_groups, a.plan.batches) == (0, 1200, 12)
    assert a.plan.estimated_duration_seconds == 11 * R.batch_interval
    doc = validate(a)
    assert doc["readiness"]["exit_code"] == 0
    assert doc["episode"]["started_by"] == "alice@contoso.example"


def test_not_ready_while_the_minimum_pause_runs_and_the_storm_lasts() -> None:
    paused_at = STORM + 2 * HOUR
    now = paused_at + 10 * HOUR
    obs = observe(now, paused_at=paused_at, storm_until=now)
    a = assess_tenant(obs, thresholds=T, resume=R, now=now)
    blocked = {c.condition.value for c in a.readiness.conditions if c.blocks}
    assert blocked == {"minimum_pause", "trigger_rate_recovery"}
    assert a.readiness.state is ReadinessState.NOT_READY
    validate(a)


def test_nothing_known_yet_still_gives_a_complete_valid_answer() -> None:
    now = MONDAY
    empty = TenantObservations(tenant="new", history=CountHistory({}, {}, ()), groups=())
    a = assess_tenant(empty, thresholds=T, resume=R, now=now)
    assert a.readiness.state is ReadinessState.CANNOT_TELL
    assert not a.pause_warranted
    doc = validate(a)
    assert doc["audit_watermark"] is None
    assert doc["rates"]["membership_changes"]["baseline_method"] == "none"


def test_same_inputs_same_result_and_the_result_is_immutable() -> None:
    now = STORM + 90 * MINUTE
    obs = observe(now, paused_at=None, storm_until=now)
    a = assess_tenant(obs, thresholds=T, resume=R, now=now)
    b = assess_tenant(obs, thresholds=T, resume=R, now=now)
    assert a == b
    assert msgspec.json.encode(Assessment.of(a)) == msgspec.json.encode(Assessment.of(b))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.tenant = "other"  # type: ignore[misc]


def test_state_changes_are_logged_once_with_observed_value_and_threshold() -> None:
    storm = STORM + 90 * MINUTE
    during = assess_tenant(
        observe(storm, paused_at=None, storm_until=storm), thresholds=T, resume=R, now=storm
    )
    paused_at = STORM + 2 * HOUR
    later = paused_at + 26 * HOUR
    after = assess_tenant(
        observe(later, paused_at=paused_at, storm_until=STORM + 20 * HOUR),
        thresholds=T,
        resume=R,
        now=later,
    )
    with structlog.testing.capture_logs() as logs:
        log_changes(None, during)
        log_changes(during, during)  # nothing changed: nothing logged
        log_changes(during, after)
    warned = {e["reason"]: e for e in logs if e["event"] == "pause warranted"}
    assert set(warned) == {"membership_changes", "groups_changed", "trigger_rate", "processing_lag"}
    assert {e["log_level"] for e in warned.values()} == {"warning"}
    membership = warned["membership_changes"]
    assert membership["threshold"] == T.membership_changes_per_hour
    assert membership["observed"] > membership["threshold"]
    cleared = {e["reason"] for e in logs if e["event"] == "pause no longer warranted"}
    assert cleared == {"membership_changes", "groups_changed", "trigger_rate"}
    readiness = [e for e in logs if e["event"] == "resume readiness changed"]
    assert [(e["previous"], e["state"]) for e in readiness] == [
        (None, "not_paused"),
        ("not_paused", "ready"),
    ]
    assert len(logs) == len(warned) + len(cleared) + len(readiness)
