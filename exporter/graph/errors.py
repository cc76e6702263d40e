"""Errors the graph layer raises. Each message is one line a person can act on; none carries a
secret, a token or a response body."""

from __future__ import annotations


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


class GraphAuthError(GraphError):
    """401 or 403, or no token could be obtained: names the permission or the credential to fix."""


class GraphNotFoundError(GraphError):
    """404: the object does not exist (or is not visible to the app)."""


class GraphRequestError(GraphError):
    """Another 4xx: the request itself is wrong; retrying will not help."""


class GraphUnavailableError(GraphError):
    """Transport errors, 5xx, throttling or truncated bodies that outlasted the retries."""


class GraphResponseError(GraphError):
    """Graph answered 2xx with a body that does not have the expected shape."""
