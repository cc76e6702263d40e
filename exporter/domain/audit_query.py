"""How the audit poller asks Graph for directoryAudits (issue #13).

Whether directoryAudits accepts twelve `activityDisplayName eq` clauses joined by `or`, with
`$orderby`, is not documented, and some `or` filters are reportedly refused. The poller starts
narrow and, when Graph answers 400, steps down to the documented minimum; the events it then
receives are filtered client-side, so the counts are the same in every mode (only the number
of pages differs).
"""

from __future__ import annotations

from enum import StrEnum


class AuditQueryMode(StrEnum):
    NARROW = "narrow"
    """Time range and the ingested activities (`or`), oldest first: the fewest pages."""
    TIME_ORDERED = "time_ordered"
    """Time range only, oldest first: every activity of the window is fetched."""
    TIME_ONLY = "time_only"
    """Time range only, Graph's default order (newest first): the window's watermark moves
    only when the window is complete."""

    def step_down(self) -> AuditQueryMode | None:
        """The next, more basic mode; None from the most basic one."""
        order = list(AuditQueryMode)
        at = order.index(self)
        return order[at + 1] if at + 1 < len(order) else None

    @property
    def filters_activities(self) -> bool:
        return self is AuditQueryMode.NARROW

    @property
    def ordered(self) -> bool:
        return self is not AuditQueryMode.TIME_ONLY
