"""Appends reserve disk blocks ahead of the active segment's end, and the
reservation never shows: a segment file's size is what was written, and the
reserved blocks are handed back when the segment rolls, when the log closes,
and when a segment left behind by a crash rolls after recovery."""

from __future__ import annotations

import os

import pytest
from log_helpers import append_sized, crash, read_all

from broker.log import LogConfig
from broker.log.preallocate import (
    RESERVE_AHEAD_APPENDS,
    RESERVE_AHEAD_BYTES,
    RESERVE_AHEAD_MAX_BYTES,
    reserve_ahead,
    reserve_space,
)

BATCH = 100_000


def allocated(path) -> int:
    return os.stat(path).st_blocks * 512


@pytest.fixture
def reservable(tmp_path):
    """Skip where the file system under the test cannot reserve blocks."""
    probe = tmp_path / "probe"
    fd = os.open(probe, os.O_RDWR | os.O_CREAT)
    try:
        reserve_space(fd, 0, RESERVE_AHEAD_BYTES)
        if allocated(probe) < RESERVE_AHEAD_BYTES:
            pytest.skip("this file system does not reserve blocks with fallocate")
    finally:
        os.close(fd)
        probe.unlink()


def segment_paths(log):
    return [segment.path for segment in log._segments]


def test_appends_reserve_ahead_without_changing_the_file_size(reservable, open_log):
    log = open_log()
    for _ in range(3):
        append_sized(log, BATCH)
    path = segment_paths(log)[-1]
    assert os.path.getsize(path) == 3 * BATCH
    assert allocated(path) >= 3 * BATCH + RESERVE_AHEAD_BYTES // 2
    assert [h.base_offset for h in read_all(log)] == [0, 1, 2]


def test_the_reservation_scales_with_the_append_within_bounds():
    assert reserve_ahead(1) == RESERVE_AHEAD_BYTES
    assert reserve_ahead(BATCH) == RESERVE_AHEAD_BYTES
    assert reserve_ahead(1_000_000) == RESERVE_AHEAD_APPENDS * 1_000_000
    assert reserve_ahead(100 << 20) == RESERVE_AHEAD_MAX_BYTES


def test_large_appends_reserve_several_appends_ahead(reservable, open_log):
    """A megabyte append reserves room for the next few, so `fallocate` runs about
    once per RESERVE_AHEAD_APPENDS appends instead of once per append."""
    big = 1_000_000
    log = open_log()
    append_sized(log, big)
    path = segment_paths(log)[-1]
    assert os.path.getsize(path) == big
    reserved_past_end = allocated(path) - big
    assert reserved_past_end >= (RESERVE_AHEAD_APPENDS - 1) * big
    for _ in range(RESERVE_AHEAD_APPENDS - 1):
        append_sized(log, big)
    assert allocated(path) - reserved_past_end <= big + 4096 * 2  # no new reservation yet
    assert [h.base_offset for h in read_all(log)] == [0, 1, 2, 3]


def test_a_roll_hands_back_the_reservation(reservable, open_log):
    log = open_log(LogConfig(segment_bytes=2 * BATCH))
    for _ in range(3):
        append_sized(log, BATCH)
    sealed, active = segment_paths(log)
    assert os.path.getsize(sealed) == 2 * BATCH
    assert allocated(sealed) < 2 * BATCH + 4096 * 2
    assert allocated(active) >= BATCH + RESERVE_AHEAD_BYTES // 2


def test_a_clean_close_hands_back_the_reservation(reservable, open_log):
    log = open_log()
    append_sized(log, BATCH)
    path = segment_paths(log)[-1]
    log.close()
    assert os.path.getsize(path) == BATCH
    assert allocated(path) < BATCH + 4096 * 2


def test_after_a_crash_the_reservation_stays_hidden_and_goes_at_the_next_roll(reservable, open_log):
    log = open_log(LogConfig(segment_bytes=2 * BATCH))
    append_sized(log, BATCH)
    path = segment_paths(log)[-1]
    crash(log)
    assert allocated(path) >= BATCH + RESERVE_AHEAD_BYTES // 2
    reopened = open_log(LogConfig(segment_bytes=2 * BATCH))
    assert reopened.log_end_offset == 1
    assert [h.base_offset for h in read_all(reopened)] == [0]
    append_sized(reopened, BATCH)
    append_sized(reopened, BATCH)  # rolls: the crashed segment is sealed
    assert segment_paths(reopened)[0] == path
    assert os.path.getsize(path) == 2 * BATCH
    assert allocated(path) < 2 * BATCH + 4096 * 2
