"""Request and response framing: size prefix, headers, body.

Every Kafka message on the wire is `int32 size` followed by `size` bytes. A
request starts with the request header:

    v1: api_key int16, api_version int16, correlation_id int32, client_id nullable string (int16 length)
    v2: v1 + tagged fields (flexible API versions)

client_id stays a classic (non-compact) string even in v2. A response starts with
the response header: v0 is `correlation_id int32`; v1 adds tagged fields.
ApiVersions responses always use v0 so a client can read them before it knows
which versions we speak.
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import SCHEMAS
from .primitives import DecodeError, Reader, Writer
from .schema import ApiSchema, Struct

SIZE_PREFIX = 4


@dataclass(frozen=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


@dataclass(frozen=True)
class ParsedRequest:
    """A request whose header parsed. `schema` is None for an unknown API key."""

    header: RequestHeader
    schema: ApiSchema | None
    body_reader: Reader | None


def parse_request(frame: bytes | bytearray | memoryview) -> ParsedRequest:
    """Parse the header of one frame (without its size prefix).

    Raises DecodeError only when not even api_key, api_version and correlation_id
    can be read: such a frame cannot be answered and the connection is closed.
    """
    r = Reader(frame)
    api_key = r.int16()
    api_version = r.int16()
    correlation_id = r.int32()
    schema = SCHEMAS.get(api_key)
    try:
        client_id = r.string(nullable=True)
        if schema is not None and api_version in schema.valid and schema.request_header_version(api_version) >= 2:
            _skip_tagged_fields(r)
    except DecodeError:
        # The header is damaged past the correlation id: answer what we can.
        return ParsedRequest(RequestHeader(api_key, api_version, correlation_id, None), schema, None)
    header = RequestHeader(api_key, api_version, correlation_id, client_id)
    return ParsedRequest(header, schema, r)


def _skip_tagged_fields(r: Reader) -> None:
    for _ in range(r.uvarint()):
        r.uvarint()
        r.raw(r.uvarint())


def encode_response(schema: ApiSchema, version: int, correlation_id: int, body) -> list:
    """The whole response frame (size prefix included) as a list of parts."""
    w = Writer()
    w.int32(0)  # size placeholder, patched below
    w.int32(correlation_id)
    if schema.response_header_version(version) >= 1:
        w.uvarint(0)
    schema.encode_response(w, body, version)
    parts = w.finish()
    size = sum(len(p) for p in parts) - SIZE_PREFIX
    first = bytearray(parts[0])
    first[0:4] = size.to_bytes(4, "big", signed=True)
    parts[0] = bytes(first)
    return parts


def encode_bare_error(correlation_id: int, error_code: int) -> bytes:
    """A v0 response header plus a lone int16 error code.

    Used for an API key this broker does not know: there is no schema to answer
    with, and dropping the connection would leave the client guessing.
    """
    body = correlation_id.to_bytes(4, "big", signed=True) + error_code.to_bytes(2, "big", signed=True)
    return len(body).to_bytes(4, "big") + body


def encode_request(schema: ApiSchema, version: int, correlation_id: int, client_id: str | None, body) -> bytes:
    """A whole request frame; used by the CLI's admin client and by tests."""
    w = Writer()
    w.int16(schema.key)
    w.int16(version)
    w.int32(correlation_id)
    w.string(client_id, compact=False)
    if schema.request_header_version(version) >= 2:
        w.uvarint(0)
    schema.encode_request(w, body, version)
    data = b"".join(bytes(p) for p in w.finish())
    return len(data).to_bytes(4, "big") + data


def decode_response(schema: ApiSchema, version: int, frame: bytes) -> tuple[int, Struct]:
    """(correlation_id, body) of a response frame without its size prefix."""
    r = Reader(frame)
    correlation_id = r.int32()
    if schema.response_header_version(version) >= 1:
        _skip_tagged_fields(r)
    return correlation_id, schema.decode_response(r, version)
