"""Test-only builder for magic v2 record batches (uncompressed).

Product code never builds batches: producers do. Tests need real ones, encoded
exactly as the v2 record format says (varint/zigzag fields), to feed the
validator and the log.
"""

from __future__ import annotations

import struct

from crc32c import crc32c


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varint(value: int) -> bytes:
    return _uvarint((value << 1) ^ (value >> 63))


def _bytes_field(data: bytes | None) -> bytes:
    if data is None:
        return _varint(-1)
    return _varint(len(data)) + data


def encode_record(offset_delta: int, timestamp_delta: int, key, value, headers=()) -> bytes:
    body = bytearray()
    body.append(0)  # attributes
    body += _varint(timestamp_delta)
    body += _varint(offset_delta)
    body += _bytes_field(key)
    body += _bytes_field(value)
    body += _varint(len(headers))
    for hkey, hvalue in headers:
        encoded = hkey.encode() if isinstance(hkey, str) else hkey
        body += _varint(len(encoded)) + encoded
        body += _bytes_field(hvalue)
    return _varint(len(body)) + bytes(body)


def build_batch(
    records,
    *,
    base_offset: int = 0,
    base_timestamp: int | None = None,
    attributes: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    leader_epoch: int = -1,
) -> bytes:
    """One uncompressed batch from records given as (key, value, headers, timestamp_ms).

    Shorter tuples are accepted: (key, value) or (key, value, headers).
    """
    records = [tuple(r) + ((), None)[len(r) - 2 :] if len(r) < 4 else tuple(r) for r in records]
    if not records:
        raise ValueError("a producer batch holds at least one record")
    timestamps = [r[3] if r[3] is not None else 0 for r in records]
    if base_timestamp is None:
        base_timestamp = timestamps[0]
    max_timestamp = max(timestamps)
    body = b"".join(
        encode_record(i, ts - base_timestamp, key, value, headers)
        for i, ((key, value, headers, _), ts) in enumerate(zip(records, timestamps))
    )
    after_crc = struct.pack(
        ">hiqqqhii",
        attributes,
        len(records) - 1,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    ) + body
    crc = crc32c(after_crc)
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", base_offset, batch_length, leader_epoch, 2, crc) + after_crc


def batch_of_size(size: int, *, timestamp: int = 0, key: bytes | None = None, count: int = 1) -> bytes:
    """An uncompressed batch of exactly `size` bytes (size >= 70 + count * 8 or so)."""
    overhead = len(build_batch([(key, b"", (), timestamp)] * count))
    fill = size - overhead
    if fill < 0:
        raise ValueError(f"cannot build a {size}-byte batch; the minimum is {overhead}")
    # A value's varint length prefix grows with the value; shrink until it fits.
    value_len = fill
    while True:
        records = [(key, b"x" * value_len, (), timestamp)] + [(key, b"", (), timestamp)] * (count - 1)
        batch = build_batch(records)
        if len(batch) == size:
            return batch
        if len(batch) < size:
            raise ValueError(f"cannot hit exactly {size} bytes")
        value_len -= len(batch) - size
