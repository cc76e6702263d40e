"""Tenant hygiene: the tenant's dynamic objects against Entra's limit, and the groups that are
dead weight in the processing queue, each with its evidence.

Microsoft's processing guide names the number of dynamic groups first among the causes of slow
processing, and its first best practice is "Regularly review the number of groups in your
tenant. Delete inactive or outdated groups." Every dynamic group is evaluated on every relevant
change, so a useless one costs processing for the whole tenant. This module finds candidates;
it never deletes anything (docs/rules-linter.md, "Tenant hygiene").

Pure: the caller brings the listed rules, the store's last changes and history, member counts
and property changes, and `now`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from exporter.domain.lint import excludes, scalar_key
from exporter.domain.rules import (
    And,
    BoolValue,
    Collection,
    Comparison,
    DirectReports,
    Expr,
    ListValue,
    Not,
    NumberValue,
    Operator,
    Or,
    PropertyKind,
    Quantifier,
    Rule,
    RuleSyntaxError,
    Scalar,
    StringValue,
    Subject,
    make_and,
    make_or,
    parse,
    unparse,
    walk,
)

DAY: Final = 86400.0
DEFAULT_OBJECT_LIMIT: Final = 15_000
"""Entra's limit of dynamic groups and dynamic administrative units (combined) per tenant."""
HEADROOM_WARNING_RATIO: Final = 0.80
HEADROOM_CRITICAL_RATIO: Final = 0.95
DEFAULT_INACTIVE_DAYS: Final = 90
CHANGE_WINDOW_DAYS: Final = 7
"""The evaluation share weighs each candidate by the property changes of the last 7 days."""

GUIDE_DELETE_INACTIVE: Final = (
    "Regularly review the number of groups in your tenant. Delete inactive or outdated groups."
)
GUIDE_MEMBER_OF: Final = (
    "Avoid the use of the memberOf operator if possible. It's currently in preview, and it "
    "comes with bugs and limitations. [...] The recommendation is to delete existing memberOf "
    "groups in your tenant."
)
"""Both from Microsoft's *Understand and manage dynamic group processing in Microsoft Entra
ID* (learn.microsoft.com/entra/identity/users/manage-dynamic-group)."""


class Reason(StrEnum):
    """Why a group is a candidate for deletion or merging: the `reason` label of
    entra_dynamic_hygiene_candidates (bounded: these five)."""

    INACTIVE = "inactive"
    EMPTY = "empty"
    NEVER_MATCHES = "never_matches"
    DUPLICATE = "duplicate"
    MEMBER_OF = "memberof"


RECOMMENDATION: Final[Mapping[Reason, str]] = {
    Reason.INACTIVE: "delete it if nobody relies on it (the guide: delete inactive groups)",
    Reason.EMPTY: "delete it, or fix its rule if it should have members",
    Reason.NEVER_MATCHES: "fix the rule or delete the group: no object can ever satisfy it",
    Reason.DUPLICATE: "keep one of the equivalent groups and move its users to it",
    Reason.MEMBER_OF: (
        'Microsoft: "The recommendation is to delete existing memberOf groups in your tenant."'
    ),
}


# ---------------------------------------------------------------------------------------------
# Headroom


@dataclass(frozen=True, slots=True)
class Headroom:
    groups: int
    units: int
    limit: int

    @property
    def used(self) -> int:
        return self.groups + self.units

    @property
    def ratio(self) -> float:
        return self.used / self.limit

    @property
    def level(self) -> str:
        """`ok`, `warning` (from 80 % of the limit) or `critical` (from 95 %)."""
        if self.ratio >= HEADROOM_CRITICAL_RATIO:
            return "critical"
        if self.ratio >= HEADROOM_WARNING_RATIO:
            return "warning"
        return "ok"


# ---------------------------------------------------------------------------------------------
# Never matches: contradictions the parser's tree shows


@dataclass(frozen=True, slots=True)
class Contradiction:
    explanation: str
    position: int
    """0-based offset of the first criterion involved."""


def contradiction(node: Expr) -> Contradiction | None:
    """Why no object can satisfy `node`, or None when that cannot be shown. Found: `-in []`;
    two criteria under one `-and` that exclude each other (the same single-valued property
    `-eq` two values, `-eq` and `-ne` the same value, `-startsWith` two different prefixes,
    `-eq null` and any positive criterion); an `-or` all of whose operands never match; an
    `-any` whose item condition never matches."""
    match node:
        case Comparison(subject, op, ListValue(items)) if op is Operator.IN and not items:
            return Contradiction(f"{subject} -in [] selects nothing", node.position)
        case And(operands):
            for operand in operands:
                found = contradiction(operand)
                if found is not None:
                    return found
            comparisons = [o for o in operands if isinstance(o, Comparison)]
            for index, first in enumerate(comparisons):
                for second in comparisons[index + 1 :]:
                    if excludes(first, second):
                        return Contradiction(
                            f"{unparse(first)} and {unparse(second)} cannot both hold",
                            first.position,
                        )
        case Or(operands):
            found_all = [contradiction(o) for o in operands]
            if all(f is not None for f in found_all):
                reasons = "; ".join(f.explanation for f in found_all if f is not None)
                return Contradiction(f"no branch of the -or can hold: {reasons}", node.position)
        case Collection(subject, Quantifier.ANY, condition):
            found = contradiction(condition)
            if found is not None:
                return Contradiction(
                    f"no item of {subject} can satisfy -any: {found.explanation}", found.position
                )
        case _:
            pass
    return None


# ---------------------------------------------------------------------------------------------
# Duplicates: equivalence after normalisation


def normal_form(node: Expr) -> Expr:
    """A form equal for rules that differ only in case, whitespace, the order of `-and`/`-or`
    operands, repeated operands, or `-or` chains of `-eq` against `-in` lists (and `-and` chains
    of `-ne` against `-notIn`). Every step keeps the meaning (comparisons ignore case; a
    positive operator holds when some item is in the set, so the union of two `-in` sets on one
    subject under `-or` is one `-in`, and dually for `-notIn` under `-and`)."""
    match node:
        case Comparison(subject, op, value):
            if op in (Operator.EQ, Operator.NE) and isinstance(
                value, StringValue | NumberValue | BoolValue
            ):
                listed = Operator.IN if op is Operator.EQ else Operator.NOT_IN
                return Comparison(subject, listed, ListValue(_sorted_items((value,))))
            if isinstance(value, ListValue):
                return Comparison(subject, op, ListValue(_sorted_items(value.items)))
            if isinstance(value, StringValue) and op.positive is not Operator.MATCH:
                return Comparison(subject, op, StringValue(value.value.lower()))
            return node
        case And(operands):
            merged = _merge_lists(
                [normal_form(o) for o in _flatten(operands, And)], Operator.NOT_IN
            )
            return make_and(_sorted_unique(merged))
        case Or(operands):
            merged = _merge_lists([normal_form(o) for o in _flatten(operands, Or)], Operator.IN)
            return make_or(_sorted_unique(merged))
        case Not(operand):
            return Not(normal_form(operand))
        case Collection(subject, quantifier, condition):
            return Collection(subject, quantifier, normal_form(condition))
        case DirectReports(manager_id):
            return DirectReports(manager_id.lower())
    raise TypeError(f"not a rule expression: {node!r}")


def normalised_rule(text: str) -> str | None:
    """The canonical text of a rule's normal form (None if the rule does not parse)."""
    try:
        rule = parse(text)
    except (RuleSyntaxError, ValueError):
        return None
    return unparse(normal_form(rule.ast))


def _sorted_items(items: Iterable[Scalar]) -> tuple[Scalar, ...]:
    """Items as the text Entra compares (case, and number or string, do not matter), once
    each, sorted: a key, not a rule Entra would take."""
    return tuple(StringValue(text) for text in sorted({scalar_key(i) for i in items}))


def _flatten(operands: Iterable[Expr], kind: type[And] | type[Or]) -> list[Expr]:
    flat: list[Expr] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, kind) else (operand,))
    return flat


def _merge_lists(operands: list[Expr], op: Operator) -> list[Expr]:
    """Operands with every `<subject> -<op> [...]` on one subject merged into one."""
    merged: dict[Subject, list[Scalar]] = {}
    rest: list[Expr] = []
    for operand in operands:
        if isinstance(operand, Comparison) and operand.operator is op:
            assert isinstance(operand.value, ListValue)
            merged.setdefault(operand.subject, []).extend(operand.value.items)
        else:
            rest.append(operand)
    for subject, items in merged.items():
        rest.append(Comparison(subject, op, ListValue(_sorted_items(items))))
    return rest


def _sorted_unique(operands: list[Expr]) -> tuple[Expr, ...]:
    keyed = {unparse(o): o for o in operands}
    return tuple(keyed[key] for key in sorted(keyed))


# ---------------------------------------------------------------------------------------------
# Inactive: no dynamic membership change for N days


@dataclass(frozen=True, slots=True)
class Inactivity:
    inactive: bool | None
    """True: no change in the last `days`; False: a change within them; None: the history
    held does not reach back `days` (the verdict waits, so no group is called inactive on a
    history too short to say)."""
    last_change: float | None
    """The last dynamic membership change the exporter saw (None: none in its history)."""
    history_days: float
    """How many days of uninterrupted audit history back the verdict."""
    days: int


FIRST_LISTING_SLACK: Final = 3600.0
"""Groups first seen within an hour of the exporter's first listing were in that listing."""
HISTORY_MAX_LAG: Final = DAY
"""The audit history must reach within a day of now for a verdict: while a backfill is still
on old days, or after the exporter was away, the latest changes are not known yet."""


def inactivity(
    last_change: float | None,
    history_start: float | None,
    now: float,
    days: int,
    history_end: float | None = None,
) -> Inactivity:
    """The verdict on one group. `history_start`..`history_end` is the exporter's uninterrupted
    audit coverage (its watermark; None: up to now). The store keeps each group's last change
    beyond the audit log's 30-day retention, so the history, and the verdicts it allows, grow
    with uptime."""
    end = now if history_end is None else min(now, history_end)
    history_days = 0.0 if history_start is None else max(0.0, (end - history_start) / DAY)
    cutoff = now - days * DAY
    if last_change is not None and last_change >= cutoff:
        verdict: bool | None = False
    elif history_start is None or history_start > cutoff or end < now - HISTORY_MAX_LAG:
        verdict = None
    else:
        verdict = True
    return Inactivity(verdict, last_change, history_days, days)


# ---------------------------------------------------------------------------------------------
# The share of evaluations the candidates cost


@dataclass(frozen=True, slots=True)
class PropertyChanges:
    """Changes of one object type seen in the audit log: `properties` changed together (the
    names of "Included Updated Properties"), or None for an object added or deleted, which every
    rule of its type evaluates."""

    object_type: str
    """`user` or `device` (either module's ObjectType: both are these strings)."""
    properties: frozenset[str] | None
    count: int


_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def property_key(name: str) -> str:
    """A property name as both rules (`extensionAttribute3`) and audit events
    (`ExtensionAttribute3`, `extension_attribute_3`) can be compared."""
    return _NOT_ALNUM.sub("", name.lower())


@dataclass(frozen=True, slots=True)
class EvaluationCost:
    total: int
    """Evaluations the changes caused: for each change, the rules of its object type that read
    a changed property (every rule of the type for an added or deleted object)."""
    candidates: int
    """The part of `total` spent on candidates."""

    @property
    def share(self) -> float | None:
        return None if self.total == 0 else self.candidates / self.total


def evaluations_by_rule(
    rules: Mapping[str, Rule], changes: Iterable[PropertyChanges]
) -> dict[str, int]:
    """Estimated evaluations of each rule (id -> parsed rule) caused by `changes`: for each
    change, every rule of its object type that reads a changed property (every rule of the
    type for an added or deleted object). An estimate: Entra does not say what it evaluates."""
    counts = dict.fromkeys(rules, 0)
    by_type: dict[str, list[str]] = {}
    readers: dict[tuple[str, str], set[str]] = {}
    for object_id, rule in rules.items():
        object_type = rule.object_type.value
        by_type.setdefault(object_type, []).append(object_id)
        for name in rule.properties:
            readers.setdefault((object_type, property_key(name)), set()).add(object_id)
    for change in changes:
        if change.properties is None:
            affected: Iterable[str] = by_type.get(change.object_type, ())
        else:
            found: set[str] = set()
            for name in change.properties:
                found |= readers.get((change.object_type, property_key(name)), set())
            affected = found
        for object_id in affected:
            counts[object_id] += change.count
    return counts


def evaluation_cost(evaluations: Mapping[str, int], candidates: Iterable[str]) -> EvaluationCost:
    """The evaluations of all rules and the part spent on `candidates` (ids)."""
    chosen = frozenset(candidates)
    return EvaluationCost(
        sum(evaluations.values()), sum(n for i, n in evaluations.items() if i in chosen)
    )


# ---------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True, slots=True)
class HygieneObject:
    """A dynamic group or unit as listed: `kind` is `group` or `administrative_unit`."""

    kind: str
    id: str
    name: str
    rule: str


@dataclass(frozen=True, slots=True)
class MemberCount:
    count: int
    read_at: float


@dataclass(frozen=True, slots=True)
class Candidate:
    reason: Reason
    target: HygieneObject
    evidence: str
    """One line: what shows it (the contradiction, the last change and the history behind the
    verdict, the member count and when it was read, the equivalent groups)."""
    details: Mapping[str, object] = field(default_factory=dict)
    """The same evidence as data, for --json."""

    @property
    def recommendation(self) -> str:
        return RECOMMENDATION[self.reason]


@dataclass(frozen=True, slots=True)
class HygieneReport:
    candidates: tuple[Candidate, ...]
    duplicate_sets: tuple[tuple[HygieneObject, ...], ...]
    """Groups (or units) whose rules are equivalent, each set ordered by name."""
    not_judged: Mapping[Reason, int]
    """Objects on which no verdict was possible: `inactive` when the history is shorter than
    the period, `empty` when no member count has been read yet."""
    history_days: float
    inactive_days: int

    def by_reason(self) -> dict[Reason, int]:
        """Candidates per reason, every reason present (an object may have several)."""
        counts = dict.fromkeys(Reason, 0)
        for candidate in self.candidates:
            counts[candidate.reason] += 1
        return counts

    def candidate_ids(self) -> frozenset[str]:
        return frozenset(c.target.id for c in self.candidates)


def _days(seconds: float) -> str:
    return f"{seconds / DAY:.0f}"


def assess_hygiene(
    objects: Sequence[HygieneObject],
    *,
    now: float,
    inactive_days: int = DEFAULT_INACTIVE_DAYS,
    last_changes: Mapping[str, float] | None = None,
    history_start: float | None = None,
    history_end: float | None = None,
    member_counts: Mapping[str, MemberCount] | None = None,
    first_seen: Mapping[str, float] | None = None,
) -> HygieneReport:
    """Every candidate among `objects`. `last_changes` (group id -> last dynamic membership
    change) and `history_start` come from the exporter's store (None: no store, so no
    inactivity verdicts; groups only); `member_counts` from `$count` reads (groups only:
    absent ids are not judged); `first_seen` (id -> the first listing that showed it) tells
    groups created while the exporter watched, which are younger than their first sighting
    and so not inactive before `inactive_days` have passed since. Ids are compared
    case-insensitively, as Graph's GUIDs."""
    last = {k.lower(): v for k, v in (last_changes or {}).items()}
    seen = {k.lower(): v for k, v in (first_seen or {}).items()}
    # Objects in the exporter's first listing are of unknown age; later ones were created then.
    watched_from = min(seen.values(), default=None)
    counts = {k.lower(): v for k, v in (member_counts or {}).items()}
    candidates: list[Candidate] = []
    not_judged = dict.fromkeys((Reason.INACTIVE, Reason.EMPTY), 0)
    history_days = inactivity(None, history_start, now, inactive_days, history_end).history_days
    normal: dict[tuple[str, str], list[HygieneObject]] = {}
    for obj in objects:
        key = obj.id.lower()
        facts = rule_facts(obj.rule)
        if facts is not None:
            candidates.extend(_rule_candidates(obj, facts))
            normal.setdefault((obj.kind, facts.normal_form), []).append(obj)
        # Units: the audit log's unit membership events are not dynamic changes the exporter
        # attributes (classified `other`), so no last change is known and no verdict is given.
        if obj.kind == "group":
            verdict = inactivity(last.get(key), history_start, now, inactive_days, history_end)
            appeared = seen.get(key)
            if (
                verdict.inactive
                and appeared is not None
                and watched_from is not None
                and appeared > watched_from + FIRST_LISTING_SLACK
                and appeared > now - inactive_days * DAY
            ):
                verdict = replace(verdict, inactive=False)  # created within the period
            if last_changes is None or verdict.inactive is None:
                not_judged[Reason.INACTIVE] += 1
            elif verdict.inactive:
                candidates.append(_inactive_candidate(obj, verdict, now))
        if obj.kind == "group":
            count = counts.get(key)
            if count is None:
                not_judged[Reason.EMPTY] += 1
            elif count.count == 0:
                age = max(0.0, now - count.read_at)
                candidates.append(
                    Candidate(
                        Reason.EMPTY,
                        obj,
                        f"no members ($count read {_ago(age)})",
                        {"member_count": 0, "counted_at": count.read_at},
                    )
                )
    duplicate_sets = tuple(
        tuple(sorted(same, key=lambda o: (o.name.casefold(), o.id)))
        for (_, _), same in sorted(normal.items())
        if len(same) > 1
    )
    for same in duplicate_sets:
        for obj in same:
            others = [o for o in same if o is not obj]
            names = ", ".join(f"{o.name} ({o.id})" for o in others)
            candidates.append(
                Candidate(
                    Reason.DUPLICATE,
                    obj,
                    f"its rule is equivalent to that of {names}",
                    {
                        "equivalent_to": [o.id for o in others],
                        "normal_form": normalised_rule(obj.rule),
                    },
                )
            )
    order = {reason: index for index, reason in enumerate(Reason)}
    candidates.sort(key=lambda c: (order[c.reason], c.target.name.casefold(), c.target.id))
    return HygieneReport(tuple(candidates), duplicate_sets, not_judged, history_days, inactive_days)


@dataclass(frozen=True, slots=True)
class RuleFacts:
    """What the report needs from one rule's text, computed once per distinct text."""

    contradiction: Contradiction | None
    member_of_position: int | None
    normal_form: str


@functools.lru_cache(maxsize=32768)
def rule_facts(text: str) -> RuleFacts | None:
    """None when the rule does not parse. Cached: the exporter recomputes the report after
    polls, and a tenant's rules rarely change between them."""
    try:
        rule = parse(text)
    except (RuleSyntaxError, ValueError):
        return None
    member_of = next(
        (
            node.position
            for node in walk(rule.ast)
            if isinstance(node, Collection) and node.subject.kind is PropertyKind.GROUP_COLLECTION
        ),
        None,
    )
    return RuleFacts(contradiction(rule.ast), member_of, unparse(normal_form(rule.ast)))


def _rule_candidates(obj: HygieneObject, facts: RuleFacts) -> list[Candidate]:
    found: list[Candidate] = []
    never = facts.contradiction
    if never is not None:
        found.append(
            Candidate(
                Reason.NEVER_MATCHES,
                obj,
                never.explanation,
                {"contradiction": never.explanation, "position": never.position},
            )
        )
    if facts.member_of_position is not None:
        found.append(
            Candidate(
                Reason.MEMBER_OF,
                obj,
                "uses the preview memberOf operator, which Microsoft asks to avoid "
                '("it comes with bugs and limitations")',
                {"position": facts.member_of_position, "microsoft": GUIDE_MEMBER_OF},
            )
        )
    return found


def _inactive_candidate(obj: HygieneObject, verdict: Inactivity, now: float) -> Candidate:
    if verdict.last_change is None:
        evidence = (
            f"no dynamic membership change in the {verdict.history_days:.0f} days of audit "
            f"history the exporter holds (inactive after {verdict.days} days)"
        )
    else:
        evidence = (
            f"last dynamic membership change {_ago(now - verdict.last_change)} "
            f"(inactive after {verdict.days} days; {verdict.history_days:.0f} days of history)"
        )
    return Candidate(
        Reason.INACTIVE,
        obj,
        evidence,
        {
            "last_change": verdict.last_change,
            "history_days": round(verdict.history_days, 1),
            "inactive_days": verdict.days,
        },
    )


def _ago(seconds: float) -> str:
    if seconds >= 2 * DAY:
        return f"{_days(seconds)} days ago"
    if seconds >= 7200:
        return f"{seconds / 3600:.0f} hours ago"
    return f"{max(0.0, seconds) / 60:.0f} minutes ago"
