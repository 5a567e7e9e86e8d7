"""Record-batch validation, offset assignment and scanning (broker.protocol.records)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))

from record_batches import batch_of_size, build_batch  # noqa: E402

from broker.protocol.records import (  # noqa: E402
    ATTRIBUTES_POS,
    BATCH_HEADER_SIZE,
    CorruptRecordError,
    InvalidRecordError,
    assign_offsets,
    parse_batch_header,
    scan_batches,
    set_log_append_time,
    validate_batches,
)

record = st.tuples(
    st.one_of(st.none(), st.binary(max_size=20)),
    st.one_of(st.none(), st.binary(max_size=200)),
    st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=8))), max_size=3),
    st.integers(min_value=0, max_value=2**41),
)
batch = st.lists(record, min_size=1, max_size=8).map(lambda records: build_batch(records))
record_set = st.lists(batch, min_size=1, max_size=5).map(b"".join)


def test_header_fields_and_properties():
    raw = build_batch(
        [(b"k", b"v", (), 1_000), (None, b"w", (), 1_500), (b"z", None, (), 1_200)],
        base_offset=40,
        attributes=0x10,
        producer_id=7,
        producer_epoch=3,
        base_sequence=11,
        leader_epoch=5,
    )
    header = parse_batch_header(raw, 0)
    assert header.size == len(raw) == 12 + header.batch_length
    assert (header.base_offset, header.last_offset, header.next_offset) == (40, 42, 43)
    assert (header.base_timestamp, header.max_timestamp) == (1_000, 1_500)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 3, 11)
    assert header.partition_leader_epoch == 5
    assert header.records_count == 3
    assert header.compression == 0 and header.timestamp_type == 0
    assert header.is_transactional and not header.is_control


def test_parse_header_needs_61_bytes():
    raw = build_batch([(b"k", b"v")])
    with pytest.raises(CorruptRecordError, match="at byte 3"):
        parse_batch_header(raw[: 3 + BATCH_HEADER_SIZE - 1], 3)


def test_kafka_python_compressed_batch_is_accepted_untouched():
    builder_module = pytest.importorskip("kafka.record.default_records")
    builder = builder_module.DefaultRecordBatchBuilder(
        magic=2, compression_type=1, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 20,
    )
    for i in range(20):
        builder.append(i, timestamp=1_000 + i, key=b"key", value=b"value %d" % i, headers=[])
    raw = bytes(builder.build())
    (header,) = validate_batches(raw)
    assert header.compression == 1 and header.records_count == 20 and header.max_timestamp == 1_019


@given(record_set)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_build_validate_assign_still_valid(raw):
    headers = validate_batches(raw)
    assert sum(h.size for h in headers) == len(raw)
    buf = bytearray(raw)
    total = sum(h.records_count for h in headers)
    last = assign_offsets(buf, headers, 1_000)
    assert last == 1_000 + total - 1
    again = validate_batches(buf)
    assert [h.base_offset for h in again] == [h.base_offset for h in headers]
    expected = 1_000
    for h in again:
        assert h.base_offset == expected
        expected = h.next_offset
    assert expected == last + 1


@given(record_set, st.integers(min_value=0, max_value=2**41))
@settings(max_examples=100)
def test_log_append_time_rewrites_max_timestamp_and_crc(raw, now_ms):
    buf = bytearray(raw)
    headers = validate_batches(buf)
    set_log_append_time(buf, headers, now_ms)
    for h in validate_batches(buf):
        assert h.timestamp_type == 1 and h.max_timestamp == now_ms


def test_log_append_time_is_what_consumers_see():
    default_records = pytest.importorskip("kafka.record.default_records")
    buf = bytearray(build_batch([(b"a", b"1", (), 10), (b"b", b"2", (), 20)]))
    set_log_append_time(buf, validate_batches(buf), 123_456)
    decoded = default_records.DefaultRecordBatch(bytes(buf))
    assert decoded.validate_crc()
    assert [r.timestamp for r in decoded] == [123_456, 123_456]


@given(batch, st.data())
@settings(max_examples=300)
def test_any_flip_in_crc_region_is_corrupt(raw, data):
    position = data.draw(st.integers(min_value=ATTRIBUTES_POS, max_value=len(raw) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    damaged = bytearray(raw)
    damaged[position] ^= flip
    with pytest.raises(CorruptRecordError):
        validate_batches(damaged)
    result = scan_batches(damaged)
    assert result.end == 0 and result.error and not result.headers


@given(record_set, st.data())
@settings(max_examples=200)
def test_truncation_is_corrupt_never_another_exception(raw, data):
    cut = data.draw(st.integers(min_value=1, max_value=len(raw) - 1))
    truncated = raw[:cut]
    headers = scan_batches(raw).headers
    boundaries = {0}
    for h in headers:
        boundaries.add(h.position + h.size)
    if cut in boundaries:
        assert len(validate_batches(truncated)) == sum(1 for h in headers if h.position + h.size <= cut)
        return
    with pytest.raises(CorruptRecordError) as info:
        validate_batches(truncated)
    assert info.value.position == max(b for b in boundaries if b < cut)
    result = scan_batches(truncated)
    assert result.end == info.value.position and result.incomplete


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_garbage_raises_only_record_errors(garbage):
    try:
        validate_batches(garbage)
    except (CorruptRecordError, InvalidRecordError):
        pass
    result = scan_batches(garbage)
    assert 0 <= result.end <= len(garbage)


def test_magic_other_than_2_is_invalid_not_corrupt():
    raw = bytearray(build_batch([(b"k", b"v")]))
    good = bytes(raw)
    raw[16] = 1
    with pytest.raises(InvalidRecordError, match="magic 1"):
        validate_batches(good + raw)
    try:
        validate_batches(good + raw)
    except InvalidRecordError as exc:
        assert exc.position == len(good)


def test_short_length_is_corrupt():
    raw = bytearray(build_batch([(b"k", b"v")]))
    struct.pack_into(">i", raw, 8, 48)
    with pytest.raises(CorruptRecordError, match="batchLength 48"):
        validate_batches(raw)


def test_count_and_last_offset_delta_must_agree():
    raw = bytearray(build_batch([(b"k", b"v"), (b"k", b"v")]))
    struct.pack_into(">i", raw, 23, 5)  # lastOffsetDelta
    headers = scan_batches(raw, verify_crc=False).headers
    set_log_append_time(raw, headers, 0)  # re-seals the CRC so only the count is wrong
    with pytest.raises(CorruptRecordError, match="lastOffsetDelta 5 but recordsCount 2"):
        validate_batches(raw)


def test_trailing_bytes_are_rejected():
    raw = build_batch([(b"k", b"v")])
    with pytest.raises(CorruptRecordError, match="trailing"):
        validate_batches(raw + b"\x00" * 5)


def test_empty_record_set_is_empty():
    assert validate_batches(b"") == []


def test_scan_stops_at_corrupt_batch_and_reports_prefix():
    batches = [batch_of_size(200), batch_of_size(300), batch_of_size(250)]
    raw = bytearray(b"".join(batches))
    raw[200 + 150] ^= 0xFF
    result = scan_batches(raw)
    assert result.end == 200 and len(result.headers) == 1
    assert "CRC" in result.error and not result.incomplete
    assert scan_batches(raw, verify_crc=False).end == len(raw)


def test_scan_from_position_and_incomplete_need():
    raw = b"".join([batch_of_size(100), batch_of_size(5000)])
    result = scan_batches(raw[:1000], 0)
    assert result.end == 100 and result.incomplete and result.needed == 5000
    result = scan_batches(raw, 100)
    assert result.end == len(raw) and [h.position for h in result.headers] == [100]
