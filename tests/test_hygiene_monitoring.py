"""Tenant hygiene in the monitoring: the alert thresholds are the exporter's, and the
configuration's defaults are the domain's."""

from __future__ import annotations

from alerts import config as c
from exporter.config.models import Hygiene
from exporter.domain import hygiene
from exporter.http.app import render_landing_page


def test_headroom_figures_match_the_exporter() -> None:
    assert c.DYNAMIC_OBJECT_LIMIT == hygiene.DEFAULT_OBJECT_LIMIT == Hygiene().object_limit
    assert c.HEADROOM_WARNING_RATIO == hygiene.HEADROOM_WARNING_RATIO
    assert c.HEADROOM_CRITICAL_RATIO == hygiene.HEADROOM_CRITICAL_RATIO
    assert Hygiene().inactive_days == hygiene.DEFAULT_INACTIVE_DAYS == 90


def test_the_landing_page_shows_each_tenants_headroom() -> None:
    page = render_landing_page(
        readiness=None,
        headroom={
            "<b>contoso</b>": hygiene.Headroom(11_900, 200, 15_000),
            "fabrikam": hygiene.Headroom(14_300, 100, 15_000),
        },
    )
    assert "Dynamic group limit" in page
    assert "&lt;b&gt;contoso&lt;/b&gt;" in page  # escaped
    assert '<span class="warn">80.7% (warning)</span>' in page
    assert '<span class="bad">96.0% (critical)</span>' in page
    assert "<td>12,100 of 15,000</td>" in page
    assert "Dynamic group limit" not in render_landing_page(readiness=None)
