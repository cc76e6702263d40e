"""The typed (msgspec) reading of audit pages gives exactly what reading orjson dicts event by
event gives, for well-formed and malformed pages alike."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.events import (
    ADD_AU_MEMBER,
    ADD_MEMBER,
    DYNAMIC_PROCESSING_APP,
    REMOVE_MEMBER,
    UPDATE_ADMINISTRATIVE_UNIT,
    UPDATE_GROUP,
)
from exporter.domain.groups import MembershipProcessingStatus
from exporter.domain.records import AuditRecord, MalformedEvent
from exporter.graph.audit import AuditPage, load_audit_document, parse_audit_page, read_event
from exporter.graph.directory import parse_processing_status
from exporter.graph.errors import GraphResponseError
from exporter.graph.retry import TransientError

MISSING = object()
GROUP = "F3BCCB88-0000-4000-8000-000000000001"


def _maybe(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a value the typed path reads, sometimes one it must hand to `read_event`: whole
    pages of well-formed events are common, and so are pages with one surprise."""
    return st.integers(0, 30).flatmap(lambda n: bad if n == 0 else good)


_PROPERTY = st.fixed_dictionaries(
    {
        "displayName": _mostly(
            _maybe("Group.ObjectID", "MembershipRule", "MembershipRuleProcessingState"),
            _maybe(3, None),
        ),
        "oldValue": _mostly(_maybe(None, f'"{GROUP}"', '["On"]', ""), _maybe(4, [])),
        "newValue": _mostly(_maybe(None, f'"{GROUP}"', '["Paused"]', "plain", ""), _maybe(1.5)),
    }
)
_PROPERTIES = _mostly(
    st.lists(_PROPERTY, max_size=3) | _maybe(MISSING, None),
    st.lists(_maybe(None, 1), min_size=1, max_size=2) | _maybe("x", {}),
)


@st.composite
def _target(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 30)) == 0:
        return draw(_maybe(None, 5, "t"))
    target: dict[str, Any] = {"displayName": "ignored", "userPrincipalName": None}
    for key, values in (
        (
            "id",
            _mostly(
                _maybe("a1a1a1a1-0000-4000-8000-000000000002", GROUP, "", None, MISSING),
                _maybe(9, []),
            ),
        ),
        ("type", _mostly(_maybe("User", "Device", "Group", None, MISSING), _maybe(1))),
        ("modifiedProperties", _PROPERTIES),
    ):
        value = draw(values)
        if value is not MISSING:
            target[key] = value
    return target


_APP = st.fixed_dictionaries(
    {
        "appId": _mostly(_maybe("65d91a3d-ab74-42e6-8a2f-0add61688c74", "other", None), _maybe(7)),
        "displayName": _mostly(_maybe(DYNAMIC_PROCESSING_APP, "Teams", None), _maybe(0)),
        "servicePrincipalId": _maybe("sp", None),
    }
)
_USER = st.fixed_dictionaries(
    {
        "id": _mostly(_maybe("u1", "", None), _maybe(2)),
        "userPrincipalName": _mostly(_maybe("a@contoso.example", "", None), _maybe(False)),
        "displayName": _mostly(_maybe("Ada", "", None), _maybe(3)),
        "ipAddress": _maybe("10.0.0.1", None),
    }
)


@st.composite
def _event(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 60)) == 0:
        return draw(_maybe(None, 7, "event", []))
    event: dict[str, Any] = {"category": "GroupManagement", "loggedByService": "Core Directory"}
    choices: dict[str, st.SearchStrategy[Any]] = {
        "id": _mostly(_maybe("Directory_1", "Directory_2"), _maybe("", None, 3, MISSING)),
        "activityDateTime": _mostly(
            _maybe("2024-05-01T12:00:00.1234567Z", "2024-05-01T11:00:00Z", "2024-05-01T12:30"),
            _maybe("yesterday", None, 5, MISSING),
        ),
        "activityDisplayName": _mostly(
            _maybe(
                ADD_MEMBER,
                REMOVE_MEMBER,
                ADD_AU_MEMBER,
                UPDATE_GROUP,
                UPDATE_ADMINISTRATIVE_UNIT,
                "Update user",
                "Add device",
                "Consent to application",
            ),
            _maybe("", None, 8, MISSING),
        ),
        "result": _mostly(_maybe("success", "failure", "", None, MISSING), _maybe(1)),
        "initiatedBy": _mostly(
            st.fixed_dictionaries({"app": _APP | st.none(), "user": st.none()})
            | st.fixed_dictionaries({"app": st.none(), "user": _USER | st.none()})
            | st.fixed_dictionaries({"app": _APP, "user": _USER})
            | _maybe(None, MISSING),
            _maybe("x", 3) | st.fixed_dictionaries({"app": _maybe(5, "a")}),
        ),
        "targetResources": _mostly(
            st.lists(_target(), max_size=3) | _maybe(None, MISSING), _maybe({}, "t")
        ),
    }
    for key, strategy in choices.items():
        value = draw(strategy)
        if value is not MISSING:
            event[key] = value
    return event


_WELL_FORMED_APP = {
    "user": None,
    "app": {"appId": "65d91a3d-ab74-42e6-8a2f-0add61688c74", "displayName": DYNAMIC_PROCESSING_APP},
}


def _reference(body: bytes) -> AuditPage | type[Exception]:
    """What reading orjson dicts one event at a time gives (the pre-msgspec reading)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return TransientError
    items = document.get("value") if isinstance(document, dict) else None
    if not isinstance(items, list):
        return GraphResponseError
    records: list[AuditRecord] = []
    malformed: list[MalformedEvent] = []
    for item in items:
        event = read_event(item)
        (records if isinstance(event, AuditRecord) else malformed).append(event)  # type: ignore[arg-type]
    times = [r.time for r in records]
    link = document.get("@odata.nextLink")
    return AuditPage(
        records,
        malformed,
        link if isinstance(link, str) and link else None,
        times[-1] if times else None,
        times == sorted(times),
    )


def _parsed(body: bytes) -> AuditPage | type[Exception]:
    try:
        return parse_audit_page(body, "directory_audits")
    except (TransientError, GraphResponseError) as exc:
        return type(exc)


@settings(max_examples=600, deadline=None)
@given(
    events=st.lists(_event(), max_size=3),
    link=_maybe("http://127.0.0.1:1/next", "", None, 5, MISSING),
    extra=st.booleans(),
)
def test_typed_and_untyped_readings_agree(events: list[Any], link: Any, extra: bool) -> None:
    document: dict[str, Any] = {"@odata.context": "ctx", "value": events}
    if link is not MISSING:
        document["@odata.nextLink"] = link
    if extra:
        document["unexpected"] = {"nested": [1, 2]}
    body = orjson.dumps(document)
    assert _parsed(body) == _reference(body)


def test_well_formed_pages_take_the_typed_path_and_bad_bodies_are_named() -> None:
    good = {
        "id": "Directory_1",
        "activityDateTime": "2024-05-01T12:00:00Z",
        "activityDisplayName": ADD_MEMBER,
        "initiatedBy": _WELL_FORMED_APP,
        "targetResources": [{"id": "m", "type": "User"}, {"id": GROUP, "type": "Group"}],
    }
    body = orjson.dumps({"value": [good]})
    assert load_audit_document(body, "directory_audits").body is not None
    page = parse_audit_page(body, "directory_audits")
    assert page.records[0].group_id == GROUP.lower()
    assert page == _reference(body)
    for bad in (b'{"value": [', b"[1]", b'{"value": 3}', b'{"other": []}'):
        assert _parsed(bad) == _reference(bad)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Failed", MembershipProcessingStatus.FAILED),
        ("NotStarted", MembershipProcessingStatus.NOT_STARTED),
        ("SomethingGraphAddsLater", None),
        (None, None),
        (7, None),
    ],
)
def test_processing_status_strings_are_read_once_here(
    raw: object, expected: MembershipProcessingStatus | None
) -> None:
    body = orjson.dumps({"membershipRuleProcessingStatus": {"status": raw}})
    assert parse_processing_status(body, "g").status is expected
