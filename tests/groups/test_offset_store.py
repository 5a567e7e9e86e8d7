"""The durable offsets file: replay, torn tails, compaction, group commit, failures."""

from __future__ import annotations

import asyncio
import struct

import pytest
from crc32c import crc32c

from broker.groups import CommittedOffset, OffsetStore
from broker.groups.offset_log import FILE_NAME, GroupRecord, OffsetLog, OffsetLogError
from broker.protocol import errors


def offset(n: int, metadata: str = "") -> CommittedOffset:
    return CommittedOffset(n, leader_epoch=0, metadata=metadata, commit_timestamp_ms=1000 + n)


async def with_writer(store: OffsetStore, body):
    writer = asyncio.create_task(store.run())
    try:
        return await body()
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


def open_store(directory, **kwargs) -> OffsetStore:
    store = OffsetStore(directory, **kwargs)
    store.load()
    return store


def test_commits_survive_reopen(tmp_path):
    store = open_store(tmp_path)

    async def body():
        await store.commit("g", {("t", 0): offset(5, "m"), ("t", 1): offset(7)})
        await store.commit("g", {("t", 0): offset(6)})
        await store.commit("h", {("u", 3): offset(1)})
        await store.delete_offsets("h", [("u", 3)])
        await store.commit("gone", {("t", 0): offset(1)})
        await store.delete_group("gone")
        store.record_group(GroupRecord("g", "consumer", 4, 12345))
        await store.commit("g", {("t", 2): offset(0)})  # flushes the GROUP record too

    asyncio.run(with_writer(store, body))
    store.close()
    again = open_store(tmp_path)
    assert dict(again.offsets("g")) == {("t", 0): offset(6), ("t", 1): offset(7), ("t", 2): offset(0)}
    assert not again.offsets("h") and not again.offsets("gone")
    assert again.group_record("g") == GroupRecord("g", "consumer", 4, 12345)
    assert again.group_ids() == {"g"}


def _write_some(tmp_path, n: int) -> None:
    store = open_store(tmp_path)

    async def body():
        for i in range(n):
            await store.commit("g", {("t", i): offset(i)})

    asyncio.run(with_writer(store, body))
    store.close()


def test_torn_tail_is_ignored_and_truncated(tmp_path):
    # Build a file by appends only (no startup compaction in between), then cut
    # the last entry in half as a crash mid-write would.
    _write_some(tmp_path, 3)
    path = tmp_path / FILE_NAME
    whole = path.stat().st_size
    with open(path, "ab") as f:
        payload = b"\x01\x01" + b"x" * 40
        f.write(struct.pack(">II", len(payload), crc32c(payload))[:6])
    store = open_store(tmp_path)
    assert sorted(store.offsets("g")) == [("t", 0), ("t", 1), ("t", 2)]
    assert path.stat().st_size <= whole
    # Appends after recovery land on a clean boundary and survive the next replay.

    async def body():
        await store.commit("g", {("t", 9): offset(9)})

    asyncio.run(with_writer(store, body))
    store.close()
    assert ("t", 9) in open_store(tmp_path).offsets("g")


def test_tail_with_bad_crc_is_ignored(tmp_path):
    _write_some(tmp_path, 2)
    path = tmp_path / FILE_NAME
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip a bit of the last entry
    path.write_bytes(bytes(data))
    store = open_store(tmp_path)
    assert sorted(store.offsets("g")) == [("t", 0)]


def test_intact_record_of_unknown_kind_refuses_to_load(tmp_path):
    payload = b"\x01\x63junk"
    (tmp_path / FILE_NAME).write_bytes(struct.pack(">II", len(payload), crc32c(payload)) + payload)
    with pytest.raises(OffsetLogError):
        OffsetStore(tmp_path).load()


def test_startup_compacts_to_the_latest_state(tmp_path):
    store = open_store(tmp_path)

    async def body():
        for i in range(200):
            await store.commit("g", {("t", 0): offset(i)})

    asyncio.run(with_writer(store, body))
    grown = store.file.size
    store.close()
    again = open_store(tmp_path)
    assert again.file.size < grown / 50
    assert again.offsets("g")[("t", 0)] == offset(199)


def test_compaction_when_the_file_grows_past_its_threshold(tmp_path):
    store = open_store(tmp_path, compact_threshold_bytes=4096)

    async def body():
        for i in range(500):
            await store.commit("g", {("t", i % 4): offset(i)})

    asyncio.run(with_writer(store, body))
    assert store.compactions > 2  # the startup one plus several while running
    assert store.file.size < 8192
    store.close()
    again = open_store(tmp_path)
    assert dict(again.offsets("g")) == {("t", i): offset(496 + i) for i in range(4)}


def test_concurrent_commits_share_fsyncs(tmp_path, monkeypatch):
    store = open_store(tmp_path)
    appends = []
    real_append = OffsetLog.append

    def counting_append(self, data):
        appends.append(len(data))
        real_append(self, data)

    monkeypatch.setattr(OffsetLog, "append", counting_append)

    async def body():
        await asyncio.gather(*(store.commit(f"g{i}", {("t", 0): offset(i)}) for i in range(50)))

    asyncio.run(with_writer(store, body))
    assert len(appends) < 50
    assert all(store.offsets(f"g{i}")[("t", 0)] == offset(i) for i in range(50))


def test_failed_write_is_reported_and_not_applied(tmp_path, monkeypatch):
    store = open_store(tmp_path)

    def failing_append(self, data):
        raise OffsetLogError(self.path, "disk on fire")

    async def body():
        await store.commit("g", {("t", 0): offset(1)})
        monkeypatch.setattr(OffsetLog, "append", failing_append)
        with pytest.raises(errors.CoordinatorNotAvailable):
            await store.commit("g", {("t", 0): offset(2)})
        monkeypatch.undo()
        await store.commit("g", {("t", 1): offset(3)})

    asyncio.run(with_writer(store, body))
    assert store.offsets("g")[("t", 0)] == offset(1)
    store.close()
    assert dict(open_store(tmp_path).offsets("g")) == {("t", 0): offset(1), ("t", 1): offset(3)}


def test_partial_write_is_cut_back(tmp_path, monkeypatch):
    """A write that fails half-way must not leave bytes that hide later appends."""
    store = open_store(tmp_path)
    import os

    real_fsync = os.fsync
    calls = {"n": 0}

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(5, "I/O error")
        real_fsync(fd)

    async def body():
        monkeypatch.setattr("broker.groups.offset_log.os.fsync", failing_fsync)
        with pytest.raises(errors.CoordinatorNotAvailable):
            await store.commit("g", {("t", 0): offset(1)})
        await store.commit("g", {("t", 1): offset(2)})

    asyncio.run(with_writer(store, body))
    monkeypatch.undo()
    store.close()
    assert dict(open_store(tmp_path).offsets("g")) == {("t", 1): offset(2)}


def test_oversized_records_are_refused_up_front(tmp_path):
    store = open_store(tmp_path)

    async def body():
        with pytest.raises(errors.InvalidRequest):
            store.commit("g" * (2 << 20), {("t", 0): offset(1)})
        await store.commit("g", {("t", 0): offset(1)})
        assert not store.in_flight("g" * (2 << 20))

    asyncio.run(with_writer(store, body))
    store.close()
    assert dict(open_store(tmp_path).offsets("g")) == {("t", 0): offset(1)}
