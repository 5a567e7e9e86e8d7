"""Local retention, DeleteRecords and delayed file deletion."""

from __future__ import annotations

import os

import pytest
from log_helpers import NOW, append_sized, read_all, read_headers, region_bytes

from broker.log import LogConfig, OffsetOutOfRangeError
from broker.log.retention import SegmentFacts, expired_by_size, expired_by_time, segments_to_delete

HOUR = 3_600_000


def _files(directory, suffix):
    return sorted(name for name in os.listdir(directory) if name.endswith(suffix))


def test_retention_by_time_deletes_oldest_expired_segments(open_log, log_dir):
    log = open_log(LogConfig(segment_bytes=1_000, retention_ms=10 * HOUR, file_delete_delay_ms=0))
    for hour in range(10):  # two 500-byte batches per segment, one segment per hour
        append_sized(log, 500, timestamp=NOW + hour * HOUR)
        append_sized(log, 500, timestamp=NOW + hour * HOUR + 1)
    assert len(log.segments) == 10
    assert log.apply_retention(NOW + 10 * HOUR) == []
    deleted = log.apply_retention(NOW + 12 * HOUR + 2)  # hours 0..2 are now older than 10 h
    assert deleted == [0, 2, 4]
    assert log.log_start_offset == 6 and log.segments[0].base_offset == 6
    assert [h.base_offset for h in read_all(log)] == list(range(6, 20))
    with pytest.raises(OffsetOutOfRangeError):
        log.read(5, 1_000)
    assert _files(log_dir, ".log") == [f"{base:020d}.log" for base in range(6, 20, 2)]


def test_retention_rolls_and_deletes_an_expired_active_segment(open_log):
    log = open_log(LogConfig(retention_ms=HOUR, file_delete_delay_ms=0))
    append_sized(log, 500, timestamp=NOW)
    append_sized(log, 500, timestamp=NOW)
    assert log.apply_retention(NOW + 2 * HOUR) == [0]
    assert (log.log_start_offset, log.log_end_offset) == (2, 2)
    assert [s.base_offset for s in log.segments] == [2] and log.segments[0].size_bytes == 0
    assert log.read(2, 100).records is None
    assert append_sized(log, 500).base_offset == 2


def test_retention_by_bytes(open_log):
    log = open_log(LogConfig(segment_bytes=1_000, retention_bytes=2_500, retention_ms=-1, file_delete_delay_ms=0))
    for _ in range(12):
        append_sized(log, 500)  # 6 segments of 1000 bytes
    assert log.apply_retention(NOW) == [0, 2, 4]  # 6000 -> 3000 bytes; dropping one more would go below
    assert log.size_bytes() == 3_000 and log.log_start_offset == 6
    assert log.apply_retention(NOW) == []


def test_unlimited_retention_keeps_everything(open_log):
    log = open_log(LogConfig(segment_bytes=1_000, retention_ms=-1, retention_bytes=-1))
    for _ in range(10):
        append_sized(log, 500, timestamp=0)
    assert log.apply_retention(NOW * 2) == [] and len(log.segments) == 5


def test_deleted_files_linger_for_the_delay_and_stay_readable(open_log, log_dir):
    log = open_log(LogConfig(segment_bytes=1_000, retention_ms=HOUR, file_delete_delay_ms=60_000))
    for _ in range(4):
        append_sized(log, 500, timestamp=NOW)
    append_sized(log, 500, timestamp=NOW + 10 * HOUR)
    region = log.read(0, 10_000).records
    assert log.apply_retention(NOW + 2 * HOUR) == [0, 2]
    assert _files(log_dir, ".deleted") == sorted(
        f"{base:020d}{suffix}.deleted" for base in (0, 2) for suffix in (".log", ".index", ".timeindex")
    )
    assert len(region_bytes(region)) == 1_000  # an in-flight read keeps its bytes
    assert log.purge_deleted_files(NOW + 2 * HOUR + 59_999) == 0
    assert log.purge_deleted_files(NOW + 2 * HOUR + 60_000) == 6
    assert _files(log_dir, ".deleted") == []


def test_delete_records_mid_segment(open_log, log_dir):
    log = open_log(LogConfig(segment_bytes=1_000, file_delete_delay_ms=0))
    for _ in range(10):
        append_sized(log, 500)
    assert log.delete_records_before(5) == 5
    assert log.log_start_offset == 5
    assert [s.base_offset for s in log.segments] == [4, 6, 8]  # segment [4, 6) still holds offset 5
    with pytest.raises(OffsetOutOfRangeError):
        log.read(4, 1_000)
    assert [h.base_offset for h in read_headers(log, 5, 1)] == [5]
    assert log.offset_for_timestamp(0) == (5, NOW)
    assert log.delete_records_before(3) == 5  # never moves back
    # persisted across a restart (here an unclean one)
    log.close()
    reopened = open_log(LogConfig(segment_bytes=1_000))
    assert reopened.log_start_offset == 5 and reopened.log_end_offset == 10


def test_delete_records_beyond_high_watermark_is_rejected(open_log):
    log = open_log()
    append_sized(log, 500)
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(2)
    assert log.delete_records_before(1) == 1
    assert log.read(1, 100).records is None
    assert append_sized(log, 500).base_offset == 1
    assert [h.base_offset for h in read_all(log)] == [1]


def test_retention_after_delete_records_drops_segments_below_log_start(open_log):
    log = open_log(LogConfig(segment_bytes=1_000, retention_ms=-1, file_delete_delay_ms=0))
    for _ in range(6):
        append_sized(log, 500)
    log.delete_records_before(6)  # the whole log, the active segment included
    assert log.log_start_offset == 6
    assert [s.base_offset for s in log.segments] == [4]
    assert log.maybe_roll(NOW + log.config.segment_ms + 1)
    assert log.apply_retention(NOW) == [4]
    assert [s.base_offset for s in log.segments] == [6]


def _facts(*specs):
    last = len(specs) - 1
    base = 0
    facts = []
    for i, (size, timestamp) in enumerate(specs):
        facts.append(SegmentFacts(base, base + 10, size, timestamp, i == last))
        base += 10
    return facts


def test_retention_rules_are_prefixes():
    segments = _facts((100, 10), (100, 500), (100, 20), (0, -1))
    assert expired_by_time(segments, 1_000, 900) == 1  # the young middle segment shields the third
    assert expired_by_time(segments, 10_000, 900) == 3  # never the empty active segment
    assert expired_by_size(segments, 150) == 1
    assert expired_by_size(segments, 0) == 3
    assert expired_by_size(segments, -1) == 0
    assert segments_to_delete(segments, 1_000, 900, 50, 0) == (2, "retention.bytes=50")
