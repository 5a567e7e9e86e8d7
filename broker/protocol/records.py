"""Magic v2 record batches: header parsing, validation, offset assignment.

Pure functions on bytes; no I/O. The broker never decodes the records inside a
batch (they may be compressed) and never recompresses: everything here works on
the 61-byte batch header and the CRC-32C that covers the rest of the batch.

A record set (what a Produce request carries, what a segment file holds) is a
plain concatenation of batches. Two error types separate the Kafka error codes:

* `CorruptRecordError`  -> CORRUPT_MESSAGE: bad length, bad CRC, truncated batch,
  inconsistent record count.
* `InvalidRecordError`  -> INVALID_RECORD / UNSUPPORTED_FOR_MESSAGE_FORMAT: a
  well-formed batch the broker refuses, such as magic != 2.

Both carry `position`, the byte position of the offending batch in the buffer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from crc32c import crc32c

# Record batch, magic v2 (all integers big-endian):
#
#   pos  size  field
#     0     8  baseOffset            int64   assigned by the broker
#     8     4  batchLength           int32   bytes after this field (= size - 12)
#    12     4  partitionLeaderEpoch  int32   outside the CRC, set by the broker
#    16     1  magic                 int8    2
#    17     4  crc                   uint32  CRC-32C of bytes [21, end of batch)
#    21     2  attributes            int16   bits 0-2 compression (0 none, 1 gzip,
#                                            2 snappy, 3 lz4, 4 zstd), bit 3
#                                            timestampType (1 = LogAppendTime),
#                                            bit 4 transactional, bit 5 control,
#                                            bit 6 hasDeleteHorizonMs
#    23     4  lastOffsetDelta       int32
#    27     8  baseTimestamp         int64
#    35     8  maxTimestamp          int64
#    43     8  producerId            int64
#    51     2  producerEpoch         int16
#    53     4  baseSequence          int32
#    57     4  recordsCount          int32
#    61        records               (compressed as a whole when compression != 0)
#
# batchLength therefore counts from partitionLeaderEpoch to the end: the smallest
# legal value is 61 - 12 = 49 (a header with no records).

BATCH_HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes not counted by batchLength
MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - LOG_OVERHEAD  # 49
CURRENT_MAGIC = 2

BASE_OFFSET_POS = 0
LENGTH_POS = 8
MAGIC_POS = 16
CRC_POS = 17
ATTRIBUTES_POS = 21
MAX_TIMESTAMP_POS = 35

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20

COMPRESSION_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
CREATE_TIME = 0
LOG_APPEND_TIME = 1

_HEADER = struct.Struct(">qiibIhiqqqhii")
assert _HEADER.size == BATCH_HEADER_SIZE
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")


class CorruptRecordError(ValueError):
    """The bytes are not a sound record batch (Kafka CORRUPT_MESSAGE)."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


class InvalidRecordError(ValueError):
    """A sound batch the broker refuses (INVALID_RECORD / UNSUPPORTED_FOR_MESSAGE_FORMAT)."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


@dataclass(slots=True)
class BatchHeader:
    """The decoded 61-byte header of one batch found at `position` in its buffer."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int
    position: int = field(default=0)

    @property
    def size(self) -> int:
        """Bytes the whole batch takes, header included."""
        return LOG_OVERHEAD + self.batch_length

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        """CREATE_TIME (0) or LOG_APPEND_TIME (1)."""
        return 1 if self.attributes & TIMESTAMP_TYPE_BIT else 0

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)


def parse_batch_header(buf, pos: int = 0) -> BatchHeader:
    """Decode the header at `pos`. Checks only that 61 bytes are there, not their sense."""
    if pos < 0 or len(buf) - pos < BATCH_HEADER_SIZE:
        raise CorruptRecordError(
            f"truncated record batch header at byte {pos}: "
            f"{max(len(buf) - pos, 0)} bytes left, the header needs {BATCH_HEADER_SIZE}",
            pos,
        )
    return BatchHeader(*_HEADER.unpack_from(buf, pos), pos)


def batch_crc(buf, pos: int, size: int) -> int:
    """CRC-32C the batch at `pos` of `size` bytes should carry (no copy)."""
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    return crc32c(view[pos + ATTRIBUTES_POS : pos + size])


def validate_batches(buf) -> list[BatchHeader]:
    """Check a produced record set and return its batch headers.

    Requirements per batch: at least a header's worth of length and wholly inside
    `buf`, magic 2 (else InvalidRecordError), correct CRC-32C, recordsCount >= 1
    and lastOffsetDelta == recordsCount - 1 as a producer writes them. No bytes may
    follow the last batch. An empty buffer gives an empty list: whether that is an
    error is the caller's call. Never copies the payload.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    end = len(view)
    headers: list[BatchHeader] = []
    pos = 0
    while pos < end:
        left = end - pos
        if left < MAGIC_POS + 1:
            raise CorruptRecordError(
                f"truncated record batch at byte {pos}: {left} trailing bytes, too few for a batch header", pos
            )
        magic = view[pos + MAGIC_POS]
        if magic != CURRENT_MAGIC:
            raise InvalidRecordError(
                f"record batch at byte {pos} has magic {magic}; only magic {CURRENT_MAGIC} batches are supported",
                pos,
            )
        length = _I32.unpack_from(view, pos + LENGTH_POS)[0]
        if length < MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"record batch at byte {pos} has batchLength {length}, less than the minimum {MIN_BATCH_LENGTH}",
                pos,
            )
        size = LOG_OVERHEAD + length
        if size > left:
            raise CorruptRecordError(
                f"record batch at byte {pos} claims {size} bytes but only {left} remain (truncated batch)", pos
            )
        header = BatchHeader(*_HEADER.unpack_from(view, pos), pos)
        actual = crc32c(view[pos + ATTRIBUTES_POS : pos + size])
        if actual != header.crc:
            raise CorruptRecordError(
                f"record batch at byte {pos} fails its CRC-32C check: "
                f"stored {header.crc:#010x}, computed {actual:#010x}",
                pos,
            )
        count = header.records_count
        if count < 1:
            raise CorruptRecordError(f"record batch at byte {pos} has recordsCount {count}; need at least 1", pos)
        if header.last_offset_delta != count - 1:
            raise CorruptRecordError(
                f"record batch at byte {pos} has lastOffsetDelta {header.last_offset_delta} "
                f"but recordsCount {count} (expected lastOffsetDelta {count - 1})",
                pos,
            )
        headers.append(header)
        pos += size
    return headers


def assign_offsets(buf: bytearray, headers: list[BatchHeader], base_offset: int) -> int:
    """Give the batches consecutive offsets from `base_offset`; return the last offset.

    Rewrites baseOffset in place (it is outside the CRC) and in `headers`.
    """
    next_offset = base_offset
    pack = _I64.pack_into
    for header in headers:
        pack(buf, header.position, next_offset)
        header.base_offset = next_offset
        next_offset += header.last_offset_delta + 1
    return next_offset - 1


def set_partition_leader_epoch(buf: bytearray, headers: list[BatchHeader], epoch: int) -> None:
    """Stamp the leader epoch (outside the CRC, so no recompute)."""
    pack = _I32.pack_into
    for header in headers:
        pack(buf, header.position + LOG_OVERHEAD, epoch)
        header.partition_leader_epoch = epoch


def set_log_append_time(buf: bytearray, headers: list[BatchHeader], now_ms: int) -> None:
    """Mark each batch as LogAppendTime with maxTimestamp `now_ms` and fix its CRC.

    As Kafka does, only the timestampType bit and maxTimestamp change: consumers
    read every record's timestamp as the batch's maxTimestamp when the bit is set,
    so the (possibly compressed) records stay untouched. baseTimestamp is kept.
    """
    view = memoryview(buf)
    for header in headers:
        pos = header.position
        attributes = header.attributes | TIMESTAMP_TYPE_BIT
        _I16.pack_into(buf, pos + ATTRIBUTES_POS, attributes)
        _I64.pack_into(buf, pos + MAX_TIMESTAMP_POS, now_ms)
        crc = crc32c(view[pos + ATTRIBUTES_POS : pos + header.size])
        _U32.pack_into(buf, pos + CRC_POS, crc)
        header.attributes = attributes
        header.max_timestamp = now_ms
        header.crc = crc


@dataclass(slots=True)
class ScanResult:
    """Outcome of `scan_batches`.

    `end` is the position just past the last sound batch (the valid prefix ends
    there). When the scan stopped early, `error` says why. `incomplete` means the
    next batch merely runs past the end of the buffer (`needed` bytes from `end`
    would hold it): with more bytes it might still be sound. A batch whose header
    is itself wrong (length, magic) or whose CRC fails is not incomplete.
    """

    headers: list[BatchHeader]
    end: int
    error: str | None = None
    incomplete: bool = False
    needed: int = 0


def scan_batches(buf, pos: int = 0, end: int | None = None, *, verify_crc: bool = True) -> ScanResult:
    """Walk the batches in buf[pos:end] and stop at the first unsound one.

    Unlike `validate_batches` this never raises for bad data: recovery uses it to
    find the valid prefix of a segment. Checks length >= 49, magic 2,
    lastOffsetDelta >= 0 and, if `verify_crc`, the CRC-32C. Header positions are
    positions in `buf`; `error` does not repeat the position (it is `end`), so a
    caller scanning a chunk of a file can report the file position itself.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if end is None:
        end = len(view)
    headers: list[BatchHeader] = []
    unpack = _HEADER.unpack_from
    while pos < end:
        left = end - pos
        if left < BATCH_HEADER_SIZE:
            return ScanResult(headers, pos, f"batch header cut off after {left} bytes", True, BATCH_HEADER_SIZE)
        header = BatchHeader(*unpack(view, pos), pos)
        if header.magic != CURRENT_MAGIC:
            return ScanResult(headers, pos, f"magic {header.magic}, expected {CURRENT_MAGIC}")
        if header.batch_length < MIN_BATCH_LENGTH:
            return ScanResult(headers, pos, f"impossible batchLength {header.batch_length}")
        if header.last_offset_delta < 0:
            return ScanResult(headers, pos, f"negative lastOffsetDelta {header.last_offset_delta}")
        size = LOG_OVERHEAD + header.batch_length
        if size > left:
            return ScanResult(headers, pos, f"batch of {size} bytes cut off after {left} bytes", True, size)
        if verify_crc:
            actual = crc32c(view[pos + ATTRIBUTES_POS : pos + size])
            if actual != header.crc:
                return ScanResult(
                    headers,
                    pos,
                    f"CRC-32C mismatch in batch at offset {header.base_offset}: "
                    f"stored {header.crc:#010x}, computed {actual:#010x}",
                )
        headers.append(header)
        pos += size
    return ScanResult(headers, pos)
