"""The membership-rule parser and evaluator against Microsoft's documented rules and behaviour.

Sources of the rules in DOCUMENTED (learn.microsoft.com/entra/identity/users/...):
  [M] groups-dynamic-membership ("Manage rules for dynamic membership groups")
  [E] groups-dynamic-rule-more-efficient ("Create simpler, more efficient rules")
  [O] groups-dynamic-rule-member-of ("memberOf attribute (preview)")
  [T] the operator table of [M] (operators that have no example rule there)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.rules import (
    MAX_RULE_LENGTH,
    And,
    BoolValue,
    Collection,
    Comparison,
    DateValue,
    DirectReports,
    Expr,
    ItemRef,
    ListValue,
    Not,
    NowValue,
    NullValue,
    NumberValue,
    ObjectType,
    Operator,
    Or,
    Property,
    PropertyKind,
    Quantifier,
    RuleSyntaxError,
    Scalar,
    StringValue,
    Value,
    duration_seconds,
    make_and,
    make_or,
    parse,
    parse_expression,
    property_kind,
    unparse,
    unparse_value,
    walk,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC).timestamp()
DAY = 86400.0
MANAGER = "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"
GROUP_A = "0b7a7a1e-1111-4000-8000-00000000000a"
GROUP_B = "0b7a7a1e-1111-4000-8000-00000000000b"
EXCHANGE_PLAN_2 = "efb87545-963c-4e0d-99df-69c6916d9eb0"
DEPARTMENTS = (
    '["50001","50002","50003","50005","50006","50007","50008","50016","50020","50024","50038",'
    '"50039","51100"]'
)
CITIES = '["Lagos", "Ibadan", "Kaduna", "Abuja", "Port Harcourt"]'

Case = tuple[dict[str, Any], bool]

# (source, rule, object type, properties read, [(object, expected)])
DOCUMENTED: list[tuple[str, str, str, set[str], list[Case]]] = [
    (
        "M",
        'user.department -eq "Sales"',
        "user",
        {"department"},
        [
            ({"department": "Sales"}, True),
            ({"department": "sales"}, True),
            ({"department": "Sales Ops"}, False),
            ({}, False),
        ],
    ),
    (
        "M",
        "user.accountEnabled -eq true",
        "user",
        {"accountEnabled"},
        [({"accountEnabled": True}, True), ({"accountEnabled": False}, False), ({}, False)],
    ),
    (
        "M",
        "user.dirSyncEnabled -eq true",
        "user",
        {"dirSyncEnabled"},
        [({"dirSyncEnabled": True}, True), ({"dirSyncEnabled": None}, False)],
    ),
    (
        "M",
        "user.employeeId -ne null",
        "user",
        {"employeeId"},
        [
            ({"employeeId": "E1"}, True),
            ({"employeeId": None}, False),
            ({}, False),
            ({"employeeId": ""}, False),
        ],
    ),
    (
        "M",
        'user.employeeId -ne "null"',
        "user",
        {"employeeId"},
        [({"employeeId": "E1"}, True), ({"employeeId": "NULL"}, False), ({}, True)],
    ),
    (
        "M",
        'user.mail -notEndsWith "@Contoso.com"',
        "user",
        {"mail"},
        [({"mail": "a@contoso.com"}, False), ({"mail": "a@fabrikam.com"}, True), ({}, True)],
    ),
    (
        "M",
        'user.mailNickname -endsWith "-vendor"',
        "user",
        {"mailNickName"},
        [({"mailNickName": "bob-VENDOR"}, True), ({"mailNickName": "bob"}, False)],
    ),
    (
        "M",
        'user.objectId -eq "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"',
        "user",
        {"objectId"},
        [({"objectId": MANAGER.upper()}, True), ({"objectId": GROUP_A}, False)],
    ),
    (
        "M",
        'user.otherMails -startsWith "alias@domain"',
        "user",
        {"otherMails"},
        [
            ({"otherMails": ["x@y", "ALIAS@domain.com"]}, True),
            ({"otherMails": ["x@y"]}, False),
            ({"otherMails": []}, False),
        ],
    ),
    (
        "M",
        'user.otherMails -endsWith"@contoso.com"',
        "user",
        {"otherMails"},
        [({"otherMails": ["a@contoso.com"]}, True), ({"otherMails": ["a@contoso.org"]}, False)],
    ),
    (
        "M",
        'user.proxyAddresses -startsWith "SMTP: alias@domain"',
        "user",
        {"proxyAddresses"},
        [({"proxyAddresses": ["smtp: alias@domain"]}, True), ({}, False)],
    ),
    (
        "M",
        'user.proxyAddresses -notEndsWith "@outlook.com"',
        "user",
        {"proxyAddresses"},
        [
            ({"proxyAddresses": ["SMTP:a@outlook.com", "smtp:a@contoso.com"]}, False),
            ({"proxyAddresses": ["smtp:a@contoso.com"]}, True),
            ({}, True),
        ],
    ),
    (
        "M",
        f"user.department -in {DEPARTMENTS}",
        "user",
        {"department"},
        [({"department": "50039"}, True), ({"department": "50004"}, False), ({}, False)],
    ),
    (
        "M",
        "user.employeehiredate -ge system.now -plus p1d",
        "user",
        {"employeeHireDate"},
        [
            ({"employeeHireDate": NOW + 2 * DAY}, True),
            ({"employeeHireDate": NOW}, False),
            ({"employeeHireDate": datetime.fromtimestamp(NOW + DAY, UTC)}, True),
            ({"employeeHireDate": "2025-06-03T00:00:00Z"}, True),
            ({}, False),
        ],
    ),
    (
        "M",
        "user.employeehiredate -le 2020-06-10T18:13:20Z",
        "user",
        {"employeeHireDate"},
        [
            ({"employeeHireDate": "2020-06-10T18:13:20Z"}, True),
            ({"employeeHireDate": datetime(2020, 6, 10, 18, 13, 21)}, False),
            ({"employeeHireDate": datetime(2019, 1, 1, tzinfo=UTC)}, True),
            ({}, False),
        ],
    ),
    (
        "M",
        'user.displayName -match "^Da.*"',
        "user",
        {"displayName"},
        [
            ({"displayName": "Da"}, True),
            ({"displayName": "Dav"}, True),
            ({"displayName": "David"}, True),
            ({"displayName": "aDa"}, False),
        ],
    ),
    (
        "M",
        'user.displayName -match ".*vid"',
        "user",
        {"displayName"},
        [({"displayName": "David"}, True), ({"displayName": "Da"}, False)],
    ),
    (
        "M",
        "user.department -eq null",
        "user",
        {"department"},
        [({}, True), ({"department": None}, True), ({"department": "Sales"}, False)],
    ),
    ("M", "user.mail -ne null", "user", {"mail"}, [({"mail": "a@b"}, True), ({}, False)]),
    (
        "M",
        '(user.department -eq "Sales") -or (user.department -eq "Marketing")',
        "user",
        {"department"},
        [({"department": "Marketing"}, True), ({"department": "HR"}, False)],
    ),
    (
        "M",
        '(user.department -eq "Sales") -and -not (user.jobTitle -startsWith "SDE")',
        "user",
        {"department", "jobTitle"},
        [
            ({"department": "Sales", "jobTitle": "SDE II"}, False),
            ({"department": "Sales", "jobTitle": "Manager"}, True),
            ({"department": "Sales"}, True),
            ({"department": "HR"}, False),
        ],
    ),
    (
        "M",
        'user.department -eq "Marketing" -and user.country -eq "US"',
        "user",
        {"department", "country"},
        [
            ({"department": "Marketing", "country": "US"}, True),
            ({"department": "Marketing", "country": "FR"}, False),
        ],
    ),
    (
        "M",
        'user.country -eq "US" -and '
        '(user.department -eq "Marketing" -or user.department -eq "Sales")',
        "user",
        {"country", "department"},
        [
            ({"country": "US", "department": "Sales"}, True),
            ({"country": "FR", "department": "Sales"}, False),
        ],
    ),
    (
        "M",
        f'user.assignedPlans -any (assignedPlan.servicePlanId -eq "{EXCHANGE_PLAN_2}" -and '
        'assignedPlan.capabilityStatus -eq "Enabled")',
        "user",
        {"assignedPlans"},
        [
            (
                {
                    "assignedPlans": [
                        {"servicePlanId": EXCHANGE_PLAN_2, "capabilityStatus": "Enabled"}
                    ]
                },
                True,
            ),
            (
                {
                    "assignedPlans": [
                        {"servicePlanId": EXCHANGE_PLAN_2, "capabilityStatus": "Suspended"},
                        {"servicePlanId": GROUP_A, "capabilityStatus": "Enabled"},
                    ]
                },
                False,
            ),
            ({}, False),
        ],
    ),
    (
        "M",
        'user.assignedPlans -any (assignedPlan.service -eq "SCO" -and '
        'assignedPlan.capabilityStatus -eq "Enabled")',
        "user",
        {"assignedPlans"},
        [
            (
                {
                    "assignedPlans": [
                        {"service": "exchange", "capabilityStatus": "Enabled"},
                        {"service": "SCO", "capabilityStatus": "Enabled"},
                    ]
                },
                True,
            ),
            ({"assignedPlans": [{"service": "SCO", "capabilityStatus": "Deleted"}]}, False),
        ],
    ),
    (
        "M",
        "user.assignedPlans -all (assignedPlan.servicePlanId -eq null)",
        "user",
        {"assignedPlans"},
        [
            ({"assignedPlans": []}, True),
            ({}, True),
            ({"assignedPlans": [{"servicePlanId": EXCHANGE_PLAN_2}]}, False),
        ],
    ),
    (
        "M",
        '(user.proxyAddresses -any (_ -startsWith "contoso"))',
        "user",
        {"proxyAddresses"},
        [
            ({"proxyAddresses": ["smtp:a@b", "Contoso:x"]}, True),
            ({"proxyAddresses": ["smtp:a@b"]}, False),
            ({}, False),
        ],
    ),
    (
        "M",
        f'Direct Reports for "{MANAGER}"',
        "user",
        {"manager"},
        [({"manager": MANAGER}, True), ({"manager": GROUP_A}, False), ({}, False)],
    ),
    ("M", "user.objectId -ne null", "user", {"objectId"}, [({"objectId": GROUP_A}, True)]),
    (
        "M",
        '(user.objectId -ne null) -and (user.userType -eq "Member")',
        "user",
        {"objectId", "userType"},
        [
            ({"objectId": GROUP_A, "userType": "member"}, True),
            ({"objectId": GROUP_A, "userType": "Guest"}, False),
        ],
    ),
    ("M", "device.objectId -ne null", "device", {"objectId"}, [({"objectId": GROUP_A}, True)]),
    (
        "M",
        '(user.extensionAttribute15 -eq "Marketing")',
        "user",
        {"extensionAttribute15"},
        [
            ({"extensionAttribute15": "MARKETING"}, True),
            ({"extensionAttribute1": "Marketing"}, False),
        ],
    ),
    (
        "M",
        'user.extension_c272a57b722d4eb29bfe327874ae79cb_OfficeNumber -eq "123"',
        "user",
        {"extension_c272a57b722d4eb29bfe327874ae79cb_OfficeNumber"},
        [
            ({"extension_c272a57b722d4eb29bfe327874ae79cb_OfficeNumber": "123"}, True),
            ({"extension_c272a57b722d4eb29bfe327874ae79cb_OfficeNumber": 123}, True),
        ],
    ),
    (
        "M",
        '(device.deviceOSType -eq "iPad") -or (device.deviceOSType -eq "iOS")',
        "device",
        {"deviceOSType"},
        [({"deviceOSType": "IOS"}, True), ({"deviceOSType": "Android"}, False)],
    ),
    (
        "M",
        'device.deviceOSVersion -startsWith "10.0.1"',
        "device",
        {"deviceOSVersion"},
        [({"deviceOSVersion": "10.0.19045"}, True), ({"deviceOSVersion": "11.0"}, False)],
    ),
    (
        "M",
        'device.devicePhysicalIDs -any _ -startsWith "[ZTDId]"',
        "device",
        {"devicePhysicalIds"},
        [
            ({"devicePhysicalIds": ["[USER-GID]:1", "[ZTDID]:abc"]}, True),
            ({"devicePhysicalIds": ["[GID]:1"]}, False),
        ],
    ),
    (
        "M",
        'device.devicePhysicalIds -any _ -eq "[OrderID]:179887111881"',
        "device",
        {"devicePhysicalIds"},
        [({"devicePhysicalIds": ["[OrderId]:179887111881"]}, True)],
    ),
    (
        "M",
        'device.deviceManagementAppId -eq "0000000a-0000-0000-c000-000000000000"',
        "device",
        {"deviceManagementAppId"},
        [({"deviceManagementAppId": "0000000A-0000-0000-C000-000000000000"}, True)],
    ),
    (
        "M",
        "device.isRooted -eq true",
        "device",
        {"isRooted"},
        [({"isRooted": True}, True), ({"isRooted": False}, False)],
    ),
    (
        "M",
        'device.systemLabels -startsWith "M365Managed"',
        "device",
        {"systemLabels"},
        [({"systemLabels": ["M365ManagedX"]}, True), ({"systemLabels": []}, False)],
    ),
    (
        "O",
        f"user.memberof -any (group.objectId -in ['{GROUP_A}', '{GROUP_B}'])",
        "user",
        {"memberOf"},
        [({"memberOf": [GROUP_B.upper()]}, True), ({"memberOf": [MANAGER]}, False), ({}, False)],
    ),
    (
        "O",
        f"device.memberof -any (group.objectId -in ['{GROUP_A}'])",
        "device",
        {"memberOf"},
        [({"memberOf": [GROUP_A]}, True)],
    ),
    (
        "E",
        'user.city -match "ago"',
        "user",
        {"city"},
        [({"city": "Lagos"}, True), ({"city": "Abuja"}, False)],
    ),
    ("E", 'user.city -match ".*?ago.*"', "user", {"city"}, [({"city": "LAGOS"}, True)]),
    ("E", 'user.city -startswith "Lag"', "user", {"city"}, [({"city": "Lagos"}, True)]),
    (
        "E",
        '(user.department -eq "Accounts" -and user.city -eq "Lagos") -or \n'
        '(user.department -eq "Accounts" -and user.city -eq "Ibadan") -or \n'
        '(user.department -eq "Accounts" -and user.city -eq "Kaduna") -or \n'
        '(user.department -eq "Accounts" -and user.city -eq "Abuja") -or \n'
        '(user.department -eq "Accounts" -and user.city -eq "Port Harcourt")',
        "user",
        {"department", "city"},
        [
            ({"department": "Accounts", "city": "Port Harcourt"}, True),
            ({"department": "Accounts", "city": "Paris"}, False),
            ({"department": "Sales", "city": "Lagos"}, False),
        ],
    ),
    (
        "E",
        f'user.department -eq "Accounts" -and user.city -in {CITIES}',
        "user",
        {"department", "city"},
        [
            ({"department": "Accounts", "city": "abuja"}, True),
            ({"department": "Accounts", "city": "Paris"}, False),
        ],
    ),
    (
        "E",
        '(user.city -ne "Lagos") -and (user.city -ne "Ibadan") -and (user.city -ne "Kaduna") '
        '-and (user.city -ne "Abuja") -and (user.city -ne "Port Harcourt")',
        "user",
        {"city"},
        [({"city": "Paris"}, True), ({"city": "Kaduna"}, False), ({}, True)],
    ),
    (
        "E",
        f"user.city -notin {CITIES}",
        "user",
        {"city"},
        [({"city": "Paris"}, True), ({"city": "Kaduna"}, False), ({}, True)],
    ),
    (
        "E",
        'user.city -eq "Lagos" or user.city -startswith "Lag"',
        "user",
        {"city"},
        [({"city": "Lagos"}, True), ({"city": "Lagoon"}, True), ({"city": "Abuja"}, False)],
    ),
    (
        "T",
        'user.jobTitle -contains "Engineer"',
        "user",
        {"jobTitle"},
        [({"jobTitle": "Senior engineer II"}, True), ({"jobTitle": "Manager"}, False)],
    ),
    (
        "T",
        'user.jobTitle -notContains "Intern"',
        "user",
        {"jobTitle"},
        [({"jobTitle": "Summer INTERN"}, False), ({"jobTitle": "Manager"}, True), ({}, True)],
    ),
    (
        "T",
        'user.jobTitle -notStartsWith "SDE"',
        "user",
        {"jobTitle"},
        [({"jobTitle": "sde II"}, False), ({"jobTitle": "PM"}, True)],
    ),
    (
        "T",
        'user.displayName -notMatch "^Test"',
        "user",
        {"displayName"},
        [({"displayName": "test user"}, False), ({"displayName": "Ada"}, True)],
    ),
    (
        "T",
        'user.proxyAddresses -all (_ -endsWith "@contoso.com")',
        "user",
        {"proxyAddresses"},
        [
            ({"proxyAddresses": ["SMTP:a@contoso.com", "smtp:b@CONTOSO.com"]}, True),
            ({"proxyAddresses": ["SMTP:a@contoso.com", "smtp:b@fabrikam.com"]}, False),
        ],
    ),
    (
        "T",
        "user.employeeHireDate -ge (system.now -minus P30D) -and "
        "user.employeeHireDate -le system.now",
        "user",
        {"employeeHireDate"},
        [
            ({"employeeHireDate": NOW - 10 * DAY}, True),
            ({"employeeHireDate": NOW - 31 * DAY}, False),
            ({"employeeHireDate": NOW + DAY}, False),
        ],
    ),
]


@pytest.mark.parametrize(
    ("source", "text", "object_type", "properties", "cases"),
    DOCUMENTED,
    ids=[f"{d[0]}-{i}" for i, d in enumerate(DOCUMENTED)],
)
def test_documented_rules_parse_and_evaluate_as_documented(
    source: str, text: str, object_type: str, properties: set[str], cases: list[Case]
) -> None:
    rule = parse(text)
    assert rule.object_type == object_type
    assert rule.properties == properties
    for obj, expected in cases:
        assert rule.matches(obj, now=NOW) is expected, (text, obj)
    # The canonical text is a rule in its own right and means the same.
    again = parse(unparse(rule.ast))
    assert again.ast == rule.ast
    for obj, expected in cases:
        assert again.matches(obj, now=NOW) is expected


def test_documented_table_covers_every_operator_and_construct() -> None:
    nodes = [
        node
        for *_, text, _, _, _ in [(d[0], *d[1:]) for d in DOCUMENTED]
        for node in walk(parse_expression(text))
    ]
    used = {node.operator for node in nodes if isinstance(node, Comparison)}
    assert used == set(Operator)
    kinds = {type(node) for node in nodes}
    assert kinds == {Comparison, Not, And, Or, Collection, DirectReports}
    quantifiers = {node.quantifier for node in nodes if isinstance(node, Collection)}
    assert quantifiers == set(Quantifier)
    values = {type(node.value) for node in nodes if isinstance(node, Comparison)}
    assert values == {StringValue, BoolValue, NullValue, DateValue, NowValue, ListValue}
    prefixes = {
        node.subject.prefix
        for node in nodes
        if isinstance(node, Comparison) and isinstance(node.subject, ItemRef)
    }
    assert prefixes == {"_", "assignedPlan", "group"}
    assert len(DOCUMENTED) >= 25


# (rule, position, message)
MALFORMED: list[tuple[str, int, str]] = [
    ("", 0, 'the rule is empty: expected a criterion such as user.department -eq "Sales"'),
    ("user.department -eq", 19, "expected a value after -eq, found end of rule"),
    ('user.department -equals "x"', 16, "unknown operator -equals (did you mean -eq?)"),
    ('user.department -gt "x"', 16, "unknown operator -gt (did you mean -ge?)"),
    ("user.department", 15, "expected an operator after user.department, found end of rule"),
    (
        'user.department "Sales"',
        16,
        'expected an operator such as -eq, -startsWith or -in after user.department, found "Sales"',
    ),
    (
        'user.department -eq "Sales',
        20,
        'unterminated string: this " has no closing " (escape a quote inside as `")',
    ),
    (
        "user.department -eq 'Sales",
        20,
        "unterminated string: this ' has no closing ' (escape a quote inside as '')",
    ),
    ('(user.department -eq "Sales"', 0, "unbalanced parentheses: this ( is never closed"),
    ('user.department -eq "Sales")', 27, "unbalanced parentheses: ) has no matching ("),
    (
        '(user.department -eq "Sales" user.city -eq "x")',
        29,
        "expected -and, -or or ), found user.city",
    ),
    ('user.department -eq "Sales" user.city -eq "x"', 28, "expected -and or -or, found user.city"),
    (
        'foo.department -eq "Sales"',
        0,
        "unknown property prefix 'foo' in foo.department: expected user.<property> or "
        "device.<property>",
    ),
    (
        'department -eq "Sales"',
        0,
        "expected a property such as user.department, found department (properties are written "
        "user.<name> or device.<name>)",
    ),
    ('user. -eq "x"', 5, "expected a property name after user., found nothing"),
    (
        'user.city -match "(Lag"',
        17,
        "invalid regular expression after -match: missing ), unterminated subpattern at offset 0 "
        "of the pattern",
    ),
    (
        'user.city -notMatch "*x"',
        20,
        "invalid regular expression after -notMatch: nothing to repeat at offset 0 of the pattern",
    ),
    (
        'user.city -eq "Lagos" -and device.deviceOSType -eq "iOS"',
        27,
        "a rule reads either user or device properties, not both: device.deviceOSType in a rule "
        "that starts with user.city (a group's members are all users or all devices)",
    ),
    (
        "user.mail \u2013ne null",
        10,
        "\u2013ne starts with a typographic dash (U+2013); write a plain hyphen: -ne",
    ),
    (
        "user.mail -not null",
        10,
        "expected a comparison operator after user.mail, found -not (-not negates a whole "
        "criterion; to compare with null use -ne null)",
    ),
    (
        "user.city -startsWith null",
        22,
        "null can be compared only with -eq or -ne, not -startsWith",
    ),
    (
        "user.city -eq Lagos",
        14,
        "expected a value after -eq (a double-quoted string, a number, true, false or null), found "
        'Lagos (quote text: "Lagos")',
    ),
    (
        "user.city -eq $null",
        14,
        "expected a value after -eq (a double-quoted string, a number, true, false or null), found "
        "$null (write null)",
    ),
    ('user.city -in "Lagos"', 14, 'expected a [list] after -in, such as ["a", "b"], found "Lagos"'),
    ('user.city -eq ["Lagos"]', 14, "a [list] can follow only -in or -notIn, not -eq"),
    (
        'user.city -in ["Lagos", ]',
        24,
        "expected a value (a double-quoted string or a number) after , in the list, found ]",
    ),
    ('user.city -notIn ["a" "b"]', 22, 'expected , or ] in the list, found "b"'),
    ('user.city -in ["a", "b"', 14, "unbalanced brackets: this [ is never closed"),
    (
        'user.city -any (_ -eq "x")',
        10,
        "-any needs a multi-valued property (such as proxyAddresses, otherMails, assignedPlans, "
        "memberOf); user.city holds a single value",
    ),
    (
        'user.proxyAddresses -any (_ -eq "x" -and user.city -eq "y")',
        41,
        "expected _ (an item of the collection) inside -any/-all, found user.city (close the "
        "parentheses of -any/-all before criteria on the object itself)",
    ),
    (
        'user.proxyAddresses -any (assignedPlan.service -eq "x")',
        26,
        "assignedPlan.service can be used only inside user.assignedPlans -any/-all (...)",
    ),
    (
        'user.assignedPlans -any (assignedPlan.serviceName -eq "x")',
        25,
        "expected assignedPlan.<property> (capabilityStatus, service, servicePlanId), found "
        "assignedPlan.serviceName",
    ),
    (
        '_ -eq "x"',
        0,
        "_ stands for an item of a string collection and is used only inside -any/-all, e.g. "
        'user.proxyAddresses -any (_ -startsWith "smtp:")',
    ),
    (
        'user.memberOf -eq "x"',
        14,
        "user.memberOf is used only as user.memberOf -any (group.objectId -in ['<group id>'])",
    ),
    ("user.memberOf -any (group.id -in ['x'])", 20, "expected group.objectId, found group.id"),
    (
        "user.proxyAddresses -any",
        24,
        "expected a condition in parentheses after -any, found end of rule",
    ),
    (
        'user.department -ge "2020-01-01"',
        16,
        "-ge compares dates, and user.department is not a date property (employeeHireDate is)",
    ),
    (
        'user.employeeHireDate -startsWith "2020"',
        22,
        "user.employeeHireDate is a date: compare it with -eq, -ne, -le or -ge, not -startsWith",
    ),
    (
        'user.employeeHireDate -ge "yesterday"',
        26,
        "expected a date after -ge: system.now, system.now -plus P1D, or a date such as "
        '2020-06-10T18:13:20Z; found "yesterday"',
    ),
    (
        "user.employeeHireDate -ge system.now -plus 1d",
        43,
        "expected an ISO 8601 duration such as P1D, P30D or P7DT3H after -plus, found 1d",
    ),
    (
        'system.now -eq "x"',
        0,
        "expected a property such as user.department, found system.now (system.now is a value: it "
        "goes after -le, -ge, -eq or -ne)",
    ),
    (
        'Direct Reports for "Bob"',
        19,
        "expected the manager's object id in quotes, such as "
        '"aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb", found "Bob"',
    ),
    (
        f'Direct Reports for "{MANAGER}" -and user.city -eq "x"',
        58,
        "a Direct Reports rule stands alone: it can't be combined with other criteria",
    ),
    (
        'Direct Report for "x"',
        7,
        'expected Reports in Direct Reports for "<manager object id>", found Report',
    ),
    (
        'user.city -eq "x" -and',
        22,
        "expected a property such as user.department, found end of rule",
    ),
    (
        'user.city -eq "x" -and -or user.a -eq "y"',
        23,
        "expected a property such as user.department, found -or (an operator)",
    ),
    ('user.city -eq `"x`"', 14, 'a backtick escapes a " only inside a double-quoted string'),
]


@pytest.mark.parametrize(("text", "position", "message"), MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_rules_are_rejected_with_position_and_message(
    text: str, position: int, message: str
) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse(text)
    error = caught.value
    assert (error.position, error.message) == (position, message)
    assert str(error) == f"position {position}: {message}"
    assert "\n" not in str(error)
    assert error.code == (
        "mixed-object-types"
        if "not both" in message
        else "invalid-regex"
        if "regular expression" in message
        else "syntax-error"
    )


def test_caret_points_at_the_position_on_its_own_line() -> None:
    text = '(user.department -eq "Accounts" -and user.city -eq "Lagos") -or\n(user.city -eq)'
    with pytest.raises(RuleSyntaxError) as caught:
        parse(text)
    error = caught.value
    assert (error.line, error.column) == (2, 15)
    assert error.caret() == "(user.city -eq)\n              ^"


def test_caret_windows_a_long_line() -> None:
    text = " -and ".join(f'user.extensionAttribute1 -ne "{i:04d}"' for i in range(100)) + " -and"
    with pytest.raises(RuleSyntaxError) as caught:
        parse(text)
    line, caret = caught.value.caret(width=60).split("\n")
    assert line.startswith("...")
    assert len(line) <= 66
    assert caret.index("^") == len(line)  # end of rule: just past the last character


def test_length_limit_is_not_a_parse_error() -> None:
    text = " -or ".join(f'user.department -eq "{i:05d}"' for i in range(120))
    assert len(text) > MAX_RULE_LENGTH
    assert parse(text).matches({"department": "00119"})


# -- semantics the documentation leaves implicit (chosen so that rewrites are equivalences)


def test_operators_keywords_and_property_names_ignore_case_and_hyphen() -> None:
    rule = parse(
        'USER.DEPARTMENT EQ "Sales" AND NOT (user.JOBTITLE -STARTSWITH "sde") or '
        "user.city -IN ['x']"
    )
    assert rule.ast == parse_expression(
        'user.department -eq "Sales" -and -not (user.jobTitle -startsWith "sde") -or '
        'user.city -in ["x"]'
    )


def test_precedence_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    rule = parse(
        'user.country -eq "US" -and user.department -eq "Marketing" -or user.department -eq "Sales"'
    )
    assert rule.matches({"country": "FR", "department": "Sales"})
    assert not rule.matches({"country": "FR", "department": "Marketing"})
    negated = parse('-not user.city -eq "a" -and user.country -eq "b"')
    assert negated.matches({"city": "x", "country": "b"})
    assert not negated.matches({"city": "x", "country": "c"})


def test_string_escapes() -> None:
    assert parse('user.department -eq "`"Sales`""').matches({"department": '"Sales"'})
    assert parse("user.department -eq 'O''Brien'").matches({"department": "o'brien"})
    assert parse('user.department -eq "a``b"').matches({"department": "a`b"})
    assert parse('user.department -eq "a`b"').matches({"department": "a`b"})


def test_values_of_other_types_compare_as_text() -> None:
    assert parse("user.employeeId -eq 123").matches({"employeeId": "123"})
    assert parse("user.employeeId -in [1, 2]").matches({"employeeId": 2})
    assert parse('user.accountEnabled -eq "TRUE"').matches({"accountEnabled": True})


def test_null_and_empty_string_are_the_same() -> None:
    rule = parse('user.department -ne "Sales"')
    assert rule.matches({})
    assert rule.matches({"department": ""})
    assert parse("user.department -eq null").matches({"department": ""})


def test_dotnet_named_groups_are_accepted() -> None:
    assert parse(r'user.mail -match "^(?<alias>[a-z]+)@contoso\.com$"').matches(
        {"mail": "Bob@Contoso.com"}
    )


def test_system_now_needs_now() -> None:
    rule = parse("user.employeeHireDate -le system.now")
    assert rule.depends_on_time
    assert not parse('user.city -eq "x"').depends_on_time
    with pytest.raises(ValueError, match="pass now="):
        rule.matches({"employeeHireDate": 0.0})
    assert rule.matches({"employeeHireDate": 0.0}, now=NOW)


def test_durations() -> None:
    assert duration_seconds("P1D") == DAY
    assert duration_seconds("p7dt3h") == 7 * DAY + 3 * 3600
    assert duration_seconds("PT1.5S") == 1.5
    assert duration_seconds("P1Y2M1W") == (365 + 60 + 7) * DAY
    for bad in ("P", "PT", "1D", "P1DT"):
        with pytest.raises(ValueError, match="ISO 8601"):
            duration_seconds(bad)


def test_unknown_properties_parse_and_read_as_text() -> None:
    rule = parse('user.employeeType -eq "Contractor"')
    assert rule.properties == {"employeeType"}
    assert property_kind(ObjectType.USER, "employeeType") is PropertyKind.UNKNOWN
    assert rule.matches({"employeeType": "contractor"})
    assert parse('user.onPremisesExtension -any (_ -eq "x")').matches(
        {"onPremisesExtension": ["X"]}
    )


def test_direct_reports_accepts_braces_and_any_case() -> None:
    rule = parse(f'direct reports FOR "{{{MANAGER.upper()}}}"')
    assert rule.ast == DirectReports(MANAGER.upper())
    assert rule.matches({"manager": MANAGER})


def test_positions_point_into_the_text() -> None:
    text = 'user.city -eq "a" -and -not (user.proxyAddresses -any (_ -match "x"))'
    ast = parse_expression(text)
    assert isinstance(ast, And)
    first, negation = ast.operands
    assert isinstance(first, Comparison)
    assert isinstance(negation, Not)
    assert (first.position, first.operator_position, first.value_position) == (0, 10, 14)
    assert negation.position == text.index("-not")
    collection = negation.operand
    assert isinstance(collection, Collection)
    assert collection.quantifier_position == text.index("-any")
    assert isinstance(collection.condition, Comparison)
    assert collection.condition.operator_position == text.index("-match")


# -- round trip: generated syntax trees, written out in varied surface forms

USER_STRING_PROPERTIES = [
    "department",
    "city",
    "jobTitle",
    "extensionAttribute3",
    "employeeType",
    "extension_c272a57b722d4eb29bfe327874ae79cb_OfficeNumber",
]
DEVICE_STRING_PROPERTIES = ["deviceOSType", "deviceModel", "extensionAttribute15"]
TEXT_OPERATORS = [
    Operator.EQ,
    Operator.NE,
    Operator.STARTS_WITH,
    Operator.NOT_STARTS_WITH,
    Operator.ENDS_WITH,
    Operator.NOT_ENDS_WITH,
    Operator.CONTAINS,
    Operator.NOT_CONTAINS,
    Operator.MATCH,
    Operator.NOT_MATCH,
    Operator.IN,
    Operator.NOT_IN,
]

strings = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
numbers = st.one_of(st.integers(-999, 99999).map(str), st.decimals(0, 1000, places=2).map(str))
scalars: st.SearchStrategy[Scalar] = st.one_of(
    strings.map(StringValue), numbers.map(NumberValue), st.booleans().map(BoolValue)
)
regexes = st.builds(
    lambda anchor, body, tail, end: anchor + re.escape(body) + tail + end,
    st.sampled_from(["", "^"]),
    st.text("abcXYZ .-", min_size=1, max_size=6),
    st.sampled_from(["", ".*", "[0-9]+", "(x|y)?"]),
    st.sampled_from(["", "$"]),
)


@st.composite
def comparisons(draw: st.DrawFn, subject: Property | ItemRef) -> Comparison:
    op = draw(st.sampled_from(TEXT_OPERATORS))
    value: Value
    if op in (Operator.IN, Operator.NOT_IN):
        value = ListValue(tuple(draw(st.lists(scalars, min_size=1, max_size=4))))
    elif op in (Operator.MATCH, Operator.NOT_MATCH):
        value = StringValue(draw(regexes))
    elif op in (Operator.EQ, Operator.NE):
        value = draw(st.one_of(scalars, st.just(NullValue())))
    else:
        value = draw(st.one_of(strings.map(StringValue), numbers.map(NumberValue)))
    return Comparison(subject, op, value)


dates = st.datetimes(datetime(1970, 1, 2), datetime(2100, 1, 1), timezones=st.just(UTC))
nows = st.builds(NowValue) | st.builds(
    NowValue,
    st.sampled_from([1, -1]),
    st.sampled_from(["P1D", "P30D", "P7DT3H", "PT30M", "PT1.5S"]),
)


@st.composite
def date_comparisons(draw: st.DrawFn) -> Comparison:
    op = draw(st.sampled_from([Operator.LE, Operator.GE, Operator.EQ, Operator.NE]))
    value: Value = draw(dates.map(DateValue) | nows)
    return Comparison(Property(ObjectType.USER, "employeeHireDate"), op, value)


def criteria(object_type: ObjectType) -> st.SearchStrategy[Expr]:
    names = USER_STRING_PROPERTIES if object_type is ObjectType.USER else DEVICE_STRING_PROPERTIES
    plain: st.SearchStrategy[Expr] = st.sampled_from(names).flatmap(
        lambda name: comparisons(Property(object_type, name))
    )
    string_items = st.recursive(comparisons(ItemRef("_")), lambda inner: logic(inner), max_leaves=3)
    plan_items = st.recursive(
        st.sampled_from(["service", "capabilityStatus", "servicePlanId"]).flatmap(
            lambda name: comparisons(ItemRef("assignedPlan", name))
        ),
        lambda inner: logic(inner),
        max_leaves=3,
    )
    collection_name = "proxyAddresses" if object_type is ObjectType.USER else "devicePhysicalIds"
    collections = st.builds(
        Collection,
        st.just(Property(object_type, collection_name)),
        st.sampled_from(Quantifier),
        string_items,
    )
    member_of = st.builds(
        lambda ids: Collection(
            Property(object_type, "memberOf"),
            Quantifier.ANY,
            Comparison(
                ItemRef("group", "objectId"),
                Operator.IN,
                ListValue(tuple(StringValue(i) for i in ids)),
            ),
        ),
        st.lists(st.uuids().map(str), min_size=1, max_size=3),
    )
    options = [plain, collections, member_of]
    if object_type is ObjectType.USER:
        options += [
            date_comparisons(),
            st.builds(
                Collection,
                st.just(Property(object_type, "assignedPlans")),
                st.sampled_from(Quantifier),
                plan_items,
            ),
        ]
    return st.one_of(*options)


def logic(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda ops: make_and(tuple(ops))),
        st.lists(inner, min_size=2, max_size=3).map(lambda ops: make_or(tuple(ops))),
    )


rule_trees: st.SearchStrategy[Expr] = st.one_of(
    st.sampled_from(ObjectType).flatmap(lambda t: st.recursive(criteria(t), logic, max_leaves=8)),
    st.uuids().map(lambda u: DirectReports(str(u))),
)


@st.composite
def surface_text(draw: st.DrawFn, node: Expr) -> str:
    """`node` written as a person might: any case, hyphens optional, redundant parentheses,
    single quotes, line breaks."""

    def op(name: str) -> str:
        spelled = draw(st.sampled_from([name, name.lower(), name.upper()]))
        return draw(st.sampled_from(["-", ""])) + spelled

    def space() -> str:
        return draw(st.sampled_from([" ", "  ", "\n", "\t "]))

    def value(v: Value) -> str:
        if isinstance(v, StringValue) and draw(st.booleans()):
            return "'" + v.value.replace("'", "''") + "'"
        if isinstance(v, ListValue):
            return "[" + ",".join(space() + value(item) for item in v.items) + "]"
        if isinstance(v, NowValue) and v.duration is not None:
            arithmetic = op("plus" if v.sign > 0 else "minus")
            text = (
                f"system.now {arithmetic} {draw(st.sampled_from([v.duration, v.duration.lower()]))}"
            )
            return f"({text})" if draw(st.booleans()) else text
        return unparse_value(v)

    def write(n: Expr, needs_parens: bool) -> str:
        text = expression(n)
        if needs_parens or draw(st.integers(0, 4)) == 0:
            return "(" + space() + text + space() + ")"
        return text

    def expression(n: Expr) -> str:
        match n:
            case Comparison(subject, operator, v):
                subject_text = str(subject)
                if isinstance(subject, Property) and draw(st.booleans()):
                    # Documented names are matched in any case; others are kept as written.
                    name = subject.name
                    if subject.kind not in (PropertyKind.UNKNOWN, PropertyKind.STRING) or (
                        not name.startswith("extension_") and subject.kind is PropertyKind.STRING
                    ):
                        name = name.lower()
                    subject_text = f"{subject.object_type.value.upper()}.{name}"
                return f"{subject_text}{space()}{op(operator.value)}{space()}{value(v)}"
            case Not(operand):
                return f"{op('not')}{space()}" + write(operand, isinstance(operand, And | Or))
            case And(operands):
                return f"{space()}{op('and')}{space()}".join(
                    write(o, isinstance(o, Or)) for o in operands
                )
            case Or(operands):
                return f"{space()}{op('or')}{space()}".join(write(o, False) for o in operands)
            case Collection(subject, quantifier, condition):
                bare = isinstance(condition, Comparison) and draw(st.booleans())
                body = expression(condition) if bare else write(condition, True)
                return f"{subject}{space()}{op(quantifier.value)}{space()}{body}"
            case DirectReports(manager_id):
                keywords = draw(st.sampled_from(["Direct Reports for", "direct reports FOR"]))
                return f'{keywords} "{manager_id}"'
        raise AssertionError(n)

    if isinstance(node, DirectReports):
        return expression(node)  # a whole rule: it takes no parentheses
    return write(node, False)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), tree=rule_trees)
def test_round_trip_through_canonical_text(data: st.DataObject, tree: Expr) -> None:
    written = data.draw(surface_text(tree))
    parsed = parse_expression(written)
    assert parsed == tree, written
    canonical = unparse(parsed)
    assert parse_expression(canonical) == parsed
    assert unparse(parse_expression(canonical)) == canonical


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            [
                "user.city",
                "device.deviceModel",
                "_",
                " ",
                "(",
                ")",
                "[",
                "]",
                ",",
                '"x"',
                "'y'",
                "-eq",
                "-in",
                "-and",
                "-or",
                "-not",
                "-any",
                "null",
                "1",
                "system.now",
                "-plus",
                "P1D",
                '"',
                "`",
                "-match",
                '"("',
                "user.proxyAddresses",
                "user.memberOf",
                "group.objectId",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_arbitrary_text_either_parses_or_fails_with_a_position(text: str) -> None:
    try:
        rule = parse(text)
    except RuleSyntaxError as error:
        failure = error
    else:
        assert parse_expression(unparse(rule.ast)) == rule.ast
        return
    assert 0 <= failure.position <= len(text)
    assert "\n" not in str(failure)
    assert failure.caret().count("\n") >= 1


def test_equality_ignores_positions() -> None:
    assert parse_expression('  user.city -eq "a"') == parse_expression('user.city -eq "a"')
    assert hash(parse("(user.city -eq 'a')")) == hash(parse('user.city -eq "a"'))
