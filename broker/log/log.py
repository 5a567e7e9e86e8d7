"""`PartitionLog`: one partition's local log, a directory of segments.

Invariants: segments are sorted by base offset and do not overlap; the last one
is the *active* segment, the only one appended to (there is always one, possibly
empty). `log_start_offset <= log_end_offset`; every offset in
[log_start_offset, log_end_offset) that a producer wrote is readable. Offsets
below `flushed_offset` are on disk (fsync'd); `recovery_point <= flushed_offset`
and every segment below it is fsync'd with its index files.

Durability: `append` only writes to the page cache (`acks=1` may be acknowledged
then); `flush` makes appended data durable with group commit (`acks=all` waits
for it). Index files are kept in memory and written when a segment is sealed
(rolled) or the log closed; after a crash recovery rebuilds them (recovery.py).
A clean `close` leaves the `clean-shutdown` marker; `open` removes it first
thing, so a crash at any later point counts as unclean.

Concurrency: not thread-safe. Every method runs on the event-loop thread, except
`open` and `close`, which the server runs (in a thread) while nothing else uses
the log. `flush` hands fsyncs to a worker thread that only sees dup'd
descriptors; reads return `FileRegion`s over dup'd descriptors, so deleting a
segment never breaks an in-flight fsync or sendfile. Timestamp lookups read and
decode a batch or two on the loop thread (bounded; see `offset_for_timestamp`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from bisect import bisect_right
from pathlib import Path

from broker.protocol.primitives import FileRegion
from broker.protocol.records import BatchHeader, assign_offsets, set_log_append_time

from . import recovery, retention
from .checkpoint import Checkpoint, CheckpointFile
from .config import MAX_INT32, LogConfig
from .errors import CorruptSegmentError, LogStorageError, OffsetOutOfRangeError
from .files import (
    CLEAN_SHUTDOWN_MARKER,
    LOG_SUFFIX,
    TMP_SUFFIX,
    Fsync,
    fsync_directory,
    log_path,
    write_file_atomically,
)
from .deletion import DeletionQueue
from .flush import FlushRound, GroupCommit, capture_unsynced, mark_synced
from .producer_state import ProducerStateTable
from .results import AppendResult, ReadResult, SegmentInfo
from .segment import Segment

logger = logging.getLogger("broker.log")


PRODUCER_SNAPSHOT = "producer-state.snapshot"
REMOTE_RANGE = "remote-range.json"


def _no_fsync(fd: int) -> None:
    pass


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PartitionLog:
    def __init__(self, directory: Path, config: LogConfig, checkpoint: CheckpointFile, fsync: Fsync):
        self.directory = directory
        self.config = config
        self._checkpoint = checkpoint
        self._fsync = fsync
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self.log_start_offset = 0
        self.recovery_point = 0
        self._dir_dirty = False
        self._failure: BaseException | None = None
        self._deletions = DeletionQueue(directory)
        self._closed = False
        self._group_commit = GroupCommit(directory, self._prepare_flush, self._flush_failed, 0, fsync)
        self.producers = ProducerStateTable()
        # The remote tier's range, kept current by the tiering manager from the
        # partition manifest (`set_remote_range`): [remote_log_start_offset,
        # remote_end_offset), or None while nothing of this partition is uploaded.
        self.remote_log_start_offset: int | None = None
        self.remote_end_offset: int | None = None

    # -- open / close ----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        *,
        clean_shutdown_hint: bool | None = None,
        now_ms: int | None = None,
        fsync: Fsync = os.fsync,
    ) -> "PartitionLog":
        """Open (creating if missing) and recover the log in `directory`. Blocking.

        Clean shutdown is decided by the `clean-shutdown` marker, unless
        `clean_shutdown_hint` says otherwise. `fsync` is the seam every fsync of this
        log goes through (tests count calls).
        """
        started = time.monotonic()
        now_ms = _now_ms() if now_ms is None else now_ms
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / CLEAN_SHUTDOWN_MARKER
        clean = marker.exists()
        if clean:
            marker.unlink()
            fsync_directory(directory, fsync)
        if clean_shutdown_hint is not None:
            clean = clean_shutdown_hint
        checkpoint_file = CheckpointFile(directory, fsync)
        checkpoint = checkpoint_file.read()
        log = cls(directory, config, checkpoint_file, fsync)
        segments, scanned = recovery.load_segments(
            directory, config, clean=clean, recovery_point=checkpoint.recovery_point if checkpoint else 0,
            jitter=log._roll_jitter,
        )
        fresh = not segments and checkpoint is None
        try:
            log._install(segments, checkpoint.log_start_offset if checkpoint else None, now_ms)
            log._load_producer_state()
            log._load_remote_range()
            # Scanned data may be in the page cache only: make it durable before calling it flushed.
            for segment in scanned:
                if not segment.closed:
                    segment.synced_size = 0
            log._sync_all()
            log.recovery_point = log.log_end_offset
            log._write_checkpoint()
        except BaseException:
            for segment in segments + log._segments:
                segment.close()
            raise
        logger.info(
            "%s: opened log, offsets [%d, %d), %d segment(s), %d bytes, %s shutdown, %d segment(s) scanned, %.0f ms",
            directory, log.log_start_offset, log.log_end_offset, len(log._segments), log.size_bytes(),
            "no previous" if fresh else "clean" if clean else "unclean", len(scanned),
            (time.monotonic() - started) * 1000,
        )
        return log

    def _install(self, segments: list[Segment], checkpoint_lso: int | None, now_ms: int) -> None:
        """Adopt loaded segments and settle the log start offset against them."""
        segments, self.log_start_offset, created = recovery.settle_log_start(
            self.directory, self.config, segments, checkpoint_lso, self._roll_jitter
        )
        self._dir_dirty = self._dir_dirty or created
        self._segments = segments
        self._bases = [segment.base_offset for segment in segments]
        active = segments[-1]
        if active.size:
            first = active.first_batch_timestamp()
            active.rolling_base_ms = min(first, now_ms) if first >= 0 else now_ms

    @classmethod
    def create_at(cls, directory: Path, config: LogConfig, start_offset: int) -> "PartitionLog":
        """A new, empty log whose first offset is `start_offset` (a partition rebuilt from
        the remote tier continues where the bucket ends). Blocking."""
        directory = Path(directory)
        directory.mkdir(parents=True)
        CheckpointFile(directory, os.fsync).write(lambda: Checkpoint(start_offset, start_offset))
        return cls.open(directory, config)

    def _load_producer_state(self) -> None:
        """Producer state = the snapshot, then every batch header after it (startup).

        A snapshot that is unreadable, or ahead of a log that recovery truncated,
        is ignored and the state rebuilt from the whole log.
        """
        path = self.directory / PRODUCER_SNAPSHOT
        start = self.log_start_offset
        if path.exists():
            try:
                table, offset = ProducerStateTable.from_snapshot(path.read_bytes())
            except ValueError as exc:
                logger.warning("%s: %s; rebuilding producer state from the log", self.directory, exc)
            else:
                if self.log_start_offset <= offset <= self.log_end_offset:
                    self.producers, start = table, offset
        for segment in self._segments:
            if segment.next_offset <= start or not segment.size:
                continue
            for header in segment.headers(0):
                if header.base_offset >= start and header.producer_id >= 0:
                    self.producers.record(header, header.max_timestamp)

    def set_remote_range(self, start: int | None, end: int | None) -> None:
        """Publish the remote tier's range and remember it in the partition directory, so
        that after a restart the partition answers earliest, and sends reads below the
        local log to the remote tier, before the bucket has answered anything. Only
        ever widens what clients see after a commit the manifest already holds."""
        if (start, end) == (self.remote_log_start_offset, self.remote_end_offset):
            return
        self.remote_log_start_offset, self.remote_end_offset = start, end
        path = self.directory / REMOTE_RANGE
        if end is None:
            path.unlink(missing_ok=True)
        else:
            # No fsync: losing it in a crash only costs what we had before this file.
            write_file_atomically(path, json.dumps({"start": start, "end": end}).encode(), _no_fsync)

    def _load_remote_range(self) -> None:
        path = self.directory / REMOTE_RANGE
        try:
            doc = json.loads(path.read_bytes())
            self.remote_log_start_offset, self.remote_end_offset = doc["start"], doc["end"]
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: ignoring unreadable %s (%s)", self.directory, REMOTE_RANGE, exc)

    def _snapshot_producer_state(self, durable: bool) -> None:
        """Write the producer table as of the log end. A snapshot lost in a crash
        only costs a longer replay at the next open, so rolls skip the fsync."""
        data = self.producers.to_snapshot(self.log_end_offset)
        fsync = self._fsync if durable else _no_fsync
        write_file_atomically(self.directory / PRODUCER_SNAPSHOT, data, fsync)

    def close(self) -> None:
        """Seal the active segment's indexes, fsync everything, checkpoint, mark clean. Blocking."""
        if self._closed:
            return
        try:
            if self._failure is None:
                active = self._segments[-1]
                active.time_index.maybe_append(active.max_timestamp, active.offset_of_max_timestamp, force=True)
                active.write_indexes()
                active.release_reserved()
                self._sync_all()
                self.recovery_point = self.log_end_offset
                self._write_checkpoint()
                self._snapshot_producer_state(durable=True)
                write_file_atomically(self.directory / CLEAN_SHUTDOWN_MARKER, b"", self._fsync)
                logger.info("%s: closed cleanly at log end offset %d", self.directory, self.log_end_offset)
            else:
                logger.error("%s: closing a failed log without marking it clean (%s)", self.directory, self._failure)
        finally:
            self._closed = True
            for segment in self._segments:
                segment.close()
            self._deletions.purge(None)

    def delete(self) -> None:
        """Remove the whole partition directory (topic deletion). Open FileRegions keep working."""
        self._closed = True
        for segment in self._segments:
            segment.close()
        self._segments = []
        self._bases = []
        shutil.rmtree(self.directory, ignore_errors=True)
        logger.info("%s: partition directory deleted", self.directory)

    def _sync_all(self) -> None:
        """fsync every unsynced file and the directory, on the calling thread."""
        for segment in self._segments:
            if segment.synced_size < segment.size:
                self._fsync(segment.fd)
                segment.synced_size = segment.size
            while segment.unsynced_files:
                fd = segment.unsynced_files.pop()
                try:
                    self._fsync(fd)
                finally:
                    os.close(fd)
        fsync_directory(self.directory, self._fsync)
        self._dir_dirty = False
        self._group_commit.flushed_offset = self.log_end_offset

    def _write_checkpoint(self) -> None:
        self._checkpoint.write(lambda: Checkpoint(self.log_start_offset, self.recovery_point))

    # -- state -----------------------------------------------------------------------

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def high_watermark(self) -> int:
        return self._segments[-1].next_offset  # single replica: everything appended is committed

    @property
    def earliest_offset(self) -> int:
        """The log start offset across both tiers: what ListOffsets earliest answers.
        `log_start_offset` is the *local* log start offset."""
        remote = self.remote_log_start_offset
        if remote is not None and self.remote_end_offset is not None and remote < self.log_start_offset:
            return remote
        return self.log_start_offset

    @property
    def flushed_offset(self) -> int:
        return self._group_commit.flushed_offset

    @property
    def flush_rounds(self) -> int:
        """Completed group-commit rounds (metrics, tests)."""
        return self._group_commit.rounds

    @property
    def segments(self) -> list[SegmentInfo]:
        last = len(self._segments) - 1
        return [
            SegmentInfo(s.base_offset, s.next_offset, s.size, s.max_timestamp, s.path, i == last)
            for i, s in enumerate(self._segments)
        ]

    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    def update_config(self, config: LogConfig) -> None:
        self.config = config
        for segment in self._segments:
            segment.update_config(config)

    def _roll_jitter(self) -> int:
        jitter = min(self.config.segment_jitter_ms, self.config.segment_ms)
        return random.randrange(jitter) if jitter > 0 else 0

    def _check_usable(self) -> None:
        if self._closed:
            raise LogStorageError("log is closed", self.directory)
        if self._failure is not None:
            raise LogStorageError(f"log is offline after an I/O failure: {self._failure}", self.directory)

    # -- append / roll ---------------------------------------------------------------

    def append(self, records: bytearray, headers: list[BatchHeader], now_ms: int) -> AppendResult:
        """Assign offsets (in place) and write validated batches to the active segment.

        `headers` come from `validate_batches(records)`. Rolls first if the active
        segment is full or too old. Page cache only: see `flush`.
        """
        if self._failure is not None or self._closed:
            self._check_usable()
        if not headers:
            raise ValueError("append needs at least one batch")
        active = self._segments[-1]
        base_offset = active.next_offset
        if active.size:
            if len(headers) == 1:
                span = headers[0].last_offset_delta + 1
            else:
                span = sum(header.last_offset_delta + 1 for header in headers)
            config = self.config
            if (
                active.size + len(records) > config.segment_bytes
                or base_offset + span - 1 - active.base_offset > MAX_INT32
                or len(active.offset_index) >= active.offset_index.max_entries
                or len(active.time_index) >= active.time_index.max_entries
                or now_ms - active.rolling_base_ms > config.segment_ms - active.roll_jitter_ms
            ):
                active = self._roll(now_ms)
        if headers[0].producer_id >= 0 or len(headers) > 1:
            duplicate = self.producers.check(headers, self.directory.name)
            if duplicate is not None:
                return AppendResult(duplicate.first_offset, duplicate.last_offset, -1, self.log_start_offset,
                                    duplicate=True)
        last_offset = assign_offsets(records, headers, base_offset)
        append_time = -1
        if self.config.message_timestamp_type == "LogAppendTime":
            set_log_append_time(records, headers, now_ms)
            append_time = now_ms
        size_before = active.size
        try:
            active.append(records, headers, now_ms)
        except OSError as exc:
            self._undo_failed_append(active, size_before, base_offset, exc)
        for header in headers:
            if header.producer_id >= 0:
                self.producers.record(header, now_ms)
        return AppendResult(base_offset, last_offset, append_time, self.log_start_offset)

    def _undo_failed_append(self, segment: Segment, size: int, next_offset: int, exc: OSError):
        try:
            segment.truncate(size)
        except OSError as truncate_exc:
            self._failure = truncate_exc
            logger.error("%s: write failed (%s) and truncating it back failed too (%s); log is offline",
                         self.directory, exc, truncate_exc)
        else:
            # the write failed before any index or offset state changed: the log is as before
            logger.error("%s: write at offset %d failed: %s", self.directory, next_offset, exc)
        raise LogStorageError(f"write at offset {next_offset} failed: {exc}", self.directory) from exc

    def maybe_roll(self, now_ms: int) -> bool:
        """Time-based roll of a non-empty active segment older than segment.ms (minus jitter)."""
        self._check_usable()
        active = self._segments[-1]
        if active.size and now_ms - active.rolling_base_ms > self.config.segment_ms - active.roll_jitter_ms:
            self._roll(now_ms)
            return True
        return False

    def _roll(self, now_ms: int) -> Segment:
        old = self._segments[-1]
        try:
            old.seal()
            new = Segment.create(self.directory, old.next_offset, self.config, self._roll_jitter())
        except OSError as exc:
            self._failure = exc
            message = f"rolling a new segment at offset {old.next_offset} failed: {exc}"
            raise LogStorageError(message, self.directory) from exc
        self._segments.append(new)
        self._bases.append(new.base_offset)
        self._dir_dirty = True
        if self.producers.entries:
            self._snapshot_producer_state(durable=False)
        logger.debug(
            "%s: rolled segment %s at offset %d (%d bytes)", self.directory, new.path.name, new.base_offset, old.size
        )
        return new

    # -- flush (group commit) --------------------------------------------------------

    async def flush(self, up_to_offset: int) -> None:
        """Return once every offset <= `up_to_offset` (clamped to the log end) is fsync'd."""
        self._check_usable()
        try:
            await self._group_commit.flush(min(up_to_offset, self.log_end_offset - 1))
        except OSError as exc:
            raise LogStorageError(f"fsync failed: {exc}", self.directory) from exc

    def _prepare_flush(self) -> FlushRound:
        """Capture what the round covers (event loop); dup fds so closes cannot race the fsync."""
        self._check_usable()
        target = self.log_end_offset
        captured, fds = capture_unsynced(self._segments)
        sync_directory = self._dir_dirty
        self._dir_dirty = False
        new_recovery_point = self._segments[-1].base_offset  # every older segment is in `captured`

        def after_sync() -> None:  # worker thread
            if new_recovery_point > self.recovery_point:
                self.recovery_point = new_recovery_point
                self._write_checkpoint()

        return FlushRound(target, fds, sync_directory, after_sync, lambda: mark_synced(captured))

    def _flush_failed(self, exc: BaseException) -> None:
        if isinstance(exc, OSError):
            # After a failed fsync the kernel may have dropped the dirty pages: retrying
            # could report success for lost data. Take the log offline.
            self._failure = exc
            logger.error("%s: fsync failed (%s); log is offline", self.directory, exc)

    # -- read ------------------------------------------------------------------------

    def _segment_index(self, offset: int) -> int:
        return bisect_right(self._bases, offset) - 1

    def read(self, offset: int, max_bytes: int, *, min_one_batch: bool = True) -> ReadResult:
        """Whole batches from the one containing `offset`, from one segment, within `max_bytes`.

        With `min_one_batch` the first batch comes whole even if larger (KIP-74).
        """
        self._check_usable()
        end = self.log_end_offset
        if offset == end:
            return ReadResult(None, end, self.log_start_offset)
        if offset < self.log_start_offset or offset > end:
            raise OffsetOutOfRangeError(offset, self.log_start_offset, end)
        i = max(0, self._segment_index(offset))
        while i < len(self._segments):
            segment = self._segments[i]
            first = segment.locate(offset)
            if first is not None:
                limit = max_bytes
                if first.size > limit:
                    if not min_one_batch:
                        return ReadResult(b"", end, self.log_start_offset)
                    limit = first.size
                stop = segment.read_end(first.position, first.size, first.position + limit)
                region = FileRegion(os.dup(segment.fd), first.position, stop - first.position)
                return ReadResult(region, end, self.log_start_offset)
            i += 1  # offset in a gap (or past this segment's data): the next segment's first batch
        return ReadResult(None, end, self.log_start_offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after the log start offset
        whose timestamp is >= `timestamp_ms`, as Kafka answers ListOffsets; None if none.

        Exact to the record: the time index and batch headers find the batch, and
        a batch of several records is decoded (decompressed if need be) to find
        the record in it. That decoding happens only for these lookups, one
        bounded batch at a time, never on the produce or fetch path.
        """
        self._check_usable()
        lso = self.log_start_offset
        for segment in self._segments:
            if segment.next_offset <= lso or segment.max_timestamp < timestamp_ms:
                continue
            found = segment.find_timestamp(timestamp_ms, max(lso, segment.base_offset))
            if found is not None:
                return found
        return None

    def max_timestamp_and_offset(self) -> tuple[int, int]:
        """(largest timestamp, offset of the first record carrying it); (-1, -1) if none.

        Decodes the batch carrying the largest timestamp (and the next one if that
        batch straddles the log start offset). If DeleteRecords moved the log
        start offset past every record carrying it (inside a segment that lives
        on), the answer falls back to the log start offset paired with that
        timestamp: finding the largest surviving one would mean decoding the
        whole segment.
        """
        self._check_usable()
        lso = self.log_start_offset
        best = None
        for segment in self._segments:
            if segment.next_offset > lso and segment.max_timestamp > (best.max_timestamp if best else -1):
                best = segment
        if best is None:
            return -1, -1
        # From the first segment holding the largest timestamp on, the first record
        # with a timestamp >= it is the first surviving record carrying it (a later
        # segment may carry it too when the log start offset hides the first one).
        target = best.max_timestamp
        for segment in self._segments[self._segments.index(best):]:
            if segment.next_offset <= lso or segment.max_timestamp < target:
                continue
            found = segment.find_timestamp(target, max(lso, segment.base_offset))
            if found is not None:
                return target, found[0]
        return target, max(best.offset_of_max_timestamp, lso)

    # -- deletion --------------------------------------------------------------------

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: make `offset` the log start offset and drop segments wholly below it."""
        self._check_usable()
        if offset < 0 or offset > self.high_watermark:
            raise OffsetOutOfRangeError(offset, self.log_start_offset, self.high_watermark, "DeleteRecords offset")
        if offset <= self.log_start_offset:
            return self.log_start_offset
        self.log_start_offset = offset
        self._write_checkpoint()
        logger.info("%s: log start offset advanced to %d by DeleteRecords", self.directory, offset)
        count = retention.below_log_start(self._facts(), offset)
        if count:
            self._delete_oldest(count, _now_ms(), f"log start offset {offset}")
        return self.log_start_offset

    def apply_retention(self, now_ms: int) -> list[int]:
        """Delete the oldest segments past retention.ms / retention.bytes / the log start offset.

        Returns their base offsets. Also unlinks `.deleted` files whose delay is over.
        """
        self._check_usable()
        self._deletions.purge(now_ms)
        config = self.config
        count, rule = retention.segments_to_delete(
            self._facts(), now_ms, config.retention_ms, config.retention_bytes, self.log_start_offset
        )
        if not count:
            return []
        return self._delete_oldest(count, now_ms, rule)

    def delete_local_segments(self, count: int, reason: str) -> list[int]:
        """Local retention of a tiered partition: drop the `count` oldest segments,
        whose data the remote tier holds, advancing the local log start offset.
        Never the active segment. Returns the deleted base offsets."""
        self._check_usable()
        count = min(count, len(self._segments) - 1)
        if count <= 0:
            return []
        return self._delete_oldest(count, _now_ms(), reason)

    # -- restore (rollback from the remote tier) ---------------------------------------

    def restore_path(self, base_offset: int) -> Path:
        """Where a segment being restored is written. The `.tmp` suffix makes recovery
        delete it if the broker dies before `adopt_restored`."""
        return log_path(self.directory, base_offset).with_name(f"{base_offset:020d}{LOG_SUFFIX}{TMP_SUFFIX}")

    def stage_restored(self, base_offset: int, expected_next_offset: int) -> Segment:
        """Turn a completely written `restore_path(base_offset)` into a sealed segment
        (indexes built, everything fsync'd) that the log does not use yet. Blocking
        (worker thread); touches no state of the log. A crash from here until
        `adopt_restored` leaves files wholly below the log start offset, which the next
        open deletes."""
        tmp = self.restore_path(base_offset)
        final = log_path(self.directory, base_offset)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        segment = Segment.open_existing(self.directory, base_offset, self.config)
        try:
            segment.rebuild_indexes()
            if segment.next_offset != expected_next_offset:
                raise CorruptSegmentError(
                    f"restored segment ends at {segment.next_offset}, expected {expected_next_offset}",
                    final, segment.size)
            segment.seal()
            while segment.unsynced_files:
                self._fsync(segment.unsynced_files[-1])
                os.close(segment.unsynced_files.pop())
            segment.synced_size = segment.size
        except BaseException:
            segment.close()
            for path in segment.paths():
                path.unlink(missing_ok=True)
            raise
        return segment

    def adopt_restored(self, segment: Segment, log_start_offset: int) -> None:
        """Put a staged segment in front of the log; the local log start offset moves
        down to `log_start_offset`. Its next offset must be the first segment's base."""
        self._check_usable()
        first = self._segments[0]
        if segment.next_offset != first.base_offset:
            raise ValueError(f"restored segment [{segment.base_offset}, {segment.next_offset}) does not "
                             f"end where the log starts ({first.base_offset})")
        fsync_directory(self.directory, self._fsync)
        self._segments.insert(0, segment)
        self._bases.insert(0, segment.base_offset)
        self.log_start_offset = max(segment.base_offset, min(log_start_offset, self.log_start_offset))
        self._write_checkpoint()
        logger.info("%s: restored segment [%d, %d) from the remote tier; local log start offset now %d",
                    self.directory, segment.base_offset, segment.next_offset, self.log_start_offset)

    def _facts(self) -> list[retention.SegmentFacts]:
        last = len(self._segments) - 1
        return [
            retention.SegmentFacts(s.base_offset, s.next_offset, s.size, s.largest_timestamp(), i == last)
            for i, s in enumerate(self._segments)
        ]

    def _delete_oldest(self, count: int, now_ms: int, rule: str) -> list[int]:
        if count >= len(self._segments):
            self._roll(now_ms)  # never leave the log without an active segment
        doomed = self._segments[:count]
        new_start = self._segments[count].base_offset
        if new_start > self.log_start_offset:
            self.log_start_offset = new_start
            self._write_checkpoint()
        del self._segments[:count]
        del self._bases[:count]
        due = now_ms + self.config.file_delete_delay_ms
        for segment in doomed:
            self._deletions.schedule(due, segment.rename_for_delete())
        self._dir_dirty = True
        logger.info(
            "%s: deleted %d segment(s) [%d, %d) (%d bytes) by %s; log start offset now %d",
            self.directory, len(doomed), doomed[0].base_offset, doomed[-1].next_offset,
            sum(s.size for s in doomed), rule, self.log_start_offset,
        )
        if self.config.file_delete_delay_ms == 0:
            self._deletions.purge(now_ms)
        return [segment.base_offset for segment in doomed]

    def purge_deleted_files(self, now_ms: int) -> int:
        """Unlink `.deleted` files whose delay is over; returns how many. Cheap if none are due."""
        return self._deletions.purge(now_ms)

    def __repr__(self) -> str:
        return f"PartitionLog({self.directory}, [{self.log_start_offset}, {self.log_end_offset}))"
