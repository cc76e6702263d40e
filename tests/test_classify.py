"""Classification of audit events (DESIGN section 4) and reading them from Graph JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.classify import (
    classify,
    classify_group_update,
    decode_value,
    updated_property_names,
)
from exporter.domain.events import (
    DYNAMIC_PROCESSING_APP,
    ObjectType,
    ProcessingState,
    Series,
)
from exporter.domain.records import AuditRecord, MalformedEvent, ModifiedProperty
from exporter.graph.audit import format_time, parse_audit_page, parse_time, read_event
from exporter.graph.retry import TransientError

GROUP = "f3bccb88-0000-4000-8000-000000000001"
MEMBER = "a1a1a1a1-0000-4000-8000-000000000002"
APP_ID = "65d91a3d-ab74-42e6-8a2f-0add61688c74"


def event(activity: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "Directory_abc",
        "category": "GroupManagement",
        "activityDisplayName": activity,
        "activityDateTime": "2024-05-01T12:00:00.1234567Z",
        "result": "success",
        "initiatedBy": {
            "user": None,
            "app": {"appId": APP_ID, "displayName": DYNAMIC_PROCESSING_APP},
        },
        "targetResources": [
            {
                "id": MEMBER,
                "type": "User",
                "modifiedProperties": [
                    {"displayName": "Group.ObjectID", "oldValue": None, "newValue": f'"{GROUP}"'}
                ],
            },
            {"id": GROUP, "type": "Group", "modifiedProperties": []},
        ],
    }
    base.update(overrides)
    return base


def record(item: dict[str, Any]) -> AuditRecord:
    parsed = read_event(item)
    assert isinstance(parsed, AuditRecord), parsed
    return parsed


def test_dynamic_add_and_remove() -> None:
    add = classify(record(event("Add member to group")))
    assert (add.series, add.group_id, add.object_id) == (Series.DYNAMIC_ADD, GROUP, MEMBER)
    assert add.object_type is ObjectType.USER
    remove = classify(record(event("Remove member from group")))
    assert remove.series is Series.DYNAMIC_REMOVE


def test_the_member_type_is_kept_for_the_lag_estimator() -> None:
    item = event("Add member to group")
    item["targetResources"][0]["type"] = "Device"
    assert classify(record(item)).object_type is ObjectType.DEVICE
    item["targetResources"][0]["type"] = "ServicePrincipal"
    assert classify(record(item)).object_type is None


def test_manual_change_by_user_or_other_app() -> None:
    by_user = event(
        "Add member to group",
        initiatedBy={"user": {"id": "u1", "userPrincipalName": "a@b.c"}, "app": None},
    )
    assert classify(record(by_user)).series is Series.MANUAL_ADD
    by_teams = event(
        "Remove member from group",
        initiatedBy={"user": None, "app": {"appId": "x", "displayName": "Microsoft Teams"}},
    )
    assert classify(record(by_teams)).series is Series.MANUAL_REMOVE


def test_dynamic_app_recognised_by_id_alone() -> None:
    item = event("Add member to group", initiatedBy={"app": {"appId": APP_ID.upper()}})
    assert classify(record(item)).series is Series.DYNAMIC_ADD


def test_group_id_falls_back_to_member_property() -> None:
    item = event("Remove member from group")
    item["targetResources"] = [
        {
            "id": MEMBER,
            "type": "Device",
            "modifiedProperties": [
                {
                    "displayName": "Group.ObjectID",
                    "oldValue": f'"{GROUP.upper()}"',
                    "newValue": None,
                }
            ],
        }
    ]
    assert classify(record(item)).group_id == GROUP


def test_membership_change_without_group_is_malformed() -> None:
    item = event("Add member to group", targetResources=[{"id": MEMBER, "type": "User"}])
    malformed = read_event(item)
    assert isinstance(malformed, MalformedEvent)
    assert (malformed.time, malformed.reason) == (
        parse_time(item["activityDateTime"]),
        "missing_group",
    )
    assert malformed.id.startswith("digest:")  # keyed by content, not by its id (#13)


@pytest.mark.parametrize(
    ("activity", "series"),
    [
        ("Update user", Series.TRIGGER_USER_UNKNOWN),  # no property list: unknown relevance
        ("Add user", Series.TRIGGER_USER),
        ("Delete device", Series.TRIGGER_DEVICE),
        ("Update device", Series.TRIGGER_DEVICE_UNKNOWN),
        ("Add owner to group", Series.OTHER),
    ],
)
def test_triggers_and_others(activity: str, series: Series) -> None:
    item = event(activity, targetResources=[{"id": MEMBER, "type": "User"}])
    result = classify(record(item))
    assert result.series is series
    if series is not Series.OTHER:
        assert result.object_id == MEMBER
        expected = ObjectType.USER if series.value.startswith("trigger_user") else ObjectType.DEVICE
        assert result.object_type is expected


def test_failed_event_changed_nothing() -> None:
    assert classify(record(event("Add member to group", result="failure"))).series is Series.OTHER


def prop(name: str, old: str | None, new: str | None) -> ModifiedProperty:
    return ModifiedProperty(name, old, new)


def test_the_names_an_update_changed_are_the_listed_ones_not_the_list() -> None:
    """What the poller logs as not used for classification: "Included Updated Properties" names
    the changed properties; it is none of them."""
    modified = (
        prop("Included Updated Properties", None, '"Description, Visibility"'),
        prop("DisplayName", '"a"', '"b"'),
    )
    assert updated_property_names(modified) == ["Description", "Visibility", "DisplayName"]
    assert updated_property_names(()) == []


def test_a_rule_change_named_only_in_the_list() -> None:
    listed = (prop("Included Updated Properties", None, '"MembershipRule"'),)
    assert classify_group_update(listed) == (Series.RULE_CHANGE, None)


@pytest.mark.parametrize(
    ("props", "series", "state"),
    [
        ([prop("MembershipRule", '"a"', '"b"')], Series.RULE_CHANGE, None),
        (
            [prop("MembershipRuleProcessingState", '"On"', '"Paused"')],
            Series.PROCESSING_STATE_CHANGE,
            ProcessingState.PAUSED,
        ),
        (
            [prop("Group.MembershipRuleProcessingState", '["Paused"]', '["On"]')],
            Series.PROCESSING_STATE_CHANGE,
            ProcessingState.ON,
        ),
        (
            [prop("Included Updated Properties", None, '"MembershipRuleProcessingState"')],
            Series.PROCESSING_STATE_CHANGE,
            None,
        ),
        (
            [
                prop("MembershipRule", '"a"', '"b"'),
                prop("MembershipRuleProcessingState", '"On"', '"Paused"'),
            ],
            Series.RULE_CHANGE,
            ProcessingState.PAUSED,
        ),
        ([prop("DisplayName", '"a"', '"b"')], Series.GROUP_UPDATE_OTHER, None),
        ([], Series.GROUP_UPDATE_OTHER, None),
    ],
)
def test_group_updates(
    props: list[ModifiedProperty], series: Series, state: ProcessingState | None
) -> None:
    assert classify_group_update(tuple(props)) == (series, state)


def test_group_update_read_from_json() -> None:
    item = event(
        "Update group",
        initiatedBy={"user": {"id": "admin"}},
        targetResources=[
            {
                "id": GROUP.upper(),
                "type": "Group",
                "modifiedProperties": [
                    {
                        "displayName": "MembershipRuleProcessingState",
                        "oldValue": '"On"',
                        "newValue": '"Paused"',
                    }
                ],
            }
        ],
    )
    result = classify(record(item))
    assert (result.series, result.group_id, result.processing_state) == (
        Series.PROCESSING_STATE_CHANGE,
        GROUP,
        ProcessingState.PAUSED,
    )


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ("not an object", "not_an_object"),
        ({"activityDisplayName": "Update user"}, "missing_id"),
        ({"id": "x", "activityDateTime": "yesterday"}, "bad_time"),
        ({"id": "x", "activityDateTime": "2024-05-01T00:00:00Z"}, "missing_activity"),
        (
            {
                "id": "x",
                "activityDateTime": "2024-05-01T00:00:00Z",
                "activityDisplayName": "Update user",
                "initiatedBy": 3,
            },
            "bad_initiated_by",
        ),
        (
            {
                "id": "x",
                "activityDateTime": "2024-05-01T00:00:00Z",
                "activityDisplayName": "Update user",
                "targetResources": {},
            },
            "bad_target_resources",
        ),
    ],
)
def test_malformed_events_are_named_not_raised(item: Any, reason: str) -> None:
    result = read_event(item)
    assert isinstance(result, MalformedEvent)
    assert result.reason == reason


def test_events_without_id_get_a_stable_digest() -> None:
    item = {"activityDisplayName": "Update user"}
    first, second = read_event(item), read_event(dict(item))
    assert isinstance(first, MalformedEvent)
    assert first.id == second.id
    assert first.id.startswith("digest:")


def test_page_parsing_order_and_next_link() -> None:
    items = [
        event("Update user", id=f"e{i}", activityDateTime=f"2024-05-01T12:00:0{i}Z")
        for i in range(3)
    ]
    body = orjson.dumps({"value": [*items, 7], "@odata.nextLink": "http://127.0.0.1/next"})
    page = parse_audit_page(body, "directory_audits")
    assert [r.id for r in page.records] == ["e0", "e1", "e2"]
    assert [m.reason for m in page.malformed] == ["not_an_object"]
    assert page.ascending
    assert page.next_link == "http://127.0.0.1/next"
    assert page.last_time == parse_time("2024-05-01T12:00:02Z")
    shuffled = parse_audit_page(orjson.dumps({"value": items[::-1]}), "directory_audits")
    assert not shuffled.ascending
    assert shuffled.next_link is None


@pytest.mark.parametrize("body", [b"", b'{"value": [', b'{"value": [{"id": "a"}'])
def test_truncated_pages_are_transient(body: bytes) -> None:
    with pytest.raises(TransientError):
        parse_audit_page(body, "directory_audits")


def test_times() -> None:
    assert parse_time("2024-05-01T12:00:00.1234567Z") == pytest.approx(1714564800.1234567)
    assert parse_time("2024-05-01T12:00:00") == 1714564800.0
    assert format_time(1714564800.5) == "2024-05-01T12:00:00.500000Z"
    assert decode_value('"x"') == "x"
    assert decode_value("[]") is None
    assert decode_value("x") == "x"


def test_administrative_unit_membership_is_ingested_but_counted_as_other() -> None:
    item = event("Add member to administrative unit", category="AdministrativeUnit")
    result = classify(record(item))
    assert result.series is Series.OTHER


def datetime_epoch(value: str) -> float | None:
    """activityDateTime as `datetime` reads it: what the store's seen-ids keys were made with."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@given(
    moment=st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1)),
    digits=st.integers(0, 9),
    fraction=st.integers(0, 999_999_999),
    suffix=st.sampled_from(["Z", "Z", "Z", "", "+00:00", "+02:00", "-05:30"]),
    second=st.sampled_from([None, "60", "6", "5x", "99"]),
)
@settings(max_examples=3000)
def test_times_read_exactly_as_datetime_reads_them(
    moment: datetime, digits: int, fraction: int, suffix: str, second: str | None
) -> None:
    """The fast path (Graph's `...Z` form, minute epochs cached) gives the same float as
    `datetime`, to the bit, or the same None: a stored event seen again must have the same key."""
    text = moment.strftime("%Y-%m-%dT%H:%M:") + (second or moment.strftime("%S"))
    if digits:
        text += "." + str(fraction).zfill(9)[:digits]
    text += suffix
    assert parse_time(text) == datetime_epoch(text)
    parse_time(moment.strftime("%Y-%m-%dT%H:%M:00Z"))  # the minute is cached now
    assert parse_time(text) == datetime_epoch(text)
