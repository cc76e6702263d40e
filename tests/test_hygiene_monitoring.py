"""Tenant hygiene in the monitoring: the alert thresholds are the exporter's, and the
configuration's defaults are the domain's."""

from __future__ import annotations

from alerts import config as c
from exporter.config.models import Hygiene
from exporter.domain import hygiene


def test_headroom_figures_match_the_exporter() -> None:
    assert c.DYNAMIC_OBJECT_LIMIT == hygiene.DEFAULT_OBJECT_LIMIT == Hygiene().object_limit
    assert c.HEADROOM_WARNING_RATIO == hygiene.HEADROOM_WARNING_RATIO
    assert c.HEADROOM_CRITICAL_RATIO == hygiene.HEADROOM_CRITICAL_RATIO
    assert Hygiene().inactive_days == hygiene.DEFAULT_INACTIVE_DAYS == 90
