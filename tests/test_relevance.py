"""Rule-relevant triggers (#13): "Update user"/"Update device" split by whether a changed
property is read by a dynamic rule; only rule-relevant and unknown triggers drive the
trigger-rate signal, its baseline and recovery."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exporter.domain.classify import classify
from exporter.domain.events import Relevance, Series
from exporter.domain.history import MINUTE
from exporter.domain.relevance import RuleProperties, rule_properties
from exporter.domain.signals import PauseReason
from exporter.graph.audit import parse_audit_page
from tests.test_signals import NOW, burst, normal_tenant, signals

RULES = rule_properties(
    [
        'user.extensionAttribute5 -eq "contractor"',
        'user.department -eq "Sales" -and user.accountEnabled -eq true',
        'user.assignedPlans -any (assignedPlan.servicePlanId -eq "x")',
        'device.deviceOSType -eq "Windows"',
        "this is not a rule",
    ]
)


def update(activity: str, changed: str | None, target_type: str = "User") -> dict[str, Any]:
    """An Update user / Update device as Graph writes it: the changed properties, then their
    names in `Included Updated Properties` (a JSON string inside the string)."""
    properties: list[dict[str, Any]] = []
    if changed is not None:
        properties = [
            {"displayName": name.strip(), "oldValue": "[]", "newValue": '["x"]'}
            for name in changed.split(",")
            if name.strip()
        ]
        properties.append(
            {
                "displayName": "Included Updated Properties",
                "oldValue": None,
                "newValue": orjson.dumps(changed).decode(),
            }
        )
    return {
        "id": f"Directory_{activity}_{changed}",
        "category": "UserManagement",
        "activityDisplayName": activity,
        "activityDateTime": "2024-05-01T12:00:00.1234567Z",
        "loggedByService": "Core Directory",
        "result": "success",
        "initiatedBy": {
            "app": {"appId": None, "displayName": "Azure MFA StrongAuthenticationService"}
        },
        "targetResources": [
            {
                "id": "a1a1a1a1-0000-4000-8000-000000000002",
                "type": target_type,
                "modifiedProperties": properties,
            }
        ],
    }


def classified(item: dict[str, Any], rules: RuleProperties | None = RULES) -> Series:
    """Through both decoders (the typed fast path and the dict path must agree)."""
    page = parse_audit_page(orjson.dumps({"value": [item]}), "test")
    slow = parse_audit_page(orjson.dumps({"value": [item, None]}), "test")  # forces dict path
    [record] = page.records
    assert slow.records == [record]
    return classify(record, rules).series


@pytest.mark.parametrize(
    ("activity", "changed", "series"),
    [
        (
            "Update user",
            "StrongAuthenticationMethod, StrongAuthenticationUserDetails",
            Series.TRIGGER_USER_OTHER,
        ),
        ("Update user", "LastDirSyncTime", Series.TRIGGER_USER_OTHER),
        ("Update user", "", Series.TRIGGER_USER_OTHER),
        ("Update user", "ExtensionAttribute5", Series.TRIGGER_USER),
        ("Update user", "StrongAuthenticationMethod, Department", Series.TRIGGER_USER),
        ("Update user", "AssignedLicense, AssignedPlan", Series.TRIGGER_USER),
        ("Update user", None, Series.TRIGGER_USER_UNKNOWN),
        ("Update device", "DeviceOSType", Series.TRIGGER_DEVICE),
        ("Update device", "ApproximateLastLogonTimestamp", Series.TRIGGER_DEVICE_OTHER),
        ("Add user", None, Series.TRIGGER_USER),
    ],
)
def test_updates_by_relevance(activity: str, changed: str | None, series: Series) -> None:
    target = "Device" if "device" in activity else "User"
    assert classified(update(activity, changed, target)) is series


def test_before_the_rules_are_known_every_update_is_of_unknown_relevance() -> None:
    item = update("Update user", "StrongAuthenticationMethod")
    assert classified(item, rules=None) is Series.TRIGGER_USER_UNKNOWN


def test_rule_properties_are_read_per_object_type() -> None:
    assert "extensionattribute5" in RULES.user
    assert "deviceostype" in RULES.device
    assert "deviceostype" not in RULES.user
    assert {r.value for r in Relevance} == {"rule", "other", "unknown"}


@pytest.mark.parametrize(
    ("changed", "warranted"),
    [
        ("StrongAuthenticationMethod, StrongAuthenticationUserDetails", False),  # MFA
        ("AssignedLicense", False),  # licence housekeeping no rule reads
        ("extensionAttribute5", True),  # a property a rule reads
    ],
)
def test_only_a_storm_of_updates_rules_read_warrants_a_pause(changed: str, warranted: bool) -> None:
    series = classified(update("Update user", changed))
    b = normal_tenant()
    burst(b, series, NOW - 2 * 60 * MINUTE, NOW, 60)  # 3,600 an hour, 36 x the usual 100
    assert signals(b.build())[PauseReason.TRIGGER_RATE].active is warranted
