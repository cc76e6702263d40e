"""Graph's error responses: `{"error": {"code", "message", "innerError": {...}}}`.

Handlers raise `GraphError`; the middleware in `graph_api` renders it with the request's ids
and the simulated date, the way Graph does.
"""

from __future__ import annotations

import orjson

from exporter.simulator.timefmt import inner_error_date


class GraphError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        inner: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner = inner or {}


def error_body(
    code: str,
    message: str,
    *,
    now: float,
    request_id: str,
    client_request_id: str,
    inner: dict[str, str] | None = None,
) -> bytes:
    inner_error: dict[str, str] = {
        **(inner or {}),
        "date": inner_error_date(now),
        "request-id": request_id,
        "client-request-id": client_request_id,
    }
    return orjson.dumps({"error": {"code": code, "message": message, "innerError": inner_error}})


# The errors Graph returns on the paths the simulator serves, one constructor each, so that
# codes and wording stay in one place.


def bad_request(message: str) -> GraphError:
    """Directory (groups, administrative units) request errors."""
    return GraphError(400, "Request_BadRequest", message)


def unsupported_query(message: str = "Unsupported Query.") -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", message)


def reporting_bad_request(message: str) -> GraphError:
    """The audit log (the reporting service) uses plain `BadRequest`."""
    return GraphError(400, "BadRequest", message)


def not_found(object_id: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def unknown_segment(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def unauthenticated(message: str = "Access token is empty.") -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message)


def forbidden() -> GraphError:
    return GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def throttled(retry_after: float) -> GraphError:
    # Graph's throttling sample: fractional Retry-After, "TooManyRequests", an inner code 429.
    value = f"{retry_after:.3f}".rstrip("0").rstrip(".")
    return GraphError(
        429,
        "TooManyRequests",
        "Too many requests.",
        headers={"Retry-After": value},
        inner={"code": "429", "message": "Please retry after", "status": "429"},
    )


def server_error(status: int) -> GraphError:
    codes = {
        500: ("InternalServerError", "An internal server error occurred."),
        502: ("BadGateway", "Bad gateway."),
        503: ("ServiceUnavailable", "The service is temporarily unavailable."),
        504: ("GatewayTimeout", "The operation timed out."),
    }
    code, message = codes[status]
    return GraphError(status, code, message)
