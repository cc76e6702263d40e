"""`GET /v1.0/auditLogs/directoryAudits`: query options checked as Graph checks them, pages
assembled from pre-serialized events.

Supported, as Graph documents for directoryAudits: `$filter` on activityDateTime (eq, ge, le),
activityDisplayName (eq, startswith), initiatedBy/app/displayName and appId (eq),
initiatedBy/user/id, displayName, userPrincipalName (eq; startswith for the last two),
loggedByService, correlationId, id (eq), targetResources/any(t: t/id eq | t/displayName eq),
combined with `and`, `or` and parentheses; `$top` (1 to 1,000); `$orderby=activityDateTime
[asc|desc]` (default newest first); `$skiptoken` from a nextLink. Anything else is a 400.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from exporter.simulator import odata
from exporter.simulator.auditlog import ACTIVITIES, ACTIVITY_CODE, AppRegistry, EventMatcher, Scan
from exporter.simulator.errors import GraphError, reporting_bad_request
from exporter.simulator.tenant import SimulatedTenant
from exporter.simulator.timefmt import dotnet_general_date, us_from_seconds

MAX_TOP = 1000
DEFAULT_TOP = 1000
ALLOWED_OPTIONS = frozenset({"$filter", "$top", "$orderby", "$skiptoken"})

Residual = Callable[[int, int, int, Callable[[], dict[str, object]]], bool]


@dataclass(frozen=True, slots=True)
class AuditRequest:
    matcher: EventMatcher
    descending: bool
    top: int
    cursor: str | None
    carried: tuple[tuple[str, str], ...]  # query options repeated in the nextLink


def _invalid(detail: str) -> GraphError:
    return reporting_bad_request(f"Invalid filter clause: {detail}")


@dataclass(frozen=True, slots=True)
class _Simple:
    lo: int | None = None
    hi: int | None = None
    activities: frozenset[int] | None = None
    apps: frozenset[int] | None = None

    def dimensions(self) -> set[str]:
        found = set()
        if self.lo is not None or self.hi is not None:
            found.add("time")
        if self.activities is not None:
            found.add("activity")
        if self.apps is not None:
            found.add("app")
        return found

    def intersect(self, other: _Simple) -> _Simple:
        def lower(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else max(a, b)

        def upper(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)

        def both(a: frozenset[int] | None, b: frozenset[int] | None) -> frozenset[int] | None:
            return b if a is None else a if b is None else a & b

        return _Simple(
            lower(self.lo, other.lo),
            upper(self.hi, other.hi),
            both(self.activities, other.activities),
            both(self.apps, other.apps),
        )

    def test(self, time_us: int, activity: int, app: int) -> bool:
        return (
            (self.lo is None or time_us >= self.lo)
            and (self.hi is None or time_us <= self.hi)
            and (self.activities is None or activity in self.activities)
            and (self.apps is None or app in self.apps)
        )


class _Compiler:
    def __init__(self, apps: AppRegistry) -> None:
        self.apps = apps

    def compile(self, node: odata.Node) -> EventMatcher:
        simple, residual = self._split(node)
        lo, hi = self._hull(node)
        return EventMatcher(
            lo_us=lo if simple.lo is None else simple.lo if lo is None else max(lo, simple.lo),
            hi_us=hi if simple.hi is None else simple.hi if hi is None else min(hi, simple.hi),
            activities=simple.activities,
            apps=simple.apps,
            residual=residual,
        )

    def _split(self, node: odata.Node) -> tuple[_Simple, Residual | None]:
        """The part of `node` the columns answer, and a predicate for the rest."""
        simple = self._simple(node)
        if simple is not None:
            return simple, None
        if isinstance(node, odata.And):
            combined = _Simple()
            residuals: list[Residual] = []
            for item in node.items:
                part, rest = self._split(item)
                combined = combined.intersect(part)
                if rest is not None:
                    residuals.append(rest)
            return combined, _all(residuals)
        return _Simple(), self._predicate(node)

    def _simple(self, node: odata.Node) -> _Simple | None:
        if isinstance(node, odata.Comparison | odata.Call):
            return self._leaf(node)
        if isinstance(node, odata.And):
            parts = [self._simple(item) for item in node.items]
            if any(p is None for p in parts):
                return None
            result = _Simple()
            for part in parts:
                assert part is not None
                result = result.intersect(part)
            return result
        if isinstance(node, odata.Or):
            parts = [self._simple(item) for item in node.items]
            if any(p is None for p in parts):
                return None
            dims = [p.dimensions() for p in parts if p is not None]
            if all(d == {"activity"} for d in dims):
                return _Simple(
                    activities=frozenset().union(*(p.activities or () for p in parts if p))
                )
            if all(d == {"app"} for d in dims):
                return _Simple(apps=frozenset().union(*(p.apps or () for p in parts if p)))
            return None
        if isinstance(node, odata.Not):
            raise _invalid("the 'not' operator is not supported on directoryAudits")
        return None  # lambdas: residual

    def _leaf(self, node: odata.Comparison | odata.Call) -> _Simple | None:
        name = node.prop.name
        value = node.value
        if isinstance(node, odata.Comparison) and node.op not in ("eq", "ge", "le"):
            raise _invalid(f"operator '{node.op}' is not supported for '{name}'")
        if name == "activityDateTime":
            if isinstance(node, odata.Call) or value.kind != "datetime":
                raise _invalid("activityDateTime is compared (eq, ge, le) with a DateTimeOffset")
            assert isinstance(value.value, int)
            assert isinstance(node, odata.Comparison)
            moment = value.value
            if node.op == "ge":
                return _Simple(lo=moment)
            if node.op == "le":
                return _Simple(hi=moment)
            return _Simple(lo=moment, hi=moment)
        if isinstance(node, odata.Comparison) and node.op != "eq":
            raise _invalid(f"only 'eq' is supported for '{name}'")
        if name == "activityDisplayName":
            text = _string(node)
            if isinstance(node, odata.Call):
                if node.function != "startswith":
                    raise _invalid(f"{node.function}() is not supported for '{name}'")
                return _Simple(
                    activities=frozenset(
                        ACTIVITY_CODE[a] for a in ACTIVITIES if a.lower().startswith(text.lower())
                    )
                )
            return _Simple(
                activities=frozenset(
                    ACTIVITY_CODE[a] for a in ACTIVITIES if a.lower() == text.lower()
                )
            )
        if name == "initiatedBy/app/displayName":
            if isinstance(node, odata.Call):
                raise _invalid(f"{node.function}() is not supported for '{name}'")
            text = _string(node).lower()
            return _Simple(apps=self.apps.codes_matching(lambda app: app.lower() == text))
        return None

    def _hull(self, node: odata.Node) -> tuple[int | None, int | None]:
        """Time bounds no matching event can be outside of."""
        if isinstance(node, odata.Comparison) and node.prop.name == "activityDateTime":
            simple = self._leaf(node)
            assert simple is not None
            return simple.lo, simple.hi
        if isinstance(node, odata.And):
            lo: int | None = None
            hi: int | None = None
            for item in node.items:
                a, b = self._hull(item)
                lo = a if lo is None else lo if a is None else max(lo, a)
                hi = b if hi is None else hi if b is None else min(hi, b)
            return lo, hi
        if isinstance(node, odata.Or):
            hulls = [self._hull(item) for item in node.items]
            los = [h[0] for h in hulls]
            his = [h[1] for h in hulls]
            return (
                None if any(x is None for x in los) else min(x for x in los if x is not None),
                None if any(x is None for x in his) else max(x for x in his if x is not None),
            )
        return None, None

    def _predicate(self, node: odata.Node) -> Residual:
        if isinstance(node, odata.And):
            return _all([self._predicate(item) for item in node.items]) or _always
        if isinstance(node, odata.Or):
            parts = [self._predicate(item) for item in node.items]
            return lambda t, a, p, doc: any(part(t, a, p, doc) for part in parts)
        if isinstance(node, odata.Not):
            raise _invalid("the 'not' operator is not supported on directoryAudits")
        if isinstance(node, odata.Lambda):
            return self._lambda(node)
        assert isinstance(node, odata.Comparison | odata.Call)
        simple = self._leaf(node)
        if simple is not None:
            return lambda t, a, p, doc: simple.test(t, a, p)
        return self._document_leaf(node)

    def _document_leaf(self, node: odata.Comparison | odata.Call) -> Residual:
        name = node.prop.name
        text = _string(node).lower()
        startswith = isinstance(node, odata.Call)
        paths = {
            "loggedByService": ("loggedByService",),
            "correlationId": ("correlationId",),
            "id": ("id",),
            "initiatedBy/app/appId": ("initiatedBy", "app", "appId"),
            "initiatedBy/user/id": ("initiatedBy", "user", "id"),
            "initiatedBy/user/displayName": ("initiatedBy", "user", "displayName"),
            "initiatedBy/user/userPrincipalName": ("initiatedBy", "user", "userPrincipalName"),
        }
        if name not in paths:
            raise _invalid(f"'{name}' is not a filterable property of directoryAudit")
        if startswith and (
            node.function != "startswith"  # type: ignore[union-attr]
            or name not in ("initiatedBy/user/displayName", "initiatedBy/user/userPrincipalName")
        ):
            raise _invalid(f"this function is not supported for '{name}'")
        path = paths[name]

        def test(t: int, a: int, p: int, doc: Callable[[], dict[str, object]]) -> bool:
            value: object = doc()
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if not isinstance(value, str):
                return False
            value = value.lower()
            return value.startswith(text) if startswith else value == text

        return test

    def _lambda(self, node: odata.Lambda) -> Residual:
        if node.collection.name != "targetResources" or node.quantifier != "any":
            raise _invalid(f"'{node.collection.name}/{node.quantifier}' is not supported")
        body = node.body
        if not (
            isinstance(body, odata.Comparison)
            and body.op == "eq"
            and len(body.prop.path) == 2
            and body.prop.path[0] == node.variable
            and body.prop.path[1] in ("id", "displayName")
        ):
            raise _invalid("targetResources/any supports t/id eq '...' and t/displayName eq '...'")
        field = body.prop.path[1]
        text = _string(body).lower()

        def test(t: int, a: int, p: int, doc: Callable[[], dict[str, object]]) -> bool:
            targets = doc().get("targetResources")
            if not isinstance(targets, list):
                return False
            return any(
                isinstance(target, dict)
                and isinstance(target.get(field), str)
                and str(target.get(field)).lower() == text
                for target in targets
            )

        return test


def _always(t: int, a: int, p: int, doc: Callable[[], dict[str, object]]) -> bool:
    return True


def _all(parts: list[Residual]) -> Residual | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return lambda t, a, p, doc: all(part(t, a, p, doc) for part in parts)


def _string(node: odata.Comparison | odata.Call) -> str:
    if node.value.kind not in ("string", "guid"):
        raise _invalid(f"'{node.prop.name}' is compared with a quoted string")
    return str(node.value.value)


def parse_audit_request(
    params: Mapping[str, str],
    *,
    now: float,
    retention_seconds: float,
    apps: AppRegistry,
    refuse_or: bool = False,
    refuse_orderby_with_or: bool = False,
) -> AuditRequest:
    """`refuse_or`, `refuse_orderby_with_or`: behave like a Graph that refuses `or` in $filter,
    or `or` together with $orderby (the switches of `FaultSettings`)."""
    for key in params:
        if key.startswith("$") and key not in ALLOWED_OPTIONS:
            raise reporting_bad_request(
                f"Query option '{key}' is not supported on directoryAudits."
            )
    top = DEFAULT_TOP
    if "$top" in params:
        try:
            top = int(params["$top"])
        except ValueError:
            raise reporting_bad_request(f"Invalid value '{params['$top']}' for $top.") from None
        if not 1 <= top <= MAX_TOP:
            raise reporting_bad_request(f"The value of $top must be between 1 and {MAX_TOP}.")
    descending = True
    if "$orderby" in params:
        parts = params["$orderby"].split()
        if (
            not parts
            or parts[0] != "activityDateTime"
            or len(parts) > 2
            or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc"))
        ):
            raise reporting_bad_request(
                f"Invalid $orderby '{params['$orderby']}': only activityDateTime asc|desc is "
                "supported."
            )
        descending = len(parts) == 2 and parts[1].lower() == "desc"
    matcher = EventMatcher()
    if "$filter" in params:
        try:
            tree = odata.parse_filter(params["$filter"])
        except odata.FilterSyntaxError as exc:
            raise reporting_bad_request(f"Invalid filter clause: {exc}") from None
        if _has_or(tree) and (refuse_or or (refuse_orderby_with_or and "$orderby" in params)):
            raise _invalid(
                "the 'or' operator is not supported"
                + (" with $orderby" if not refuse_or else "")
                + " on directoryAudits"
            )
        matcher = _Compiler(apps).compile(tree)
    earliest = us_from_seconds(now - retention_seconds)
    if matcher.lo_us is not None and matcher.lo_us < earliest:
        raise reporting_bad_request(
            "Specified argument was out of the range of valid values. (Parameter 'Minimum "
            f"allowed time for activityDateTime is {dotnet_general_date(now - retention_seconds)}')"
        )
    if matcher.lo_us is None:
        matcher = EventMatcher(
            earliest, matcher.hi_us, matcher.activities, matcher.apps, matcher.residual
        )
    cursor = None
    if "$skiptoken" in params:
        cursor = _decode_token(params["$skiptoken"])
    carried = tuple((key, params[key]) for key in ("$filter", "$orderby", "$top") if key in params)
    return AuditRequest(matcher, descending, top, cursor, carried)


def _has_or(node: odata.Node) -> bool:
    if isinstance(node, odata.Or):
        return True
    if isinstance(node, odata.And):
        return any(_has_or(item) for item in node.items)
    if isinstance(node, odata.Not):
        return _has_or(node.item)
    return False


def _encode_token(cursor: str) -> str:
    return base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    parts = text.split(".")
    valid = (parts[0] == "L" and len(parts) == 3) or (parts[0] == "H" and len(parts) == 4)
    if not valid or not all(p.lstrip("-").isdigit() for p in parts[1:]):
        raise reporting_bad_request("Invalid $skiptoken.")
    return text


def audit_page(
    tenant: SimulatedTenant,
    request: AuditRequest,
    *,
    base_url: str,
    visible_by: float,
    duplicate_events: int = 0,
) -> tuple[bytes, int]:
    """The response body, and how many events it holds."""
    visible_us = us_from_seconds(visible_by)
    # Events do not exist before they happen, whatever the client asks for.
    matcher = request.matcher
    if matcher.hi_us is None or matcher.hi_us > tenant.time_us:
        matcher = EventMatcher(
            matcher.lo_us, tenant.time_us, matcher.activities, matcher.apps, matcher.residual
        )
    order = ["L", "H"] if request.descending else ["H", "L"]
    cursor = request.cursor
    start_source = cursor[0] if cursor else order[0]
    wanted = request.top + 1
    payloads: list[bytes] = []
    cursors: list[tuple[Scan, int]] = []
    for source in order[order.index(start_source) :]:
        if len(payloads) >= wanted:
            break
        after = cursor if cursor is not None and cursor[0] == source else None
        remaining = wanted - len(payloads)
        if source == "L":
            live_after = None
            if after is not None:
                _, t, n = after.split(".")
                live_after = (int(t), int(n))
            scan = tenant.live.scan(
                matcher,
                after=live_after,
                descending=request.descending,
                visible_by_us=visible_us,
                limit=remaining - 1,
            )
        else:
            if tenant.history is None:
                continue
            history_after = None
            if after is not None:
                _, t, k, j = after.split(".")
                history_after = (int(t), int(k), int(j))
            scan = tenant.history.scan(
                matcher,
                after=history_after,
                descending=request.descending,
                visible_by_us=visible_us,
                limit=remaining - 1,
            )
        cursors.extend((scan, i) for i in range(len(scan.payloads)))
        payloads.extend(scan.payloads)
    more = len(payloads) > request.top
    page = payloads[: request.top]
    context = f"{base_url}/v1.0/$metadata#auditLogs/directoryAudits"
    head = b'{"@odata.context":"' + context.encode() + b'"'
    if more:
        position = len(page) - 1 - min(duplicate_events, len(page) - 1)
        scan, index = cursors[position]
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in request.carried)
        token = _encode_token(scan.cursor_of(index))
        separator = "&" if query else ""
        link = f"{base_url}/v1.0/auditLogs/directoryAudits?{query}{separator}$skiptoken={token}"
        head += b',"@odata.nextLink":"' + link.encode() + b'"'
    head += b',"value":['
    if not page:
        return head + b"]}", 0
    # The page is built by one join: each intermediate copy of a full page (1.5 MB) cost the
    # simulator more CPU than finding the page's events.
    items = list(page)
    items[0] = head + items[0]
    items[-1] += b"]}"
    return b",".join(items), len(page)
