"""Offset and time index math and on-disk format checks."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.log.offset_index import IndexCorruptError, OffsetIndex
from broker.log.time_index import TimeIndex

BASE = 1_000


def strictly_increasing_pairs(min_size=0, max_size=60):
    return st.lists(
        st.tuples(st.integers(1, 50), st.integers(1, 5_000)), min_size=min_size, max_size=max_size
    ).map(_accumulate)


def _accumulate(steps):
    offset = position = 0
    pairs = []
    for offset_step, position_step in steps:
        offset += offset_step
        position += position_step
        pairs.append((BASE + offset, position))
    return pairs


@given(strictly_increasing_pairs(), st.integers(BASE - 5, BASE + 3_000))
def test_offset_lookup_is_the_floor_entry(pairs, target):
    index = OffsetIndex(BASE, 10_000)
    for offset, position in pairs:
        assert index.append(offset, position)
    expected = (BASE, 0)
    for offset, position in pairs:
        if offset <= target:
            expected = (offset, position)
    assert index.lookup(target) == expected


@given(strictly_increasing_pairs(), st.integers(0, 400_000))
def test_position_floor(pairs, target):
    index = OffsetIndex(BASE, 10_000)
    for offset, position in pairs:
        index.append(offset, position)
    expected = (BASE, 0)
    for offset, position in pairs:
        if position <= target:
            expected = (offset, position)
    assert index.floor_position(target) == expected


@given(strictly_increasing_pairs(min_size=1))
def test_offset_index_file_round_trip(pairs):
    index = OffsetIndex(BASE, 10_000)
    for offset, position in pairs:
        index.append(offset, position)
    data = index.to_bytes()
    assert len(data) == 8 * len(pairs)
    assert struct.unpack_from(">ii", data, 0) == (pairs[0][0] - BASE, pairs[0][1])
    loaded = OffsetIndex.from_bytes(data, BASE, pairs[-1][1] + 1, 10_000)
    assert list(zip(loaded.relative_offsets, loaded.positions)) == [(o - BASE, p) for o, p in pairs]


def test_offset_index_rejects_bad_files():
    good = struct.pack(">iiii", 3, 100, 7, 200)
    OffsetIndex.from_bytes(good, BASE, 201, 10)
    with pytest.raises(IndexCorruptError, match="multiple of 8"):
        OffsetIndex.from_bytes(good[:-3], BASE, 201, 10)
    with pytest.raises(IndexCorruptError, match="does not follow"):
        OffsetIndex.from_bytes(struct.pack(">iiii", 7, 100, 3, 200), BASE, 201, 10)
    with pytest.raises(IndexCorruptError, match="does not follow"):
        OffsetIndex.from_bytes(struct.pack(">iiii", 3, 200, 7, 100), BASE, 201, 10)
    with pytest.raises(IndexCorruptError, match="past the 150-byte log"):
        OffsetIndex.from_bytes(good, BASE, 150, 10)
    with pytest.raises(IndexCorruptError, match="does not follow"):
        OffsetIndex.from_bytes(struct.pack(">ii", -4, 100), BASE, 201, 10)


def test_offset_index_full():
    index = OffsetIndex(BASE, 2)
    assert index.append(BASE + 1, 10) and index.append(BASE + 2, 20)
    assert index.is_full and not index.append(BASE + 3, 30)
    assert len(index) == 2


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 10)), max_size=50), st.integers(-1, 10**6 + 10))
def test_time_index_keeps_only_rising_timestamps_and_finds_the_last_entry_below(candidates, target):
    index = TimeIndex(BASE, 10_000)
    offset = BASE
    kept = []
    for timestamp, step in candidates:
        offset += step
        if index.maybe_append(timestamp, offset):
            kept.append((timestamp, offset))
    timestamps = [t for t, _ in kept]
    assert timestamps == sorted(set(timestamps))
    below = [o for t, o in kept if t < target]
    assert index.lookup_before(target) == (below[-1] if below else None)
    if kept:
        loaded = TimeIndex.from_bytes(index.to_bytes(), BASE, 10_000)
        assert [loaded.last()] == [kept[-1]] and len(loaded) == len(kept)


def test_time_index_rejects_bad_files_and_ignores_missing_timestamps():
    with pytest.raises(IndexCorruptError, match="multiple of 12"):
        TimeIndex.from_bytes(b"\x00" * 13, BASE, 10)
    with pytest.raises(IndexCorruptError, match="does not follow"):
        TimeIndex.from_bytes(struct.pack(">qiqi", 50, 1, 40, 2), BASE, 10)
    index = TimeIndex(BASE, 1)
    assert not index.maybe_append(-1, BASE)
    assert index.maybe_append(5, BASE + 1)
    assert not index.maybe_append(9, BASE + 2)  # full
    assert index.maybe_append(9, BASE + 2, force=True)
