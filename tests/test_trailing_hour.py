"""One trailing hour: the `*_last_hour` gauges (read for /metrics) and the numerators of the
ratios and signals (the assessment) count the same events at any instant, on the same store."""

from __future__ import annotations

import pytest

from exporter.config.models import Tenant
from exporter.domain.assessment import assess_tenant
from exporter.domain.baseline import Measure
from exporter.domain.events import Series
from exporter.domain.records import ClassifiedEvent
from exporter.domain.settings import ResumeSettings, Thresholds
from exporter.runtime.observations import ObservationReader
from exporter.runtime.snapshot import read_store_view
from exporter.store.database import PageBatch, Store

T0 = 1_714_564_800.0  # on an hour boundary
TENANT = Tenant.model_validate(
    {"name": "t", "graph_base_url": "http://127.0.0.1:1", "auth": {"method": "none"}}
)
GROUPS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(6)]

# Events on and around minute boundaries, at both ends of the hour and just past "now".
EVENT_OFFSETS = [-3660.0, -3600.0, -3599.5, -3540.0, -1800.0, -60.0, -0.5, 0.0, 30.0, 59.9]
INSTANTS = [0.0, 0.25, 30.0, 59.999, 60.0, 61.0]


def events() -> list[ClassifiedEvent]:
    out = []
    for i, offset in enumerate(EVENT_OFFSETS):
        t = T0 + 7200 + offset
        group = GROUPS[i % len(GROUPS)]
        out.append(ClassifiedEvent(f"a{i}", t, Series.DYNAMIC_ADD, group, None, None))
        out.append(ClassifiedEvent(f"u{i}", t, Series.TRIGGER_USER, None, f"user{i}", None))
        out.append(ClassifiedEvent(f"d{i}", t, Series.TRIGGER_DEVICE, None, f"dev{i}", None))
    return out


@pytest.fixture
async def filled(store: Store) -> Store:
    batch = PageBatch(
        events=events(),
        malformed=(),
        watermark=T0 + 7200 + 120,
        next_start=T0 + 7200 + 120,
        backfill_start=T0,
        now=T0 + 7200 + 120,
        malformed_time=T0,
        coverage_start=T0,
    )
    await store.call(store.commit_audit_page, "t", batch)
    return store


@pytest.mark.parametrize("instant", INSTANTS)
async def test_gauges_and_ratio_numerators_count_the_same_minutes(
    filled: Store, instant: float
) -> None:
    now = T0 + 7200 + instant
    view = await filled.run(
        lambda: read_store_view(filled, "t", now, critical=frozenset(), per_group_cap=10)
    )
    reader = ObservationReader(filled, thresholds=Thresholds(), lag=None, ledger=None)
    observations = await filled.run(
        lambda: reader.read(TENANT, now, collectors=(), critical_statuses={})
    )
    assessment = assess_tenant(
        observations, thresholds=Thresholds(), resume=ResumeSettings(), now=now
    )
    gauges = {
        Measure.MEMBERSHIP_CHANGES: view.last_hour.get(Series.DYNAMIC_ADD, 0)
        + view.last_hour.get(Series.DYNAMIC_REMOVE, 0),
        Measure.USER_CHANGES: view.last_hour.get(Series.TRIGGER_USER, 0),
        Measure.DEVICE_CHANGES: view.last_hour.get(Series.TRIGGER_DEVICE, 0),
    }
    for measure, gauge in gauges.items():
        assert assessment.rate(measure).last_hour == gauge, measure
    assert assessment.groups_changed_last_hour == view.groups_changed_last_hour
    # Not vacuous: the window holds some of the events and leaves some out.
    assert 0 < gauges[Measure.USER_CHANGES] < len(EVENT_OFFSETS)
