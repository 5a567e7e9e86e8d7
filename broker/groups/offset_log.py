"""The committed-offsets file: an append-only log of framed records.

Layout of `<dir>/offsets.log`, a sequence of entries:

    length  uint32   bytes of payload
    crc     uint32   CRC-32C (Castagnoli) of payload
    payload:
        format  uint8    FORMAT_VERSION (1)
        kind    uint8    one of the record kinds below
        body             per kind; strings are int32 length + UTF-8 (-1 = null,
                         only where marked nullable)

    COMMIT        group, topic, partition int32, offset int64, leader_epoch int32,
                  metadata nullable, commit_timestamp int64, expire_timestamp int64 (-1: none)
    DELETE_OFFSET group, topic, partition int32
    DELETE_GROUP  group                  (drops the group's offsets and its GROUP record)
    GROUP         group, protocol_type nullable, generation int32,
                  empty_since int64 (-1: the group had members when written)

Invariants: the file is a prefix of what was appended; everything before the
last fsync is intact. Replaying the records in order rebuilds the latest state
(a later record for the same key wins; a delete removes).

After a crash: an entry that is cut short or fails its CRC can only be the tail
of a write whose fsync never returned (so no client was told it succeeded); the
replay stops there and truncates the file to the last whole entry. A CRC-valid
entry of an unknown format or kind was written by a newer broker: the replay
refuses it (`OffsetLogError`) rather than silently drop state.

Compaction (`rewrite`) writes the latest state as a new file beside the old one,
fsyncs it and renames it over (`broker.log.files.write_file_atomically`): a crash leaves the
old file or the new one, never a mix. A stale `offsets.log.tmp` is ignored and
overwritten by the next rewrite.

Concurrency: not for concurrent use by several writers. The offset store calls
it from one writer at a time (in a worker thread); a lock makes `close` wait for
an append in flight.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

from crc32c import crc32c

from ..log.files import fsync_directory, write_file_atomically

log = logging.getLogger("broker.groups.offset_log")

FILE_NAME = "offsets.log"
FORMAT_VERSION = 1
HEADER = struct.Struct(">II")
# A payload is a few hundred bytes in practice (metadata is capped by the
# coordinator); `frame` refuses larger ones, so a larger length read back is garbage.
MAX_PAYLOAD = 1 << 20

KIND_COMMIT = 1
KIND_DELETE_OFFSET = 2
KIND_DELETE_GROUP = 3
KIND_GROUP = 4

_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class OffsetLogError(Exception):
    """The offsets file cannot be read or written; carries the path."""

    def __init__(self, path: Path, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True)
class CommittedOffset:
    """One committed position. Timestamps are wall-clock milliseconds."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = 0
    # Set only by OffsetCommit v2-4 with an explicit retention_time_ms (the old,
    # per-commit expiry); None means "expire by the group's retention rules".
    expire_timestamp_ms: int | None = None


@dataclass(frozen=True)
class CommitRecord:
    group_id: str
    topic: str
    partition: int
    value: CommittedOffset


@dataclass(frozen=True)
class DeleteOffsetRecord:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True)
class DeleteGroupRecord:
    group_id: str


@dataclass(frozen=True)
class GroupRecord:
    """What a restarted coordinator needs to expire an empty group's offsets by
    KIP-211: whether it is a managed group, and since when it has been empty."""

    group_id: str
    protocol_type: str | None
    generation_id: int
    empty_since_ms: int  # -1: the group had members


Record = Union[CommitRecord, DeleteOffsetRecord, DeleteGroupRecord, GroupRecord]


# -- encoding ------------------------------------------------------------------


def _str(out: bytearray, text: str) -> None:
    data = text.encode("utf-8")
    out += _I32.pack(len(data))
    out += data


def _nullable_str(out: bytearray, text: str | None) -> None:
    if text is None:
        out += _I32.pack(-1)
        return
    data = text.encode("utf-8")
    out += _I32.pack(len(data))
    out += data


def encode_payload(record: Record) -> bytes:
    out = bytearray([FORMAT_VERSION])
    if isinstance(record, CommitRecord):
        v = record.value
        out.append(KIND_COMMIT)
        _str(out, record.group_id)
        _str(out, record.topic)
        out += _I32.pack(record.partition)
        out += _I64.pack(v.offset)
        out += _I32.pack(v.leader_epoch)
        _nullable_str(out, v.metadata)
        out += _I64.pack(v.commit_timestamp_ms)
        out += _I64.pack(-1 if v.expire_timestamp_ms is None else v.expire_timestamp_ms)
    elif isinstance(record, DeleteOffsetRecord):
        out.append(KIND_DELETE_OFFSET)
        _str(out, record.group_id)
        _str(out, record.topic)
        out += _I32.pack(record.partition)
    elif isinstance(record, DeleteGroupRecord):
        out.append(KIND_DELETE_GROUP)
        _str(out, record.group_id)
    elif isinstance(record, GroupRecord):
        out.append(KIND_GROUP)
        _str(out, record.group_id)
        _nullable_str(out, record.protocol_type)
        out += _I32.pack(record.generation_id)
        out += _I64.pack(record.empty_since_ms)
    else:  # pragma: no cover - a programming error
        raise TypeError(f"not an offset log record: {record!r}")
    return bytes(out)


def frame(record: Record) -> bytes:
    """Raises ValueError for a record too large to replay (MAX_PAYLOAD)."""
    payload = encode_payload(record)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a {len(payload)}-byte record exceeds the {MAX_PAYLOAD}-byte limit")
    return HEADER.pack(len(payload), crc32c(payload)) + payload


class _Cursor:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError("record body is shorter than its fields")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def i32(self) -> int:
        return _I32.unpack(self.take(4))[0]

    def i64(self) -> int:
        return _I64.unpack(self.take(8))[0]

    def str(self) -> str:
        n = self.i32()
        if n < 0:
            raise ValueError("null where a string is required")
        return self.take(n).decode("utf-8")

    def nullable_str(self) -> str | None:
        n = self.i32()
        return None if n < 0 else self.take(n).decode("utf-8")


def decode_payload(payload: bytes) -> Record:
    """Raises ValueError for a payload this broker cannot read."""
    if len(payload) < 2:
        raise ValueError("payload shorter than its format and kind")
    if payload[0] != FORMAT_VERSION:
        raise ValueError(f"unknown format version {payload[0]}")
    kind = payload[1]
    c = _Cursor(payload)
    c.pos = 2
    if kind == KIND_COMMIT:
        group, topic, partition = c.str(), c.str(), c.i32()
        offset, epoch, metadata, ts, expire = c.i64(), c.i32(), c.nullable_str(), c.i64(), c.i64()
        record: Record = CommitRecord(group, topic, partition, CommittedOffset(
            offset, epoch, metadata or "", ts, None if expire < 0 else expire))
    elif kind == KIND_DELETE_OFFSET:
        record = DeleteOffsetRecord(c.str(), c.str(), c.i32())
    elif kind == KIND_DELETE_GROUP:
        record = DeleteGroupRecord(c.str())
    elif kind == KIND_GROUP:
        record = GroupRecord(c.str(), c.nullable_str(), c.i32(), c.i64())
    else:
        raise ValueError(f"unknown record kind {kind}")
    if c.pos != len(payload):
        raise ValueError(f"{len(payload) - c.pos} trailing bytes after the record")
    return record


def scan(data: bytes) -> tuple[list[bytes], int]:
    """The payloads of the whole, CRC-valid entries at the start of `data`, and
    the byte length they cover (where a torn tail starts)."""
    payloads: list[bytes] = []
    pos = 0
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if length > MAX_PAYLOAD or end > len(data):
            break
        payload = data[pos + HEADER.size:end]
        if crc32c(payload) != crc:
            break
        payloads.append(payload)
        pos = end
    return payloads, pos


# -- the file ------------------------------------------------------------------


class OffsetLog:
    """The open offsets file. Blocking methods: call them off the event loop."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self._fd: int | None = None
        self._size = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def replay(self) -> list[Record]:
        """Read every record, truncating a torn tail. Opens the file for appends."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        payloads, valid = scan(data)
        records = []
        for index, payload in enumerate(payloads):
            try:
                records.append(decode_payload(payload))
            except (ValueError, UnicodeDecodeError) as exc:
                raise OffsetLogError(self.path, f"entry {index} is intact but unreadable ({exc}); "
                                     "was it written by a newer broker?") from None
        if valid < len(data):
            log.warning("%s: dropping a torn tail of %d bytes after %d whole records",
                        self.path, len(data) - valid, len(records))
        self._open(truncate_to=valid)
        return records

    def _open(self, truncate_to: int | None = None) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if truncate_to is not None and os.fstat(fd).st_size != truncate_to:
                os.ftruncate(fd, truncate_to)
                os.fsync(fd)
            self._size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        fsync_directory(self.directory)

    def append(self, data: bytes) -> None:
        """Write `data` at the end and fsync. On failure the file is cut back to
        its previous length so the next append does not land after garbage; if
        even that fails the log refuses further appends."""
        with self._lock:
            if self._fd is None:
                raise OffsetLogError(self.path, "not open")
            start = self._size
            try:
                view = memoryview(data)
                position = start
                while view:
                    written = os.pwrite(self._fd, view, position)
                    view = view[written:]
                    position += written
                os.fsync(self._fd)
            except OSError as exc:
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    os.close(self._fd)
                    self._fd = None
                raise OffsetLogError(self.path, f"append failed: {exc}") from exc
            self._size = start + len(data)

    def rewrite(self, records: Iterable[Record]) -> None:
        """Replace the file with exactly `records` (compaction), atomically."""
        data = b"".join(frame(r) for r in records)
        with self._lock:
            write_file_atomically(self.path, data)
            self._open()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
