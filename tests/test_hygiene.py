"""The tenant-hygiene domain (exporter.domain.hygiene): contradictions, normal forms,
inactivity verdicts, the evaluation cost of candidates, headroom."""

from __future__ import annotations

import pytest

from exporter.domain.hygiene import (
    DAY,
    Headroom,
    HygieneObject,
    MemberCount,
    PropertyChanges,
    Reason,
    assess_hygiene,
    contradiction,
    evaluation_cost,
    evaluations_by_rule,
    inactivity,
    normalised_rule,
)
from exporter.domain.rules import parse, parse_expression

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("rule", "shown"),
    [
        (
            'user.department -eq "Sales" -and user.department -eq "HR"',
            'user.department -eq "Sales" and user.department -eq "HR" cannot both hold',
        ),
        ('user.city -eq "a" -and user.city -ne "A"', "cannot both hold"),
        ('user.city -startsWith "ab" -and user.city -startsWith "cd"', "cannot both hold"),
        ('user.city -eq null -and user.city -in ["x"]', "cannot both hold"),
        ("user.city -in []", "user.city -in [] selects nothing"),
        (
            "(user.city -in []) -or "
            '(user.a -eq "1" -and user.country -eq "x" -and user.country -eq "y")',
            "no branch of the -or can hold",
        ),
        ("user.memberOf -any (group.objectId -in [])", "no item of user.memberOf"),
        (
            'user.jobTitle -eq "x" -and (user.city -eq "a" -and user.city -eq "b")',
            "cannot both hold",
        ),
    ],
)
def test_contradictions_are_shown(rule: str, shown: str) -> None:
    found = contradiction(parse_expression(rule))
    assert found is not None
    assert shown in found.explanation


@pytest.mark.parametrize(
    "rule",
    [
        'user.otherMails -eq "a" -and user.otherMails -eq "b"',  # different items may match
        'user.city -eq "a" -or user.city -eq "b"',
        'user.city -eq "a" -and user.city -in ["a", "b"]',
        'user.city -ne "a" -and user.city -ne "b"',
        "user.city -notIn []",
        'user.city -in [] -or user.city -eq "a"',
        'user.city -startsWith "ab" -and user.city -startsWith "abc"',
    ],
)
def test_satisfiable_rules_are_not_contradictions(rule: str) -> None:
    assert contradiction(parse_expression(rule)) is None


def test_an_empty_list_matches_nothing_and_its_negation_everything() -> None:
    assert not parse("user.city -in []").matches({"city": "a"})
    assert parse("user.city -notIn []").matches({"city": "a"})
    assert parse("user.city -notIn []").matches({})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ('user.department -eq "Sales"', 'USER.DEPARTMENT   -EQ   "sales"'),
        (
            'user.city -eq "a" -and user.country -eq "b"',
            'user.country -eq "B" -and (user.city -eq "A")',
        ),
        (
            'user.department -eq "Sales" -or user.department -eq "HR"',
            'user.department -in ["hr", "SALES"]',
        ),
        (
            'user.department -ne "Sales" -and user.department -ne "HR"',
            'user.department -notIn ["HR", "Sales"]',
        ),
        ("user.employeeId -eq 1", 'user.employeeId -in ["1"]'),  # compared as text
        (
            '(user.a -eq "1" -or user.b -eq "2") -and user.c -eq "3"',
            'user.c -eq "3" -and (user.b -eq "2" -or user.a -eq "1")',
        ),
    ],
)
def test_equivalent_rules_share_a_normal_form(first: str, second: str) -> None:
    assert normalised_rule(first) == normalised_rule(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ('user.department -eq "Sales"', 'user.department -eq "Sales2"'),
        ('user.department -eq "Sales"', 'user.department -ne "Sales"'),
        ('user.a -eq "1" -or user.b -eq "2"', 'user.a -eq "1" -and user.b -eq "2"'),
        ('user.city -match "^A"', 'user.city -match "^B"'),
        ('user.city -eq "a"', 'device.displayName -eq "a"'),
    ],
)
def test_different_rules_do_not(first: str, second: str) -> None:
    assert normalised_rule(first) != normalised_rule(second)


def test_inactivity_needs_a_history_as_long_as_the_period() -> None:
    recent = inactivity(NOW - 5 * DAY, NOW - 10 * DAY, NOW, 90)
    assert recent.inactive is False
    short = inactivity(None, NOW - 30 * DAY, NOW, 90)
    assert short.inactive is None
    assert round(short.history_days) == 30
    long = inactivity(NOW - 100 * DAY, NOW - 120 * DAY, NOW, 90)
    assert long.inactive is True
    assert round(long.history_days) == 120
    never = inactivity(None, NOW - 91 * DAY, NOW, 90)
    assert never.inactive is True
    # A backfill still on old days (the watermark far behind now) cannot say.
    behind = inactivity(None, NOW - 120 * DAY, NOW, 90, history_end=NOW - 3 * DAY)
    assert behind.inactive is None
    assert inactivity(None, None, NOW, 90).inactive is None


def test_the_evaluation_cost_counts_rules_reading_the_changed_properties() -> None:
    rules = {
        "dept": parse('user.department -eq "a"'),
        "city": parse('user.city -eq "a"'),
        "ext": parse('user.extensionAttribute3 -eq "a"'),
        "device": parse('device.deviceOSType -eq "iOS"'),
    }
    changes = [
        PropertyChanges("user", frozenset({"Department"}), 10),  # dept
        PropertyChanges("user", frozenset({"City", "ExtensionAttribute3"}), 5),  # city, ext
        PropertyChanges("user", None, 2),  # added or deleted: all three user rules
        PropertyChanges("device", frozenset({"DeviceOSType"}), 3),  # device
        PropertyChanges("user", frozenset({"MobilePhone"}), 100),  # nobody
    ]
    evaluations = evaluations_by_rule(rules, changes)
    assert evaluations == {"dept": 10 + 2, "city": 5 + 2, "ext": 5 + 2, "device": 3}
    cost = evaluation_cost(evaluations, {"ext", "device"})
    assert cost.total == 10 + 5 * 2 + 2 * 3 + 3
    assert cost.candidates == 5 + 2 + 3
    assert cost.share == pytest.approx(10 / 29)
    assert evaluation_cost(evaluations_by_rule(rules, []), {"ext"}).share is None


@pytest.mark.parametrize(
    ("groups", "units", "level"),
    [
        (11_999, 0, "ok"),
        (11_990, 10, "warning"),
        (14_000, 250, "critical"),
        (15_000, 0, "critical"),
    ],
)
def test_headroom_levels(groups: int, units: int, level: str) -> None:
    assert Headroom(groups, units, 15_000).level == level


def test_the_report_gives_each_candidate_its_reasons_and_judges_nothing_it_cannot() -> None:
    objects = [
        HygieneObject("group", "A", "Sales", 'user.department -eq "Sales"'),
        HygieneObject("group", "B", "sales copy", 'user.department -in ["SALES"]'),
        HygieneObject("group", "C", "Nobody", 'user.city -eq "a" -and user.city -eq "b"'),
        HygieneObject(
            "group", "D", "Team members", 'user.memberOf -any (group.objectId -in ["x"])'
        ),
        HygieneObject("administrative_unit", "E", "AU Sales", 'user.department -eq "Sales"'),
        HygieneObject("group", "F", "broken", "user.city -eq"),
    ]
    report = assess_hygiene(
        objects,
        now=NOW,
        inactive_days=30,
        last_changes={"a": NOW - DAY, "b": NOW - 40 * DAY},
        history_start=NOW - 60 * DAY,
        member_counts={"A": MemberCount(5, NOW), "C": MemberCount(0, NOW - 3 * DAY)},
    )
    reasons = {(c.reason, c.target.id) for c in report.candidates}
    assert reasons == {
        (Reason.DUPLICATE, "A"),
        (Reason.DUPLICATE, "B"),  # the unit with the same rule is not a duplicate of groups
        (Reason.INACTIVE, "B"),
        (Reason.INACTIVE, "C"),
        (Reason.INACTIVE, "D"),
        (Reason.INACTIVE, "F"),
        (Reason.NEVER_MATCHES, "C"),
        (Reason.EMPTY, "C"),
        (Reason.MEMBER_OF, "D"),
    }
    assert report.not_judged == {Reason.INACTIVE: 0, Reason.EMPTY: 3}  # B, D, F uncounted
    assert report.by_reason()[Reason.INACTIVE] == 4
    [empty] = [c for c in report.candidates if c.reason is Reason.EMPTY]
    assert empty.evidence == "no members ($count read 3 days ago)"
    [old] = [c for c in report.candidates if c.reason is Reason.INACTIVE and c.target.id == "B"]
    assert "40 days ago" in old.evidence
    assert "60 days of history" in old.evidence
    unjudged = assess_hygiene(objects, now=NOW)
    assert unjudged.by_reason()[Reason.INACTIVE] == 0
    assert unjudged.not_judged[Reason.INACTIVE] == 5  # every group: no history


def test_a_group_created_while_the_exporter_watched_is_not_inactive_before_its_time() -> None:
    objects = [
        HygieneObject("group", "old", "In the first listing", 'user.city -eq "a"'),
        HygieneObject("group", "new", "Created 10 days ago", 'user.city -eq "b"'),
        HygieneObject("group", "newish", "Created 40 days ago", 'user.city -eq "c"'),
    ]
    first_listing = NOW - 100 * DAY
    report = assess_hygiene(
        objects,
        now=NOW,
        inactive_days=30,
        last_changes={},
        history_start=NOW - 100 * DAY,
        first_seen={
            "old": first_listing,
            "new": NOW - 10 * DAY,
            "newish": NOW - 40 * DAY,
        },
    )
    inactive = {c.target.id for c in report.candidates if c.reason is Reason.INACTIVE}
    assert inactive == {"old", "newish"}
    assert report.not_judged[Reason.INACTIVE] == 0
