"""Errors the graph layer raises. Each message is one line a person can act on; none carries a
secret, a token or a response body."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RequestCounts:
    """What one logical Graph call cost: HTTP requests sent (the first and every retry) and how
    many of them Graph answered 429."""

    requests: int = 0
    throttled: int = 0

    def add(self, other: RequestCounts) -> None:
        self.requests += other.requests
        self.throttled += other.throttled


class GraphError(Exception):
    """A Graph request failed for good (after any retries)."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.counts: RequestCounts | None = None
        """Set by calls that report their cost (`GraphClient.set_processing_state`)."""


class GraphAuthError(GraphError):
    """401 or 403, or no token could be obtained: names the permission or the credential to fix."""


class GraphNotFoundError(GraphError):
    """404: the object does not exist (or is not visible to the app)."""


class GraphRequestError(GraphError):
    """Another 4xx: the request itself is wrong; retrying will not help."""


def refuses_query(error: GraphError) -> bool:
    """Graph answered 400 to a query's first request: it does not accept the query as asked
    (an `or` filter, `$orderby` with one), so the caller steps down a query mode
    (`exporter.domain.audit_query.AuditQueryMode.step_down`)."""
    return isinstance(error, GraphRequestError) and error.status == _BAD_REQUEST


_BAD_REQUEST = 400


class GraphUnavailableError(GraphError):
    """Transport errors, 5xx, throttling or truncated bodies that outlasted the retries."""


class GraphResponseError(GraphError):
    """Graph answered 2xx with a body that does not have the expected shape."""
