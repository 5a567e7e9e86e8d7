"""Records inside one batch (broker.protocol.record_decoding): every codec, as
real client libraries encode it, plus malformed input and decompression bombs."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import cramjam
import lz4.frame
import pytest
import zstandard
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))

from record_batches import build_batch  # noqa: E402

from broker.protocol.record_decoding import (  # noqa: E402
    GZIP,
    LZ4,
    NONE,
    SNAPPY,
    ZSTD,
    Record,
    decompress,
    iter_records,
    record_timestamps,
)
from broker.protocol.records import (  # noqa: E402
    ATTRIBUTES_POS,
    BATCH_HEADER_SIZE,
    CONTROL_BIT,
    CorruptRecordError,
    parse_batch_header,
    set_log_append_time,
    validate_batches,
)

T0 = 1_700_000_000_000
CODECS = [NONE, GZIP, SNAPPY, LZ4, ZSTD]

# Values repeat so that kafka-python actually compresses (it falls back to an
# uncompressed batch when compression does not pay).
record_strategy = st.tuples(
    st.one_of(st.none(), st.binary(max_size=12)),
    st.one_of(st.none(), st.sampled_from([b"", b"abc" * 40, b"x" * 300, b"\x00\x01" * 70])),
    st.lists(st.tuples(st.text(max_size=6), st.one_of(st.none(), st.binary(max_size=6))), max_size=2),
    st.integers(-50_000, 50_000),  # timestamp offset from T0: not monotonic within a batch
)
records_strategy = st.lists(record_strategy, min_size=1, max_size=40)


def _expected(records, base_offset: int = 0) -> list[Record]:
    return [
        Record(base_offset + i, T0 + ts, key, value, tuple(headers))
        for i, (key, value, headers, ts) in enumerate(records)
    ]


def kafka_python_batch(records, codec: int, base_offset: int = 0) -> bytes:
    """A batch built by kafka-python's own encoder (the producer's code path)."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=False, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 24,
    )
    for i, (key, value, headers, ts) in enumerate(records):
        assert builder.append(i, T0 + ts, key, value, list(headers)) is not None
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)  # baseOffset is outside the CRC, as the broker sets it
    return bytes(raw)


def recompressed(batch: bytes, codec: int, compress) -> bytes:
    """The uncompressed `batch` with its records section run through `compress`
    (a codec's framing that no client library here produces, e.g. raw snappy)."""
    header = parse_batch_header(batch)
    body = compress(batch[BATCH_HEADER_SIZE:])
    after_crc = bytearray(batch[ATTRIBUTES_POS:BATCH_HEADER_SIZE] + body)
    struct.pack_into(">h", after_crc, 0, (header.attributes & ~0x07) | codec)
    head = struct.pack(">qiibI", header.base_offset, 9 + len(after_crc), -1, 2, crc32c(after_crc))
    return head + bytes(after_crc)


def with_body(batch: bytes, body: bytes) -> bytes:
    """`batch` with its records section replaced and batchLength and CRC fixed up."""
    after_crc = batch[ATTRIBUTES_POS:BATCH_HEADER_SIZE] + body
    return struct.pack(">qiibI", 0, 9 + len(after_crc), -1, 2, crc32c(after_crc)) + after_crc


def patched(batch: bytes, fmt: str, pos: int, value) -> bytes:
    """`batch` with a header field overwritten and its CRC recomputed."""
    raw = bytearray(batch)
    struct.pack_into(fmt, raw, pos, value)
    struct.pack_into(">I", raw, 17, crc32c(raw[ATTRIBUTES_POS:]))
    return bytes(raw)


# -- round trips ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records_strategy, st.integers(0, 2**40))
def test_uncompressed_round_trip(records, base_offset):
    batch = build_batch([(k, v, h, T0 + ts) for k, v, h, ts in records], base_offset=base_offset)
    expected = _expected(records, base_offset)
    assert list(iter_records(batch)) == expected
    assert list(record_timestamps(batch)) == [(r.offset, r.timestamp) for r in expected]


@pytest.mark.parametrize("codec", CODECS, ids=["none", "gzip", "snappy", "lz4", "zstd"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=records_strategy, base_offset=st.integers(0, 2**40))
def test_kafka_python_batches_round_trip(codec, records, base_offset):
    batch = kafka_python_batch(records, codec, base_offset)
    header = parse_batch_header(batch)
    assert validate_batches(batch)  # the broker would accept it
    expected = _expected(records, base_offset)
    if header.compression != codec:  # kafka-python sends uncompressed when it does not pay
        assert header.compression == NONE and sum(len(r[1] or b"") for r in records) < 200
    assert list(iter_records(batch)) == expected
    assert list(record_timestamps(batch)) == [(r.offset, r.timestamp) for r in expected]


def _big_records(n=300):
    # > 32 KiB of records: several xerial snappy blocks, several zstd/lz4 blocks
    return [(b"key-%d" % i, b"value %d " % i * 20, [("h", b"%d" % i)], (i * 7919) % 5000) for i in range(n)]


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD], ids=["gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_large_compressed_batch(codec):
    records = _big_records()
    batch = kafka_python_batch(records, codec)
    assert parse_batch_header(batch).compression == codec
    assert list(iter_records(batch)) == _expected(records)


FRAMINGS = {
    # librdkafka-style snappy: one raw block, no xerial header
    "snappy-raw": (SNAPPY, lambda body: bytes(cramjam.snappy.compress_raw(body))),
    # Java's ZstdOutputStream: a streamed frame without a content size
    "zstd-streamed": (ZSTD, lambda body: _zstd_streamed(body)),
    "zstd-two-frames": (ZSTD, lambda body: _zstd_streamed(body[:100]) + zstandard.compress(body[100:])),
    "gzip-two-members": (GZIP, lambda body: gzip.compress(body[:100]) + gzip.compress(body[100:])),
    "lz4-block-checksums": (LZ4, lambda body: lz4.frame.compress(body, block_checksum=True, content_checksum=True)),
}


def _zstd_streamed(data: bytes) -> bytes:
    compressor = zstandard.ZstdCompressor().compressobj()
    out = compressor.compress(data) + compressor.flush()
    assert zstandard.get_frame_parameters(out).content_size == zstandard.CONTENTSIZE_UNKNOWN
    return out


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_other_framings(framing):
    codec, compress = FRAMINGS[framing]
    records = _big_records()
    plain = build_batch([(k, v, h, T0 + ts) for k, v, h, ts in records])
    batch = recompressed(plain, codec, compress)
    assert validate_batches(batch)
    assert list(iter_records(batch)) == _expected(records)


def test_log_append_time_gives_every_record_the_batch_max_timestamp():
    records = [(b"k", b"v" * 100, [], ts) for ts in (5, 1, 9)]
    for codec in CODECS:
        buf = bytearray(kafka_python_batch(records, codec))
        set_log_append_time(buf, validate_batches(buf), T0 + 123_456)
        assert list(record_timestamps(buf)) == [(0, T0 + 123_456), (1, T0 + 123_456), (2, T0 + 123_456)]


def test_control_batch_yields_no_records():
    batch = build_batch([(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", (), T0)], attributes=CONTROL_BIT)
    assert list(iter_records(batch)) == []
    assert list(record_timestamps(batch)) == []


def test_batch_inside_a_larger_buffer():
    first = build_batch([(b"a", b"1", (), T0), (b"b", b"2", (), T0 + 1)], base_offset=10)
    second = build_batch([(b"c", b"3", (), T0 + 5)], base_offset=12)
    buf = first + second
    assert list(record_timestamps(buf, len(first))) == [(12, T0 + 5)]
    with pytest.raises(CorruptRecordError) as info:
        list(record_timestamps(b"\x00" * 7 + second[:-1], 7))
    assert info.value.position == 7


def test_timestamp_walk_is_lazy_and_skips_record_bodies():
    """The timestamp walk stops where the caller stops and never parses keys,
    values or headers: a damaged header in a later record goes unnoticed."""
    records = [(b"k", b"v", [("h", b"1")], T0 + i) for i in range(3)]
    batch = bytearray(build_batch(records))
    damaged = bytes(batch).rindex(b"\x02h")  # header key length 1 -> -1
    batch[damaged] = 0x01
    struct.pack_into(">I", batch, 17, crc32c(batch[ATTRIBUTES_POS:]))
    assert list(record_timestamps(batch)) == [(i, T0 + i) for i in range(3)]
    walk = iter_records(batch)
    assert next(walk).offset == 0 and next(walk).offset == 1
    with pytest.raises(CorruptRecordError, match="header key"):
        next(walk)


# -- malformed input --------------------------------------------------------------------


def _fully(buf, **kwargs):
    return list(iter_records(buf, **kwargs)), list(record_timestamps(buf, **kwargs))


@pytest.mark.parametrize("codec", CODECS, ids=["none", "gzip", "snappy", "lz4", "zstd"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_batches_raise_only_corrupt_record_error(codec, data):
    records = data.draw(st.lists(record_strategy, min_size=1, max_size=6))
    raw = bytearray(kafka_python_batch(records + [(b"pad", b"z" * 300, [], 0)], codec))
    how = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(BATCH_HEADER_SIZE - 4, len(raw) - 1))  # recordsCount and the records
            raw[pos] = data.draw(st.integers(0, 255))
    elif how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        pos = data.draw(st.integers(BATCH_HEADER_SIZE, len(raw)))
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    if len(raw) >= BATCH_HEADER_SIZE and how != "truncate":
        struct.pack_into(">i", raw, 8, len(raw) - 12)
    try:
        _fully(bytes(raw), verify_crc=False)
    except CorruptRecordError:
        pass


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_corrupt_record_error(junk):
    for codec in (GZIP, SNAPPY, LZ4, ZSTD, 5, 7):
        try:
            decompress(codec, junk, 1 << 20)
        except CorruptRecordError:
            pass
    try:
        _fully(junk, verify_crc=False)
    except CorruptRecordError:
        pass


def test_crc_is_checked_by_default():
    raw = bytearray(build_batch([(b"k", b"v", (), T0), (b"k", b"w", (), T0 + 1)]))
    raw[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        list(record_timestamps(raw))
    list(record_timestamps(raw, verify_crc=False))  # the damage is in a value: the walk does not care


def _two_records():
    return build_batch([(b"k", b"v", (), T0), (b"k", b"w", (), T0 + 1)])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: patched(b, ">i", 57, 3), "runs past the end"),  # recordsCount says 3, 2 there
        (lambda b: patched(b, ">i", 57, 1), "bytes follow the last"),
        (lambda b: patched(b, ">i", 57, -1), "negative recordsCount"),
        (lambda b: patched(b, ">i", 23, 0), "outside"),  # lastOffsetDelta 0: offset 1 is out of range
        (lambda b: patched(b, ">h", 21, 5), "unknown compression codec 5"),
        (lambda b: patched(b, ">b", 16, 1), "magic 1"),
        (lambda b: b[:-1], "cut off"),
        (lambda b: b[:40], "truncated record batch header"),
        (lambda b: with_body(b, b[BATCH_HEADER_SIZE:] + b"\x00"), "bytes follow the last"),
        (lambda b: with_body(b, b"\x7f" + b[BATCH_HEADER_SIZE + 1 :]), "claims"),  # record length -64
        (lambda b: with_body(b, b"\xff" * 6 + b[BATCH_HEADER_SIZE:]), "varint longer than 5 bytes"),
    ],
)
def test_specific_damage_is_named(damage, message):
    with pytest.raises(CorruptRecordError, match=message):
        _fully(damage(_two_records()), verify_crc=False)


def test_offsets_must_increase():
    body = bytearray(_two_records()[BATCH_HEADER_SIZE:])
    first_length = body[0] >> 1
    body[1 + first_length + 3] = 0  # second record's offsetDelta 1 -> 0
    with pytest.raises(CorruptRecordError, match="offsets must increase"):
        list(record_timestamps(with_body(_two_records(), bytes(body))))


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD], ids=["gzip", "snappy", "lz4", "zstd"])
def test_truncated_compressed_stream(codec):
    batch = kafka_python_batch(_big_records(), codec)
    body = batch[BATCH_HEADER_SIZE:]
    for keep in (len(body) - 1, len(body) // 2, 20, 3):
        with pytest.raises(CorruptRecordError):
            list(record_timestamps(with_body(batch, body[:keep])))


# -- decompression bombs ----------------------------------------------------------------

BOMB_COMPRESSORS = {
    GZIP: gzip.compress,
    SNAPPY: lambda data: bytes(cramjam.snappy.compress_raw(data)),
    LZ4: lz4.frame.compress,
    ZSTD: zstandard.compress,
}


@pytest.mark.parametrize("codec", sorted(BOMB_COMPRESSORS), ids=["gzip", "snappy", "lz4", "zstd"])
def test_decompression_is_capped(codec):
    payload = b"\x00" * (4 << 20)
    compressed = BOMB_COMPRESSORS[codec](payload)
    assert len(compressed) < 300_000
    assert decompress(codec, compressed, len(payload)) == payload  # exactly at the cap
    with pytest.raises(CorruptRecordError, match="more than"):
        decompress(codec, compressed, len(payload) - 1)


def test_capped_for_streamed_zstd_and_xerial_snappy():
    payload = b"\x00" * (4 << 20)
    for codec, compressed in (
        (ZSTD, _zstd_streamed(payload)),
        (SNAPPY, kafka_python_batch([(None, payload, [], 0)], SNAPPY)[BATCH_HEADER_SIZE:]),
    ):
        with pytest.raises(CorruptRecordError, match="more than"):
            decompress(codec, compressed, 1 << 20)


def test_batch_decoding_uses_the_cap():
    batch = kafka_python_batch([(None, b"\x00" * (2 << 20), [], 0), (None, b"", [], 1)], ZSTD)
    assert len(batch) < 10_000
    assert [o for o, _ in record_timestamps(batch)] == [0, 1]
    with pytest.raises(CorruptRecordError, match="more than"):
        list(record_timestamps(batch, max_decompressed_bytes=1 << 20))
