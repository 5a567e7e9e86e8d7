"""Append, roll and read on real segment files."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_helpers import NOW, append, append_sized, batch_of_size, build_batch, read_all, read_headers, region_bytes

from broker.log import LogConfig, OffsetOutOfRangeError, PartitionLog
from broker.protocol.primitives import FileRegion
from broker.protocol.records import validate_batches


def test_empty_directory_gives_empty_log_at_zero(open_log, log_dir):
    log = open_log()
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (0, 0, 0)
    assert log.read(0, 1000).records is None
    assert [s.base_offset for s in log.segments] == [0] and log.segments[0].is_active
    assert (log_dir / "00000000000000000000.log").exists()


def test_append_assigns_consecutive_offsets_across_batches(open_log):
    log = open_log()
    first = append(log, build_batch([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]))
    assert (first.base_offset, first.last_offset, first.log_append_time_ms) == (0, 2, -1)
    two = build_batch([(b"d", b"4")]) + build_batch([(b"e", b"5"), (b"f", b"6")])
    second = append(log, two)
    assert (second.base_offset, second.last_offset) == (3, 5)
    assert log.log_end_offset == log.high_watermark == 6
    assert [(h.base_offset, h.records_count) for h in read_all(log)] == [(0, 3), (3, 1), (4, 2)]


def test_round_trip_across_many_rolls(open_log):
    log = open_log(LogConfig(segment_bytes=2_000, index_interval_bytes=300))
    sizes = [100 + (i * 37) % 700 for i in range(300)]
    payloads = []
    for i, size in enumerate(sizes):
        raw = batch_of_size(size, timestamp=NOW + i, count=1 + i % 3)
        payloads.append(raw)
        append(log, raw)
    assert len(log.segments) > 50
    segments = log.segments
    for before, after in zip(segments, segments[1:]):
        assert before.next_offset == after.base_offset and before.size_bytes <= 2_000
        assert before.path.name == f"{before.base_offset:020d}.log"
    headers = read_all(log)
    assert len(headers) == 300
    expected = 0
    for header, raw in zip(headers, payloads):
        assert header.base_offset == expected and header.size == len(raw)
        expected = header.next_offset
    assert expected == log.log_end_offset
    # the bytes on disk are the producer's bytes apart from the assigned base offset
    data = region_bytes(log.read(headers[120].base_offset, 1).records)
    assert data[8:] == payloads[120][8:]
    assert log.size_bytes() == sum(sizes)


def test_oversized_batch_goes_into_its_own_segment(open_log):
    log = open_log(LogConfig(segment_bytes=1_000))
    append_sized(log, 300)
    append_sized(log, 5_000)
    append_sized(log, 300)
    assert [s.size_bytes for s in log.segments] == [300, 5_000, 300]
    assert [h.size for h in read_headers(log, 1, 10)] == [5_000]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.tuples(st.integers(70, 3_000), st.integers(1, 4)), min_size=1, max_size=60),
    interval=st.sampled_from([0, 100, 1_000, 4_096]),
    segment_bytes=st.sampled_from([2_000, 10_000, 1 << 20]),
    data=st.data(),
)
def test_fetch_returns_the_batch_containing_the_offset(sizes, interval, segment_bytes, data):
    directory = Path(tempfile.mkdtemp())
    try:
        log = PartitionLog.open(directory, LogConfig(segment_bytes=segment_bytes, index_interval_bytes=interval), now_ms=NOW)
        for size, count in sizes:
            append(log, batch_of_size(max(size, 60 + 10 * count), count=count))
        for _ in range(10):
            offset = data.draw(st.integers(0, log.log_end_offset - 1))
            max_bytes = data.draw(st.integers(0, 8_000))
            headers = read_headers(log, offset, max_bytes)
            assert headers[0].base_offset <= offset <= headers[0].last_offset
            assert len(headers) == 1 or sum(h.size for h in headers) <= max_bytes
            for before, after in zip(headers, headers[1:]):
                assert before.next_offset == after.base_offset
        log.close()
    finally:
        shutil.rmtree(directory)


def test_max_bytes_whole_batches_only_and_kip74(open_log):
    log = open_log(LogConfig(index_interval_bytes=250))
    for _ in range(10):
        append_sized(log, 500)
    assert [h.base_offset for h in read_headers(log, 0, 1_499)] == [0, 1]
    assert [h.base_offset for h in read_headers(log, 0, 1_500)] == [0, 1, 2]
    assert [h.base_offset for h in read_headers(log, 3, 100)] == [3]  # one whole batch beyond max_bytes
    assert log.read(3, 100, min_one_batch=False).records == b""
    assert [h.base_offset for h in read_headers(log, 3, 100_000)] == list(range(3, 10))
    result = log.read(4, 1_000)
    assert isinstance(result.records, FileRegion) and result.records.offset == 2_000
    assert (result.high_watermark, result.log_start_offset) == (10, 0)
    region_bytes(result.records)


def test_read_stays_within_one_segment(open_log):
    log = open_log(LogConfig(segment_bytes=1_000))
    for _ in range(6):
        append_sized(log, 400)
    assert [h.base_offset for h in read_headers(log, 0, 10_000)] == [0, 1]
    assert [h.base_offset for h in read_headers(log, 2, 10_000)] == [2, 3]


def test_read_out_of_range(open_log):
    log = open_log()
    append(log, build_batch([(b"k", b"v")] * 5))
    assert log.read(5, 100).records is None
    for bad in (6, 100, -1):
        with pytest.raises(OffsetOutOfRangeError) as info:
            log.read(bad, 100)
        assert (info.value.offset, info.value.log_start_offset, info.value.log_end_offset) == (bad, 0, 5)


def test_read_region_is_a_private_fd_that_outlives_the_log(open_log):
    log = open_log()
    append_sized(log, 200)
    region = log.read(0, 1_000).records
    log.delete()
    assert len(os.pread(region.fd, region.size, region.offset)) == 200
    os.close(region.fd)


def test_offset_for_timestamp(open_log):
    log = open_log(LogConfig(segment_bytes=1_500, index_interval_bytes=100))
    timestamps = [100, 200, 150, 300, 300, 250, 400, 500, 450, 600]
    for ts in timestamps:
        append(log, build_batch([(b"k", b"v" * 300, (), ts - 5), (b"k", b"w", (), ts)]))
    # batch i holds offset 2i at timestamps[i] - 5 and 2i + 1 at timestamps[i]
    records = [(2 * i + j, ts - 5 + 5 * j) for i, ts in enumerate(timestamps) for j in (0, 1)]
    for target in range(0, 700, 5):
        expected = next(((offset, ts) for offset, ts in records if ts >= target), None)
        assert log.offset_for_timestamp(target) == expected, target
    assert log.max_timestamp_and_offset() == (600, 19)


def test_max_timestamp_of_empty_log(open_log):
    assert open_log().max_timestamp_and_offset() == (-1, -1)
    assert open_log().offset_for_timestamp(0) is None


def test_log_append_time_stamps_batches(open_log):
    log = open_log(LogConfig(message_timestamp_type="LogAppendTime"))
    result = append(log, build_batch([(b"k", b"v", (), 5)]), now_ms=NOW + 42)
    assert result.log_append_time_ms == NOW + 42
    (header,) = validate_batches(region_bytes(log.read(0, 1_000).records))
    assert header.timestamp_type == 1 and header.max_timestamp == NOW + 42
    assert log.offset_for_timestamp(NOW) == (0, NOW + 42)


def test_time_based_roll(open_log):
    log = open_log(LogConfig(segment_ms=1_000))
    assert not log.maybe_roll(NOW + 10_000)  # empty active segment never rolls
    append_sized(log, 200, now_ms=NOW)
    assert not log.maybe_roll(NOW + 1_000)
    assert log.maybe_roll(NOW + 1_001)
    assert [s.base_offset for s in log.segments] == [0, 1]
    append_sized(log, 200, now_ms=NOW + 1_100)
    append_sized(log, 200, now_ms=NOW + 2_200)  # the append itself rolls the expired segment
    assert [s.base_offset for s in log.segments] == [0, 1, 2]


def test_roll_when_index_is_full(open_log):
    log = open_log(LogConfig(index_interval_bytes=0, segment_index_bytes=24))  # 3 offset / 2 time entries
    for i in range(10):
        append_sized(log, 100, timestamp=NOW + i)
    assert len(log.segments) > 2
    assert [h.base_offset for h in read_all(log)] == list(range(10))


def test_update_config_takes_effect(open_log):
    log = open_log()
    append_sized(log, 500)
    log.update_config(LogConfig(segment_bytes=600))
    append_sized(log, 500)
    assert len(log.segments) == 2 and log.config.segment_bytes == 600


def test_append_rejects_no_batches(open_log):
    with pytest.raises(ValueError):
        open_log().append(bytearray(), [], NOW)
