"""Crash recovery and index repair on real, damaged files."""

from __future__ import annotations

import logging
import os
import random

import pytest
from log_helpers import (
    NOW,
    append,
    append_sized,
    batch_of_size,
    build_batch,
    crash,
    file_position,
    read_all,
    read_headers,
)

from broker.log import LogConfig
from broker.log.log import PRODUCER_SNAPSHOT
from broker.log.checkpoint import CHECKPOINT_NAME, Checkpoint, encode
from broker.log.files import CLEAN_SHUTDOWN_MARKER
from broker.log.recovery import recover_segment
from broker.log.segment import Segment

SMALL = LogConfig(segment_bytes=4_000, index_interval_bytes=300)


def _fill(log, count=40, size=350):
    """`count` single-record batches, batch i at offset i with timestamp NOW + 10*i."""
    for i in range(count):
        append_sized(log, size + (i % 5) * 20, timestamp=NOW + 10 * i)


def _segment_file(log_dir, base, suffix=".log"):
    return log_dir / f"{base:020d}{suffix}"


def _assert_every_offset_readable(log):
    for offset in range(log.log_start_offset, log.log_end_offset):
        header = read_headers(log, offset, 1)[0]
        assert header.base_offset <= offset <= header.last_offset


def test_clean_restart_keeps_everything(open_log, log_dir, caplog):
    log = open_log(SMALL)
    _fill(log)
    log.delete_records_before(3)
    segments_before = log.segments
    log.close()
    assert (log_dir / CLEAN_SHUTDOWN_MARKER).exists()
    indexes = {name: (log_dir / name).read_bytes() for name in os.listdir(log_dir) if "index" in name}
    caplog.set_level(logging.INFO, logger="broker.log")
    log = open_log(SMALL)
    assert "clean shutdown, 0 segment(s) scanned" in caplog.text
    assert not (log_dir / CLEAN_SHUTDOWN_MARKER).exists()  # a crash from now on counts as unclean
    assert (log.log_start_offset, log.log_end_offset) == (3, 40)
    assert log.segments == segments_before
    assert [h.base_offset for h in read_all(log)] == list(range(3, 40))
    assert log.offset_for_timestamp(NOW + 155) == (16, NOW + 160)
    assert log.max_timestamp_and_offset() == (NOW + 390, 39)
    assert append_sized(log, 300).base_offset == 40
    log.close()
    for name, data in indexes.items():
        if (log_dir / name).exists() and name != f"{segments_before[-1].base_offset:020d}.index":
            assert (log_dir / name).read_bytes() == data, name


def test_torn_tail_is_truncated(open_log, log_dir, caplog):
    log = open_log(SMALL)
    _fill(log, 10)
    active = log.segments[-1]
    last_batch_start = file_position(log, 9)[0]
    crash(log)
    with open(active.path, "r+b") as f:
        f.truncate(last_batch_start + 100)  # the last batch torn halfway
    caplog.set_level(logging.INFO, logger="broker.log")
    log = open_log(SMALL)
    assert log.log_end_offset == 9
    assert "discarded 100 bytes" in caplog.text and active.path.name in caplog.text
    assert [h.base_offset for h in read_all(log)] == list(range(9))
    assert os.path.getsize(active.path) == last_batch_start
    assert append_sized(log, 400).base_offset == 9


def test_corrupt_byte_mid_active_segment_truncates_there(open_log, log_dir, caplog):
    log = open_log(LogConfig(index_interval_bytes=300))
    _fill(log, 20)
    position, victim_size = file_position(log, 12)
    path = log.segments[-1].path
    size = log.segments[-1].size_bytes
    crash(log)
    with open(path, "r+b") as f:
        f.seek(position + victim_size // 2)
        byte = f.read(1)
        f.seek(position + victim_size // 2)
        f.write(bytes([byte[0] ^ 0x55]))
    caplog.set_level(logging.WARNING, logger="broker.log")
    log = open_log(LogConfig(index_interval_bytes=300))
    assert log.log_end_offset == 12
    assert f"discarded {size - position} bytes" in caplog.text and "CRC-32C mismatch" in caplog.text
    _assert_every_offset_readable(log)
    assert log.offset_for_timestamp(NOW + 115) is None
    assert log.offset_for_timestamp(NOW + 105) == (11, NOW + 110)
    assert log.max_timestamp_and_offset() == (NOW + 110, 11)


@pytest.mark.parametrize(
    "garbage",
    [b"\x00" * 5_000, b"\x00" * 7, random.Random(110).randbytes(3_000), b"\xff" * 100],
    ids=["zeros-5000", "zeros-7", "random-3000", "ones-100"],
)
def test_garbage_after_the_last_batch_is_removed(open_log, log_dir, garbage):
    log = open_log(SMALL)
    _fill(log, 5)
    path, size = log.segments[-1].path, log.segments[-1].size_bytes
    crash(log)
    with open(path, "ab") as f:
        f.write(garbage)
    log = open_log(SMALL)
    assert log.log_end_offset == 5 and os.path.getsize(path) == size
    assert [h.base_offset for h in read_all(log)] == list(range(5))


def test_unclean_recovery_scans_unsynced_segments_and_drops_everything_after_damage(open_log, log_dir, caplog):
    log = open_log(SMALL)
    _fill(log, 40)  # never flushed: every segment is after the recovery point
    segments = log.segments
    assert len(segments) >= 4
    damaged = segments[1]
    crash(log)
    with open(damaged.path, "r+b") as f:
        f.seek(700)
        f.write(b"\xde\xad")
    caplog.set_level(logging.WARNING, logger="broker.log")
    log = open_log(SMALL)
    assert [s.base_offset for s in log.segments] == [segments[0].base_offset, damaged.base_offset]
    assert log.log_end_offset < damaged.next_offset
    assert f"{len(segments) - 2} later segment(s) deleted" in caplog.text
    assert not _segment_file(log_dir, segments[2].base_offset).exists()
    _assert_every_offset_readable(log)


def test_segments_below_the_recovery_point_are_trusted(open_log, log_dir, caplog):
    import asyncio

    log = open_log(SMALL)
    _fill(log, 40)
    asyncio.run(log.flush(log.log_end_offset - 1))
    assert log.recovery_point == log.segments[-1].base_offset
    _fill(log, 3)
    unsynced = sum(1 for s in log.segments if s.base_offset >= log.recovery_point)
    assert unsynced < len(log.segments)
    crash(log)
    caplog.set_level(logging.INFO, logger="broker.log")
    log = open_log(SMALL)
    assert f"unclean shutdown, {unsynced} segment(s) scanned" in caplog.text
    assert log.log_end_offset == 43
    _assert_every_offset_readable(log)


def test_damaged_indexes_are_rebuilt_identically(open_log, log_dir, caplog):
    log = open_log(SMALL)
    _fill(log, 120)
    log.close()
    bases = [s.base_offset for s in log.segments[:-1]]
    originals = {
        base: (_segment_file(log_dir, base, ".index").read_bytes(), _segment_file(log_dir, base, ".timeindex").read_bytes())
        for base in bases
    }
    assert all(len(index) >= 16 for index, _ in originals.values())
    damage = [
        (".index", lambda p: p.unlink()),  # missing
        (".index", lambda p: p.write_bytes(p.read_bytes()[:-3])),  # truncated mid-entry
        (".index", lambda p: p.write_bytes(p.read_bytes()[:8])),  # truncated to fewer whole entries
        (".index", lambda p: p.write_bytes(p.read_bytes()[8:])),  # first entries gone
        (".index", lambda p: p.write_bytes(bytes(len(p.read_bytes())))),  # zeroed
        (".index", lambda p: p.write_bytes(b"\x7f" + p.read_bytes()[1:])),  # huge first offset
        (".timeindex", lambda p: p.unlink()),
        (".timeindex", lambda p: p.write_bytes(p.read_bytes()[:-5])),
        (".timeindex", lambda p: p.write_bytes(bytes(len(p.read_bytes())))),
        (".timeindex", lambda p: p.write_bytes(p.read_bytes()[:-12])),  # last (max timestamp) entry gone
    ]
    assert len(bases) >= len(damage)
    for base, (suffix, hurt) in zip(bases, damage):
        hurt(_segment_file(log_dir, base, suffix))
    caplog.set_level(logging.WARNING, logger="broker.log")
    log = open_log(SMALL)
    for base, _ in zip(bases, damage):
        assert f"rebuilding indexes of segment {base:020d}.log" in caplog.text, base
    for base in bases:
        assert _segment_file(log_dir, base, ".index").read_bytes() == originals[base][0], base
        assert _segment_file(log_dir, base, ".timeindex").read_bytes() == originals[base][1], base
    _assert_every_offset_readable(log)
    for i in range(0, 120, 7):
        assert log.offset_for_timestamp(NOW + 10 * i - 5) == (i, NOW + 10 * i)


def test_wrong_but_plausible_index_entry_is_caught_on_read(open_log, log_dir, caplog):
    log = open_log(SMALL)
    _fill(log, 30)
    log.close()
    base = log.segments[0].base_offset
    path = _segment_file(log_dir, base, ".index")
    data = bytearray(path.read_bytes())
    data[3 * 8 + 7] += 1  # a middle entry's position moves one byte: still increasing, now mid-batch
    path.write_bytes(bytes(data))
    log = open_log(SMALL)
    caplog.set_level(logging.WARNING, logger="broker.log")
    _assert_every_offset_readable(log)
    assert "offset index is inconsistent" in caplog.text


def test_leftovers_are_removed(open_log, log_dir):
    log = open_log(SMALL)
    _fill(log, 5)
    log.close()
    for name in ("00000000000000000000.log.deleted", "partition.checkpoint.tmp", "00000000000000000003.log.cleaned",
                 "00000000000000000099.index", "00000000000000000099.timeindex"):
        (log_dir / name).write_bytes(b"junk")
    log = open_log(SMALL)
    assert sorted(os.listdir(log_dir)) == [
        "00000000000000000000.index", "00000000000000000000.log", "00000000000000000000.timeindex", CHECKPOINT_NAME,
        PRODUCER_SNAPSHOT,
    ]
    assert log.log_end_offset == 5


def test_segments_below_the_checkpointed_log_start_are_deleted(open_log, log_dir):
    log = open_log(SMALL)
    _fill(log, 40)
    log.close()
    third = log.segments[2]
    (log_dir / CHECKPOINT_NAME).write_bytes(encode(Checkpoint(third.base_offset + 1, 0)))
    log = open_log(SMALL)
    assert log.log_start_offset == third.base_offset + 1
    assert log.segments[0].base_offset == third.base_offset
    assert not _segment_file(log_dir, 0).exists()


def test_log_start_beyond_the_recovered_end_starts_an_empty_log_there(open_log, log_dir, caplog):
    log = open_log(SMALL)
    _fill(log, 5)
    log.close()
    (log_dir / CHECKPOINT_NAME).write_bytes(encode(Checkpoint(100, 0)))
    caplog.set_level(logging.WARNING, logger="broker.log")
    log = open_log(SMALL)
    assert (log.log_start_offset, log.log_end_offset) == (100, 100)
    assert [s.base_offset for s in log.segments] == [100]
    assert "beyond the recovered log end" in caplog.text


def test_unreadable_checkpoint_means_scan_everything(open_log, log_dir):
    log = open_log(SMALL)
    _fill(log, 20)
    crash(log)
    (log_dir / CHECKPOINT_NAME).write_bytes(b"\x00garbage")
    log = open_log(SMALL)
    assert (log.log_start_offset, log.log_end_offset) == (0, 20)


def test_hint_overrides_the_marker(open_log, log_dir, caplog):
    log = open_log(SMALL)
    _fill(log, 10)
    log.close()
    caplog.set_level(logging.INFO, logger="broker.log")
    log = open_log(SMALL, clean_shutdown_hint=False)
    assert "unclean shutdown" in caplog.text and log.log_end_offset == 10


def test_large_batches_are_crc_checked_in_streaming_chunks(log_dir):
    log_dir.mkdir()
    config = LogConfig()
    segment = Segment.create(log_dir, 0, config)
    batches = [bytearray(batch_of_size(100 * 1024, timestamp=NOW)) for _ in range(3)]
    for i, batch in enumerate(batches):
        batch[0:8] = i.to_bytes(8, "big")
        os.write(segment.fd, batch)
    discarded, reason = recover_segment(segment, 0, chunk_bytes=4096)
    assert (discarded, reason, segment.next_offset) == (0, None, 3)
    os.pwrite(segment.fd, b"\x01", 2 * 100 * 1024 + 50_000)
    discarded, reason = recover_segment(segment, 0, chunk_bytes=4096)
    assert discarded == 100 * 1024 and "CRC-32C mismatch" in reason and segment.next_offset == 2
    segment.close()


def test_offsets_going_backwards_are_damage(log_dir):
    log_dir.mkdir()
    segment = Segment.create(log_dir, 0, LogConfig())
    os.write(segment.fd, build_batch([(b"a", b"b")] * 3, base_offset=0) + build_batch([(b"c", b"d")], base_offset=1))
    discarded, reason = recover_segment(segment, 0)
    assert segment.next_offset == 3 and "below the expected 3" in reason and discarded > 0
    segment.close()


def test_reopen_after_unclean_then_clean_cycles(open_log, log_dir):
    for round_ in range(3):
        log = open_log(SMALL)
        assert log.log_end_offset == 15 * round_
        _fill(log, 15)
        if round_ % 2:
            log.close()
        else:
            crash(log)
    log = open_log(SMALL)
    assert [h.base_offset for h in read_all(log)] == list(range(45))
    assert append(log, build_batch([(b"k", b"v")])).base_offset == 45


def test_overlapping_segments_refuse_to_open(open_log, log_dir):
    from broker.log import LogStorageError

    log = open_log(SMALL)
    _fill(log, 25)
    log.close()
    second = log.segments[1]
    for suffix in (".log", ".index", ".timeindex"):
        _segment_file(log_dir, second.base_offset, suffix).rename(_segment_file(log_dir, second.base_offset - 1, suffix))
    with pytest.raises(LogStorageError, match="segments overlap"):
        open_log(SMALL)
