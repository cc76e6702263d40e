"""What the Graph client refuses from a hostile or broken answer before it can do harm.

* Links Graph hands back (`@odata.nextLink`) are followed only to the origin the client was
  configured with: same scheme, host and port. The credential's own host check compares the
  host only, so without this a link to another port of the same host would receive the bearer
  token, and a link to another host would have its events counted.
* A response body larger than the cap is not read to the end: the cap bounds the memory one
  page can take (a 1,000-event audit page is a few MB; Graph never sends tens).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
from kiota_http.middleware import BaseMiddleware

from exporter.config.models import DEFAULT_MAX_RESPONSE_BYTES

DEFAULT_MAX_BODY_BYTES = DEFAULT_MAX_RESPONSE_BYTES
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, the port made explicit; else None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def same_origin(url: str, base: str) -> bool:
    """Whether `url` is on the configured Graph base's scheme, host and port."""
    here = origin(url)
    return here is not None and here == origin(base)


class BodyTooLargeError(Exception):
    """A response body went past the configured cap; it was not read further."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the response body is larger than the cap of {limit} bytes")
        self.limit = limit


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = 0
        async for chunk in self._inner:
            read += len(chunk)
            if read > self._limit:
                raise BodyTooLargeError(self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class BodyCapHandler(BaseMiddleware):
    """Refuses a body over `limit` bytes: at once when Content-Length says so, else while it
    streams in (a chunked body may not say)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> Any:
        response: httpx.Response = await super().send(request, transport)
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._limit:
            await response.aclose()
            raise BodyTooLargeError(self._limit)
        stream = response.stream
        if isinstance(stream, httpx.AsyncByteStream):
            response.stream = _CappedStream(stream, self._limit)
        return response
