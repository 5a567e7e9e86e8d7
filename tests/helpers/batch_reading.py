"""Read v2 record batches back, independently of the broker's own decoder.

Tests that check what a broker served or stored decode it here, so a bug in
`broker.protocol` cannot hide itself by decoding its own output. Uncompressed
batches only (what the tests write); every batch's CRC-32C is checked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from crc32c import crc32c

BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")  # the v2 record batch header, 61 bytes


@dataclass(frozen=True)
class Batch:
    base_offset: int
    last_offset: int
    max_timestamp: int
    position: int
    size: int


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _bytes_field(data: bytes, pos: int) -> tuple[bytes | None, int]:
    length, pos = _varint(data, pos)
    if length < 0:
        return None, pos
    return bytes(data[pos:pos + length]), pos + length


def iter_batches(data: bytes, *, allow_partial: bool = False):
    """Every v2 batch in `data`, CRC-32C checked; a torn tail is an error unless allowed
    (a Fetch answer may end in a partial batch)."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < BATCH_HEADER.size:
            if allow_partial:
                return
            raise AssertionError(f"torn batch header at byte {pos}")
        (base, length, _epoch, magic, crc, _attrs, last_delta, _base_ts, max_ts, *_rest) = \
            BATCH_HEADER.unpack_from(data, pos)
        size = 12 + length
        if pos + size > len(data):
            if allow_partial:
                return
            raise AssertionError(f"torn batch at byte {pos}")
        assert magic == 2, f"magic {magic} at byte {pos}"
        assert crc32c(data[pos + 21:pos + size]) == crc, f"batch CRC-32C mismatch at offset {base} (byte {pos})"
        yield Batch(base, base + last_delta, max_ts, pos, size)
        pos += size


def iter_full_records(data: bytes, *, allow_partial: bool = False):
    """Every `Record` of the uncompressed v2 batches in `data`."""
    for batch in iter_batches(data, allow_partial=allow_partial):
        attrs = struct.unpack_from(">h", data, batch.position + 21)[0]
        assert attrs & 0x7 == 0, "test batches are uncompressed"
        base_timestamp = struct.unpack_from(">q", data, batch.position + 27)[0]
        count = struct.unpack_from(">i", data, batch.position + 57)[0]
        pos = batch.position + BATCH_HEADER.size
        for _ in range(count):
            _length, pos = _varint(data, pos)
            pos += 1  # attributes
            ts_delta, pos = _varint(data, pos)
            offset_delta, pos = _varint(data, pos)
            key, pos = _bytes_field(data, pos)
            value, pos = _bytes_field(data, pos)
            header_count, pos = _varint(data, pos)
            headers = []
            for _ in range(header_count):
                header_key, pos = _bytes_field(data, pos)
                header_value, pos = _bytes_field(data, pos)
                headers.append((header_key.decode(), header_value))
            yield Record(batch.base_offset + offset_delta, key, value, tuple(headers), base_timestamp + ts_delta)
