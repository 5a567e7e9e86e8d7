"""Remote bytes never touch the local disk or its page cache: a full cold replay of
a partition's remote-only data adds no resident page to any file under the
broker's data directory.

The bucket is a local-directory store *outside* the data directory, so the
same mincore measurement also shows the replay really read it: the bucket's
data objects go from not resident to resident. Method: fsync and
posix_fadvise(POSIX_FADV_DONTNEED) every file under both directories, count
each file's resident pages with mincore(2) (an mmap of the file, never
touched, and libc's mincore through ctypes), replay, count again.

The replay uses raw Fetches sized so the last one ends exactly at the local
log start: a cold read that reaches it with budget left continues into the
local log in the same answer (legitimately reading local pages), and this
test is about the remote bytes only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.page_cache import resident_pages

SEGMENT_BYTES = 256 * 1024
CHUNK_BYTES = 16 * 1024
DATA_BYTES = 2 * 1024 * 1024
FETCH_BYTES = 128 * 1024

def drop_from_page_cache(root: Path) -> None:
    for path in _files(root):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def residency(root: Path) -> dict[Path, tuple[int, int, int]]:
    out = {}
    for path in _files(root):
        found = resident_pages(path)
        if found is not None:
            out[path] = found
    return out


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_full_cold_replay_leaves_the_data_dirs_page_cache_alone(tmp_path, start_cold_broker, cold):
    bucket = tmp_path / "bucket"  # beside the broker's directory, not inside it
    broker = start_cold_broker(store_root=bucket)
    data_dir = broker.log_dir
    assert not bucket.resolve().is_relative_to(data_dir.resolve())
    topic = "paged"
    broker.create_topic(topic, cold.topic_configs("zstd", segment_bytes=SEGMENT_BYTES, chunk_bytes=CHUNK_BYTES))
    produced = broker.produce(topic, 0, DATA_BYTES, request_bytes=256 * 1024)
    offsets = broker.wait_until_remote_only(topic, share=0.8)[0]
    end = offsets[cold.EARLIEST_LOCAL]
    batches = [b for b in broker.batches[(topic, 0)] if b[1] < end]
    assert batches[-1][1] == end - 1  # the local log starts at a batch boundary

    drop_from_page_cache(data_dir)
    drop_from_page_cache(bucket)
    before = residency(data_dir)
    bucket_before = residency(bucket)
    segment_files = [p for p in before if ".log" in p.name]
    if sum(pages for _, pages, _ in (before[p] for p in segment_files)) * 2 > sum(
            total for _, _, total in (before[p] for p in segment_files)):
        pytest.skip("posix_fadvise(DONTNEED) does not drop pages on this filesystem")

    # The replay: every remote-only record, in order, nothing past the local log start.
    replayed = []
    offset = 0
    while offset < end:
        remaining = sum(size for base, _, size in batches if base >= offset)
        error, records = broker.fetch(topic, 0, offset, max_bytes=min(FETCH_BYTES, remaining))
        assert error == 0, (offset, error)
        got = cold.decode_records(records)
        assert all(r[0] < end for r in got), "the replay read past the local log start"
        replayed += [r for r in got if r[0] >= offset]
        offset = got[-1][0] + 1 if got else offset
    assert replayed == [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in produced[:end]]

    after = residency(data_dir)
    grew = {}
    for path, (inode, pages, _) in after.items():
        old = before.get(path)
        if old is not None and old[0] == inode:
            if pages > old[1]:
                grew[path.relative_to(data_dir)] = (old[1], pages)
        else:
            # Created or replaced during the replay: only the broker's small bookkeeping
            # files (checkpoints) are rewritten; nothing the size of remote data appears.
            assert ".log" not in path.name and path.stat().st_size <= 64 * 1024, \
                f"{path.relative_to(data_dir)} appeared under the data dir during a cold replay"
    assert not grew, f"cold replay added page-cache residency under the data dir: {grew}"

    # The control: the same measurement sees the bucket's data objects read.
    bucket_after = residency(bucket)
    data_objects = [p for p in bucket_after if p.suffix == ".log" and "/segments/" in p.as_posix()]
    read_pages = sum(bucket_after[p][1] - bucket_before.get(p, (0, 0, 0))[1] for p in data_objects)
    total_pages = sum(bucket_after[p][2] for p in data_objects)
    assert total_pages and read_pages >= total_pages // 2, (read_pages, total_pages)
    metrics = broker.metrics()
    assert metrics.get("tierbroker_remote_fetch_bytes_total", topic=topic) >= sum(b[2] for b in batches)
