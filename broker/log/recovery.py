"""Loading a partition directory at open, and recovering it after a crash.

What `load_segments` does, in order:

1. Removes leftovers of interrupted work (`*.deleted`, `*.tmp`, `*.cleaned`,
   `*.swap`) and index files whose `.log` is gone.
2. Loads every segment's `.index`/`.timeindex` and checks them (size a multiple
   of the entry size, strictly increasing, positions inside the `.log`). A
   missing or broken index is replaced by an empty one and rebuilt below.
3. Segments entirely below the recovery point (all of them after a clean
   shutdown) are trusted: their data was fsync'd with their indexes. For each,
   the batch headers after the last index entry are walked (no CRC) to find the
   next offset and largest timestamp, and to check that the index is complete;
   an index found incomplete or inconsistent is rebuilt from the headers.
4. After an unclean shutdown, every segment from the one holding the recovery
   point on (the active segment at least) is scanned batch by batch, length +
   magic + CRC-32C + offsets increasing. The first unsound batch (a torn write,
   corruption, garbage) and everything after it are discarded: the segment is
   truncated there and later segments deleted, with a WARNING that says how many
   bytes went. The indexes of scanned segments are rebuilt as they are scanned.

What survives a crash: every batch that was completely written before it and is
intact; acknowledged `acks=all` data was fsync'd, so it is among them. What does
not: a batch torn by the crash (its producer never got an `acks=all` ack), and
unsynced `acks=1` data the OS lost.

Runs synchronously (the server calls `PartitionLog.open` in a thread at startup);
nothing else touches the directory meanwhile.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from pathlib import Path
from typing import Callable

from broker.protocol.records import BATCH_HEADER_SIZE, parse_batch_header, scan_batches
from crc32c import crc32c

from .config import MAX_INT32, LogConfig
from .errors import CorruptSegmentError, LogStorageError
from .files import (
    CLEAN_SHUTDOWN_MARKER,
    LEFTOVER_SUFFIXES,
    LOG_SUFFIX,
    SEGMENT_FILE,
    index_path,
    time_index_path,
)
from .offset_index import IndexCorruptError, OffsetIndex
from .segment import Segment
from .time_index import TimeIndex

logger = logging.getLogger("broker.log")

RECOVERY_CHUNK_BYTES = 8 << 20


def remove_leftovers(directory: Path) -> None:
    """Delete files left by interrupted deletes and writes, and orphaned index files."""
    names = set(os.listdir(directory))
    for name in sorted(names):
        path = directory / name
        if name.endswith(LEFTOVER_SUFFIXES):
            logger.info("%s: removing leftover file %s", directory, name)
            path.unlink(missing_ok=True)
            continue
        match = SEGMENT_FILE.match(name)
        if match and match.group(2) != "log" and f"{match.group(1)}{LOG_SUFFIX}" not in names:
            logger.warning("%s: removing index file %s whose segment log is missing", directory, name)
            path.unlink(missing_ok=True)


def segment_base_offsets(directory: Path) -> list[int]:
    bases = []
    for name in os.listdir(directory):
        match = SEGMENT_FILE.match(name)
        if match and match.group(2) == "log":
            bases.append(int(match.group(1)))
    bases.sort()
    return bases


def load_indexes(segment: Segment, config: LogConfig) -> list[str]:
    """Read both index files into `segment`; return what was wrong (those indexes stay empty)."""
    problems = []
    base = segment.base_offset
    try:
        data = index_path(segment.directory, base).read_bytes()
        segment.offset_index = OffsetIndex.from_bytes(data, base, segment.size, config.max_offset_index_entries)
    except FileNotFoundError:
        if segment.size:
            problems.append("offset index missing")
    except IndexCorruptError as exc:
        problems.append(f"offset index corrupt: {exc}")
    try:
        data = time_index_path(segment.directory, base).read_bytes()
        segment.time_index = TimeIndex.from_bytes(data, base, config.max_time_index_entries)
    except FileNotFoundError:
        if segment.size:
            problems.append("time index missing")
    except IndexCorruptError as exc:
        problems.append(f"time index corrupt: {exc}")
    segment.offset_index.dirty = segment.time_index.dirty = bool(problems)
    return problems


def verify_tail(segment: Segment) -> str | None:
    """Walk the headers after the last index entry, completing the segment's state.

    Sets `next_offset`, the largest timestamp and the indexing state as if every
    batch had been appended. Returns what is inconsistent (the indexes then need a
    rebuild), or None. Raises CorruptSegmentError if the `.log` is not sound.
    """
    problem = _check_first_entry(segment)
    if problem:
        return problem
    last_entry = segment.offset_index.last()
    last_time = segment.time_index.last()
    segment.bytes_since_index = 0
    segment.max_timestamp, segment.offset_of_max_timestamp = last_time if last_time else (-1, -1)
    start = 0
    if last_entry is not None:
        segment.next_offset = last_entry[0]
        start = last_entry[1]
    entries = len(segment.offset_index)
    for header in segment.headers(start):
        problem = _offset_problem(segment, header)
        if problem:
            raise CorruptSegmentError(problem, segment.path, header.position)
        if last_entry is not None and header.position == start:
            if header.base_offset != last_entry[0]:
                return (
                    f"last index entry names offset {last_entry[0]} but byte {start} holds offset {header.base_offset}"
                )
            # the indexed batch: account it without indexing it again
            if header.max_timestamp > segment.max_timestamp:
                segment.max_timestamp, segment.offset_of_max_timestamp = header.max_timestamp, header.base_offset
            segment.bytes_since_index = header.size
            segment.next_offset = header.next_offset
            continue
        segment.index_batch(header, header.position)
        if len(segment.offset_index) != entries:
            return f"offset index lacks the entry for offset {header.base_offset} at byte {header.position}"
    if last_time is not None:
        if last_time[1] >= segment.next_offset:
            return f"time index names offset {last_time[1]}, past the segment's end {segment.next_offset}"
        if segment.max_timestamp > last_time[0]:
            return f"time index ends at timestamp {last_time[0]} but a batch has {segment.max_timestamp}"
    elif segment.max_timestamp >= 0:
        return f"time index is empty but batches carry timestamps up to {segment.max_timestamp}"
    return None


def _check_first_entry(segment: Segment) -> str | None:
    """The first index entry must sit where the indexing rule puts it (catches lost leading entries)."""
    if not len(segment.offset_index):
        return None  # verify_tail replays the rule over the whole segment
    first_offset = segment.base_offset + segment.offset_index.relative_offsets[0]
    first_position = segment.offset_index.positions[0]
    since = 0
    for header in segment.headers(0):
        if since > segment.index_interval:
            if (header.position, header.base_offset) != (first_position, first_offset):
                return (
                    f"first index entry is ({first_offset}, byte {first_position}) "
                    f"but the rule puts it at ({header.base_offset}, byte {header.position})"
                )
            return None
        since += header.size
    return f"first index entry ({first_offset}, byte {first_position}) is not at a batch the rule indexes"


def _offset_problem(segment: Segment, header) -> str | None:
    if header.base_offset < segment.next_offset:
        return f"batch offset {header.base_offset} is below the expected {segment.next_offset}"
    if header.base_offset + header.last_offset_delta - segment.base_offset > MAX_INT32:
        return f"batch offset {header.base_offset} is too far from the segment base {segment.base_offset}"
    return None


def recover_segment(
    segment: Segment, min_offset: int, chunk_bytes: int = RECOVERY_CHUNK_BYTES
) -> tuple[int, str | None]:
    """Scan the whole `.log` with CRC checks, rebuild the indexes, truncate at the first unsound batch.

    Returns (bytes discarded, why). `min_offset` is the least acceptable first offset
    (the previous segment's next offset).
    """
    segment.reset_indexes()
    segment.next_offset = max(segment.base_offset, min_offset)
    file_size = os.fstat(segment.fd).st_size
    buf = bytearray(max(BATCH_HEADER_SIZE, min(chunk_bytes, file_size)))
    view = memoryview(buf)
    pos = 0
    reason = None
    while pos < file_size:
        n = os.preadv(segment.fd, [view[: min(len(buf), file_size - pos)]], pos)
        if n <= 0:
            reason = "unexpected end of file"
            break
        result = scan_batches(view, 0, n)
        for header in result.headers:
            reason = _offset_problem(segment, header)
            if reason:
                pos += header.position
                break
            segment.index_batch(header, pos + header.position)
        if reason:
            break
        pos += result.end
        if result.error is None:
            continue
        if not result.incomplete:
            reason = result.error
            break
        if pos + result.needed > file_size:
            reason = f"torn write: {result.error} at the end of the file"
            break
        if result.needed > len(buf):
            header, reason = _check_large_batch(segment.fd, pos, result.needed, view)
            if reason is None:
                reason = _offset_problem(segment, header)
            if reason:
                break
            segment.index_batch(header, pos)
            pos += header.size
    discarded = file_size - pos
    if discarded:
        segment.truncate(pos)
    segment.size = pos
    return discarded, (f"at byte {pos}: {reason}" if reason else None)


def _check_large_batch(fd: int, pos: int, size: int, view: memoryview):
    """CRC-check a batch larger than the scan buffer by streaming it through the buffer."""
    header = parse_batch_header(os.pread(fd, BATCH_HEADER_SIZE, pos), 0)
    header.position = pos
    crc = 0
    at = pos + 21
    end = pos + size
    while at < end:
        n = os.preadv(fd, [view[: min(len(view), end - at)]], at)
        if n <= 0:
            return header, "unexpected end of file"
        crc = crc32c(view[:n], crc)
        at += n
    if crc != header.crc:
        return header, (
            f"CRC-32C mismatch in batch at offset {header.base_offset}: stored {header.crc:#010x}, computed {crc:#010x}"
        )
    return header, None


def load_segments(
    directory: Path,
    config: LogConfig,
    *,
    clean: bool,
    recovery_point: int,
    jitter: Callable[[], int],
) -> tuple[list[Segment], list[Segment]]:
    """Open and check every segment; returns (segments, those scanned by recovery).

    The scanned ones hold data that may never have been fsync'd: the caller syncs them.
    """
    remove_leftovers(directory)
    bases = segment_base_offsets(directory)
    segments: list[Segment] = []
    try:
        for base in bases:
            segments.append(Segment.open_existing(directory, base, config, jitter()))
    except BaseException:
        for segment in segments:
            segment.close()
        raise
    try:
        return _check_segments(directory, config, segments, clean, recovery_point)
    except BaseException:
        for segment in segments:
            segment.close()
        raise


def _check_segments(
    directory: Path, config: LogConfig, segments: list[Segment], clean: bool, recovery_point: int
) -> tuple[list[Segment], list[Segment]]:
    bases = [segment.base_offset for segment in segments]
    first_scanned = len(segments) if clean else max(0, bisect_right(bases, recovery_point) - 1)
    previous_next = 0
    scanned: list[Segment] = []
    for i, segment in enumerate(segments):
        if segment.base_offset < previous_next:
            raise LogStorageError(
                f"segment {segment.path.name} starts at offset {segment.base_offset}, "
                f"below the previous segment's end {previous_next}: segments overlap",
                directory,
            )
        if i < first_scanned:
            _load_trusted(segment, config, previous_next)
        else:
            discarded, reason = recover_segment(segment, previous_next)
            scanned.append(segment)
            if reason is not None:
                later = segments[i + 1 :]
                lost = discarded + sum(s.size for s in later)
                logger.warning(
                    "%s: recovery truncated segment %s %s; discarded %d bytes (%d later segment(s) deleted); "
                    "log now ends at offset %d",
                    directory, segment.path.name, reason, lost, len(later), segment.next_offset,
                )
                for other in later:
                    delete_segment_files(other)
                del segments[i + 1 :]
                break
        previous_next = segment.next_offset
    for segment in segments[:-1]:
        if not segment.sealed:
            segment.seal()
    return segments, scanned


def _load_trusted(segment: Segment, config: LogConfig, previous_next: int) -> None:
    problems = load_indexes(segment, config)
    try:
        if not problems:
            problem = verify_tail(segment)
            if problem is None:
                return
            problems.append(problem)
        logger.warning(
            "%s: rebuilding indexes of segment %s from the log: %s",
            segment.directory, segment.path.name, "; ".join(problems),
        )
        segment.rebuild_indexes()  # not sealed yet: the caller seals non-active segments
        return
    except CorruptSegmentError as exc:
        logger.error(
            "%s: segment %s below the recovery point is damaged (%s); scanning it with CRC checks",
            segment.directory, segment.path.name, exc,
        )
    discarded, reason = recover_segment(segment, previous_next)
    if reason is not None:
        logger.error(
            "%s: truncated damaged segment %s %s; discarded %d bytes; offsets %d.. of it are lost",
            segment.directory, segment.path.name, reason, discarded, segment.next_offset,
        )


def settle_log_start(
    directory: Path, config: LogConfig, segments: list[Segment], checkpoint_lso: int | None, jitter: Callable[[], int]
) -> tuple[list[Segment], int, bool]:
    """Reconcile the checkpointed log start offset with the recovered segments.

    Deletes segments wholly below it (never the last), starts an empty log at it if
    recovery lost everything up to it, and creates the first segment of an empty
    directory. Returns (segments, log start offset, whether a segment was created).
    """
    lso = checkpoint_lso if checkpoint_lso is not None else (segments[0].base_offset if segments else 0)
    while len(segments) > 1 and segments[0].next_offset <= lso:
        logger.info(
            "%s: deleting segment %s, entirely below log start offset %d", directory, segments[0].path.name, lso
        )
        delete_segment_files(segments.pop(0))
    if segments and lso > segments[-1].next_offset:
        logger.warning(
            "%s: log start offset %d is beyond the recovered log end %d; starting an empty log at %d",
            directory, lso, segments[-1].next_offset, lso,
        )
        for segment in segments:
            delete_segment_files(segment)
        segments = []
    created = not segments
    if created:
        segments = [Segment.create(directory, lso, config, jitter())]
    return segments, max(lso, segments[0].base_offset), created


def delete_segment_files(segment: Segment) -> None:
    """Close and unlink a segment at once (only while loading: nobody reads it yet)."""
    segment.close()
    for path in segment.paths():
        path.unlink(missing_ok=True)


def clean_shutdown_marker(directory: Path) -> Path:
    return directory / CLEAN_SHUTDOWN_MARKER
