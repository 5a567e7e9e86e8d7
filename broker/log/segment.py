"""One log segment: the `<base_offset:020d>.log` file and its two sparse indexes.

On disk the `.log` file is a plain concatenation of magic v2 record batches,
exactly as they go over the wire (baseOffset assigned, still compressed). The
first `size` bytes are whole batches; anything after `size` on disk is a torn
write that recovery truncates. Records are decoded only by timestamp lookups,
one batch at a time (`first_record`); appends and reads see headers only.

Invariant: `base_offset` <= the first offset in the segment, batches follow in
strictly increasing offset order, and every offset in it is below the base offset
of the next segment. Offsets relative to the base fit in int32, and so do
positions (segments roll before either would overflow).

Concurrency: not thread-safe; owned by the `PartitionLog` on the event-loop
thread. Other threads only ever see private `os.dup` copies of `fd` (a flush's
fsync, a FileRegion being sent), so closing or renaming a segment never breaks
them: a deleted segment stays readable through those copies until they close.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

from broker.protocol.record_decoding import record_timestamps
from broker.protocol.records import (
    BATCH_HEADER_SIZE,
    CURRENT_MAGIC,
    LOG_APPEND_TIME,
    MIN_BATCH_LENGTH,
    BatchHeader,
    CorruptRecordError,
    parse_batch_header,
)

from .config import LogConfig
from .errors import CorruptSegmentError
from .files import DELETED_SUFFIX, index_path, log_path, time_index_path, write_all
from .offset_index import OffsetIndex
from .preallocate import reserve_ahead, reserve_space
from .time_index import TimeIndex

logger = logging.getLogger("broker.log")

# Header walks read this much at a time: one read covers many small batches,
# and a large batch costs one short read for its header.
_READ_AHEAD = 4096


class IndexMismatchError(Exception):
    """An index entry does not point at the batch it names."""


class Segment:
    __slots__ = (
        "directory",
        "base_offset",
        "path",
        "fd",
        "size",
        "next_offset",
        "offset_index",
        "time_index",
        "index_interval",
        "bytes_since_index",
        "max_timestamp",
        "offset_of_max_timestamp",
        "rolling_base_ms",
        "roll_jitter_ms",
        "synced_size",
        "reserved_end",
        "unsynced_files",
        "sealed",
        "closed",
    )

    def __init__(self, directory: Path, base_offset: int, fd: int, size: int, config: LogConfig, roll_jitter_ms: int):
        self.directory = directory
        self.base_offset = base_offset
        self.path = log_path(directory, base_offset)
        self.fd = fd
        self.size = size
        self.next_offset = base_offset
        self.offset_index = OffsetIndex(base_offset, config.max_offset_index_entries)
        self.time_index = TimeIndex(base_offset, config.max_time_index_entries)
        self.index_interval = config.index_interval_bytes
        self.bytes_since_index = 0
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.rolling_base_ms: int | None = None  # wall clock of the first append; time-based roll counts from it
        self.roll_jitter_ms = roll_jitter_ms
        self.synced_size = size  # bytes of the .log known to be fsync'd
        self.reserved_end = size  # blocks may be reserved up to here (see preallocate.py)
        self.unsynced_files: list[int] = []  # index files written but not yet fsync'd (fds we own)
        self.sealed = False
        self.closed = False

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, base_offset: int, config: LogConfig, roll_jitter_ms: int = 0) -> "Segment":
        fd = os.open(log_path(directory, base_offset), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        return cls(directory, base_offset, fd, 0, config, roll_jitter_ms)

    @classmethod
    def open_existing(cls, directory: Path, base_offset: int, config: LogConfig, roll_jitter_ms: int = 0) -> "Segment":
        fd = os.open(log_path(directory, base_offset), os.O_RDWR | os.O_CLOEXEC)
        stat = os.fstat(fd)
        segment = cls(directory, base_offset, fd, stat.st_size, config, roll_jitter_ms)
        # A crash can leave blocks reserved past the end; sealing hands them back.
        segment.reserved_end = max(stat.st_size, stat.st_blocks * 512)
        return segment

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in self.unsynced_files:
            os.close(fd)
        self.unsynced_files = []
        os.close(self.fd)

    def rename_for_delete(self) -> list[Path]:
        """Close the segment and rename its files to `*.deleted`; returns the new paths.

        Readers holding dup'd descriptors keep reading the renamed inode.
        """
        self.close()
        renamed = []
        for path in self.paths():
            target = path.with_name(path.name + DELETED_SUFFIX)
            try:
                os.replace(path, target)
            except FileNotFoundError:
                continue
            renamed.append(target)
        return renamed

    def paths(self) -> tuple[Path, Path, Path]:
        """The `.log`, `.index` and `.timeindex` paths."""
        base = self.base_offset
        return self.path, index_path(self.directory, base), time_index_path(self.directory, base)

    def update_config(self, config: LogConfig) -> None:
        self.index_interval = config.index_interval_bytes
        self.offset_index.max_entries = max(config.max_offset_index_entries, len(self.offset_index))
        self.time_index.max_entries = max(config.max_time_index_entries, len(self.time_index))

    # -- writing ---------------------------------------------------------------------

    def append(self, buf, headers: list[BatchHeader], now_ms: int) -> None:
        """Write batches whose header positions are relative to `buf` at the end of the file."""
        position = self.size
        size = len(buf)
        end = position + size
        if end > self.reserved_end:
            self.reserved_end = end + reserve_ahead(size)
            reserve_space(self.fd, position, self.reserved_end - position)
        written = os.pwrite(self.fd, buf, position)
        if written != size:  # short write (rare): finish it
            write_all(self.fd, memoryview(buf)[written:], position + written)
        if self.rolling_base_ms is None:
            self.rolling_base_ms = now_ms
        for header in headers:
            self.index_batch(header, position + header.position)
        self.size = end

    def index_batch(self, header: BatchHeader, position: int) -> None:
        """Account one batch at `position`: largest timestamp, and index entries every interval.

        The single indexing rule, shared by append and by every rebuild, so a rebuilt
        index is identical to the one appends would have produced.
        """
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.offset_of_max_timestamp = header.base_offset
        if self.bytes_since_index > self.index_interval:
            self.offset_index.append(header.base_offset, position)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self.bytes_since_index = 0
        self.bytes_since_index += 12 + header.batch_length
        self.next_offset = header.base_offset + header.last_offset_delta + 1

    def reset_indexes(self) -> None:
        self.offset_index.clear()
        self.time_index.clear()
        self.bytes_since_index = 0
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.next_offset = self.base_offset

    def rebuild_indexes(self) -> None:
        """Re-derive both indexes from the batch headers in the `.log` (no CRC check)."""
        self.reset_indexes()
        for header in self.headers(0):
            self.index_batch(header, header.position)
        if self.sealed:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, force=True)
            self.write_indexes()

    def seal(self) -> None:
        """The segment stops being active: final time-index entry, index files
        written, reserved blocks handed back."""
        self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, force=True)
        self.write_indexes()
        self.release_reserved()
        self.sealed = True

    def release_reserved(self) -> None:
        if self.reserved_end > self.size:
            os.ftruncate(self.fd, self.size)  # truncating to its own size frees what lies past it
            self.reserved_end = self.size

    def write_indexes(self) -> None:
        """Rewrite the index files that differ from memory; they await fsync in `unsynced_files`."""
        for index, path in (
            (self.offset_index, index_path(self.directory, self.base_offset)),
            (self.time_index, time_index_path(self.directory, self.base_offset)),
        ):
            if not index.dirty and path.exists():
                continue
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                write_all(fd, index.to_bytes(), 0)
            except BaseException:
                os.close(fd)
                raise
            self.unsynced_files.append(fd)
            index.dirty = False

    @property
    def needs_sync(self) -> bool:
        return self.synced_size < self.size or bool(self.unsynced_files)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)  # also frees any blocks reserved past `size`
        self.size = size
        self.reserved_end = size
        self.synced_size = min(self.synced_size, size)

    # -- reading ---------------------------------------------------------------------

    def headers(self, start: int, end: int | None = None) -> Iterator[BatchHeader]:
        """Batch headers from byte `start` (a batch boundary) up to `end` (default: size).

        `header.position` is the position in the file. Raises CorruptSegmentError if
        the bytes stop looking like batches (structure only, no CRC).
        """
        if end is None:
            end = self.size
        fd = self.fd
        pos = start
        buf = b""
        buf_pos = 0
        while pos < end:
            off = pos - buf_pos
            if off + BATCH_HEADER_SIZE > len(buf):
                buf = os.pread(fd, max(BATCH_HEADER_SIZE, min(_READ_AHEAD, end - pos)), pos)
                buf_pos = pos
                off = 0
                if len(buf) < BATCH_HEADER_SIZE:
                    raise CorruptSegmentError(f"batch header cut off ({len(buf)} bytes left)", self.path, pos)
            header = parse_batch_header(buf, off)
            if header.magic != CURRENT_MAGIC or header.batch_length < MIN_BATCH_LENGTH or pos + header.size > end:
                raise CorruptSegmentError(
                    f"not a record batch (magic {header.magic}, batchLength {header.batch_length})", self.path, pos
                )
            header.position = pos
            yield header
            pos += header.size

    def locate(self, offset: int) -> BatchHeader | None:
        """Header of the first batch with last offset >= `offset`, or None if none is here.

        Checks that the index entry used really names the batch it lands on; if not,
        the indexes are rebuilt from the `.log` (and a warning logged) and the lookup
        retried, so a damaged index costs time, never a wrong answer.
        """
        try:
            return self._locate(offset)
        except IndexMismatchError as exc:
            logger.warning("%s: offset index is inconsistent (%s); rebuilding it from the log", self.path, exc)
            self.rebuild_indexes()
            return self._locate(offset)

    def _locate(self, offset: int) -> BatchHeader | None:
        entry_offset, position = self.offset_index.lookup(offset)
        walk = self.headers(position)
        if position > 0:
            try:
                header = next(walk)
            except CorruptSegmentError as exc:
                raise IndexMismatchError(f"entry for offset {entry_offset} points at byte {position}: {exc}") from None
            except StopIteration:
                raise IndexMismatchError(f"entry for offset {entry_offset} points past the data") from None
            if header.base_offset != entry_offset:
                raise IndexMismatchError(
                    f"entry for offset {entry_offset} points at byte {position}, "
                    f"which holds offset {header.base_offset}"
                )
            if header.base_offset + header.last_offset_delta >= offset:
                return header
        for header in walk:
            if header.base_offset + header.last_offset_delta >= offset:
                return header
        return None

    def read_end(self, start: int, first_size: int, max_end: int) -> int:
        """End of the whole batches from `start` that lie within [start, max_end].

        The first batch (`first_size` bytes) is included regardless. Uses the offset
        index to skip to the last indexed batch below `max_end`, so the walk covers
        about one index interval, not the whole read.
        """
        if max_end >= self.size:
            return self.size
        end = start + first_size
        if max_end <= end:
            return end
        _, position = self.offset_index.floor_position(max_end)
        if position > end:
            end = position
        for header in self.headers(end):
            batch_end = header.position + header.size
            if batch_end > max_end:
                break
            end = batch_end
        return end

    def find_timestamp(self, timestamp: int, min_offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at offset >= `min_offset` whose
        timestamp is >= `timestamp`, or None.

        The time index and the batch headers find the first batch whose max
        timestamp reaches `timestamp`; only then, and only if that batch spans
        several offsets, is it read and decoded (`first_record`). A batch that
        straddles `min_offset` may hold no such record above it: the walk goes on.
        """
        if self.max_timestamp < timestamp:
            return None
        start_offset = self.time_index.lookup_before(timestamp)
        start_offset = min_offset if start_offset is None else max(start_offset, min_offset)
        first = self.locate(start_offset)
        if first is None:
            return None
        for header in self.headers(first.position):
            if header.max_timestamp >= timestamp:
                found = self.first_record(header, timestamp, min_offset)
                if found is not None:
                    return found
        return None

    def first_record(self, header: BatchHeader, timestamp: int, min_offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the batch's first record at offset >= `min_offset` whose
        timestamp is >= `timestamp`, or None. Needs `header.max_timestamp >= timestamp`.

        Every record of a batch spanning one offset, or stamped LogAppendTime, has
        the batch's max timestamp: answered from the header. Otherwise the batch
        is read (one pread) and its records walked, decompressing if need be
        (bounded; see broker/protocol/record_decoding.py).
        """
        if header.last_offset_delta == 0 or header.timestamp_type == LOG_APPEND_TIME:
            offset = max(header.base_offset, min_offset)
            return (offset, header.max_timestamp) if offset <= header.last_offset else None
        batch = os.pread(self.fd, header.size, header.position)
        try:
            for offset, record_timestamp in record_timestamps(batch):
                if record_timestamp >= timestamp and offset >= min_offset:
                    return offset, record_timestamp
        except CorruptRecordError as exc:
            raise CorruptSegmentError(str(exc), self.path, header.position) from None
        return None

    def first_batch_timestamp(self) -> int:
        """maxTimestamp of the first batch, -1 if empty or untimestamped."""
        if self.size == 0:
            return -1
        for header in self.headers(0):
            return header.max_timestamp
        return -1

    def largest_timestamp(self) -> int:
        """For time retention: the max batch timestamp, or the file's mtime if no batch has one."""
        if self.max_timestamp >= 0:
            return self.max_timestamp
        try:
            return int(os.fstat(self.fd).st_mtime * 1000) if not self.closed else -1
        except OSError:
            return -1

    def __repr__(self) -> str:
        return f"Segment({self.path.name}, offsets [{self.base_offset}, {self.next_offset}), {self.size} bytes)"
