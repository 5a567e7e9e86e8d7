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


def _padded_uvarint(value: int, pad: int) -> bytes:
    """A varint stretched by `pad` redundant bytes (decoders accept non-minimal varints)."""
    if not pad:
        return _uvarint(value)
    out = bytearray(_uvarint(value))
    out[-1] |= 0x80
    out += b"\x80" * (pad - 1) + b"\x00"
    return bytes(out)


def encode_record(offset_delta: int, timestamp_delta: int, key, value, headers=(), length_pad: int = 0) -> bytes:
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
    return _padded_uvarint(len(body) << 1, length_pad) + bytes(body)


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
    length_pad: int = 0,
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
        encode_record(i, ts - base_timestamp, key, value, headers, length_pad if i == 0 else 0)
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
    """An uncompressed batch of exactly `size` bytes (at least ~70 + 8 per extra record).

    Varint length prefixes grow with the value, so the value alone skips some
    sizes; a redundant byte in the first record's length varint fills the gap.
    """
    overhead = len(build_batch([(key, b"", (), timestamp)] * count))
    if size < overhead:
        raise ValueError(f"cannot build a {size}-byte batch; the minimum is {overhead}")
    for pad in (0, 1):
        value_len = size - overhead - pad
        while value_len >= 0:
            records = [(key, b"x" * value_len, (), timestamp)] + [(key, b"", (), timestamp)] * (count - 1)
            batch = build_batch(records, length_pad=pad)
            if len(batch) == size:
                return batch
            if len(batch) < size:
                break
            value_len -= 1
    raise ValueError(f"cannot build a batch of exactly {size} bytes")
