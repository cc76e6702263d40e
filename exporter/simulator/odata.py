"""The subset of OData `$filter` that Microsoft Graph accepts on the paths the simulator serves.

This module only parses: it turns the text into a small tree. Each endpoint then checks the
tree against what Graph supports there (`audit_query`, `directory_query`) and answers 400 with
Graph's wording for anything else, so that a client that works here does not ask Graph for
what Graph would refuse.

Grammar (precedence lowest first: `or`, `and`, `not`, comparison):

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | primary
    primary    := "(" expr ")" | call | lambda | operand op operand
    call       := name "(" operand "," operand ")"          startswith, endswith, contains
    lambda     := path "/" ("any" | "all") "(" name ":" expr ")"
    operand    := path | literal
    literal    := 'text' (quote doubled to escape) | DateTimeOffset | number | true | false | null
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.simulator.timefmt import parse_odata_datetime

COMPARISON_OPERATORS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
FUNCTIONS = frozenset({"startswith", "endswith", "contains"})


class FilterSyntaxError(ValueError):
    """The text is not an OData filter at all (as opposed to one Graph does not support)."""


@dataclass(frozen=True, slots=True)
class Property:
    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True, slots=True)
class Literal:
    """`kind` is one of string, datetime (value: epoch microseconds), number, bool, null."""

    kind: str
    value: str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Comparison:
    prop: Property
    op: str
    value: Literal


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    prop: Property
    value: Literal


@dataclass(frozen=True, slots=True)
class Lambda:
    collection: Property
    quantifier: str
    variable: str
    body: Node


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Comparison | Call | Lambda | And | Or | Not

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[()/,:])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterSyntaxError(
                f"Syntax error: character '{text[position]}' is not valid at position "
                f"{position} in '{text}'."
            )
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def _peek(self, offset: int = 0) -> _Token | None:
        position = self.index + offset
        return self.tokens[position] if position < len(self.tokens) else None

    def _error(self, expected: str) -> FilterSyntaxError:
        token = self._peek()
        where = f"'{token.text}' at position {token.position}" if token else "the end"
        return FilterSyntaxError(
            f"Syntax error: expected {expected} but found {where} in '{self.text}'."
        )

    def _take(self, kind: str, text: str | None = None) -> _Token:
        token = self._peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            raise self._error(f"'{text}'" if text else kind)
        self.index += 1
        return token

    def _at_keyword(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "name" and token.text.lower() == word

    def parse(self) -> Node:
        if not self.tokens:
            raise FilterSyntaxError("The query specified in the URI is not valid: empty $filter.")
        node = self._or()
        if self._peek() is not None:
            raise self._error("'and', 'or' or the end of the filter")
        return node

    def _or(self) -> Node:
        items = [self._and()]
        while self._at_keyword("or"):
            self.index += 1
            items.append(self._and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self) -> Node:
        items = [self._unary()]
        while self._at_keyword("and"):
            self.index += 1
            items.append(self._unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _unary(self) -> Node:
        if self._at_keyword("not"):
            self.index += 1
            return Not(self._unary())
        return self._primary()

    def _primary(self) -> Node:
        token = self._peek()
        if token is None:
            raise self._error("an expression")
        if token.kind == "punct" and token.text == "(":
            self.index += 1
            node = self._or()
            self._take("punct", ")")
            return node
        following = self._peek(1)
        if (
            token.kind == "name"
            and token.text.lower() in FUNCTIONS
            and following is not None
            and following.text == "("
        ):
            return self._call()
        left = self._operand()
        if isinstance(left, Lambda):
            return left
        op_token = self._peek()
        if op_token is None or op_token.kind != "name" or op_token.text not in COMPARISON_OPERATORS:
            raise self._error("a comparison operator (eq, ne, gt, ge, lt, le)")
        self.index += 1
        right = self._operand()
        if isinstance(right, Lambda):
            raise self._error("a literal")
        if isinstance(left, Property) and isinstance(right, Literal):
            return Comparison(left, op_token.text, right)
        if isinstance(left, Literal) and isinstance(right, Property):
            mirrored = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}
            return Comparison(right, mirrored.get(op_token.text, op_token.text), left)
        raise FilterSyntaxError(
            f"The query specified in the URI is not valid: a comparison needs one property and "
            f"one literal, at position {op_token.position} in '{self.text}'."
        )

    def _call(self) -> Call:
        name = self._take("name").text.lower()
        self._take("punct", "(")
        prop = self._operand()
        self._take("punct", ",")
        value = self._operand()
        self._take("punct", ")")
        if not isinstance(prop, Property) or not isinstance(value, Literal):
            raise FilterSyntaxError(
                f"The query specified in the URI is not valid: {name}() takes a property and a "
                f"literal, in '{self.text}'."
            )
        return Call(name, prop, value)

    def _operand(self) -> Property | Literal | Lambda:
        token = self._peek()
        if token is None:
            raise self._error("a property or a literal")
        if token.kind == "string":
            self.index += 1
            return Literal("string", token.text[1:-1].replace("''", "'"))
        if token.kind == "datetime":
            self.index += 1
            us = parse_odata_datetime(token.text)
            if us is None:
                raise FilterSyntaxError(
                    f"The query specified in the URI is not valid: '{token.text}' is not a valid "
                    "DateTimeOffset."
                )
            return Literal("datetime", us)
        if token.kind == "guid":
            self.index += 1
            return Literal("guid", token.text.lower())
        if token.kind == "number":
            self.index += 1
            number = float(token.text) if "." in token.text else int(token.text)
            return Literal("number", number)
        if token.kind == "name":
            lowered = token.text.lower()
            if lowered in ("true", "false"):
                self.index += 1
                return Literal("bool", lowered == "true")
            if lowered == "null":
                self.index += 1
                return Literal("null", None)
            return self._path()
        raise self._error("a property or a literal")

    def _path(self) -> Property | Lambda:
        parts = [self._take("name").text]
        while (token := self._peek()) is not None and token.text == "/":
            self.index += 1
            name = self._take("name").text
            following = self._peek()
            if name.lower() in ("any", "all") and following is not None and following.text == "(":
                self.index += 1
                variable = self._take("name").text
                self._take("punct", ":")
                body = self._or()
                self._take("punct", ")")
                return Lambda(Property(tuple(parts)), name.lower(), variable, body)
            parts.append(name)
        return Property(tuple(parts))


def parse_filter(text: str) -> Node:
    """Parse a `$filter` value. Raises FilterSyntaxError with a Graph-style message."""
    return _Parser(text).parse()
