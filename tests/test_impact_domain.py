"""exporter.domain.impact: change specifications and the prediction, on plain objects."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.domain.impact import (
    ChangeSet,
    ChangeSpecError,
    ObjectChange,
    RuleIndex,
    Target,
    changes_from_assignments,
    changes_from_csv,
    csv_properties,
    parse_assignment,
    predict,
)
from exporter.domain.rules import ObjectType, parse

NOW = 1_767_600_000.0
USERS: dict[str, dict[str, Any]] = {
    f"u{n}": {
        "department": "Sales" if n % 2 else "Legal",
        "extensionAttribute3": f"wave-{n % 3}",
        "userPrincipalName": f"user{n}@contoso.example",
    }
    for n in range(10)
}


def target(name: str, rule: str, **flags: bool) -> Target:
    return Target(id=name.lower(), name=name, kind="group", rule=parse(rule), **flags)


def test_assignments_read_values_in_the_rule_syntax() -> None:
    assert parse_assignment('user.extensionAttribute3 = "wave-5"').value == "wave-5"
    assert parse_assignment("device.isRooted = true").value is True
    assert parse_assignment("user.department = null").value is None
    assert parse_assignment('user.otherMails = ["a@x", "b@x"]').value == ["a@x", "b@x"]
    assert parse_assignment('user.DEPARTMENT = "x"').name == "department"
    for bad, message in [
        ("user.department", "expected PROPERTY = VALUE"),
        ('user.memberOf = "x"', "memberOf is used only as"),
        ('user.nosuch = "x"', "not a user property"),
        ('user.department = "x', "unterminated string"),
    ]:
        with pytest.raises(ChangeSpecError, match=message):
            parse_assignment(bad)


def test_a_bulk_update_file_by_id_or_by_user_principal_name() -> None:
    text = (
        "\ufeffUserPrincipalName,Department,otherMails,accountEnabled\n"
        "user1@contoso.example,Finance,,false\n"
        'USER2@contoso.example,<null>,"a@x;b@x",\n'
    )
    keys = {u["userPrincipalName"]: i for i, u in USERS.items()}
    change = changes_from_csv(
        text, ObjectType.USER, "f.csv", key_column="userPrincipalName", keys=keys
    )
    assert change.changes == (
        ObjectChange("u1", {"department": "Finance", "accountEnabled": False}),
        ObjectChange("u2", {"department": None, "otherMails": ["a@x", "b@x"]}),
    )
    assert csv_properties(text, ObjectType.USER, "f.csv", key_column="userPrincipalName") == {
        "department",
        "otherMails",
        "accountEnabled",
    }
    by_id = changes_from_csv("objectId,department\nU3,IT\n", ObjectType.USER, "f.csv")
    assert by_id.changes == (ObjectChange("u3", {"department": "IT"}),)
    for bad, message in [
        ("", "empty"),
        ("name,department\nx,y\n", "no id column"),
        ("id\nu1\n", "no property columns"),
        ("id,colour\nu1,red\n", "column 'colour': not a user property"),
        ("id,memberOf\nu1,g1\n", "memberOf cannot be set by an attribute change"),
        ("id,department\n,IT\n", "line 2 has no object id"),
        ("id,department\nu1,IT,extra\n", "line 2 has 3 cells"),
        ("id,department\nu1,\n", "no values to set"),
    ]:
        with pytest.raises(ChangeSpecError, match=message):
            changes_from_csv(bad, ObjectType.USER, "f.csv")


def test_set_on_objects_matching_a_rule() -> None:
    change = changes_from_assignments(
        [parse_assignment('user.extensionAttribute3 = "wave-5"')],
        'user.department -eq "Legal"',
        USERS,
        NOW,
    )
    assert {c.id for c in change.changes} == {"u0", "u2", "u4", "u6", "u8"}
    with pytest.raises(ChangeSpecError, match="selects devices but --set changes users"):
        changes_from_assignments(
            [parse_assignment('user.department = "x"')], "device.isRooted -eq true", USERS, NOW
        )


def test_prediction_counts_only_real_changes_of_rules_that_read_them() -> None:
    index = RuleIndex(
        [
            target("Wave 5", 'user.extensionAttribute3 -eq "wave-5"'),
            target("Wave 0", 'user.extensionAttribute3 -eq "wave-0"'),
            target("Sales", 'user.department -eq "Sales"', critical=True),
            target("Legal", 'user.department -eq "Legal"', critical=True),
            target("Paused wave 5", 'user.extensionAttribute3 -startsWith "wave-5"', paused=True),
        ]
    )
    change = ChangeSet(
        ObjectType.USER,
        tuple(ObjectChange(i, {"extensionAttribute3": "wave-5"}) for i in ("u0", "u1", "U3")),
        "test",
    )
    impact = predict(index, USERS, change, NOW)
    by_name = {r.target.name: r for r in impact.targets}
    assert set(by_name) == {"Wave 5", "Wave 0", "Paused wave 5"}  # department rules not read
    assert by_name["Wave 5"].added == ("u0", "u1", "u3")
    assert by_name["Wave 0"].removed == ("u0", "u3")
    assert impact.totals.groups_reevaluated == 2
    assert impact.totals.membership_changes == 5
    assert impact.deferred.added == 3
    assert [t.name for t in impact.spare] == ["Legal", "Sales"]
    assert not impact.pause_warranted
    strict = predict(index, USERS, change, NOW, group_changes_threshold=1)
    assert strict.pause_warranted
    assert strict.reasons == ("2 groups change membership (pause above 1)",)
    # an object that already has the value is no change at all (case does not matter either)
    same = ChangeSet(ObjectType.USER, (ObjectChange("u0", {"extensionAttribute3": "WAVE-0"}),), "")
    nothing = predict(index, USERS, same, NOW)
    assert nothing.targets == ()
    assert nothing.unchanged_objects == 1
    with pytest.raises(ChangeSpecError, match="not users of the tenant"):
        predict(index, USERS, ChangeSet(ObjectType.USER, (ObjectChange("zz", {}),), ""), NOW)


def test_the_member_of_cascade_adds_through_active_sources_only_one_step() -> None:
    """#19: users moved into a dynamic group join the groups whose rule reads memberOf it; users
    moved out stay (Microsoft: until the rule is modified); a paused source passes nothing on,
    and a memberOf group defines no other memberOf group's membership (one step, no cycle)."""
    a_id, paused_id = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    b_id = "33333333-3333-4333-8333-333333333333"

    def member_of(*ids: str) -> str:
        return "user.memberOf -any (group.objectId -in [" + ", ".join(f'"{i}"' for i in ids) + "])"

    targets = [
        Target(a_id, "Wave 5", "group", parse('user.extensionAttribute3 -eq "wave-5"')),
        Target(paused_id, "Paused", "group", parse('user.department -eq "Finance"'), paused=True),
        Target(b_id, "Through A", "group", parse(member_of(a_id, paused_id))),
        # names B, and itself: neither is followed
        Target("44444444-4444-4444-8444-444444444444", "Through B", "group",
               parse(member_of(b_id, "44444444-4444-4444-8444-444444444444"))),
    ]  # fmt: skip
    users = {**USERS, "u0": {**USERS["u0"], "extensionAttribute3": "wave-5"}}
    change = ChangeSet(
        ObjectType.USER,
        (
            ObjectChange("u1", {"extensionAttribute3": "wave-5", "department": "Finance"}),
            ObjectChange("u2", {"extensionAttribute3": "wave-5"}),
            ObjectChange("u0", {"extensionAttribute3": "wave-1"}),
            ObjectChange("u4", {"department": "Finance"}),
        ),
        "test",
    )
    impact = predict(RuleIndex(targets), users, change, NOW)
    by_name = {r.target.name: r for r in impact.targets}
    assert by_name["Wave 5"].added == ("u1", "u2")
    assert by_name["Wave 5"].removed == ("u0",)
    through = by_name["Through A"]
    assert (through.added, through.removed) == (("u1", "u2"), ())
    assert [t.name for t in through.via] == ["Wave 5"]
    assert "Through B" not in by_name
    assert impact.totals.groups_changed == 2
    assert impact.totals.membership_changes == 5
