"""Entra ID dynamic membership rules: parse, evaluate, and write back as canonical text.

The syntax is Microsoft's ("Manage rules for dynamic membership groups in Microsoft Entra ID",
learn.microsoft.com/entra/identity/users/groups-dynamic-membership):

* criteria `user.<property> <operator> <value>` (or `device.`); operators `-eq -ne -startsWith
  -notStartsWith -endsWith -notEndsWith -contains -notContains -match -notMatch -in -notIn`, and
  `-le -ge` on the date property `employeeHireDate` (`system.now -plus P1D`,
  `2020-06-10T18:13:20Z`);
* `-and -or -not` and parentheses; `-any -all` over multi-valued properties, with `_` for an item
  of a string collection, `assignedPlan.<property>` for assignedPlans, `group.objectId` for
  memberOf; the whole-rule form `Direct Reports for "<manager object id>"`;
* operators and keywords are case-insensitive and their leading hyphen is optional; strings are in
  double quotes (`` `" `` escapes a quote, ``` `` ``` a backtick) or single quotes (`''`); `null`,
  `true`, `false` and numbers are bare; lists are `[...]`. String and regex comparisons ignore case.

Evaluation semantics where Microsoft's documentation is silent (chosen, and tested, to be
consistent with one another so that the linter's rewrites are exact equivalences):

* a missing property, `None` and `""` are null; a null value satisfies no positive comparison
  (`-eq "x"`, `-startsWith`, `-in`, `-le`, ...) except `-eq null`;
* every negated operator is exactly `not` its positive twin, so a null value satisfies `-ne "x"`,
  `-notStartsWith`, `-notIn`, ...;
* a positive operator applied directly to a multi-valued property (`user.otherMails -endsWith
  "@contoso.com"`, as in Microsoft's examples) holds when any item satisfies it;
* `-any` over an empty or missing collection is false and `-all` is true (so
  `user.assignedPlans -all (assignedPlan.servicePlanId -eq null)` selects users without plans, as
  documented);
* the operand of `-any`/`-all` is a parenthesised expression or a single criterion: Microsoft lists
  `-any -all` below `-or` in its precedence table, which read literally would swallow the rest of
  the rule into the collection; every documented example parenthesises the operand or has nothing
  after it, and a criterion on the outer object inside the operand is an error here;
* ISO 8601 durations count a year as 365 days and a month as 30 days (as .NET's XmlConvert does).

Objects are mappings from property name (canonical casing: `department`, `extensionAttribute3`,
`employeeHireDate`) to a value: `str`, `bool`, a number, a list of strings (`proxyAddresses`,
`otherMails`, `devicePhysicalIds`, `systemLabels`), a list of dicts with `service`,
`capabilityStatus`, `servicePlanId` (`assignedPlans`), a list of group ids (`memberOf`), the
manager's object id (`manager`, for Direct Reports), and for dates an epoch float, an aware or
UTC-naive `datetime`, or an ISO 8601 string.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal, NamedTuple, TypeAlias

# Rules apply to the object types the audit log speaks of: one definition, re-exported here.
from exporter.domain.events import ObjectType as ObjectType

MAX_RULE_LENGTH: Final = 3072
"""Microsoft: "The total length of the body of your membership rule can't exceed 3,072
characters"."""


class Operator(StrEnum):
    """Comparison operators, valued by their canonical spelling (without the hyphen)."""

    EQ = "eq"
    NE = "ne"
    STARTS_WITH = "startsWith"
    NOT_STARTS_WITH = "notStartsWith"
    ENDS_WITH = "endsWith"
    NOT_ENDS_WITH = "notEndsWith"
    CONTAINS = "contains"
    NOT_CONTAINS = "notContains"
    MATCH = "match"
    NOT_MATCH = "notMatch"
    IN = "in"
    NOT_IN = "notIn"
    LE = "le"
    GE = "ge"

    @property
    def is_negated(self) -> bool:
        return self in _POSITIVE_OF

    @property
    def positive(self) -> Operator:
        """The operator this one negates (`-ne` -> `-eq`), or itself."""
        return _POSITIVE_OF.get(self, self)

    @property
    def negation(self) -> Operator | None:
        """The negated twin (`-eq` -> `-ne`); None for `-le` and `-ge`."""
        return _NEGATION_OF.get(self)


_POSITIVE_OF: Final = {
    Operator.NE: Operator.EQ,
    Operator.NOT_STARTS_WITH: Operator.STARTS_WITH,
    Operator.NOT_ENDS_WITH: Operator.ENDS_WITH,
    Operator.NOT_CONTAINS: Operator.CONTAINS,
    Operator.NOT_MATCH: Operator.MATCH,
    Operator.NOT_IN: Operator.IN,
}
_NEGATION_OF: Final = {**{v: k for k, v in _POSITIVE_OF.items()}, **_POSITIVE_OF}


class Quantifier(StrEnum):
    ANY = "any"
    ALL = "all"


class PropertyKind(StrEnum):
    STRING = "string"
    BOOLEAN = "boolean"
    DATE = "date"
    STRING_COLLECTION = "string_collection"
    PLAN_COLLECTION = "plan_collection"
    GROUP_COLLECTION = "group_collection"
    UNKNOWN = "unknown"
    """Not in Microsoft's documented lists: parsed, evaluated as a string, flagged by the linter."""


_S, _B, _D = PropertyKind.STRING, PropertyKind.BOOLEAN, PropertyKind.DATE
_EXTENSION_ATTRIBUTES: Final = {f"extensionAttribute{i}": _S for i in range(1, 16)}
USER_PROPERTIES: Final[Mapping[str, PropertyKind]] = {
    "accountEnabled": _B,
    "dirSyncEnabled": _B,
    "employeeHireDate": _D,
    **dict.fromkeys(
        [
            "city",
            "companyName",
            "country",
            "department",
            "displayName",
            "employeeId",
            "facsimileTelephoneNumber",
            "givenName",
            "jobTitle",
            "mail",
            "mailNickName",
            "mobile",
            "objectId",
            "onPremisesDistinguishedName",
            "onPremisesSecurityIdentifier",
            "passwordPolicies",
            "physicalDeliveryOfficeName",
            "postalCode",
            "preferredLanguage",
            "sipProxyAddress",
            "state",
            "streetAddress",
            "surname",
            "telephoneNumber",
            "usageLocation",
            "userPrincipalName",
            "userType",
        ],
        _S,
    ),
    **_EXTENSION_ATTRIBUTES,
    "otherMails": PropertyKind.STRING_COLLECTION,
    "proxyAddresses": PropertyKind.STRING_COLLECTION,
    "assignedPlans": PropertyKind.PLAN_COLLECTION,
    "memberOf": PropertyKind.GROUP_COLLECTION,
}
DEVICE_PROPERTIES: Final[Mapping[str, PropertyKind]] = {
    "accountEnabled": _B,
    "isRooted": _B,
    **dict.fromkeys(
        [
            "deviceCategory",
            "deviceId",
            "deviceManagementAppId",
            "deviceManufacturer",
            "deviceModel",
            "displayName",
            "deviceOSType",
            "deviceOSVersion",
            "deviceOwnership",
            "deviceTrustType",
            "enrollmentProfileName",
            "managementType",
            "objectId",
            "profileType",
        ],
        _S,
    ),
    **_EXTENSION_ATTRIBUTES,
    "devicePhysicalIds": PropertyKind.STRING_COLLECTION,
    "systemLabels": PropertyKind.STRING_COLLECTION,
    "memberOf": PropertyKind.GROUP_COLLECTION,
}
ASSIGNED_PLAN_PROPERTIES: Final = ("capabilityStatus", "service", "servicePlanId")
DIRECT_REPORTS_PROPERTY: Final = "manager"
"""The object key a Direct Reports rule reads: the user's manager's object id."""

_PROPERTIES_BY_TYPE: Final = {
    ObjectType.USER: USER_PROPERTIES,
    ObjectType.DEVICE: DEVICE_PROPERTIES,
}
_CANONICAL_NAME: Final = {
    object_type: {name.lower(): name for name in table}
    for object_type, table in _PROPERTIES_BY_TYPE.items()
}
# Custom extension properties: extension_<application id without dashes>_<attribute name>.
_EXTENSION_PROPERTY = re.compile(r"extension_[0-9a-fA-F]{32}_\w+")
_PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def property_kind(object_type: ObjectType, name: str) -> PropertyKind:
    """What a property holds, by Microsoft's documented lists (UNKNOWN when not listed)."""
    kind = _PROPERTIES_BY_TYPE[object_type].get(name)
    if kind is not None:
        return kind
    if _EXTENSION_PROPERTY.fullmatch(name):
        return PropertyKind.STRING
    return PropertyKind.UNKNOWN


def canonical_property_name(object_type: ObjectType, name: str) -> str:
    """Microsoft's casing of a documented property (`mailnickname` -> `mailNickName`)."""
    return _CANONICAL_NAME[object_type].get(name.lower(), name)


# ---------------------------------------------------------------------------------------------
# The syntax tree. Positions are 0-based offsets into the parsed text; they take no part in
# equality, so that a rule and its canonical rewrite compare equal.


@dataclass(frozen=True, slots=True)
class Property:
    object_type: ObjectType
    name: str

    @property
    def kind(self) -> PropertyKind:
        return property_kind(self.object_type, self.name)

    def __str__(self) -> str:
        return f"{self.object_type.value}.{self.name}"


ItemPrefix: TypeAlias = Literal["_", "assignedPlan", "group"]


@dataclass(frozen=True, slots=True)
class ItemRef:
    """An item of the collection under -any/-all: `_`, `assignedPlan.<name>`, `group.objectId`."""

    prefix: ItemPrefix
    name: str | None = None

    def __str__(self) -> str:
        return self.prefix if self.name is None else f"{self.prefix}.{self.name}"


Subject: TypeAlias = Property | ItemRef


@dataclass(frozen=True, slots=True)
class StringValue:
    value: str


@dataclass(frozen=True, slots=True)
class NumberValue:
    text: str


@dataclass(frozen=True, slots=True)
class BoolValue:
    value: bool


@dataclass(frozen=True, slots=True)
class NullValue:
    pass


@dataclass(frozen=True, slots=True)
class DateValue:
    value: datetime
    """Timezone-aware; a date written without an offset is UTC."""


@dataclass(frozen=True, slots=True)
class NowValue:
    """`system.now`, optionally `-plus`/`-minus` an ISO 8601 duration (kept upper-cased)."""

    sign: Literal[-1, 0, 1] = 0
    duration: str | None = None

    @property
    def offset_seconds(self) -> float:
        return 0.0 if self.duration is None else self.sign * duration_seconds(self.duration)


Scalar: TypeAlias = StringValue | NumberValue | BoolValue


@dataclass(frozen=True, slots=True)
class ListValue:
    items: tuple[Scalar, ...]


Value: TypeAlias = (
    StringValue | NumberValue | BoolValue | NullValue | DateValue | NowValue | ListValue
)


@dataclass(frozen=True, slots=True)
class Comparison:
    subject: Subject
    operator: Operator
    value: Value
    position: int = field(default=-1, compare=False)
    operator_position: int = field(default=-1, compare=False)
    value_position: int = field(default=-1, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    position: int = field(default=-1, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    """Two or more operands; nested `-and`s are flattened into one."""

    operands: tuple[Expr, ...]
    position: int = field(default=-1, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    """Two or more operands; nested `-or`s are flattened into one."""

    operands: tuple[Expr, ...]
    position: int = field(default=-1, compare=False)


@dataclass(frozen=True, slots=True)
class Collection:
    subject: Property
    quantifier: Quantifier
    condition: Expr
    position: int = field(default=-1, compare=False)
    quantifier_position: int = field(default=-1, compare=False)


@dataclass(frozen=True, slots=True)
class DirectReports:
    manager_id: str
    position: int = field(default=-1, compare=False)


Expr: TypeAlias = Comparison | Not | And | Or | Collection | DirectReports


def walk(node: Expr) -> Iterator[Expr]:
    """Every expression node, depth first, parents before children."""
    yield node
    match node:
        case And(operands) | Or(operands):
            for operand in operands:
                yield from walk(operand)
        case Not(operand):
            yield from walk(operand)
        case Collection(condition=condition):
            yield from walk(condition)
        case _:
            pass


def make_and(operands: tuple[Expr, ...], position: int = -1) -> Expr:
    """`-and` of operands, flattened; a single operand stands alone."""
    flat: list[Expr] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, And) else (operand,))
    return flat[0] if len(flat) == 1 else And(tuple(flat), position)


def make_or(operands: tuple[Expr, ...], position: int = -1) -> Expr:
    """`-or` of operands, flattened; a single operand stands alone."""
    flat: list[Expr] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, Or) else (operand,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat), position)


# ---------------------------------------------------------------------------------------------
# Durations and dates

_DURATION = re.compile(
    r"P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_DURATION_UNITS: Final = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)


def duration_seconds(text: str) -> float:
    """ISO 8601 duration (`P1D`, `P7DT3H`, `PT30M`) -> seconds. ValueError if malformed."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    return sum(
        float(part) * unit
        for part, unit in zip(match.groups(), _DURATION_UNITS, strict=True)
        if part
    )


def _parse_datetime(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _format_datetime(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# Errors


class RuleSyntaxError(ValueError):
    """A rule Entra would reject, with where and why.

    `str(error)` is one line: `position 27: expected a value after -eq, found end of rule`.
    `code` is `syntax-error`, `mixed-object-types` or `invalid-regex`.
    """

    def __init__(self, text: str, position: int, message: str, code: str = "syntax-error") -> None:
        self.text = text
        self.position = position
        self.message = message
        self.code = code
        super().__init__(f"position {position}: {message}")

    @property
    def line(self) -> int:
        """1-based line of the position (rules copied from the portal may span lines)."""
        return self.text.count("\n", 0, self.position) + 1

    @property
    def column(self) -> int:
        """1-based column of the position within its line."""
        return self.position - (self.text.rfind("\n", 0, self.position) + 1) + 1

    def caret(self, width: int = 100) -> str:
        """The line holding the error and a caret under the position, cut to about `width`."""
        return render_caret(self.text, self.position, width)


def render_caret(text: str, position: int, width: int = 100) -> str:
    """Two lines: the line of `text` holding `position`, and `^` under it (windowed if long)."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : len(text) if end < 0 else end].replace("\t", " ")
    column = position - start
    prefix = ""
    if len(line) > width:
        left = max(0, min(column - width // 2, len(line) - width))
        right = left + width
        prefix = "..." if left > 0 else ""
        line = prefix + line[left:right] + ("..." if right < len(line) else "")
        column = column - left + len(prefix)
    return f"{line}\n{' ' * column}^"


# ---------------------------------------------------------------------------------------------
# Lexer

_TokenKind: TypeAlias = Literal["(", ")", "[", "]", ",", "string", "op", "word", "end"]


class _Token(NamedTuple):  # a tuple: built per token, several times cheaper than a dataclass
    kind: _TokenKind
    text: str
    position: int
    end: int
    value: str
    """String content (unescaped), operator name lower-cased without its hyphen, or the word."""


_OPERATOR_WORD = re.compile(r"-([A-Za-z]+)")
_TYPOGRAPHIC_DASHES: Final = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<punct>[()\[\],])
    | (?P<op>-[A-Za-z]+)
    | "(?P<dq>(?:[^"`]|`["`]|`(?!["`]))*)"
    | '(?P<sq>(?:[^']|'')*)'
    | (?P<open>["'])
    | (?P<word>[^\s()\[\],"'`]+)
    | (?P<backtick>`)
    | $
    )""",
    re.VERBOSE,
)
_DQ_ESCAPE = re.compile(r"`([\"`])")


def _next_token(text: str, position: int) -> _Token:
    match = _TOKEN.match(text, position)
    assert match is not None  # every alternative but `$` consumes a character
    kind = match.lastgroup
    start, end = match.start(kind) if kind else match.end(), match.end()
    if kind is None:
        return _Token("end", "", end, end, "")
    raw = text[start:end]
    if kind == "word":
        first = raw[0]
        if first in _TYPOGRAPHIC_DASHES and len(raw) > 1 and raw[1].isalpha():
            name = _OPERATOR_WORD.match("-" + raw[1:])
            spelled = name.group(1) if name else raw[1]
            raise RuleSyntaxError(
                text,
                start,
                f"{first}{spelled} starts with a typographic dash (U+{ord(first):04X}); "
                f"write a plain hyphen: -{spelled}",
            )
        return _Token("word", raw, start, end, raw)
    if kind == "op":
        return _Token("op", raw, start, end, raw[1:].lower())
    if kind == "punct":
        return _Token(raw, raw, start, end, raw)  # type: ignore[arg-type]
    if kind == "dq":
        start -= 1
        body = match.group("dq")
        return _Token("string", text[start:end], start, end, _DQ_ESCAPE.sub(r"\1", body))
    if kind == "sq":
        start -= 1
        return _Token("string", text[start:end], start, end, match.group("sq").replace("''", "'"))
    if kind == "open":
        quote = raw
        escape = '`"' if quote == '"' else "''"
        raise RuleSyntaxError(
            text,
            start,
            f"unterminated string: this {quote} has no closing {quote} "
            f"(escape a quote inside as {escape})",
        )
    raise RuleSyntaxError(text, start, 'a backtick escapes a " only inside a double-quoted string')


# ---------------------------------------------------------------------------------------------
# Parser

_COMPARISON_WORDS: Final = {op.value.lower(): op for op in Operator}
_OPERATOR_NAMES: Final = (
    *(op.value for op in Operator),
    "and",
    "or",
    "not",
    "any",
    "all",
    "plus",
    "minus",
)
_OPERATOR_LIST: Final = ", ".join(f"-{op.value}" for op in Operator)
_STRING_OPERATORS: Final = frozenset(
    {
        Operator.STARTS_WITH,
        Operator.NOT_STARTS_WITH,
        Operator.ENDS_WITH,
        Operator.NOT_ENDS_WITH,
        Operator.CONTAINS,
        Operator.NOT_CONTAINS,
        Operator.MATCH,
        Operator.NOT_MATCH,
    }
)
_SCOPE_OF_KIND: Final[Mapping[PropertyKind, ItemPrefix]] = {
    PropertyKind.STRING_COLLECTION: "_",
    PropertyKind.UNKNOWN: "_",
    PropertyKind.PLAN_COLLECTION: "assignedPlan",
    PropertyKind.GROUP_COLLECTION: "group",
}
_SCOPE_HINT: Final[Mapping[ItemPrefix, str]] = {
    "_": "_ (an item of the collection)",
    "assignedPlan": "assignedPlan.<property> (" + ", ".join(ASSIGNED_PLAN_PROPERTIES) + ")",
    "group": "group.objectId",
}

_EXPECTED_SUBJECT: Final[Mapping[ItemPrefix | None, str]] = {
    None: "a property such as user.department",
    **{scope: f"{hint} inside -any/-all" for scope, hint in _SCOPE_HINT.items()},
}
_ASSIGNED_PLAN_NAME: Final = {name.lower(): name for name in ASSIGNED_PLAN_PROPERTIES}


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of rule"
    if len(token.text) > 40:
        return token.text[:37] + "..."
    return token.text


def translate_regex(pattern: str) -> str:
    """.NET regex (Entra's) -> Python: `(?<name>...)` named groups become `(?P<name>...)`."""
    return re.sub(r"\(\?<(?![=!])", "(?P<", pattern)


def compile_regex(pattern: str) -> re.Pattern[str]:
    """A rule's -match pattern as Entra applies it: unanchored search, ignoring case."""
    return re.compile(translate_regex(pattern), re.IGNORECASE)


# PowerShell and SQL habits that Entra does not share.
_LOOKALIKE_OPERATORS: Final = {
    "gt": "ge",
    "lt": "le",
    "notequals": "ne",
    "neq": "ne",
    "like": "match",
    "notlike": "notMatch",
}


def _closest_operator(word: str) -> str | None:
    """The comparison operator a misspelt one most likely meant (`equals` -> `eq`)."""
    names = {op.value.lower(): op.value for op in Operator}
    if word in _LOOKALIKE_OPERATORS:
        return _LOOKALIKE_OPERATORS[word]
    prefixes = [name for name in names if word.startswith(name) or name.startswith(word)]
    if prefixes:
        return names[max(prefixes, key=len)]
    close = difflib.get_close_matches(word, names, 1)
    return names[close[0]] if close else None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.token = _next_token(text, 0)
        self.first_property: tuple[Property, int] | None = None

    # -- helpers

    def error(self, position: int, message: str, code: str = "syntax-error") -> RuleSyntaxError:
        return RuleSyntaxError(self.text, position, message, code)

    def advance(self) -> _Token:
        token = self.token
        self.token = _next_token(self.text, token.end)
        return token

    def keyword(self) -> str | None:
        """The current token as an operator/keyword name (hyphen optional), lower-cased."""
        token = self.token
        if token.kind == "op":
            return token.value
        if token.kind == "word" and token.text.isalpha():
            return token.text.lower()
        return None

    # -- grammar

    def parse_rule(self) -> Expr:
        if self.token.kind == "end":
            raise self.error(
                0, 'the rule is empty: expected a criterion such as user.department -eq "Sales"'
            )
        if self.keyword() == "direct":
            return self.parse_direct_reports()
        expr = self.parse_or(None)
        rest = self.token
        if rest.kind == ")":
            raise self.error(rest.position, "unbalanced parentheses: ) has no matching (")
        if rest.kind != "end":
            raise self.error(rest.position, f"expected -and or -or, found {_describe(rest)}")
        return expr

    def parse_or(self, scope: ItemPrefix | None) -> Expr:
        position = self.token.position
        operands = [self.parse_and(scope)]
        while self.keyword() == "or":
            self.advance()
            operands.append(self.parse_and(scope))
        return make_or(tuple(operands), position)

    def parse_and(self, scope: ItemPrefix | None) -> Expr:
        position = self.token.position
        operands = [self.parse_not(scope)]
        while self.keyword() == "and":
            self.advance()
            operands.append(self.parse_not(scope))
        return make_and(tuple(operands), position)

    def parse_not(self, scope: ItemPrefix | None) -> Expr:
        if self.keyword() == "not":
            position = self.advance().position
            return Not(self.parse_not(scope), position)
        return self.parse_primary(scope)

    def parse_primary(self, scope: ItemPrefix | None) -> Expr:
        if self.token.kind == "(":
            return self.parse_parenthesised(scope)
        return self.parse_criterion(scope)

    def parse_parenthesised(self, scope: ItemPrefix | None) -> Expr:
        opening = self.advance()
        inner = self.parse_or(scope)
        if self.token.kind == "end":
            raise self.error(opening.position, "unbalanced parentheses: this ( is never closed")
        if self.token.kind != ")":
            raise self.error(
                self.token.position, f"expected -and, -or or ), found {_describe(self.token)}"
            )
        self.advance()
        return inner

    def parse_criterion(self, scope: ItemPrefix | None) -> Expr:
        start = self.token
        subject = self.parse_subject(scope)
        keyword = self.keyword()
        if keyword in ("any", "all"):
            return self.parse_collection(subject, start)
        if keyword not in _COMPARISON_WORDS:
            raise self.unexpected_operator(subject)
        operator_token = self.advance()
        op = _COMPARISON_WORDS[keyword]
        value_position = self.token.position
        value = self.parse_value(subject, op, operator_token)
        return Comparison(
            subject, op, value, start.position, operator_token.position, value_position
        )

    def unexpected_operator(self, subject: Subject) -> RuleSyntaxError:
        token = self.token
        found = _describe(token)
        if token.kind == "end":
            return self.error(
                token.position, f"expected an operator after {subject}, found end of rule"
            )
        keyword = self.keyword()
        if keyword == "not":
            return self.error(
                token.position,
                f"expected a comparison operator after {subject}, found {found} "
                "(-not negates a whole criterion; to compare with null use -ne null)",
            )
        if keyword is not None and token.kind == "op":
            guess = _closest_operator(keyword)
            expected = f"did you mean -{guess}?" if guess else f"expected one of {_OPERATOR_LIST}"
            return self.error(token.position, f"unknown operator {token.text} ({expected})")
        return self.error(
            token.position,
            f"expected an operator such as -eq, -startsWith or -in after {subject}, found {found}",
        )

    def parse_subject(self, scope: ItemPrefix | None) -> Subject:
        token = self.token
        expected = _EXPECTED_SUBJECT[scope]
        if token.kind != "word":
            found = _describe(token)
            if token.kind == "op" or self.keyword() in _OPERATOR_NAMES:
                found = f"{found} (an operator)"
            raise self.error(token.position, f"expected {expected}, found {found}")
        text = token.text
        if text == "_":
            if scope != "_":
                raise self.error(
                    token.position,
                    "_ stands for an item of a string collection and is used only inside "
                    '-any/-all, e.g. user.proxyAddresses -any (_ -startsWith "smtp:")'
                    if scope is None
                    else f"expected {expected}, found _",
                )
            self.advance()
            return ItemRef("_")
        prefix, dot, name = text.partition(".")
        lowered = prefix.lower()
        if not dot:
            if lowered in _OPERATOR_NAMES:
                raise self.error(token.position, f"expected {expected}, found {text} (an operator)")
            raise self.error(
                token.position,
                f"expected {expected}, found {text} (properties are written user.<name> or "
                "device.<name>)",
            )
        subject: Subject
        if lowered in ("user", "device"):
            subject = self.parse_property(ObjectType(lowered), name, token, scope)
        elif lowered == "assignedplan" and scope == "assignedPlan":
            canonical = _ASSIGNED_PLAN_NAME.get(name.lower())
            if canonical is None:
                raise self.error(
                    token.position, f"expected {_SCOPE_HINT['assignedPlan']}, found {text}"
                )
            subject = ItemRef("assignedPlan", canonical)
        elif lowered == "group" and scope == "group":
            if name.lower() != "objectid":
                raise self.error(token.position, f"expected group.objectId, found {text}")
            subject = ItemRef("group", "objectId")
        elif lowered in ("assignedplan", "group"):
            raise self.error(
                token.position,
                f"{text} can be used only inside "
                + (
                    "user.assignedPlans -any/-all (...)"
                    if lowered == "assignedplan"
                    else "memberOf -any (...)"
                ),
            )
        elif lowered == "system":
            raise self.error(
                token.position,
                f"expected {expected}, found {text} (system.now is a value: it goes after -le, "
                "-ge, -eq or -ne)",
            )
        else:
            raise self.error(
                token.position,
                f"unknown property prefix {prefix!r} in {text}: expected user.<property> or "
                "device.<property>",
            )
        self.advance()
        return subject

    def parse_property(
        self, object_type: ObjectType, name: str, token: _Token, scope: ItemPrefix | None
    ) -> Property:
        if scope is not None:
            raise self.error(
                token.position,
                f"expected {_SCOPE_HINT[scope]} inside -any/-all, found {token.text} (close the "
                "parentheses of -any/-all before criteria on the object itself)",
            )
        if not _PROPERTY_NAME.fullmatch(name):
            raise self.error(
                token.position + len(object_type.value) + 1,
                f"expected a property name after {object_type.value}., found "
                + (repr(name) if name else "nothing"),
            )
        prop = Property(object_type, canonical_property_name(object_type, name))
        if self.first_property is None:
            self.first_property = (prop, token.position)
        elif self.first_property[0].object_type is not object_type:
            first = self.first_property[0]
            raise self.error(
                token.position,
                f"a rule reads either user or device properties, not both: {token.text} in a rule "
                f"that starts with {first} (a group's members are all users or all devices)",
                code="mixed-object-types",
            )
        return prop

    def parse_collection(self, subject: Subject, start: _Token) -> Collection:
        quantifier_token = self.token
        quantifier = Quantifier(quantifier_token.text.lstrip("-").lower())
        if not isinstance(subject, Property):
            raise self.error(
                quantifier_token.position,
                f"-{quantifier.value} cannot be nested inside -any/-all",
            )
        scope = _SCOPE_OF_KIND.get(subject.kind)
        if scope is None:
            raise self.error(
                quantifier_token.position,
                f"-{quantifier.value} needs a multi-valued property (such as proxyAddresses, "
                f"otherMails, assignedPlans, memberOf); {subject} holds a single value",
            )
        self.advance()
        if self.token.kind == "end":
            raise self.error(
                self.token.position,
                f"expected a condition in parentheses after -{quantifier.value}, found end of rule",
            )
        condition = self.parse_not(scope)
        return Collection(subject, quantifier, condition, start.position, quantifier_token.position)

    # -- values

    def parse_value(self, subject: Subject, op: Operator, operator_token: _Token) -> Value:
        kind = subject.kind if isinstance(subject, Property) else PropertyKind.STRING
        spelled = operator_token.text
        if kind is PropertyKind.GROUP_COLLECTION:
            raise self.error(
                operator_token.position,
                f"{subject} is used only as {subject} -any (group.objectId -in ['<group id>'])",
            )
        if op in (Operator.IN, Operator.NOT_IN):
            return self.parse_list(spelled)
        if op in (Operator.LE, Operator.GE):
            if kind is not PropertyKind.DATE:
                raise self.error(
                    operator_token.position,
                    f"{spelled} compares dates, and {subject} is not a date property "
                    "(employeeHireDate is)",
                )
            return self.parse_date_value(spelled)
        token = self.token
        if kind is PropertyKind.DATE:
            if op not in (Operator.EQ, Operator.NE):
                raise self.error(
                    operator_token.position,
                    f"{subject} is a date: compare it with -eq, -ne, -le or -ge, not {spelled}",
                )
            if token.kind == "word" and token.text.lower() == "null":
                self.advance()
                return NullValue()
            return self.parse_date_value(spelled)
        if token.kind == "string":
            value: Value = StringValue(token.value)
        elif token.kind == "word":
            lowered = token.text.lower()
            if lowered == "null":
                if op not in (Operator.EQ, Operator.NE):
                    raise self.error(
                        token.position,
                        f"null can be compared only with -eq or -ne, not {spelled}",
                    )
                value = NullValue()
            elif lowered in ("true", "false"):
                value = BoolValue(lowered == "true")
            elif _NUMBER.fullmatch(token.text):
                value = NumberValue(token.text)
            else:
                hint = " (write null)" if lowered == "$null" else f' (quote text: "{token.text}")'
                raise self.error(
                    token.position,
                    f"expected a value after {spelled} (a double-quoted string, a number, true, "
                    f"false or null), found {_describe(token)}{hint}",
                )
        elif token.kind == "[":
            raise self.error(
                token.position, f"a [list] can follow only -in or -notIn, not {spelled}"
            )
        else:
            raise self.error(
                token.position, f"expected a value after {spelled}, found {_describe(token)}"
            )
        if op in (Operator.MATCH, Operator.NOT_MATCH):
            pattern = token.value if token.kind == "string" else token.text
            try:
                compile_regex(pattern)
            except re.error as exc:
                raise self.error(
                    token.position,
                    f"invalid regular expression after {spelled}: {exc.msg}"
                    + ("" if exc.pos is None else f" at offset {exc.pos} of the pattern"),
                    code="invalid-regex",
                ) from None
        self.advance()
        return value

    def parse_list(self, spelled: str) -> ListValue:
        opening = self.token
        if opening.kind != "[":
            raise self.error(
                opening.position,
                f'expected a [list] after {spelled}, such as ["a", "b"], '
                f"found {_describe(opening)}",
            )
        self.advance()
        items: list[Scalar] = []
        if self.token.kind == "]":
            # An empty list parses: `-in []` selects nothing and `-notIn []` everything, which
            # the tenant-hygiene report (exporter.domain.hygiene) flags as a rule that never
            # matches rather than as a rule Entra would reject.
            self.advance()
            return ListValue(())
        while True:
            token = self.token
            if token.kind == "end":
                raise self.error(opening.position, "unbalanced brackets: this [ is never closed")
            if token.kind == "string":
                items.append(StringValue(token.value))
            elif token.kind == "word" and token.text.lower() in ("true", "false"):
                items.append(BoolValue(token.text.lower() == "true"))
            elif token.kind == "word" and _NUMBER.fullmatch(token.text):
                items.append(NumberValue(token.text))
            else:
                after = "[" if not items else ","
                raise self.error(
                    token.position,
                    f"expected a value (a double-quoted string or a number) after {after} in the "
                    f"list, found {_describe(token)}",
                )
            self.advance()
            separator = self.token
            if separator.kind == "]":
                self.advance()
                return ListValue(tuple(items))
            if separator.kind == "end":
                raise self.error(opening.position, "unbalanced brackets: this [ is never closed")
            if separator.kind != ",":
                raise self.error(
                    separator.position, f"expected , or ] in the list, found {_describe(separator)}"
                )
            self.advance()

    def parse_date_value(self, spelled: str) -> DateValue | NowValue:
        token = self.token
        if token.kind == "(":
            self.advance()
            value = self.parse_date_value(spelled)
            if self.token.kind != ")":
                if self.token.kind == "end":
                    raise self.error(
                        token.position, "unbalanced parentheses: this ( is never closed"
                    )
                raise self.error(
                    self.token.position, f"expected ) after the date, found {_describe(self.token)}"
                )
            self.advance()
            return value
        if token.kind == "word" and token.text.lower() == "system.now":
            self.advance()
            keyword = self.keyword()
            if keyword not in ("plus", "minus"):
                return NowValue()
            arithmetic = self.advance()
            duration = self.token
            if duration.kind not in ("word", "string") or not _DURATION.fullmatch(duration.value):
                raise self.error(
                    duration.position,
                    f"expected an ISO 8601 duration such as P1D, P30D or P7DT3H after "
                    f"{arithmetic.text}, found {_describe(duration)}",
                )
            self.advance()
            return NowValue(1 if keyword == "plus" else -1, duration.value.upper())
        if token.kind in ("word", "string"):
            parsed = _parse_datetime(token.value)
            if parsed is not None:
                self.advance()
                return DateValue(parsed)
        raise self.error(
            token.position,
            f"expected a date after {spelled}: system.now, system.now -plus P1D, or a date such "
            f"as 2020-06-10T18:13:20Z; found {_describe(token)}",
        )

    def parse_direct_reports(self) -> DirectReports:
        start = self.advance()
        for word in ("reports", "for"):
            if self.keyword() != word:
                raise self.error(
                    self.token.position,
                    f'expected {word.capitalize()} in Direct Reports for "<manager object id>", '
                    f"found {_describe(self.token)}",
                )
            self.advance()
        token = self.token
        if token.kind != "string" or not _GUID.fullmatch(token.value.strip("{}")):
            raise self.error(
                token.position,
                "expected the manager's object id in quotes, such as "
                f'"aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb", found {_describe(token)}',
            )
        self.advance()
        if self.token.kind != "end":
            raise self.error(
                self.token.position,
                "a Direct Reports rule stands alone: it can't be combined with other criteria",
            )
        return DirectReports(token.value.strip("{}"), start.position)


# ---------------------------------------------------------------------------------------------
# Canonical text


def unparse(node: Expr) -> str:
    """Canonical rule text: hyphenated camelCase operators, double quotes, parentheses where
    precedence needs them and around `-and` groups inside `-or` (for readers)."""
    match node:
        case Comparison(subject, op, value):
            return f"{subject} -{op.value} {unparse_value(value)}"
        case Not(operand):
            return f"-not ({unparse(operand)})"
        case And(operands):
            return " -and ".join(
                f"({unparse(o)})" if isinstance(o, Or) else unparse(o) for o in operands
            )
        case Or(operands):
            return " -or ".join(
                f"({unparse(o)})" if isinstance(o, And) else unparse(o) for o in operands
            )
        case Collection(subject, quantifier, condition):
            return f"{subject} -{quantifier.value} ({unparse(condition)})"
        case DirectReports(manager_id):
            return f'Direct Reports for "{manager_id}"'
    raise TypeError(f"not a rule expression: {node!r}")


def unparse_value(value: Value) -> str:
    match value:
        case StringValue(text):
            return '"' + text.replace("`", "``").replace('"', '`"') + '"'
        case NumberValue(text):
            return text
        case BoolValue(flag):
            return "true" if flag else "false"
        case NullValue():
            return "null"
        case DateValue(moment):
            return _format_datetime(moment)
        case NowValue(sign, duration):
            if duration is None:
                return "system.now"
            return f"system.now -{'plus' if sign > 0 else 'minus'} {duration}"
        case ListValue(items):
            return "[" + ", ".join(unparse_value(item) for item in items) + "]"
    raise TypeError(f"not a rule value: {value!r}")


# ---------------------------------------------------------------------------------------------
# Evaluation: the tree is compiled once into closures over pre-lowered constants.

Predicate: TypeAlias = Callable[[Any, "float | None"], bool]
_TextTest: TypeAlias = Callable[[str], Any]


def _text(value: object) -> str | None:
    """A property value as lower-cased text for string comparison; None for null."""
    if isinstance(value, str):
        return value.lower() if value else None
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _format_datetime(value if value.tzinfo else value.replace(tzinfo=UTC)).lower()
    return str(value).lower()


def _test_value(value: object, test: _TextTest, null_result: bool) -> bool:
    """Slow path of a positive comparison: null, non-string scalars, collections."""
    if isinstance(value, list | tuple | set | frozenset):
        texts = [t for t in map(_text, value) if t is not None]
        if not texts:
            return null_result
        return any(test(t) for t in texts)
    text = _text(value)
    return null_result if text is None else bool(test(text))


def _epoch(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str):
        parsed = _parse_datetime(value)
        return None if parsed is None else parsed.timestamp()
    return None


def _scalar_text(value: Scalar) -> str:
    match value:
        case StringValue(text):
            return text.lower()
        case NumberValue(text):
            return text.lower()
        case BoolValue(flag):
            return "true" if flag else "false"
    raise TypeError(value)


def _text_test(op: Operator, value: Value) -> tuple[_TextTest, bool]:
    """For a positive operator: a test on non-null lower-cased text, and the result for null."""
    if isinstance(value, NullValue):
        return (lambda _text: False), True
    if isinstance(value, ListValue):
        return frozenset(_scalar_text(item) for item in value.items).__contains__, False
    assert isinstance(value, StringValue | NumberValue | BoolValue)
    target = _scalar_text(value)
    match op:
        case Operator.EQ:
            return target.__eq__, False
        case Operator.STARTS_WITH:
            return operator.methodcaller("startswith", target), False
        case Operator.ENDS_WITH:
            return operator.methodcaller("endswith", target), False
        case Operator.CONTAINS:
            return operator.methodcaller("__contains__", target), False
        case Operator.MATCH:
            raw = value.value if isinstance(value, StringValue) else target
            return compile_regex(raw).search, False
    raise ValueError(f"no text comparison for -{op.value}")


def _compile_comparison(node: Comparison) -> Predicate:
    subject, op, value = node.subject, node.operator, node.value
    # Item references `_` and `group.objectId` are the collection item itself; everything else
    # is read from a mapping (the object, or an assignedPlan dict).
    name = subject.name if isinstance(subject, Property | ItemRef) else None
    from_mapping = isinstance(subject, Property) or (
        isinstance(subject, ItemRef) and subject.prefix == "assignedPlan"
    )
    if isinstance(value, DateValue | NowValue) or op in (Operator.LE, Operator.GE):
        return _compile_date_comparison(node, name, from_mapping)
    test, null_result = _text_test(op.positive, value)
    negate = op.is_negated

    if from_mapping:
        key = name

        def positive(ctx: Any, now: float | None) -> bool:
            raw = ctx.get(key)
            if type(raw) is str and raw:
                return bool(test(raw.lower()))
            return _test_value(raw, test, null_result)

        def negative(ctx: Any, now: float | None) -> bool:
            raw = ctx.get(key)
            if type(raw) is str and raw:
                return not test(raw.lower())
            return not _test_value(raw, test, null_result)

    else:

        def positive(ctx: Any, now: float | None) -> bool:
            if type(ctx) is str and ctx:
                return bool(test(ctx.lower()))
            return _test_value(ctx, test, null_result)

        def negative(ctx: Any, now: float | None) -> bool:
            if type(ctx) is str and ctx:
                return not test(ctx.lower())
            return not _test_value(ctx, test, null_result)

    return negative if negate else positive


def _compile_date_comparison(node: Comparison, name: str | None, from_mapping: bool) -> Predicate:
    op, value = node.operator, node.value
    compare: Callable[[float, float], bool] = {
        Operator.LE: operator.le,
        Operator.GE: operator.ge,
        Operator.EQ: operator.eq,
        Operator.NE: operator.eq,
    }[op]
    negate = op is Operator.NE
    fixed: float | None = value.value.timestamp() if isinstance(value, DateValue) else None
    offset = value.offset_seconds if isinstance(value, NowValue) else 0.0

    def predicate(ctx: Any, now: float | None) -> bool:
        moment = _epoch(ctx.get(name) if from_mapping else ctx)
        if fixed is not None:
            target = fixed
        elif now is None:
            raise ValueError("this rule reads system.now: pass now= (epoch seconds)")
        else:
            target = now + offset
        result = moment is not None and compare(moment, target)
        return not result if negate else result

    return predicate


def _compile(node: Expr) -> Predicate:
    match node:
        case Comparison():
            return _compile_comparison(node)
        case Not(operand):
            inner = _compile(operand)
            return lambda ctx, now: not inner(ctx, now)
        case And(operands):
            return _all_of([_compile(o) for o in operands])
        case Or(operands):
            return _any_of([_compile(o) for o in operands])
        case Collection(subject, quantifier, condition):
            return _compile_collection(subject.name, quantifier, _compile(condition))
        case DirectReports(manager_id):
            manager = manager_id.lower()

            def reports_to(ctx: Any, now: float | None) -> bool:
                value = ctx.get(DIRECT_REPORTS_PROPERTY)
                return isinstance(value, str) and value.lower().strip("{}") == manager

            return reports_to
    raise TypeError(f"not a rule expression: {node!r}")


def _all_of(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 2:
        first, second = predicates
        return lambda ctx, now: first(ctx, now) and second(ctx, now)

    def all_of(ctx: Any, now: float | None) -> bool:
        for predicate in predicates:  # noqa: SIM110 (a loop beats all()/any() over a genexpr)
            if not predicate(ctx, now):
                return False
        return True

    return all_of


def _any_of(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 2:
        first, second = predicates
        return lambda ctx, now: first(ctx, now) or second(ctx, now)

    def any_of(ctx: Any, now: float | None) -> bool:
        for predicate in predicates:  # noqa: SIM110 (a loop beats all()/any() over a genexpr)
            if predicate(ctx, now):
                return True
        return False

    return any_of


def _compile_collection(name: str, quantifier: Quantifier, condition: Predicate) -> Predicate:
    if quantifier is Quantifier.ANY:

        def any_item(ctx: Any, now: float | None) -> bool:
            items = ctx.get(name)
            if not items:
                return False
            if isinstance(items, str):
                items = (items,)
            for item in items:  # noqa: SIM110
                if condition(item, now):
                    return True
            return False

        return any_item

    def all_items(ctx: Any, now: float | None) -> bool:
        items = ctx.get(name)
        if not items:
            return True
        if isinstance(items, str):
            items = (items,)
        for item in items:  # noqa: SIM110
            if not condition(item, now):
                return False
        return True

    return all_items


# ---------------------------------------------------------------------------------------------
# The public entry points


class RuleReads(NamedTuple):
    """What a rule reads: its object type, the properties (see `Rule.properties`) and whether
    it reads `system.now`."""

    object_type: ObjectType
    properties: frozenset[str]
    depends_on_time: bool


def reads_of(ast: Expr) -> RuleReads:
    """What a rule's syntax tree reads, without compiling it (relevance needs only this, for
    every listed rule at start-up). ValueError if it reads both user and device properties."""
    object_types: set[ObjectType] = set()
    names: set[str] = set()
    uses_now = False
    for node in walk(ast):
        if isinstance(node, DirectReports):
            object_types.add(ObjectType.USER)
            names.add(DIRECT_REPORTS_PROPERTY)
        elif isinstance(node, Comparison | Collection) and isinstance(node.subject, Property):
            object_types.add(node.subject.object_type)
            names.add(node.subject.name)
        if isinstance(node, Comparison) and isinstance(node.value, NowValue):
            uses_now = True
    if len(object_types) != 1:
        raise ValueError(f"a rule reads either user or device properties, not both: {ast!r}")
    return RuleReads(object_types.pop(), frozenset(names), uses_now)


class Rule:
    """A parsed, compiled membership rule.

    * `text`: the rule as given (or the canonical text of `ast`);
    * `ast`: the syntax tree;
    * `object_type`: `ObjectType.USER` or `ObjectType.DEVICE` (a `str`: `== "user"` works);
    * `properties`: names of the object's properties it reads (`{"department",
      "extensionAttribute3"}`; `memberOf`, `assignedPlans`, `manager` for Direct Reports) so a
      change to other properties cannot change its result;
    * `depends_on_time`: it reads `system.now`, so its result changes with time alone.
    """

    __slots__ = ("_predicate", "ast", "depends_on_time", "object_type", "properties", "text")

    def __init__(self, ast: Expr, text: str | None = None) -> None:
        self.ast = ast
        self.text = unparse(ast) if text is None else text
        reads = reads_of(ast)
        self.object_type: ObjectType = reads.object_type
        self.properties: frozenset[str] = reads.properties
        self.depends_on_time = reads.depends_on_time
        self._predicate = _compile(ast)

    def matches(self, obj: Mapping[str, Any], now: float | None = None) -> bool:
        """Whether `obj` (property name -> value) satisfies the rule. `now` (epoch seconds) is
        needed only by rules that read system.now (`depends_on_time`)."""
        return self._predicate(obj, now)

    def __repr__(self) -> str:
        return f"Rule({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and other.ast == self.ast

    def __hash__(self) -> int:
        return hash(self.ast)


# ---------------------------------------------------------------------------------------------
# Rule analysis for evaluating many rules fast (the simulator's processing, the impact preflight)


def necessary_condition(ast: Expr) -> tuple[str, frozenset[str]] | None:
    """A property and the (lower-cased) string values it must have for the rule to hold, read
    from the rule's syntax tree (`user.department -eq "Sales"`, `-in [...]`, what all operands
    of an `-or` share); the most selective one; None if the rule has none."""
    found = _conditions(ast)
    if not found:
        return None
    name = min(found, key=lambda n: (len(found[n]), n))
    return name, found[name]


def _conditions(node: Expr) -> dict[str, frozenset[str]]:
    if isinstance(node, Comparison) and isinstance(node.subject, Property):
        value = node.value
        if node.operator is Operator.EQ and isinstance(value, StringValue) and value.value:
            return {node.subject.name: frozenset({value.value.lower()})}
        if node.operator is Operator.IN and isinstance(value, ListValue) and value.items:
            texts = [i.value for i in value.items if isinstance(i, StringValue) and i.value]
            if len(texts) == len(value.items):
                return {node.subject.name: frozenset(t.lower() for t in texts)}
        return {}
    if isinstance(node, And):
        merged: dict[str, frozenset[str]] = {}
        for operand in node.operands:
            for name, values in _conditions(operand).items():
                merged[name] = merged[name] & values if name in merged else values
        return merged
    if isinstance(node, Or):
        parts = [_conditions(operand) for operand in node.operands]
        common = set(parts[0]).intersection(*parts[1:])
        return {name: frozenset().union(*(p[name] for p in parts)) for name in common}
    return {}


def parse_expression(text: str) -> Expr:
    """The syntax tree of a rule; RuleSyntaxError if Entra would reject it."""
    return _Parser(text).parse_rule()


def parse(text: str) -> Rule:
    """Parse and compile a rule; RuleSyntaxError (with a position) if Entra would reject it.

    The 3,072-character limit is not checked here (the linter reports it)."""
    return Rule(parse_expression(text), text)


MEMBER_OF_PROPERTY: Final = "memberOf"
_GROUP_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def member_of_sources(rule: Rule) -> frozenset[str]:
    """The group ids (lower-case) a `memberOf -any (group.objectId -in [...])` rule names: its
    source groups; empty for a rule that does not read memberOf."""
    if MEMBER_OF_PROPERTY not in rule.properties:
        return frozenset()
    return frozenset(m.group(0).lower() for m in _GROUP_ID.finditer(rule.text))
