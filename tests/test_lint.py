"""The rule linter: each finding on real-looking rules, and rewrites that mean the same."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.lint import (
    OPERATOR_USAGE_KEYS,
    Code,
    Finding,
    Severity,
    lint_rule,
    operator_usage,
    worst_severity,
)
from exporter.domain.rules import MAX_RULE_LENGTH, parse, parse_expression

CITIES = '["Lagos", "Ibadan", "Kaduna", "Abuja", "Port Harcourt"]'
GROUP = "0b7a7a1e-1111-4000-8000-00000000000a"


def only(text: str, code: Code) -> Finding:
    found = [f for f in lint_rule(text) if f.code is code]
    assert len(found) == 1, lint_rule(text)
    return found[0]


# (rule, code, severity, position, rewrite)
FINDINGS: list[tuple[str, Code, Severity, int | None, str | None]] = [
    # Microsoft's -match examples (groups-dynamic-rule-more-efficient)
    (
        'user.city -match "ago"',
        Code.MATCH_OPERATOR,
        Severity.WARNING,
        10,
        'user.city -contains "ago"',
    ),
    (
        'user.city -match ".*?ago.*"',
        Code.MATCH_OPERATOR,
        Severity.WARNING,
        10,
        'user.city -contains "ago"',
    ),
    (
        'user.department -match "^Sales"',
        Code.MATCH_OPERATOR,
        Severity.WARNING,
        16,
        'user.department -startsWith "Sales"',
    ),
    (
        'user.mail -match "@contoso\\.com$"',
        Code.MATCH_OPERATOR,
        Severity.WARNING,
        10,
        'user.mail -endsWith "@contoso.com"',
    ),
    (
        'user.department -match "^Sales$" -and user.accountEnabled -eq true',
        Code.MATCH_OPERATOR,
        Severity.WARNING,
        16,
        'user.department -eq "Sales" -and user.accountEnabled -eq true',
    ),
    (
        'user.department -notMatch "^(Sales|Marketing)$"',
        Code.MATCH_OPERATOR,
        Severity.WARNING,
        16,
        'user.department -notIn ["Sales", "Marketing"]',
    ),
    ('device.displayName -match "^Da.*vid"', Code.MATCH_OPERATOR, Severity.WARNING, 19, None),
    (
        'user.proxyAddresses -any (_ -match "^smtp:")',
        Code.MATCH_OPERATOR,
        Severity.WARNING,
        28,
        'user.proxyAddresses -any (_ -startsWith "smtp:")',
    ),
    ('user.jobTitle -contains "Engineer"', Code.CONTAINS_OPERATOR, Severity.WARNING, 14, None),
    ('user.jobTitle -notContains "Intern"', Code.CONTAINS_OPERATOR, Severity.WARNING, 14, None),
    # memberOf (groups-dynamic-rule-member-of)
    (
        f"user.memberof -any (group.objectId -in ['{GROUP}'])",
        Code.MEMBER_OF,
        Severity.WARNING,
        0,
        None,
    ),
    (
        f"(user.memberOf -any (group.objectId -in ['{GROUP}'])) -and user.city -eq \"Redmond\"",
        Code.MEMBER_OF_COMBINED,
        Severity.ERROR,
        1,
        None,
    ),
    (
        "device.memberOf -any (group.objectId -in ["
        + ", ".join(f'"0b7a7a1e-1111-4000-8000-{i:012d}"' for i in range(51))
        + "])",
        Code.MEMBER_OF_TOO_MANY_GROUPS,
        Severity.ERROR,
        0,
        None,
    ),
    # Microsoft's -or example, and its better rule, word for word
    (
        '(user.department -eq "Accounts" -and user.city -eq "Lagos") -or \n'
        '(user.department -eq "Accounts" -and user.city -eq "Ibadan") -or \n'
        '(user.department -eq "Accounts" -and user.city -eq "Kaduna") -or \n'
        '(user.department -eq "Accounts" -and user.city -eq "Abuja") -or \n'
        '(user.department -eq "Accounts" -and user.city -eq "Port Harcourt")',
        Code.OR_CHAIN,
        Severity.WARNING,
        0,
        f'user.department -eq "Accounts" -and user.city -in {CITIES}',
    ),
    (
        '(device.deviceOSType -eq "iPad") -or (device.deviceOSType -eq "iOS")',
        Code.OR_CHAIN,
        Severity.WARNING,
        0,
        'device.deviceOSType -in ["iPad", "iOS"]',
    ),
    (
        'user.accountEnabled -eq true -and (user.city -in ["Lagos"] -or user.city -eq "Abuja" -or '
        'user.jobTitle -eq "CEO")',
        Code.OR_CHAIN,
        Severity.WARNING,
        35,
        'user.accountEnabled -eq true -and (user.city -in ["Lagos", "Abuja"] -or '
        'user.jobTitle -eq "CEO")',
    ),
    (
        'user.proxyAddresses -any (_ -eq "smtp:a@contoso.com" -or _ -eq "smtp:b@contoso.com")',
        Code.OR_CHAIN,
        Severity.WARNING,
        26,
        'user.proxyAddresses -any (_ -in ["smtp:a@contoso.com", "smtp:b@contoso.com"])',
    ),
    # Microsoft's -notIn example
    (
        '(user.city -ne "Lagos") -and (user.city -ne "Ibadan") -and (user.city -ne "Kaduna") -and '
        '(user.city -ne "Abuja") -and (user.city -ne "Port Harcourt")',
        Code.NE_CHAIN,
        Severity.WARNING,
        1,
        f"user.city -notIn {CITIES}",
    ),
    (
        'user.userType -eq "Member" -and user.city -ne "Lagos" -and user.city -notIn ["Abuja"]',
        Code.NE_CHAIN,
        Severity.WARNING,
        32,
        'user.userType -eq "Member" -and user.city -notIn ["Lagos", "Abuja"]',
    ),
    # Microsoft's redundant-criteria example, with its bare `or`
    (
        'user.city -eq "Lagos" or user.city -startswith "Lag"',
        Code.REDUNDANT_CRITERION,
        Severity.WARNING,
        0,
        'user.city -startsWith "Lag"',
    ),
    (
        'user.city -eq "a" -and user.city -in ["a","b"]',
        Code.REDUNDANT_CRITERION,
        Severity.WARNING,
        23,
        'user.city -eq "a"',
    ),
    (
        'user.department -ne null -and user.department -eq "Sales"',
        Code.REDUNDANT_CRITERION,
        Severity.WARNING,
        0,
        'user.department -eq "Sales"',
    ),
    (
        'user.department -eq "Sales" -and user.country -eq "US" -and user.department -eq "SALES"',
        Code.REDUNDANT_CRITERION,
        Severity.WARNING,
        60,
        'user.department -eq "Sales" -and user.country -eq "US"',
    ),
    (
        'user.jobTitle -startsWith "Sales" -and user.jobTitle -ne "Marketing"',
        Code.REDUNDANT_CRITERION,
        Severity.WARNING,
        39,
        'user.jobTitle -startsWith "Sales"',
    ),
    (
        'user.mail -endsWith "@eu.contoso.com" -or user.mail -endsWith "contoso.com"',
        Code.REDUNDANT_CRITERION,
        Severity.WARNING,
        0,
        'user.mail -endsWith "contoso.com"',
    ),
    (
        '(user.proxyAddresses -any (_ -startsWith "smtp:")) -or (user.proxyAddresses -any '
        '(_ -startsWith "smtp:"))',
        Code.REDUNDANT_CRITERION,
        Severity.WARNING,
        56,
        'user.proxyAddresses -any (_ -startsWith "smtp:")',
    ),
    # Limits and errors
    (
        'user.department -eq "Sales" -and device.deviceOSType -eq "iOS"',
        Code.MIXED_OBJECT_TYPES,
        Severity.ERROR,
        33,
        None,
    ),
    ('user.department -eq "Sales', Code.SYNTAX_ERROR, Severity.ERROR, 20, None),
    ('user.department -match "[Sales"', Code.INVALID_REGEX, Severity.ERROR, 23, None),
    (
        " -or ".join(f'user.extensionAttribute1 -startsWith "{i:05d}"' for i in range(70)),
        Code.RULE_TOO_LONG,
        Severity.ERROR,
        MAX_RULE_LENGTH,
        None,
    ),
    (
        " -or ".join(f'user.extensionAttribute1 -startsWith "{i:05d}"' for i in range(60)),
        Code.RULE_NEAR_LENGTH_LIMIT,
        Severity.WARNING,
        None,
        None,
    ),
    ('user.employeeType -eq "Contractor"', Code.UNKNOWN_PROPERTY, Severity.INFO, 0, None),
    ('device.department -eq "Sales"', Code.UNKNOWN_PROPERTY, Severity.INFO, 0, None),
]


@pytest.mark.parametrize(
    ("text", "code", "severity", "position", "rewrite"),
    FINDINGS,
    ids=[f"{i}-{f[1].value}" for i, f in enumerate(FINDINGS)],
)
def test_finding(
    text: str, code: Code, severity: Severity, position: int | None, rewrite: str | None
) -> None:
    finding = only(text, code)
    assert (finding.severity, finding.position, finding.rewrite) == (severity, position, rewrite)
    assert "\n" not in finding.message
    if rewrite is not None:
        assert code not in {f.code for f in lint_rule(rewrite)} - {Code.CONTAINS_OPERATOR}


@pytest.mark.parametrize(
    "text",
    [
        'user.department -eq "Sales"',
        f'user.department -eq "Accounts" -and user.city -in {CITIES}',
        f"user.city -notin {CITIES}",
        'user.city -startsWith "Lag"',
        "user.objectId -ne null",
        '(user.objectId -ne null) -and (user.userType -eq "Member")',
        'user.assignedPlans -any (assignedPlan.service -eq "SCO" -and '
        'assignedPlan.capabilityStatus -eq "Enabled")',
        'Direct Reports for "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"',
        "user.employeeHireDate -ge system.now -minus P30D -and "
        "user.employeeHireDate -le system.now",
        # Same property, but neither chain nor redundancy:
        'user.otherMails -startsWith "a" -and user.otherMails -ne "b"',
        'user.city -eq "a" -or user.department -eq "a"',
        'user.city -startsWith "a" -or user.city -startsWith "b"',
        'user.city -ne "a" -or user.city -ne "b"',
    ],
)
def test_clean_rules_have_no_findings(text: str) -> None:
    assert lint_rule(text) == []


def test_collection_positive_does_not_imply_negative() -> None:
    # Each item may differ: one address can start with "a" while another equals "b".
    rule = parse('user.otherMails -startsWith "a" -and user.otherMails -ne "b"')
    assert rule.matches({"otherMails": ["ab"]})
    assert not rule.matches({"otherMails": ["ab", "b"]})


def test_findings_are_ordered_by_position_with_whole_rule_findings_first() -> None:
    text = " -or ".join(f'user.jobTitle -contains "{i:05d}"' for i in range(80))
    findings = lint_rule(text)
    assert findings[0].code is Code.RULE_NEAR_LENGTH_LIMIT
    positions = [f.position for f in findings[1:]]
    assert positions == sorted(p for p in positions if p is not None)
    assert worst_severity(findings) is Severity.WARNING
    assert worst_severity([]) is None


def test_operator_usage_counts_rules_not_occurrences() -> None:
    usage = operator_usage(
        [
            'user.city -match "a" -or user.city -match "b"',
            'user.city -notContains "a" -and user.mail -match "x"',
            f"user.memberOf -any (group.objectId -in ['{GROUP}'])",
            'user.city -eq "a" -or user.city -eq "b"',
            'user.city -ne "a" -and user.city -ne "b"',
            'user.city -eq "a"',
            'user.city -match "unterminated',
        ]
    )
    assert usage == {"match": 2, "contains": 1, "memberof": 1, "or_chain": 1, "ne_chain": 1}
    assert tuple(usage) == OPERATOR_USAGE_KEYS
    assert operator_usage([]) == dict.fromkeys(OPERATOR_USAGE_KEYS, 0)


# -- every rewrite means what the rule meant, on many generated objects

VALUES = ["a", "b", "ab", "ba", "A", "Lagos", "lag", ""]
quoted = st.sampled_from(VALUES).map(lambda v: f'"{v}"')
scalar_ops = st.sampled_from(
    [
        "-eq",
        "-ne",
        "-startsWith",
        "-notStartsWith",
        "-endsWith",
        "-notEndsWith",
        "-contains",
        "-notContains",
    ]
)
lists = st.lists(quoted, min_size=1, max_size=3).map(lambda vs: "[" + ", ".join(vs) + "]")
patterns = st.sampled_from(["^a", "a$", "^ab$", "b", ".*a.*", "^(a|b)$", "^(?:Lagos|ba)$"])


def criterion(subject: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda op, v: f"{subject} {op} {v}", scalar_ops, quoted),
        st.builds(lambda op, v: f"{subject} {op} {v}", st.sampled_from(["-in", "-notIn"]), lists),
        st.builds(
            lambda op, p: f'{subject} {op} "{p}"',
            st.sampled_from(["-match", "-notMatch"]),
            patterns,
        ),
        st.sampled_from([f"{subject} -eq null", f"{subject} -ne null"]),
    )


def chains(leaf: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=4).map(lambda xs: "(" + " -or ".join(xs) + ")"),
            st.lists(inner, min_size=2, max_size=4).map(lambda xs: "(" + " -and ".join(xs) + ")"),
            inner.map(lambda x: f"-not ({x})"),
        ),
        max_leaves=8,
    )


user_rules = chains(
    st.one_of(
        criterion("user.city"),
        criterion("user.department"),
        criterion("user.otherMails"),
        chains(criterion("_")).map(lambda body: f"user.proxyAddresses -any ({body})"),
        chains(criterion("_")).map(lambda body: f"user.proxyAddresses -all ({body})"),
    )
)
maybe_text = st.sampled_from([*VALUES, None, "LAGOS", "xab"])
users = st.fixed_dictionaries(
    {
        "city": maybe_text,
        "department": maybe_text,
        "otherMails": st.lists(maybe_text.filter(bool), max_size=3),
        "proxyAddresses": st.lists(maybe_text.filter(bool), max_size=3),
    }
)


@settings(max_examples=200, deadline=None)
@given(text=user_rules, objects=st.lists(users, min_size=40, max_size=40))
def test_every_rewrite_is_equivalent(text: str, objects: list[dict[str, Any]]) -> None:
    original = parse(text)
    for finding in lint_rule(text):
        if finding.rewrite is None:
            continue
        rewritten = parse(finding.rewrite)
        assert rewritten.ast != original.ast
        for obj in objects:
            assert rewritten.matches(obj) == original.matches(obj), (finding, obj)


@settings(max_examples=80, deadline=None)
@given(
    subject=st.sampled_from(["user.city", "user.otherMails", "_"]),
    values=st.lists(st.sampled_from(VALUES[:-1]), min_size=2, max_size=6, unique_by=str.lower),
    extra=st.sampled_from(["", ' -and user.department -eq "a"']),
    objects=st.lists(users, min_size=40, max_size=40),
)
def test_in_and_not_in_rewrites_are_equivalent(
    subject: str, values: list[str], extra: str, objects: list[dict[str, Any]]
) -> None:
    def wrap(body: str) -> str:
        return f"user.proxyAddresses -any ({body})" if subject == "_" else body

    for op, joiner, code in (("-eq", "-or", Code.OR_CHAIN), ("-ne", "-and", Code.NE_CHAIN)):
        chain = f" {joiner} ".join(f'{subject} {op} "{v}"' for v in values)
        if subject != "_":
            chain = f" {joiner} ".join(f'({subject} {op} "{v}"{extra})' for v in values)
        text = wrap(chain)
        finding = only(text, code)
        assert finding.rewrite is not None
        rewritten = parse_expression(finding.rewrite)
        expected_op = "-in" if op == "-eq" else "-notIn"
        assert expected_op in finding.rewrite
        assert finding.rewrite.count(expected_op) == 1
        original, rule = parse(text), parse(finding.rewrite)
        assert rule.ast == rewritten
        for obj in objects:
            assert rule.matches(obj) == original.matches(obj), (text, finding.rewrite, obj)
