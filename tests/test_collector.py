"""The collector over a snapshot: names, labels, bounds; promtool accepts the exposition."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.domain.events import DirectoryObjectKind, Series
from exporter.domain.groups import MembershipProcessingStatus
from exporter.domain.records import ProcessingStatus
from exporter.ingest.audit_poller import BackfillProgress
from exporter.runtime.collector import SnapshotCollector
from exporter.runtime.snapshot import (
    CollectorState,
    CriticalStatus,
    GroupChange,
    PausedSeries,
    Snapshot,
    SnapshotHolder,
    TenantSnapshot,
)

REPO = Path(__file__).resolve().parent.parent
CI_TOOLS_BIN = REPO / ".ci" / "cache" / "tools" / "usr" / "bin"
GROUP, AU = DirectoryObjectKind.GROUP, DirectoryObjectKind.ADMINISTRATIVE_UNIT
CRITICAL = "11111111-0000-4000-8000-000000000001"
PARKED = "33333333-0000-4000-8000-000000000003"


def promtool() -> str:
    found = shutil.which("promtool") or shutil.which("promtool", path=str(CI_TOOLS_BIN))
    if found is None:
        pytest.fail(
            f"promtool not found on PATH or in {CI_TOOLS_BIN}: run `bash .ci/install-tools`",
            pytrace=False,
        )
    return found


def check_metrics(exposition: bytes) -> None:
    """`promtool check metrics` on an exposition; fails the test with promtool's findings."""
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def tenant_snapshot(name: str) -> TenantSnapshot:
    return TenantSnapshot(
        tenant=name,
        taken_at=1_714_564_800.0,
        directory_counts=MappingProxyType({(GROUP, "On"): 40, (GROUP, "Paused"): 3, (AU, "On"): 2}),
        directory_polled=True,
        totals=MappingProxyType(
            {
                "dynamic_add": 120,
                "dynamic_remove": 7,
                "manual_add": 2,
                "trigger_user": 50,
                "duplicate": 9,
                "malformed": 1,
                "malformed:bad_time": 1,
            }
        ),
        last_hour=MappingProxyType(
            {Series.DYNAMIC_ADD: 30, Series.DYNAMIC_REMOVE: 2, Series.TRIGGER_DEVICE: 4}
        ),
        groups_changed_last_hour=5,
        paused=(
            PausedSeries(GROUP, CRITICAL, 'Payroll "EU"', True, 1_714_500_000.0),
            PausedSeries(
                GROUP, "22222222-0000-4000-8000-000000000002", "Sales", False, 1_714_510_000.0
            ),
            PausedSeries(GROUP, PARKED, "Parked", False, None),
        ),
        paused_not_exported=1,
        last_changes=(GroupChange(CRITICAL, "Payroll", True, 1_714_564_000.0),),
        collectors=(
            CollectorState("audit", True, 0.25, 1_714_564_790.0, None),
            CollectorState("groups", False, 1.5, None, "permission denied"),
        ),
        watermark=1_714_564_780.0,
        backfill=BackfillProgress(1_713_960_000.0, 1_714_262_400.0, 1_714_564_800.0),
        graph_requests=MappingProxyType(
            {
                ("directory_audits", "200"): 12,
                ("directory_audits", "429"): 1,
                ("groups", "transport_error"): 2,
            }
        ),
        critical_statuses=(
            CriticalStatus(
                CRITICAL,
                "Payroll",
                ProcessingStatus(CRITICAL, MembershipProcessingStatus.FAILED, 1_714_000_000.0, "x"),
            ),
        ),
    )


def registry_for(snapshot: Snapshot) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snapshot))
    return registry


def test_families_and_values() -> None:
    registry = registry_for(Snapshot((tenant_snapshot("contoso"), tenant_snapshot("fabrikam"))))
    value = registry.get_sample_value
    assert (
        value("entra_dynamic_groups", {"tenant": "contoso", "kind": "group", "state": "paused"})
        == 3
    )
    assert (
        value(
            "entra_dynamic_groups",
            {"tenant": "contoso", "kind": "administrative_unit", "state": "paused"},
        )
        == 0
    )
    assert (
        value("entra_dynamic_membership_changes_total", {"tenant": "contoso", "operation": "add"})
        == 120
    )
    assert (
        value(
            "entra_dynamic_manual_membership_changes_total",
            {"tenant": "fabrikam", "operation": "remove"},
        )
        == 0
    )
    assert value("entra_dynamic_membership_changes_last_hour", {"tenant": "contoso"}) == 32
    assert value("entra_dynamic_groups_changed_last_hour", {"tenant": "contoso"}) == 5
    assert (
        value(
            "entra_dynamic_object_changes_last_hour", {"tenant": "contoso", "object_type": "device"}
        )
        == 4
    )
    assert (
        value(
            "entra_dynamic_object_changes_last_hour", {"tenant": "contoso", "object_type": "user"}
        )
        == 0
    )
    assert (
        value(
            "entra_dynamic_group_paused_since_timestamp_seconds",
            {
                "tenant": "contoso",
                "group_id": CRITICAL,
                "group_name": 'Payroll "EU"',
                "critical": "true",
            },
        )
        == 1_714_500_000.0
    )
    parked = {"tenant": "contoso", "group_id": PARKED, "group_name": "Parked", "critical": "false"}
    # Paused before the exporter first listed it: paused, with no invented pause time (#13).
    assert value("entra_dynamic_group_paused", parked) == 1
    assert value("entra_dynamic_group_paused_since_timestamp_seconds", parked) is None
    assert (
        value("entra_dynamic_collector_success", {"tenant": "contoso", "collector": "groups"}) == 0
    )
    assert (
        value("entra_dynamic_collector_success", {"tenant": "contoso", "collector": "audit"}) == 1
    )
    assert (
        value(
            "entra_dynamic_collector_last_success_timestamp_seconds",
            {"tenant": "contoso", "collector": "groups"},
        )
        is None
    )
    assert (
        value("entra_dynamic_audit_watermark_timestamp_seconds", {"tenant": "contoso"})
        == 1_714_564_780.0
    )
    assert value(
        "entra_dynamic_audit_backfill_progress_ratio", {"tenant": "contoso"}
    ) == pytest.approx(0.5)
    assert (
        value(
            "entra_dynamic_graph_requests_total",
            {"tenant": "contoso", "endpoint": "directory_audits", "code": "429"},
        )
        == 1
    )
    assert (
        value("entra_dynamic_audit_events_total", {"tenant": "contoso", "kind": "duplicate"}) == 9
    )
    assert (
        value("entra_dynamic_audit_events_total", {"tenant": "contoso", "kind": "rule_change"}) == 0
    )
    assert (
        value(
            "entra_dynamic_audit_malformed_events_total",
            {"tenant": "contoso", "reason": "bad_time"},
        )
        == 1
    )
    status = {"tenant": "contoso", "group_id": CRITICAL, "group_name": "Payroll"}
    assert value("entra_dynamic_group_processing_status", {**status, "status": "failed"}) == 1
    assert value("entra_dynamic_group_processing_status", {**status, "status": "running"}) is None
    assert (
        value(
            "entra_dynamic_group_last_membership_change_timestamp_seconds",
            {**status, "critical": "true"},
        )
        == 1_714_564_000.0
    )
    assert (
        value(
            "entra_dynamic_exporter_build_info",
            {
                "version": Snapshot().version,
                "revision": Snapshot().revision,
                "python_version": Snapshot().python_version,
            },
        )
        == 1
    )
    check_metrics(generate_latest(registry))


def test_groups_gauge_waits_for_the_first_listing() -> None:
    registry = registry_for(Snapshot((TenantSnapshot("t", 0.0),)))
    assert (
        registry.get_sample_value(
            "entra_dynamic_groups", {"tenant": "t", "kind": "group", "state": "on"}
        )
        is None
    )
    check_metrics(generate_latest(registry))


def test_holder_swaps_whole_snapshots() -> None:
    holder = SnapshotHolder(["a", "b"])
    before = holder.current
    holder.update(TenantSnapshot("b", 5.0))
    assert before.tenant("b") == TenantSnapshot("b", 0.0)
    assert holder.current.tenant("b") == TenantSnapshot("b", 5.0)
    assert [t.tenant for t in holder.current.tenants] == ["a", "b"]
