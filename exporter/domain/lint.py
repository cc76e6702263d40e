"""Findings on dynamic membership rules, after Microsoft's efficiency guidance.

Every finding has a stable `code` (docs/rules-linter.md explains each, with Microsoft's words and
sources), a severity, a one-line message, the 0-based position in the rule it is about, and,
where the fix is mechanical, the whole rule rewritten (`rewrite`), which means exactly what the
original means (the tests check this by evaluating both on generated objects).

Pure: no I/O. `operator_usage` feeds the metric `entra_dynamic_rules_using_operator`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from exporter.domain.rules import (
    MAX_RULE_LENGTH,
    And,
    BoolValue,
    Collection,
    Comparison,
    DirectReports,
    Expr,
    ItemRef,
    ListValue,
    Not,
    NullValue,
    NumberValue,
    Operator,
    Or,
    Property,
    PropertyKind,
    RuleSyntaxError,
    Scalar,
    StringValue,
    Subject,
    compile_regex,
    make_and,
    make_or,
    parse_expression,
    unparse,
    walk,
)

LENGTH_WARNING_RATIO: Final = 0.9
MEMBER_OF_MAX_SOURCE_GROUPS: Final = 50
MEMBER_OF_MAX_GROUPS_PER_TENANT: Final = 500


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK: Final = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class Code(StrEnum):
    """Stable finding codes (documented in docs/rules-linter.md)."""

    SYNTAX_ERROR = "syntax-error"
    INVALID_REGEX = "invalid-regex"
    MIXED_OBJECT_TYPES = "mixed-object-types"
    RULE_TOO_LONG = "rule-too-long"
    RULE_NEAR_LENGTH_LIMIT = "rule-near-length-limit"
    MATCH_OPERATOR = "match-operator"
    CONTAINS_OPERATOR = "contains-operator"
    MEMBER_OF = "memberof"
    MEMBER_OF_COMBINED = "memberof-combined"
    MEMBER_OF_TOO_MANY_GROUPS = "memberof-too-many-groups"
    OR_CHAIN = "or-chain"
    NE_CHAIN = "ne-chain"
    REDUNDANT_CRITERION = "redundant-criterion"
    UNKNOWN_PROPERTY = "unknown-property"


@dataclass(frozen=True, slots=True)
class Finding:
    code: Code
    severity: Severity
    message: str
    position: int | None
    """0-based offset into the rule text; None when the finding is about the whole rule."""
    rewrite: str | None = None
    """The whole rule, rewritten to fix this finding alone, meaning exactly the same."""


# Keys of operator_usage, i.e. the `operator` label values of entra_dynamic_rules_using_operator.
OPERATOR_USAGE_KEYS: Final = ("match", "contains", "memberof", "or_chain", "ne_chain")


def lint_rule(text: str) -> list[Finding]:
    """Every finding on one rule, ordered by position (whole-rule findings first)."""
    findings = _length_findings(text)
    try:
        ast = parse_expression(text)
    except RuleSyntaxError as error:
        findings.append(Finding(Code(error.code), Severity.ERROR, error.message, error.position))
        return findings
    findings.extend(_tree_findings(ast))
    return sorted(findings, key=lambda f: -1 if f.position is None else f.position)


def operator_usage(rules: Iterable[str]) -> dict[str, int]:
    """Number of rules using each operator Microsoft calls inefficient (every key present).
    Rules that do not parse count nowhere. Results per rule text are cached: a tenant's rules
    rarely change between polls."""
    usage = dict.fromkeys(OPERATOR_USAGE_KEYS, 0)
    for text in rules:
        for key in rule_operator_usage(text):
            usage[key] += 1
    return usage


@functools.lru_cache(maxsize=32768)
def rule_operator_usage(text: str) -> frozenset[str]:
    """The OPERATOR_USAGE_KEYS one rule uses (empty if it does not parse)."""
    try:
        ast = parse_expression(text)
    except RuleSyntaxError:
        return frozenset()
    keys: set[str] = set()
    for node in walk(ast):
        match node:
            case Comparison(operator=op) if op.positive is Operator.MATCH:
                keys.add("match")
            case Comparison(operator=op) if op.positive is Operator.CONTAINS:
                keys.add("contains")
            case Collection(subject=subject) if subject.kind is PropertyKind.GROUP_COLLECTION:
                keys.add("memberof")
            case Or() if _merge_or_chain(node) is not None:
                keys.add("or_chain")
            case And() if _ne_chains(node):
                keys.add("ne_chain")
            case _:
                pass
    return frozenset(keys)


def worst_severity(findings: Iterable[Finding]) -> Severity | None:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)


# ---------------------------------------------------------------------------------------------


def _length_findings(text: str) -> list[Finding]:
    length = len(text)
    if length > MAX_RULE_LENGTH:
        return [
            Finding(
                Code.RULE_TOO_LONG,
                Severity.ERROR,
                f"the rule is {length:,} characters; Entra accepts at most {MAX_RULE_LENGTH:,}",
                MAX_RULE_LENGTH,
            )
        ]
    if length >= LENGTH_WARNING_RATIO * MAX_RULE_LENGTH:
        return [
            Finding(
                Code.RULE_NEAR_LENGTH_LIMIT,
                Severity.WARNING,
                f"the rule is {length:,} characters, close to Entra's limit of "
                f"{MAX_RULE_LENGTH:,}; -in lists and fewer criteria leave room to change it",
                None,
            )
        ]
    return []


def _tree_findings(ast: Expr) -> list[Finding]:
    findings: list[Finding] = []
    for node in walk(ast):
        match node:
            case Comparison():
                findings.extend(_comparison_findings(ast, node))
            case Collection(subject=collected) if collected.kind is PropertyKind.GROUP_COLLECTION:
                findings.extend(_member_of_findings(ast, node))
            case Or():
                findings.extend(_or_findings(ast, node))
            case And():
                findings.extend(_and_findings(ast, node))
            case _:
                pass
        if isinstance(node, Comparison | Collection):
            subject = node.subject
            if isinstance(subject, Property) and subject.kind is PropertyKind.UNKNOWN:
                findings.append(
                    Finding(
                        Code.UNKNOWN_PROPERTY,
                        Severity.INFO,
                        f"{subject} is not among the {subject.object_type.value} properties "
                        "Microsoft documents for membership rules; check its spelling",
                        node.position,
                    )
                )
    return findings


def _comparison_findings(root: Expr, node: Comparison) -> list[Finding]:
    op = node.operator
    if op.positive is Operator.MATCH:
        replacement = _match_replacement(node)
        rewrite = None if replacement is None else unparse(_replace(root, node, replacement))
        if replacement is None:
            better = (
                " (-eq, -startsWith or -endsWith, or another property, can often select the "
                "same objects)"
            )
        elif replacement.operator.positive is Operator.CONTAINS:
            better = (
                f"; {unparse(replacement)} means the same, though Microsoft also asks to "
                "minimise -contains: prefer -eq or -startsWith where the values allow"
            )
        else:
            better = f"; {unparse(replacement)} means the same"
        return [
            Finding(
                Code.MATCH_OPERATOR,
                Severity.WARNING,
                f"-{op.value} evaluates a regular expression, which Microsoft asks to avoid for "
                f"processing time{better}",
                node.operator_position,
                rewrite,
            )
        ]
    if op.positive is Operator.CONTAINS:
        return [
            Finding(
                Code.CONTAINS_OPERATOR,
                Severity.WARNING,
                f"-{op.value} can increase processing time, especially in tenants with many "
                "dynamic groups; use -eq, -startsWith or -endsWith where the values allow",
                node.operator_position,
            )
        ]
    return []


# -- -match with a literal pattern

_REGEX_SPECIALS: Final = frozenset(".^$*+?{}[]\\|()")
_ESCAPED_LITERAL = re.compile(r"\\([^A-Za-z0-9])")


def _literal(pattern: str) -> str | None:
    """The text a regex fragment matches literally, or None if it is not a plain literal."""
    chars: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            escaped = _ESCAPED_LITERAL.match(pattern, position)
            if escaped is None:
                return None
            chars.append(escaped.group(1))
            position = escaped.end()
        elif char in _REGEX_SPECIALS:
            return None
        else:
            chars.append(char)
            position += 1
    return "".join(chars)


def _match_replacement(node: Comparison) -> Comparison | None:
    """The -eq/-startsWith/-endsWith/-contains/-in criterion equivalent to a -match whose
    pattern is a literal, optionally anchored (`^Sales`, `Sales$`, `^Sales$`, `^(A|B)$`)."""
    if not isinstance(node.value, StringValue):
        return None
    pattern = node.value.value
    starts = pattern.startswith("^")
    if starts:
        pattern = pattern[1:]
    ends = pattern.endswith("$") and not pattern.endswith("\\$")
    if ends:
        pattern = pattern[:-1]
    for wildcard in (".*?", ".*"):
        if pattern.startswith(wildcard):
            pattern, starts = pattern[len(wildcard) :], False
            break
    for wildcard in (".*?", ".*"):
        if pattern.endswith(wildcard) and not pattern.endswith("\\" + wildcard):
            pattern, ends = pattern[: -len(wildcard)], False
            break
    negated = node.operator.is_negated
    alternatives = re.fullmatch(r"\((?:\?:)?([^()]*)\)", pattern)
    if starts and ends and alternatives is not None:
        values = [_literal(part) for part in alternatives.group(1).split("|")]
        if all(values) and len(values) > 1:
            items = tuple(StringValue(v) for v in values if v)
            op = Operator.NOT_IN if negated else Operator.IN
            return Comparison(node.subject, op, ListValue(items))
    literal = _literal(pattern)
    if not literal:
        return None
    if starts and ends:
        op = Operator.EQ
    elif starts:
        op = Operator.STARTS_WITH
    elif ends:
        op = Operator.ENDS_WITH
    else:
        op = Operator.CONTAINS
    if negated:
        negation = op.negation
        assert negation is not None
        op = negation
    return Comparison(node.subject, op, StringValue(literal))


# -- memberOf


def _member_of_findings(root: Expr, node: Collection) -> list[Finding]:
    findings = [
        Finding(
            Code.MEMBER_OF,
            Severity.WARNING,
            "memberOf is a preview feature with limitations, announced for retirement, and "
            "Microsoft recommends deleting memberOf groups; it is capped at "
            f"{MEMBER_OF_MAX_GROUPS_PER_TENANT} groups per tenant and "
            f"{MEMBER_OF_MAX_SOURCE_GROUPS} source groups per rule",
            node.position,
        )
    ]
    if root is not node:
        findings.append(
            Finding(
                Code.MEMBER_OF_COMBINED,
                Severity.ERROR,
                "memberOf can't be used with other criteria or operators in the same rule "
                "(a preview limitation): the rule fails",
                node.position,
            )
        )
    group_ids: set[str] = set()
    for inner in walk(node.condition):
        if isinstance(inner, Comparison):
            group_ids.update(_values_text(inner.value))
    if len(group_ids) > MEMBER_OF_MAX_SOURCE_GROUPS:
        findings.append(
            Finding(
                Code.MEMBER_OF_TOO_MANY_GROUPS,
                Severity.ERROR,
                f"the rule names {len(group_ids)} source groups; a memberOf rule can have at "
                f"most {MEMBER_OF_MAX_SOURCE_GROUPS}",
                node.position,
            )
        )
    return findings


def _values_text(value: object) -> list[str]:
    if isinstance(value, ListValue):
        return [scalar_key(item) for item in value.items]
    if isinstance(value, StringValue | NumberValue | BoolValue):
        return [scalar_key(value)]
    return []


def scalar_key(value: Scalar) -> str:
    """A list item or value as Entra compares it: lower-cased text (`1` and `"1"` alike)."""
    match value:
        case StringValue(text):
            return text.lower()
        case NumberValue(text):
            return text.lower()
        case BoolValue(flag):
            return "true" if flag else "false"
    raise TypeError(value)


# -- chains: `P -eq a -or P -eq b` -> `P -in [a, b]`; `P -ne a -and P -ne b` -> `P -notIn [..]`

_LISTABLE_KINDS: Final = frozenset(
    {PropertyKind.STRING, PropertyKind.UNKNOWN, PropertyKind.STRING_COLLECTION}
)


def _listable(node: Expr, ops: tuple[Operator, Operator]) -> Comparison | None:
    """`node` if it compares a text subject with one of `ops` (`-eq`/`-in` or `-ne`/`-notIn`)
    against values that can go in a list."""
    if not isinstance(node, Comparison) or node.operator not in ops:
        return None
    subject = node.subject
    if isinstance(subject, Property) and subject.kind not in _LISTABLE_KINDS:
        return None
    if isinstance(node.value, StringValue | NumberValue | ListValue):
        return node
    return None


def _list_items(comparisons: Sequence[Comparison]) -> tuple[Scalar, ...]:
    items: list[Scalar] = []
    seen: set[str] = set()
    for comparison in comparisons:
        value = comparison.value
        for item in value.items if isinstance(value, ListValue) else (value,):
            assert isinstance(item, StringValue | NumberValue | BoolValue)
            key = scalar_key(item)
            if key not in seen:
                seen.add(key)
                items.append(item)
    return tuple(items)


@dataclass(frozen=True, slots=True)
class _Member:
    """One `-or` operand seen as `rest -and <subject> -eq <value>`."""

    index: int
    comparison: Comparison
    rest: tuple[Expr, ...]


def _or_findings(root: Expr, node: Or) -> list[Finding]:
    findings = _redundancy_findings(root, node)
    merged = _merge_or_chain(node)
    if merged is not None:
        new_node, subject, count = merged
        findings.append(
            Finding(
                Code.OR_CHAIN,
                Severity.WARNING,
                f"{count} criteria compare {subject} with -eq, joined by -or; a single -in "
                "criterion is easier to evaluate",
                node.position,
                unparse(_replace(root, node, new_node)),
            )
        )
    return findings


def _merge_or_chain(node: Or) -> tuple[Expr, Subject, int] | None:
    """The -or with its best group of same-subject -eq operands merged into one -in."""
    groups: dict[tuple[Subject, frozenset[Expr]], list[_Member]] = {}
    for index, operand in enumerate(node.operands):
        conjuncts = operand.operands if isinstance(operand, And) else (operand,)
        for position, conjunct in enumerate(conjuncts):
            comparison = _listable(conjunct, (Operator.EQ, Operator.IN))
            if comparison is None:
                continue
            rest = conjuncts[:position] + conjuncts[position + 1 :]
            members = groups.setdefault((comparison.subject, frozenset(rest)), [])
            if all(member.index != index for member in members):
                members.append(_Member(index, comparison, rest))
    best = max(
        (
            members
            for members in groups.values()
            if len(members) > 1 and len(_list_items([m.comparison for m in members])) > 1
        ),
        key=len,
        default=None,
    )
    if best is None:
        return None
    first = best[0]
    items = _list_items([member.comparison for member in best])
    merged_comparison = Comparison(first.comparison.subject, Operator.IN, ListValue(items))
    original = node.operands[first.index]
    conjuncts = original.operands if isinstance(original, And) else (original,)
    merged = make_and(tuple(merged_comparison if c is first.comparison else c for c in conjuncts))
    dropped = {member.index for member in best[1:]}
    operands = tuple(
        merged if index == first.index else operand
        for index, operand in enumerate(node.operands)
        if index not in dropped
    )
    return make_or(operands), first.comparison.subject, len(best)


def _ne_chains(node: And) -> list[tuple[Subject, list[Comparison], tuple[Scalar, ...]]]:
    """Groups of -ne/-notIn operands on one subject with two or more distinct values."""
    by_subject: dict[Subject, list[Comparison]] = {}
    for operand in node.operands:
        comparison = _listable(operand, (Operator.NE, Operator.NOT_IN))
        if comparison is not None:
            by_subject.setdefault(comparison.subject, []).append(comparison)
    chains = []
    for subject, chain in by_subject.items():
        items = _list_items(chain)
        if len(chain) > 1 and len(items) > 1:
            chains.append((subject, chain, items))
    return chains


def _and_findings(root: Expr, node: And) -> list[Finding]:
    findings = _redundancy_findings(root, node)
    for subject, chain, items in _ne_chains(node):
        merged = Comparison(subject, Operator.NOT_IN, ListValue(items))
        operands = tuple(
            merged if operand is chain[0] else operand
            for operand in node.operands
            if not any(operand is c for c in chain[1:])
        )
        findings.append(
            Finding(
                Code.NE_CHAIN,
                Severity.WARNING,
                f"{len(chain)} criteria compare {subject} with -ne, joined by -and; a single "
                "-notIn criterion is easier to evaluate",
                chain[0].position,
                unparse(_replace(root, node, make_and(operands))),
            )
        )
    return findings


# -- redundant criteria


def _redundancy_findings(root: Expr, node: And | Or) -> list[Finding]:
    """Operands that change nothing: repeated, or (in -and) implied by another operand, or (in
    -or) implying another operand."""
    findings: list[Finding] = []
    operands = node.operands
    removed: set[int] = set()
    for index, operand in enumerate(operands):
        reason = None
        for other_index, other in enumerate(operands):
            if other_index == index or other_index in removed:
                continue
            if operand == other:
                if other_index < index:
                    reason = "repeats an earlier criterion"
            elif isinstance(operand, Comparison) and isinstance(other, Comparison):
                if other_index > index and _implies(operand, other) and _implies(other, operand):
                    continue  # equivalent criteria: the later one is the redundant one
                if isinstance(node, And) and _implies(other, operand):
                    reason = f"is implied by {unparse(other)}"
                elif isinstance(node, Or) and _implies(operand, other):
                    reason = f"already selects only objects that {unparse(other)} selects"
            if reason is not None:
                break
        if reason is None:
            continue
        removed.add(index)
        joiner = "-and" if isinstance(node, And) else "-or"
        kept = tuple(o for i, o in enumerate(operands) if i != index)
        rebuilt = make_and(kept) if isinstance(node, And) else make_or(kept)
        findings.append(
            Finding(
                Code.REDUNDANT_CRITERION,
                Severity.WARNING,
                f"{_shorten(unparse(operand))} {reason}; in this {joiner} it changes nothing",
                _position(operand),
                unparse(_replace(root, node, rebuilt)),
            )
        )
    return findings


def _position(node: Expr) -> int:
    return node.position


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class _TextSet:
    """The non-null texts a positive comparison accepts, in a form that can be compared."""

    kind: str  # "finite", "prefix", "suffix", "infix", "regex", "null"
    texts: frozenset[str] = frozenset()
    text: str = ""


def _text_set(node: Comparison) -> _TextSet | None:
    value = node.value
    match node.operator.positive:
        case Operator.EQ:
            if isinstance(value, NullValue):
                return _TextSet("null")
            if isinstance(value, StringValue | NumberValue | BoolValue):
                return _TextSet("finite", frozenset({scalar_key(value)}))
        case Operator.IN:
            if isinstance(value, ListValue):
                return _TextSet("finite", frozenset(scalar_key(i) for i in value.items))
        case Operator.STARTS_WITH | Operator.ENDS_WITH | Operator.CONTAINS | Operator.MATCH:
            if isinstance(value, StringValue | NumberValue | BoolValue):
                kind = {
                    Operator.STARTS_WITH: "prefix",
                    Operator.ENDS_WITH: "suffix",
                    Operator.CONTAINS: "infix",
                    Operator.MATCH: "regex",
                }[node.operator.positive]
                text = value.value if isinstance(value, StringValue) else scalar_key(value)
                return _TextSet(kind, text=text if kind == "regex" else text.lower())
        case _:
            pass
    return None


def _accepts(text: str, accepted: _TextSet) -> bool:
    member: dict[str, Callable[[], bool]] = {
        "finite": lambda: text in accepted.texts,
        "prefix": lambda: text.startswith(accepted.text),
        "suffix": lambda: text.endswith(accepted.text),
        "infix": lambda: accepted.text in text,
        "regex": lambda: compile_regex(accepted.text).search(text) is not None,
    }
    return member[accepted.kind]()


def _subset(a: _TextSet, b: _TextSet) -> bool:
    """Every text `a` accepts, `b` accepts (False when it cannot be shown)."""
    if a.kind == "finite":
        return all(_accepts(text, b) for text in a.texts)
    if a.kind == b.kind == "regex":
        return a.text == b.text
    if b.kind == "infix" and a.kind in ("prefix", "suffix", "infix"):
        return b.text in a.text
    if a.kind == b.kind == "prefix":
        return a.text.startswith(b.text)
    if a.kind == b.kind == "suffix":
        return a.text.endswith(b.text)
    return False


def _disjoint(a: _TextSet, b: _TextSet) -> bool:
    """No text is accepted by both (False when it cannot be shown)."""
    if a.kind == "finite":
        return not any(_accepts(text, b) for text in a.texts)
    if b.kind == "finite":
        return _disjoint(b, a)
    if a.kind == b.kind and a.kind in ("prefix", "suffix"):
        grows = str.startswith if a.kind == "prefix" else str.endswith
        return not grows(a.text, b.text) and not grows(b.text, a.text)
    return False


def _single_valued(subject: Subject) -> bool:
    if isinstance(subject, ItemRef):
        return True
    return subject.kind in (PropertyKind.STRING, PropertyKind.BOOLEAN)


def _implies(a: Comparison, b: Comparison) -> bool:
    """Whether every object `a` selects, `b` selects too (False when it cannot be shown).

    Positive operators accept a value when some item of it is in a set of texts; negated ones
    are their exact negation; null is in no set. So on one subject: positive a => positive b
    when set(a) is a subset of set(b); negated a => negated b when set(b) is a subset of set(a);
    positive a => negated b when the sets are disjoint and the subject holds one value; a
    negated criterion never implies a positive one (null satisfies it)."""
    if a.subject != b.subject:
        return False
    if a == b:
        return True
    set_a, set_b = _text_set(a), _text_set(b)
    if set_a is None or set_b is None:
        return False
    negated_a, negated_b = a.operator.is_negated, b.operator.is_negated
    if set_a.kind == "null" or set_b.kind == "null":
        if set_a.kind == set_b.kind:
            return negated_a == negated_b
        # `-eq null` implies every negated criterion, and every positive non-null criterion
        # implies `-ne null`; `-ne null` and negated criteria imply nothing else.
        return not negated_a and negated_b
    if not negated_a and not negated_b:
        return _subset(set_a, set_b)
    if negated_a and negated_b:
        return _subset(set_b, set_a)
    if not negated_a and negated_b:
        return _single_valued(a.subject) and _disjoint(set_a, set_b)
    return False


def excludes(a: Comparison, b: Comparison) -> bool:
    """Whether no object satisfies both criteria (False when it cannot be shown): `a` implies
    the negation of `b`. `user.city -eq "a"` excludes `user.city -eq "b"`; on a multi-valued
    property (`otherMails`) it does not, since different items may satisfy each."""
    negation = b.operator.negation
    if negation is None:
        return False
    return _implies(a, Comparison(b.subject, negation, b.value))


# -- tree surgery


def _replace(root: Expr, target: Expr, replacement: Expr) -> Expr:
    """`root` with the node `target` (by identity) replaced, flattening -and/-or again."""
    if root is target:
        return replacement
    match root:
        case And(operands):
            return make_and(tuple(_replace(o, target, replacement) for o in operands))
        case Or(operands):
            return make_or(tuple(_replace(o, target, replacement) for o in operands))
        case Not(operand):
            return Not(_replace(operand, target, replacement))
        case Collection(subject, quantifier, condition):
            return Collection(subject, quantifier, _replace(condition, target, replacement))
        case Comparison() | DirectReports():
            return root
    raise TypeError(f"not a rule expression: {root!r}")
