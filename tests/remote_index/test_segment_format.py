"""The remote segment format: round trips for every codec, corruption, lookups, real segments."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.log import LogConfig, PartitionLog
from broker.protocol.records import assign_offsets, scan_batches, validate_batches
from remote_index.segment_format import (
    COMPRESSIONS,
    ChunkEntry,
    CorruptChunkError,
    CorruptSegmentMetaError,
    SegmentEncodeError,
    SegmentEncoder,
    SegmentMeta,
    chunk_for_offset,
    chunk_for_position,
    chunk_for_timestamp,
    decode_chunk,
    meta_size_hint,
    read_segment_indexes,
)
from tests.helpers.record_batches import batch_of_size, build_batch

NOW = 1_700_000_000_000

# (size, records, timestamp) of one batch; sizes straddle the chunk sizes drawn below.
batch_specs = st.lists(
    st.tuples(st.integers(130, 9000), st.integers(1, 4), st.integers(NOW - 10_000, NOW + 10_000)),
    min_size=1, max_size=25,
)


def build_segment(specs, base_offset: int = 0, random_values: bool = False) -> bytes:
    """Concatenated batches with consecutive offsets from `base_offset`."""
    out = bytearray()
    offset = base_offset
    rng = random.Random(len(specs))
    for size, count, timestamp in specs:
        if random_values:  # incompressible, so the codec cannot shrink it
            raw = build_batch([(None, rng.randbytes(size), (), timestamp + i) for i in range(count)])
        else:
            raw = batch_of_size(size, timestamp=timestamp, count=count)
        batch = bytearray(raw)
        offset = assign_offsets(batch, validate_batches(batch), offset) + 1
        out += batch
    return bytes(out)


def encode(segment: bytes, **kwargs) -> tuple[bytes, list[ChunkEntry], SegmentMeta]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "00000000000000000000.log"
        path.write_bytes(segment)
        with SegmentEncoder(path, len(segment), **kwargs) as encoder:
            pieces = list(encoder)
            meta = encoder.meta(b"offset-index", b"time-index")
    return b"".join(stored for stored, _ in pieces), [entry for _, entry in pieces], meta


def encode_at_once(segment: bytes, **kwargs) -> tuple[bytes, SegmentMeta]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "00000000000000000000.log"
        path.write_bytes(segment)
        with SegmentEncoder(path, len(segment), **kwargs) as encoder:
            stream = encoder.encode_all()
            meta = encoder.meta(b"offset-index", b"time-index")
    obj = stream.getvalue()
    assert stream.tell() == len(obj)  # positioned for the trailer
    stream.write(b"trailer")  # no view of the buffer is left: it may grow
    assert stream.getvalue() == obj + b"trailer"
    return obj, meta


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=batch_specs, chunk_bytes=st.integers(61, 20_000), compression=st.sampled_from(COMPRESSIONS),
       window_bytes=st.integers(1, 60_000), random_values=st.booleans())
def test_read_windows_and_encode_all_change_nothing(specs, chunk_bytes, compression, window_bytes, random_values):
    """However the file is read (windows smaller or larger than a chunk or the segment,
    an oversized batch straddling windows) and whether chunks are taken one by one or
    all at once, the object and meta are the same."""
    segment = build_segment(specs, 7, random_values)
    reference, _, meta = encode(segment, compression=compression, chunk_bytes=chunk_bytes)
    windowed, _, windowed_meta = encode(segment, compression=compression, chunk_bytes=chunk_bytes,
                                        window_bytes=window_bytes)
    at_once, at_once_meta = encode_at_once(segment, compression=compression, chunk_bytes=chunk_bytes,
                                           window_bytes=window_bytes)
    assert windowed == reference and at_once == reference
    assert windowed_meta == meta and at_once_meta == meta
    if compression == "none":
        assert at_once == segment


def test_whole_segment_read_in_place_is_the_object():
    """No compression and one window for the segment: the file is read straight into
    the object's buffer and the chunks are cut from it there; the object is the
    file's bytes, every chunk checks out, and the meta can follow it."""
    segment = build_segment([(3000, 2, NOW + i) for i in range(9)])
    obj, meta = encode_at_once(segment, chunk_bytes=7000, window_bytes=len(segment))
    assert obj == segment
    assert len(meta.chunks) > 1
    assert b"".join(decode_chunk(stored_chunk(obj, e), e, "none") for e in meta.chunks) == segment


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_encode_all_into_the_stream_of_an_object_already_sent(tmp_path, compression):
    """The uploader hands the stream of its last object back for the next: the new
    object takes it over, whether smaller or larger, and holds nothing of the old
    one (every stale byte is overwritten, and the trailer follows the new end)."""
    big = build_segment([(5000, 2, NOW + i) for i in range(12)], random_values=True)
    small = build_segment([(900, 1, NOW + i) for i in range(5)], 100, random_values=True)
    path = tmp_path / "s.log"
    stream = None
    for segment in (big, small, big):
        reference, _ = encode_at_once(segment, compression=compression, chunk_bytes=8000,
                                      window_bytes=len(segment))
        path.write_bytes(segment)
        with SegmentEncoder(path, len(segment), compression=compression, chunk_bytes=8000,
                            window_bytes=len(segment)) as encoder:
            out = encoder.encode_all(64, reuse=stream)
        assert stream is None or out is stream
        out.write(b"trailer")
        assert out.getvalue() == reference + b"trailer"
        stream = out


@pytest.mark.parametrize("chunk_bytes", [700, 4000, 50_000])
def test_meta_fits_the_room_hinted_for_it(tmp_path, chunk_bytes):
    """The uploader reserves `meta_size_hint` bytes behind the object so appending
    the meta does not move the buffer: with an index entry per batch (the densest
    the log writes) and small batches cut into many chunks, the meta still fits."""
    segment = build_segment([(600 + 37 * (i % 9), 3, NOW + i) for i in range(120)])
    path = tmp_path / "s.log"
    path.write_bytes(segment)
    offset_index, time_index = bytes(8 * 120), bytes(12 * 120)
    with SegmentEncoder(path, len(segment), chunk_bytes=chunk_bytes) as encoder:
        stream = encoder.encode_all(meta_size_hint(len(segment), chunk_bytes, offset_index, time_index))
        meta = encoder.meta(offset_index, time_index)
    assert len(meta.chunks) >= len(segment) // 50_000
    assert len(meta.to_bytes()) <= meta_size_hint(len(segment), chunk_bytes, offset_index, time_index)
    assert stream.getvalue() == segment


def stored_chunk(obj: bytes, entry: ChunkEntry) -> bytes:
    return obj[entry.object_offset:entry.object_end]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=batch_specs, chunk_bytes=st.integers(61, 20_000), compression=st.sampled_from(COMPRESSIONS),
       base_offset=st.integers(0, 2**40), random_values=st.booleans())
def test_round_trip(specs, chunk_bytes, compression, base_offset, random_values):
    segment = build_segment(specs, base_offset, random_values)
    obj, entries, meta = encode(segment, compression=compression, chunk_bytes=chunk_bytes)
    batches = scan_batches(segment).headers
    starts = {h.position for h in batches}

    assert len(obj) == meta.object_bytes and crc32c(obj) == meta.data_crc32c
    assert meta.chunks == tuple(entries) and meta.invariant_violation() is None
    assert (meta.base_offset, meta.last_offset, meta.size_bytes) == (base_offset, batches[-1].last_offset,
                                                                     len(segment))
    assert meta.max_timestamp == max(h.max_timestamp for h in batches)
    assert meta.first_timestamp == batches[0].base_timestamp
    decoded = []
    for i, entry in enumerate(entries):
        original = decode_chunk(stored_chunk(obj, entry), entry, compression, key="k")
        assert bytes(original) == segment[entry.position:entry.end_position]
        decoded.append(bytes(original))
        # Chunks are cut at batch boundaries, and greedily: whole batches up to chunk_bytes,
        # an oversized batch alone.
        inside = [h for h in batches if entry.position <= h.position < entry.end_position]
        assert entry.position in starts and sum(h.size for h in inside) == entry.length
        assert entry.length <= chunk_bytes or len(inside) == 1
        if i + 1 < len(entries):
            following = next(h for h in batches if h.position == entry.end_position)
            assert entry.length + following.size > chunk_bytes
        assert entry.batch_count == len(inside)
        assert (entry.first_offset, entry.last_offset) == (inside[0].base_offset, inside[-1].last_offset)
        assert entry.max_timestamp == max(h.max_timestamp for h in inside)
        assert entry.crc32c == crc32c(original)
        if compression == "none":
            assert not entry.compressed and entry.object_length == entry.length
        elif entry.compressed:
            assert entry.object_length < entry.length
    assert b"".join(decoded) == segment
    if compression != "none" and random_values and len(specs) > 2 and min(s[0] for s in specs) >= 1024:
        # Random values dominate such batches and do not shrink: stored as is. (In tiny
        # batches the compressible header is most of the bytes, so no such claim.)
        assert not all(e.compressed for e in entries)

    again = SegmentMeta.from_bytes(meta.to_bytes(), key="k", expected_crc32c=crc32c(meta.to_bytes()))
    assert again == meta


@pytest.mark.parametrize("compression", COMPRESSIONS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_flipped_byte_is_caught(compression, data):
    segment = build_segment([(3000, 2, NOW), (5000, 1, NOW + 1), (700, 3, NOW + 2)])
    obj, entries, _ = encode(segment, compression=compression, chunk_bytes=4000)
    entry = data.draw(st.sampled_from(entries))
    stored = bytearray(stored_chunk(obj, entry))
    at = data.draw(st.integers(0, len(stored) - 1))
    stored[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptChunkError) as info:
        decode_chunk(bytes(stored), entry, compression, key="t/0/segments/x.log")
    assert info.value.key == "t/0/segments/x.log" and info.value.chunk_index == entry.index
    assert "x.log" in str(info.value)


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_decompression_fault_is_caught_by_the_original_crc(compression):
    """Bytes damaged before their stored CRC was taken still fail: the decoder or the
    CRC of the decompressed bytes catches them."""
    segment = build_segment([(4000, 1, NOW)] * 3)
    obj, entries, _ = encode(segment, compression=compression, chunk_bytes=5000)
    for entry in entries:
        assert entry.compressed
        stored = bytearray(stored_chunk(obj, entry))
        for at in range(0, len(stored), max(1, len(stored) // 7)):
            damaged = bytearray(stored)
            damaged[at] ^= 0x40
            lying = ChunkEntry(**{**_fields(entry), "stored_crc32c": crc32c(bytes(damaged))})
            with pytest.raises(CorruptChunkError):
                decode_chunk(bytes(damaged), lying, compression)


def test_uncompressed_chunk_must_match_the_original_crc_too():
    """An uncompressed chunk is checked with one CRC, against both recorded ones: bytes
    that match a (lying) stored CRC but not the original CRC are refused, and so is
    a length that disagrees with the original length."""
    segment = build_segment([(3000, 1, NOW)])
    obj, (entry,), _ = encode(segment)
    assert not entry.compressed
    damaged = bytearray(stored_chunk(obj, entry))
    damaged[100] ^= 0x01
    lying = ChunkEntry(**{**_fields(entry), "stored_crc32c": crc32c(bytes(damaged))})
    with pytest.raises(CorruptChunkError, match="CRC-32C"):
        decode_chunk(bytes(damaged), lying, "none")
    short = ChunkEntry(**{**_fields(entry), "length": entry.length - 1})
    with pytest.raises(CorruptChunkError, match="length"):
        decode_chunk(stored_chunk(obj, entry), short, "none")


def _fields(entry: ChunkEntry) -> dict:
    return {name: getattr(entry, name) for name in ChunkEntry.__slots__}


def test_wrong_length_and_wrong_codec_are_caught():
    segment = build_segment([(2000, 1, NOW)])
    obj, (entry,), _ = encode(segment, compression="zstd")
    with pytest.raises(CorruptChunkError, match="stored length"):
        decode_chunk(obj[:-1], entry, "zstd")
    with pytest.raises(CorruptChunkError):
        decode_chunk(obj, entry, "lz4")
    with pytest.raises(CorruptChunkError):
        decode_chunk(obj, entry, "none")


def test_uncompressed_chunk_is_not_copied():
    segment = build_segment([(500, 1, NOW)])
    obj, (entry,), _ = encode(segment)
    view = memoryview(bytearray(obj))
    assert decode_chunk(view, entry, "none") is view


def test_lookups():
    # 10 batches of 3 records: offsets 100.., timestamps not monotonic.
    timestamps = [50, 10, 20, 90, 30, 40, 95, 60, 70, 80]
    segment = build_segment([(1000, 3, ts) for ts in timestamps], base_offset=100)
    _, entries, meta = encode(segment, chunk_bytes=2000)  # two batches per chunk
    assert len(entries) == 5 and all(e.batch_count == 2 for e in entries)
    for offset in range(100, 130):
        i = chunk_for_offset(meta, offset)
        assert entries[i].first_offset <= offset <= entries[i].last_offset
    assert chunk_for_offset(meta, 0) == 0
    assert chunk_for_offset(meta, 130) is None

    def brute_force(ts):
        for e in entries:
            if e.max_timestamp >= ts:
                return e.index
        return None

    for ts in range(100):  # each batch's records share its timestamp; two batches a chunk
        expected = next((i // 2 for i, t in enumerate(timestamps) if t >= ts), None)
        assert chunk_for_timestamp(meta, ts) == expected == brute_force(ts)

    for e in entries:
        assert chunk_for_position(meta, e.position) == e.index
        assert chunk_for_position(meta, e.end_position - 1) == e.index
    assert chunk_for_position(meta, len(segment)) is None
    assert chunk_for_position(meta, -1) is None


def test_encoder_reads_from_an_fd_and_step_by_step(tmp_path):
    segment = build_segment([(3000, 1, NOW)] * 4)
    path = tmp_path / "seg.log"
    path.write_bytes(segment + b"\0" * 100)  # bytes past `size` (preallocation) are not read
    fd = os.open(path, os.O_RDONLY)
    try:
        encoder = SegmentEncoder(fd, len(segment), compression="lz4", chunk_bytes=6000, base_offset=0)
        steps = []
        while (step := encoder.next_chunk()) is not None:
            steps.append(step)
        assert encoder.done and len(steps) == 2
        with pytest.raises(StopIteration):
            next(encoder)
        encoder.close()
        os.fstat(fd)  # a borrowed fd stays open
    finally:
        os.close(fd)
    obj = b"".join(s for s, _ in steps)
    assert b"".join(decode_chunk(stored_chunk(obj, e), e, "lz4") for _, e in steps) == segment


def test_meta_before_the_end_is_refused(tmp_path):
    segment = build_segment([(3000, 1, NOW)] * 2)
    (tmp_path / "s.log").write_bytes(segment)
    with SegmentEncoder(tmp_path / "s.log", len(segment), chunk_bytes=3000) as encoder:
        encoder.next_chunk()
        with pytest.raises(RuntimeError):
            encoder.meta()


@pytest.mark.parametrize("whole", [False, True], ids=["chunk-by-chunk", "whole-in-place"])
@pytest.mark.parametrize("damage", ["truncated", "torn_tail", "bad_crc", "size_mid_batch"])
def test_unsound_local_segment_is_refused(tmp_path, damage, whole):
    """Refused whether chunks are taken one by one or the whole file is read into
    the object's buffer and checked there (`encode_all` with one window)."""
    segment = bytearray(build_segment([(2000, 1, NOW)] * 5))
    size = len(segment)
    if damage == "truncated":
        segment = segment[:-500]  # the file is shorter than the size we were told
    elif damage == "torn_tail":
        segment = segment[:-500]
        size = len(segment)
    elif damage == "bad_crc":
        segment[2000 * 3 + 100] ^= 1
    else:
        size -= 1
    path = tmp_path / "s.log"
    path.write_bytes(segment)
    with pytest.raises(SegmentEncodeError) as info, SegmentEncoder(
            path, size, chunk_bytes=4500, window_bytes=size if whole else None) as encoder:
        encoder.encode_all() if whole else list(encoder)
    assert info.value.path == str(path)


def test_base_offset_above_the_first_batch_is_refused(tmp_path):
    segment = build_segment([(500, 1, NOW)], base_offset=10)
    (tmp_path / "s.log").write_bytes(segment)
    with SegmentEncoder(tmp_path / "s.log", len(segment), base_offset=11) as encoder:
        list(encoder)
        with pytest.raises(SegmentEncodeError):
            encoder.meta()
    with SegmentEncoder(tmp_path / "s.log", len(segment), base_offset=5) as encoder:
        list(encoder)
        assert encoder.meta().base_offset == 5  # a segment's base may sit below its first batch


def test_bad_arguments():
    with pytest.raises(ValueError):
        SegmentEncoder(0, 10, compression="gzip")
    with pytest.raises(ValueError):
        SegmentEncoder(0, 10, chunk_bytes=10)
    with pytest.raises(ValueError):
        SegmentEncoder(0, 0)


def test_meta_corruption_is_caught():
    segment = build_segment([(3000, 1, NOW)] * 3)
    _, _, meta = encode(segment, compression="zstd", chunk_bytes=3000)
    data = meta.to_bytes()
    for at in range(0, len(data), 37):
        damaged = bytearray(data)
        damaged[at] ^= 0x01
        with pytest.raises(CorruptSegmentMetaError) as info:
            SegmentMeta.from_bytes(bytes(damaged), key="m.meta")
        assert info.value.key == "m.meta"
    with pytest.raises(CorruptSegmentMetaError, match="manifest"):
        SegmentMeta.from_bytes(data, expected_crc32c=crc32c(data) ^ 1)
    with pytest.raises(CorruptSegmentMetaError):
        SegmentMeta.from_bytes(b"")


def test_real_segment_with_its_indexes(tmp_path):
    """A segment rolled by the local log, with its real .index and .timeindex."""
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=64 * 1024, index_interval_bytes=4096),
                            now_ms=NOW)
    try:
        rng = random.Random(7)
        while len(log.segments) < 3:
            batch = bytearray(batch_of_size(rng.randrange(200, 6000), timestamp=NOW + rng.randrange(1000),
                                            count=rng.randrange(1, 4)))
            log.append(batch, validate_batches(batch), NOW)
        sealed = [s for s in log.segments if not s.is_active]
        for info in sealed:
            offset_index, time_index = read_segment_indexes(info.path)
            assert offset_index and time_index
            with SegmentEncoder(info.path, info.size_bytes, compression="zstd", chunk_bytes=16 * 1024,
                                base_offset=info.base_offset) as encoder:
                pieces = list(encoder)
                meta = encoder.meta(offset_index, time_index)
            assert meta.base_offset == info.base_offset and meta.next_offset == info.next_offset
            assert meta.max_timestamp == info.max_timestamp_ms
            meta = SegmentMeta.from_bytes(meta.to_bytes())
            assert (meta.offset_index, meta.time_index) == (offset_index, time_index)
            obj = b"".join(s for s, _ in pieces)
            original = info.path.read_bytes()[:info.size_bytes]
            # Each offset-index entry names a batch; its chunk must hold that batch's offset.
            for i in range(0, len(offset_index), 8):
                relative = int.from_bytes(offset_index[i:i + 4], "big", signed=True)
                position = int.from_bytes(offset_index[i + 4:i + 8], "big", signed=True)
                chunk = meta.chunks[chunk_for_position(meta, position)]
                assert chunk_for_offset(meta, info.base_offset + relative) == chunk.index
                data = decode_chunk(stored_chunk(obj, chunk), chunk, "zstd")
                assert data[position - chunk.position:][:8] == (info.base_offset + relative).to_bytes(8, "big")
                assert bytes(data) == original[chunk.position:chunk.end_position]
    finally:
        log.close()
