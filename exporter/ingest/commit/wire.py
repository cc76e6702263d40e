"""The audit commit process's wire format: length-prefixed msgpack frames over its stdin/stdout.

Parent -> worker: `CommitRequest`s, answered in order. Worker -> parent: one `CommitReply` with
id 0 once the store is open (or with the error that kept it from opening), then one per request.
Classified events cross as msgpack arrays (msgspec encodes the NamedTuples and enums directly:
~0.15 µs per event to encode, ~0.5 to decode, measured in bench/PROFILES.md), never pickled.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import msgspec

from exporter.store.database import PageBatch

READY_ID = 0
_LENGTH = struct.Struct(">I")
HEADER_SIZE = _LENGTH.size


class CommitRequest(msgspec.Struct, array_like=True, gc=False):
    id: int
    tenant: str
    batches: list[PageBatch]


class CommitReply(msgspec.Struct, array_like=True, gc=False):
    id: int
    counted: dict[str, int]
    """kind -> events newly counted (as `PageOutcome.counted`)."""
    error: str | None = None
    """Why the commit (or, for id 0, opening the store) failed; nothing was written."""


_ENCODER = msgspec.msgpack.Encoder()
REQUEST_DECODER = msgspec.msgpack.Decoder(CommitRequest)
REPLY_DECODER = msgspec.msgpack.Decoder(CommitReply)


def frame(message: CommitRequest | CommitReply) -> bytes:
    payload = _ENCODER.encode(message)
    return _LENGTH.pack(len(payload)) + payload


def payload_size(header: bytes) -> int:
    size: int = _LENGTH.unpack(header)[0]
    return size


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's payload from a blocking stream; None at a clean end of stream."""
    header = stream.read(HEADER_SIZE)
    if not header:
        return None
    if len(header) < HEADER_SIZE:
        raise EOFError("the stream ended inside a frame header")
    size = payload_size(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("the stream ended inside a frame")
    return payload
