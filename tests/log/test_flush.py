"""Group commit: concurrent flush callers share fsync rounds; flush is safe alongside rolls and deletes."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from log_helpers import NOW, append_sized, read_all

from broker.log import LogConfig, LogStorageError, PartitionLog
from broker.log.checkpoint import CheckpointFile


class GatedFsync:
    """An fsync that counts calls and, while `hold` is set, parks worker threads until released.

    The event-loop (main) thread is never parked: it fsyncs checkpoints itself.
    """

    def __init__(self):
        self.calls = 0
        self.hold = False
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.fail = False

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.fail:
            raise OSError(5, "Input/output error")
        os.fstat(fd)  # the descriptor must still be open
        if self.hold and threading.current_thread() is not threading.main_thread():
            self.entered.set()
            assert self.gate.wait(10), "test never released the fsync"
        os.fsync(fd)


def _open(log_dir, config=None):
    fsync = GatedFsync()
    log = PartitionLog.open(log_dir, config or LogConfig(), now_ms=NOW, fsync=fsync)
    fsync.calls = 0
    return log, fsync


def test_concurrent_callers_share_fsyncs(log_dir):
    log, fsync = _open(log_dir)

    async def producer(covered: list):
        offset = append_sized(log, 1_000).last_offset
        await log.flush(offset)
        covered.append(log.flushed_offset > offset)

    async def main():
        covered: list[bool] = []
        fsync.hold = True
        first = [asyncio.create_task(producer(covered)) for _ in range(50)]
        await asyncio.to_thread(fsync.entered.wait, 10)  # round 1 is inside fsync
        # 50 more producers append while round 1 runs: they must wait for one more round, not 50
        second = [asyncio.create_task(producer(covered)) for _ in range(50)]
        await asyncio.sleep(0)
        fsync.hold = False
        fsync.gate.set()
        await asyncio.gather(*first, *second)
        return covered

    covered = asyncio.run(main())
    assert covered == [True] * 100
    assert log.flush_rounds == 2
    assert fsync.calls == 2  # one segment file per round, no roll so no directory sync
    assert log.flushed_offset == log.log_end_offset == 100
    log.close()


def test_flush_of_durable_offsets_returns_without_fsync(log_dir):
    log, fsync = _open(log_dir)
    append_sized(log, 500)

    async def main():
        await log.flush(0)
        calls = fsync.calls
        await log.flush(0)
        await log.flush(-1)
        await log.flush(10**9)  # clamped to the log end: nothing new to sync
        return calls

    assert asyncio.run(main()) == 1 and fsync.calls == 1 and log.flush_rounds == 1
    log.close()


def test_appends_rolls_and_deletes_while_an_fsync_runs(log_dir):
    config = LogConfig(segment_bytes=2_000, retention_bytes=4_000, retention_ms=-1, file_delete_delay_ms=0)
    log, fsync = _open(log_dir, config)
    for _ in range(8):
        append_sized(log, 500)

    async def main():
        fsync.hold = True
        flushing = asyncio.create_task(log.flush(log.log_end_offset - 1))
        await asyncio.to_thread(fsync.entered.wait, 10)
        # while the worker holds dup'd fds of these segments: roll, delete them, append more
        for _ in range(12):
            append_sized(log, 500)
        deleted = log.apply_retention(NOW)
        assert deleted and log.log_start_offset > 0
        fsync.hold = False
        fsync.gate.set()
        await flushing
        await log.flush(log.log_end_offset - 1)
        return deleted

    deleted = asyncio.run(main())
    assert deleted[0] == 0
    assert log.flushed_offset == log.log_end_offset == 20
    assert [h.base_offset for h in read_all(log)] == list(range(log.log_start_offset, 20))
    log.close()


def test_recovery_point_advances_after_a_flush_following_a_roll(log_dir):
    log, _ = _open(log_dir, LogConfig(segment_bytes=1_000))
    for _ in range(5):
        append_sized(log, 500)
    assert log.recovery_point == 0
    asyncio.run(log.flush(4))
    active_base = log.segments[-1].base_offset
    assert active_base == 4 and log.recovery_point == active_base
    assert CheckpointFile(log_dir).read().recovery_point == active_base
    log.close()
    assert CheckpointFile(log_dir).read().recovery_point == 5


def test_a_cancelled_waiter_does_not_cancel_the_round(log_dir):
    log, fsync = _open(log_dir)
    append_sized(log, 500)

    async def main():
        fsync.hold = True
        impatient = asyncio.create_task(log.flush(0))
        patient = asyncio.create_task(log.flush(0))
        await asyncio.to_thread(fsync.entered.wait, 10)
        impatient.cancel()
        fsync.hold = False
        fsync.gate.set()
        await patient
        with pytest.raises(asyncio.CancelledError):
            await impatient

    asyncio.run(main())
    assert log.flushed_offset == 1 and log.flush_rounds == 1
    log.close()


def test_failed_fsync_takes_the_log_offline(log_dir):
    log, fsync = _open(log_dir)
    append_sized(log, 500)
    fsync.fail = True

    async def main():
        with pytest.raises(LogStorageError, match="fsync failed"):
            await log.flush(0)

    asyncio.run(main())
    with pytest.raises(LogStorageError, match="offline"):
        append_sized(log, 500)
    log.close()  # does not mark the log clean
    assert not (log_dir / "clean-shutdown").exists()
