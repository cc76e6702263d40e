from __future__ import annotations

import pytest

from exporter.simulator.odata import (
    And,
    Call,
    Comparison,
    FilterSyntaxError,
    Lambda,
    Literal,
    Not,
    Or,
    Property,
    parse_filter,
)
from exporter.simulator.timefmt import parse_odata_datetime


def test_precedence_and_parentheses() -> None:
    tree = parse_filter("a eq 'x' or b eq 'y' and c eq 'z'")
    assert isinstance(tree, Or)
    assert isinstance(tree.items[1], And)
    grouped = parse_filter("(a eq 'x' or b eq 'y') and c eq 'z'")
    assert isinstance(grouped, And)
    assert isinstance(grouped.items[0], Or)


def test_literals_and_paths() -> None:
    tree = parse_filter(
        "activityDateTime ge 2026-01-05T08:00:00.1234567Z and initiatedBy/app/displayName eq "
        "'O''Brien' and x eq true and y eq null and z eq 12 and "
        "id eq 5a9fb790-47C7-4be4-8640-fd6e25a1cc14"
    )
    assert isinstance(tree, And)
    first, second, third, fourth, fifth, sixth = tree.items
    assert first == Comparison(
        Property(("activityDateTime",)), "ge", Literal("datetime", 1767600000123456)
    )
    assert second == Comparison(
        Property(("initiatedBy", "app", "displayName")), "eq", Literal("string", "O'Brien")
    )
    assert third == Comparison(Property(("x",)), "eq", Literal("bool", True))
    assert fourth == Comparison(Property(("y",)), "eq", Literal("null", None))
    assert fifth == Comparison(Property(("z",)), "eq", Literal("number", 12))
    assert sixth == Comparison(
        Property(("id",)), "eq", Literal("guid", "5a9fb790-47c7-4be4-8640-fd6e25a1cc14")
    )


def test_functions_lambdas_and_not() -> None:
    call = parse_filter("startswith(activityDisplayName, 'Update')")
    assert call == Call(
        "startswith", Property(("activityDisplayName",)), Literal("string", "Update")
    )
    lam = parse_filter("groupTypes/any(c:c eq 'DynamicMembership')")
    assert isinstance(lam, Lambda)
    assert lam.collection == Property(("groupTypes",))
    assert lam.variable == "c"
    assert lam.body == Comparison(Property(("c",)), "eq", Literal("string", "DynamicMembership"))
    negated = parse_filter("not (a eq 'x')")
    assert isinstance(negated, Not)
    mirrored = parse_filter("2026-01-05 le activityDateTime")
    assert isinstance(mirrored, Comparison)
    assert mirrored.op == "ge"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a eq",
        "a eq 'x' and",
        "(a eq 'x'",
        "a eq 'x')",
        "a xx 'x'",
        "a eq 'x' # b",
        "'x' eq 'y'",
    ],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_filter(text)


def test_datetime_literals() -> None:
    assert parse_odata_datetime("2026-01-05") == 1767571200000000
    assert parse_odata_datetime("2026-01-05T09:00:00+01:00") == 1767600000000000
    assert parse_odata_datetime("2026-02-30T00:00:00Z") is None
    assert parse_odata_datetime("yesterday") is None
