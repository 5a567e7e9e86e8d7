"""Kafka wire primitives: fixed-width integers, varints, strings, bytes, UUIDs.

Pure functions on bytes. A `Reader` walks a buffer and raises `DecodeError` on any
truncation or impossible length, so a malformed frame can never make the decoder
read past its end or allocate more than the frame holds. A `Writer` appends to a
list of parts so that large payloads (record sets, file regions for sendfile) are
carried by reference instead of copied.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

ZERO_UUID = uuid.UUID(int=0)


class DecodeError(ValueError):
    """The bytes do not form a valid value of the expected type."""


@dataclass(frozen=True)
class FileRegion:
    """`size` bytes of an open file descriptor starting at `offset`.

    Carried through the encoder untouched so the connection can `sendfile` it.
    The region owns `fd` (a private duplicate); whoever sends it closes it.
    """

    fd: int
    offset: int
    size: int

    def __len__(self) -> int:
        return self.size


class Reader:
    """Sequential decoder over one buffer. Never reads past `end`."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None):
        self.buf = memoryview(buf)
        self.pos = pos
        self.end = len(self.buf) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def _take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise DecodeError(f"need {n} bytes at position {start}, only {self.end - start} left")
        self.pos = start + n
        return start

    def int8(self) -> int:
        return _I8.unpack_from(self.buf, self._take(1))[0]

    def int16(self) -> int:
        return _I16.unpack_from(self.buf, self._take(2))[0]

    def uint16(self) -> int:
        return _U16.unpack_from(self.buf, self._take(2))[0]

    def int32(self) -> int:
        return _I32.unpack_from(self.buf, self._take(4))[0]

    def uint32(self) -> int:
        return _U32.unpack_from(self.buf, self._take(4))[0]

    def int64(self) -> int:
        return _I64.unpack_from(self.buf, self._take(8))[0]

    def float64(self) -> float:
        return _F64.unpack_from(self.buf, self._take(8))[0]

    def boolean(self) -> bool:
        return self.int8() != 0

    def uuid(self) -> uuid.UUID:
        start = self._take(16)
        return uuid.UUID(bytes=bytes(self.buf[start : start + 16]))

    def uvarint(self) -> int:
        """Unsigned LEB128, at most 5 bytes (Kafka's unsigned varint is 32-bit)."""
        result = 0
        shift = 0
        while True:
            if shift > 28:
                raise DecodeError("unsigned varint longer than 5 bytes")
            byte = self.buf[self._take(1)]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def varint(self) -> int:
        raw = self.uvarint()
        return (raw >> 1) ^ -(raw & 1)

    def uvarlong(self) -> int:
        result = 0
        shift = 0
        while True:
            if shift > 63:
                raise DecodeError("varlong longer than 10 bytes")
            byte = self.buf[self._take(1)]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def varlong(self) -> int:
        raw = self.uvarlong()
        return (raw >> 1) ^ -(raw & 1)

    def raw(self, n: int) -> memoryview:
        start = self._take(n)
        return self.buf[start : start + n]

    def _text(self, n: int) -> str:
        try:
            return str(self.raw(n), "utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"string is not valid UTF-8: {exc}") from None

    def string(self, nullable: bool) -> str | None:
        n = self.int16()
        if n == -1 and nullable:
            return None
        if n < 0:
            raise DecodeError(f"negative string length {n}")
        return self._text(n)

    def compact_string(self, nullable: bool) -> str | None:
        n = self.uvarint() - 1
        if n == -1 and nullable:
            return None
        if n < 0:
            raise DecodeError("null compact string where none is allowed")
        return self._text(n)

    def bytes_(self, nullable: bool) -> memoryview | None:
        n = self.int32()
        if n == -1 and nullable:
            return None
        if n < 0:
            raise DecodeError(f"negative bytes length {n}")
        return self.raw(n)

    def compact_bytes(self, nullable: bool) -> memoryview | None:
        n = self.uvarint() - 1
        if n == -1 and nullable:
            return None
        if n < 0:
            raise DecodeError("null compact bytes where none is allowed")
        return self.raw(n)

    def array_length(self, compact: bool, nullable: bool) -> int | None:
        n = self.uvarint() - 1 if compact else self.int32()
        if n == -1 and nullable:
            return None
        if n < 0:
            raise DecodeError(f"invalid array length {n}")
        # Every element takes at least one byte: a length beyond the remaining bytes
        # is a lie, and believing it would let a tiny frame allocate a huge list.
        if n > self.remaining():
            raise DecodeError(f"array length {n} exceeds the {self.remaining()} bytes left")
        return n


def encode_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_varint(value: int) -> bytes:
    return encode_uvarint((value << 1) ^ (value >> 63))


class Writer:
    """Appends encoded values. Payloads passed to `payload` are kept by reference."""

    __slots__ = ("parts", "buf")

    def __init__(self) -> None:
        self.parts: list = []
        self.buf = bytearray()

    def int8(self, v: int) -> None:
        self.buf += _I8.pack(v)

    def int16(self, v: int) -> None:
        self.buf += _I16.pack(v)

    def uint16(self, v: int) -> None:
        self.buf += _U16.pack(v)

    def int32(self, v: int) -> None:
        self.buf += _I32.pack(v)

    def uint32(self, v: int) -> None:
        self.buf += _U32.pack(v)

    def int64(self, v: int) -> None:
        self.buf += _I64.pack(v)

    def float64(self, v: float) -> None:
        self.buf += _F64.pack(v)

    def boolean(self, v: bool) -> None:
        self.buf.append(1 if v else 0)

    def uuid(self, v: uuid.UUID | None) -> None:
        self.buf += (v or ZERO_UUID).bytes

    def uvarint(self, v: int) -> None:
        self.buf += encode_uvarint(v)

    def varint(self, v: int) -> None:
        self.buf += encode_varint(v)

    def raw(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += data

    def string(self, v: str | None, compact: bool) -> None:
        if v is None:
            if compact:
                self.uvarint(0)
            else:
                self.int16(-1)
            return
        data = v.encode("utf-8")
        if compact:
            self.uvarint(len(data) + 1)
        else:
            self.int16(len(data))
        self.buf += data

    def bytes_(self, v, compact: bool) -> None:
        """Length-prefixed bytes. `v` may be bytes-like, a FileRegion, or a list of them."""
        if v is None:
            if compact:
                self.uvarint(0)
            else:
                self.int32(-1)
            return
        pieces = v if isinstance(v, (list, tuple)) else (v,)
        size = sum(len(p) for p in pieces)
        if compact:
            self.uvarint(size + 1)
        else:
            self.int32(size)
        for piece in pieces:
            if isinstance(piece, FileRegion) or len(piece) >= 4096:
                self.payload(piece)
            else:
                self.buf += piece

    def payload(self, piece) -> None:
        if self.buf:
            self.parts.append(bytes(self.buf))
            self.buf = bytearray()
        self.parts.append(piece)

    def array_length(self, n: int | None, compact: bool) -> None:
        if compact:
            self.uvarint(0 if n is None else n + 1)
        else:
            self.int32(-1 if n is None else n)

    def finish(self) -> list:
        """The encoded value as a list of bytes-like objects and FileRegions."""
        if self.buf:
            self.parts.append(bytes(self.buf))
            self.buf = bytearray()
        return self.parts


def parts_size(parts: list) -> int:
    return sum(len(p) for p in parts)
