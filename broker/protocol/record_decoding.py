"""The records inside one magic v2 batch: decompression and record iteration.

Pure functions on bytes; no I/O. Produce and fetch never look inside a batch
(records.py); only lookups that must answer per *record* do, one batch at a
time: ListOffsets by timestamp and max-timestamp (broker/log/segment.py).

Malformed content of any kind (bad header, CRC, codec stream, varint, length,
record count, offsets) raises `CorruptRecordError`, whose `position` is the
batch's position in the buffer. Decompression is bounded: past
`max_decompressed_bytes` of output it stops with `CorruptRecordError`, so a
small batch cannot make the broker inflate gigabytes (a decompression bomb).

Not for control batches: they yield no records here (transaction markers carry
no user data, and the log answers single-record batches from the header alone).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import cramjam
import lz4.frame
import zstandard
from crc32c import crc32c

from .records import (
    ATTRIBUTES_POS,
    BATCH_HEADER_SIZE,
    CURRENT_MAGIC,
    LOG_APPEND_TIME,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    BatchHeader,
    CorruptRecordError,
    parse_batch_header,
)

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4

MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024

# Record, inside the (decompressed) records section of a v2 batch. varint and
# varlong are zigzag-encoded signed LEB128 (at most 5 and 10 bytes):
#
#   length          varint   bytes of the record after this field
#   attributes      int8     unused
#   timestampDelta  varlong  timestamp = baseTimestamp + delta (CreateTime)
#   offsetDelta     varint   offset = baseOffset + delta
#   keyLength       varint   -1 = null key
#   key             bytes
#   valueLength     varint   -1 = null value
#   value           bytes
#   headersCount    varint
#   headers         per header: keyLength varint (>= 0), key (UTF-8),
#                   valueLength varint (-1 = null), value
#
# With LogAppendTime every record's timestamp is the batch's maxTimestamp.
_MIN_RECORD_BODY = 6  # attributes + five one-byte varints

# snappy-java's stream framing (Kafka's Java client; librdkafka reads it too):
# 8-byte magic, int32 version, int32 compatible version, then blocks, each an
# int32 length and one raw snappy block.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_SIZE = 16

# A zstd block of at most 128 KiB output needs at least 4 input bytes (an RLE
# block), so feeding the decompressor n input bytes yields at most ~32768 * n
# output bytes: input is fed in steps small enough to keep that under the cap.
_ZSTD_MAX_RATIO = 32768
_ZSTD_MIN_STEP = 256
_ZSTD_MAX_STEP = 128 * 1024


class _Malformed(Exception):
    """Internal: a decoding failure, turned into CorruptRecordError with the batch position."""


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def record_timestamps(
    buf, pos: int = 0, *, max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES, verify_crc: bool = True
) -> Iterator[tuple[int, int]]:
    """(offset, timestamp) of each record of the batch at `pos`, in offset order.

    Cheap walk: keys, values and headers are skipped by the record length, not
    parsed. Lazy: an uncompressed batch is decoded only as far as the caller
    iterates (a compressed one is decompressed whole first).
    """
    return _walk(buf, pos, max_decompressed_bytes, verify_crc, full=False)


def iter_records(
    buf, pos: int = 0, *, max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES, verify_crc: bool = True
) -> Iterator[Record]:
    """Every record of the batch at `pos`, fully decoded and checked, in offset order."""
    return _walk(buf, pos, max_decompressed_bytes, verify_crc, full=True)


def decompress(codec: int, data, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Inflate a batch's records section compressed with `codec` (1-4).

    Raises CorruptRecordError (position 0) for a damaged or truncated stream, an
    unknown codec, or more than `max_bytes` of output.
    """
    try:
        return _decompress(codec, data, max_bytes)
    except _Malformed as exc:
        raise CorruptRecordError(str(exc), 0) from None


# -- batch ------------------------------------------------------------------------------


def _open_batch(buf, pos: int, max_bytes: int, verify_crc: bool) -> tuple[BatchHeader, bytes | memoryview] | None:
    """Check the batch at `pos` and return its header and (decompressed) records section.

    None for a control batch.
    """
    header = parse_batch_header(buf, pos)
    if header.magic != CURRENT_MAGIC:
        raise _Malformed(f"magic {header.magic}, expected {CURRENT_MAGIC}")
    if header.batch_length < MIN_BATCH_LENGTH:
        raise _Malformed(f"batchLength {header.batch_length} is less than the minimum {MIN_BATCH_LENGTH}")
    end = pos + LOG_OVERHEAD + header.batch_length
    if end > len(buf):
        raise _Malformed(f"batch of {LOG_OVERHEAD + header.batch_length} bytes cut off after {len(buf) - pos}")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if verify_crc:
        actual = crc32c(view[pos + ATTRIBUTES_POS : end])
        if actual != header.crc:
            raise _Malformed(f"CRC-32C mismatch: stored {header.crc:#010x}, computed {actual:#010x}")
    if header.records_count < 0:
        raise _Malformed(f"negative recordsCount {header.records_count}")
    if header.last_offset_delta < 0:
        raise _Malformed(f"negative lastOffsetDelta {header.last_offset_delta}")
    if header.is_control:
        return None
    body = view[pos + BATCH_HEADER_SIZE : end]
    if header.compression != NONE:
        body = _decompress(header.compression, body, max_bytes)
    return header, body


def _walk(buf, pos: int, max_bytes: int, verify_crc: bool, full: bool):
    try:
        opened = _open_batch(buf, pos, max_bytes, verify_crc)
    except _Malformed as exc:
        raise CorruptRecordError(f"record batch at byte {pos}: {exc}", pos) from None
    if opened is None:
        return
    header, body = opened
    try:
        yield from _records(header, body, full)
    except _Malformed as exc:
        raise CorruptRecordError(f"record batch at offset {header.base_offset} (byte {pos}): {exc}", pos) from None


# -- records ----------------------------------------------------------------------------


def _varint(data, i: int) -> tuple[int, int]:
    """Zigzag varint (32-bit, <= 5 bytes) at `i`; (value, next position). IndexError past the end."""
    byte = data[i]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), i + 1
    raw = byte & 0x7F
    shift = 7
    while True:
        i += 1
        byte = data[i]
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (raw >> 1) ^ -(raw & 1), i + 1
        shift += 7
        if shift > 28:
            raise _Malformed(f"varint longer than 5 bytes at byte {i - 4}")


def _varlong(data, i: int) -> tuple[int, int]:
    """Zigzag varlong (64-bit, <= 10 bytes) at `i`."""
    raw = 0
    shift = 0
    while True:
        byte = data[i]
        i += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (raw >> 1) ^ -(raw & 1), i
        shift += 7
        if shift > 63:
            raise _Malformed(f"varlong longer than 10 bytes at byte {i - 10}")


def _records(header: BatchHeader, data, full: bool):
    """Walk the records section; `data` is bytes or a memoryview (indexing gives ints)."""
    base_offset = header.base_offset
    last_offset = base_offset + header.last_offset_delta
    base_timestamp = header.base_timestamp
    append_time = header.max_timestamp if header.timestamp_type == LOG_APPEND_TIME else None
    end = len(data)
    previous = base_offset - 1
    i = 0
    for n in range(header.records_count):
        try:
            length, i = _varint(data, i)
            record_end = i + length
            if length < _MIN_RECORD_BODY or record_end > end:
                raise _Malformed(f"record {n} at byte {i} claims {length} bytes; {end - i} left in the batch")
            timestamp_delta, j = _varlong(data, i + 1)  # after attributes
            offset_delta, j = _varint(data, j)
            if j > record_end:
                raise _Malformed(f"record {n} at byte {i} is shorter than its fixed fields")
            offset = base_offset + offset_delta
            if not previous < offset <= last_offset:
                raise _Malformed(
                    f"record {n} has offset {offset}, outside ({previous}, {last_offset}] "
                    f"(offsets must increase within the batch)"
                )
            previous = offset
            timestamp = base_timestamp + timestamp_delta if append_time is None else append_time
            item = _record_body(data, j, record_end, offset, timestamp, n) if full else (offset, timestamp)
        except IndexError:
            raise _Malformed(f"record {n} runs past the end of the batch") from None
        i = record_end
        yield item
    if i != end:
        raise _Malformed(f"{end - i} bytes follow the last of recordsCount {header.records_count} records")


def _record_body(data, i: int, end: int, offset: int, timestamp: int, n: int) -> Record:
    key, i = _nullable_bytes(data, i, end, n, "key")
    value, i = _nullable_bytes(data, i, end, n, "value")
    count, i = _varint(data, i)
    if count < 0:
        raise _Malformed(f"record {n} has a negative header count {count}")
    headers = []
    for _ in range(count):
        size, i = _varint(data, i)
        if size < 0 or i + size > end:
            raise _Malformed(f"record {n} has a header key of impossible length {size}")
        try:
            header_key = bytes(data[i : i + size]).decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed(f"record {n} has a header key that is not UTF-8") from None
        header_value, i = _nullable_bytes(data, i + size, end, n, "header value")
        headers.append((header_key, header_value))
    if i != end:
        raise _Malformed(f"record {n} holds {end - i} bytes more (or fewer) than its fields")
    return Record(offset, timestamp, key, value, tuple(headers))


def _nullable_bytes(data, i: int, end: int, n: int, what: str) -> tuple[bytes | None, int]:
    size, i = _varint(data, i)
    if size == -1:
        return None, i
    if size < -1 or i + size > end:
        raise _Malformed(f"record {n} has a {what} of impossible length {size}")
    return bytes(data[i : i + size]), i + size


# -- decompression ----------------------------------------------------------------------


def _decompress(codec: int, data, max_bytes: int) -> bytes:
    if codec == GZIP:
        return _gunzip(data, max_bytes)
    if codec == SNAPPY:
        return _unsnappy(data, max_bytes)
    if codec == LZ4:
        return _unlz4(data, max_bytes)
    if codec == ZSTD:
        return _unzstd(data, max_bytes)
    raise _Malformed(f"unknown compression codec {codec}")


def _too_big(max_bytes: int) -> _Malformed:
    return _Malformed(f"records decompress to more than {max_bytes} bytes (limit)")


def _gunzip(data, max_bytes: int) -> bytes:
    """gzip (Java's GZIPOutputStream); concatenated members are read like gzip(1) does."""
    out = []
    total = 0
    rest = bytes(data)
    if not rest:
        raise _Malformed("empty gzip stream")
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            while True:
                piece = inflater.decompress(rest, max_bytes - total + 1)
                total += len(piece)
                if total > max_bytes:
                    raise _too_big(max_bytes)
                out.append(piece)
                rest = inflater.unconsumed_tail
                if inflater.eof:
                    rest = inflater.unused_data
                    break
                if not rest:
                    raise _Malformed("truncated gzip stream")
    except zlib.error as exc:
        raise _Malformed(f"bad gzip stream: {exc}") from None
    return b"".join(out)


def _unsnappy(data, max_bytes: int) -> bytes:
    """snappy: xerial framing (Java client, kafka-python) or one raw block (librdkafka)."""
    data = bytes(data)
    if not data.startswith(_XERIAL_MAGIC):
        return _snappy_block(data, max_bytes)
    if len(data) < _XERIAL_HEADER_SIZE:
        raise _Malformed("truncated xerial snappy header")
    out = []
    total = 0
    i = _XERIAL_HEADER_SIZE
    while i < len(data):
        if data.startswith(_XERIAL_MAGIC, i):  # concatenated streams, as snappy-java reads them
            i += _XERIAL_HEADER_SIZE
            continue
        if i + 4 > len(data):
            raise _Malformed("truncated xerial snappy block length")
        size = int.from_bytes(data[i : i + 4], "big", signed=True)
        i += 4
        if size < 0 or i + size > len(data):
            raise _Malformed(f"xerial snappy block of {size} bytes with {len(data) - i} left")
        piece = _snappy_block(data[i : i + size], max_bytes - total)
        total += len(piece)
        out.append(piece)
        i += size
    return b"".join(out)


def _snappy_block(block: bytes, max_bytes: int) -> bytes:
    """One raw snappy block; its preamble declares the output size, checked before inflating."""
    try:
        declared = cramjam.snappy.decompress_raw_len(block)
        if declared > max_bytes:
            raise _too_big(max_bytes)
        return bytes(cramjam.snappy.decompress_raw(block))
    except cramjam.DecompressionError as exc:
        raise _Malformed(f"bad snappy block: {exc}") from None


def _unlz4(data, max_bytes: int) -> bytes:
    """LZ4 frame format (Kafka's KafkaLZ4BlockOutputStream, librdkafka); concatenated frames allowed."""
    out = []
    total = 0
    rest = bytes(data)
    if not rest:
        raise _Malformed("empty lz4 stream")
    try:
        while rest:
            frame = lz4.frame.LZ4FrameDecompressor()
            piece = frame.decompress(rest, max_length=max_bytes - total + 1)
            while True:
                total += len(piece)
                if total > max_bytes:
                    raise _too_big(max_bytes)
                out.append(piece)
                if frame.eof:
                    rest = frame.unused_data or b""
                    break
                if frame.needs_input:
                    raise _Malformed("truncated lz4 frame")
                piece = frame.decompress(b"", max_length=max_bytes - total + 1)
    except RuntimeError as exc:  # what lz4.frame raises for a damaged frame
        raise _Malformed(f"bad lz4 frame: {exc}") from None
    return b"".join(out)


def _unzstd(data, max_bytes: int) -> bytes:
    """zstd frames, which may lack a content size (Java's ZstdOutputStream); streamed, bounded."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    size = len(view)
    if not size:
        raise _Malformed("empty zstd stream")
    out = []
    total = 0
    i = 0
    decompressor = zstandard.ZstdDecompressor()
    try:
        while i < size:
            frame = decompressor.decompressobj()
            while not frame.eof:
                if i >= size:
                    raise _Malformed("truncated zstd frame")
                step = min(max((max_bytes - total) // _ZSTD_MAX_RATIO, _ZSTD_MIN_STEP), _ZSTD_MAX_STEP)
                piece = frame.decompress(view[i : i + step])
                i = min(i + step, size)
                total += len(piece)
                if total > max_bytes:
                    raise _too_big(max_bytes)
                out.append(piece)
            i -= len(frame.unused_data)
    except zstandard.ZstdError as exc:
        raise _Malformed(f"bad zstd frame: {exc}") from None
    return b"".join(out)
