"""ChunkCache: single-flight hydration of verified chunks into pool buffers, LRU
eviction of unpinned chunks, and the prefetch counters.

Remote segments here are real: record batches encoded by SegmentEncoder and put
in a LocalDirectoryStore, whose fault knobs corrupt, fail or slow the GETs.
`build_segment` and `RemoteLog` are shared with test_remote_reader.py.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from remote_index.buffer_pool import BufferPool, PoolExhausted
from remote_index.chunk_cache import ChunkCache
from remote_index.keys import PartitionKeys
from remote_index.manifest import PartitionManifest, RemoteSegment
from remote_index.rate_limit import TokenBucket
from remote_index.read_metrics import ReadMetrics
from remote_index.segment_format import CorruptChunkError, SegmentEncoder, SegmentMeta
from remote_index.store import LocalDirectoryStore, StoreError
from tests.helpers.record_batches import build_batch

TOPIC = "cold"
TOPIC_ID = "00000000-0000-4000-8000-000000000001"
BASE_TS = 1_700_000_000_000


def run(coro):
    return asyncio.run(coro)


# -- remote segments for tests -------------------------------------------------------


@dataclass
class Batch:
    base_offset: int
    last_offset: int
    data: bytes


@dataclass
class UploadedSegment:
    segment: RemoteSegment
    meta: SegmentMeta
    batches: list[Batch]


@dataclass
class RemoteLog:
    """A partition's remote tier in a local store: segments, their batches, the manifest."""

    store: LocalDirectoryStore
    keys: PartitionKeys
    segments: list[UploadedSegment] = field(default_factory=list)
    manifest: PartitionManifest | None = None

    @property
    def batches(self) -> list[Batch]:
        return [b for s in self.segments for b in s.batches]

    @property
    def next_offset(self) -> int:
        return self.segments[-1].batches[-1].last_offset + 1 if self.segments else 0

    def bytes_from(self, offset: int, upper_bound: int | None = None) -> bytes:
        """The batches a reader should return from `offset` (the one holding it first)."""
        return b"".join(b.data for b in self.batches
                        if b.last_offset >= offset and (upper_bound is None or b.base_offset < upper_bound))


def make_batches(rng: random.Random, first_offset: int, count: int, *, big_every: int = 0,
                 value_bytes: tuple[int, int] = (50, 900)) -> list[Batch]:
    """`count` batches from `first_offset`, 1-4 records each, compressible values; every
    `big_every`-th batch is large (bigger than a small chunk: a chunk by itself)."""
    out = []
    offset = first_offset
    for i in range(count):
        n = rng.randint(1, 4)
        size = 6000 if big_every and i % big_every == big_every - 1 else rng.randint(*value_bytes)
        records = [(b"k%d" % (offset + r), (b"v%d|" % (offset + r)) + rng.randbytes(size // 4)
                    + b"abcd" * (size // 5), (), BASE_TS + offset + r) for r in range(n)]
        data = build_batch(records, base_offset=offset)
        out.append(Batch(offset, offset + n - 1, data))
        offset += n
    return out


def build_segment(tmp: Path, store: LocalDirectoryStore, keys: PartitionKeys, batches: list[Batch], *,
                  compression: str = "none", chunk_bytes: int = 2048) -> tuple[RemoteSegment, SegmentMeta]:
    """Encode `batches` as one remote segment (chunks, then the meta trailer), put its
    data object, return its COPY_FINISHED entry."""
    path = tmp / f"{batches[0].base_offset:020d}.log"
    path.write_bytes(b"".join(b.data for b in batches))
    stored = []
    with SegmentEncoder(path, path.stat().st_size, compression=compression, chunk_bytes=chunk_bytes) as encoder:
        for data, _ in encoder:
            stored.append(data)
        meta = encoder.meta()
    started = RemoteSegment.start_copy(
        keys, base_offset=meta.base_offset, last_offset=meta.last_offset, size_bytes=meta.size_bytes,
        now_ms=0, compression=compression)
    meta_bytes = meta.to_bytes()

    asyncio.run(store.put(started.data_key, b"".join(stored) + meta_bytes))
    return started.finished(meta, meta_bytes, 0), meta


def remote_log(tmp: Path, segment_batches: list[list[Batch]], **encode) -> RemoteLog:
    store = LocalDirectoryStore(tmp / "bucket")
    keys = PartitionKeys(TOPIC, TOPIC_ID, 0)
    log = RemoteLog(store, keys)
    manifest = PartitionManifest.empty(keys)
    for batches in segment_batches:
        finished, meta = build_segment(tmp, store, keys, batches, **encode)
        started = RemoteSegment.start_copy(
            keys, base_offset=finished.base_offset, last_offset=finished.last_offset,
            size_bytes=finished.size_bytes, now_ms=0, compression=finished.compression,
            segment_id=finished.segment_id)
        manifest = manifest.with_segment(started).with_segment(finished)
        log.segments.append(UploadedSegment(finished, meta, batches))
    log.manifest = manifest
    return log


def counter(metric, *labels) -> float:
    return (metric.labels(*labels) if labels else metric)._value.get()


# -- fixtures -------------------------------------------------------------------------


SLAB = 4096


@pytest.fixture(params=["none", "zstd", "lz4"])
def compression(request):
    return request.param


@pytest.fixture
def one_segment(tmp_path, compression) -> RemoteLog:
    """One segment of ~10 chunks (chunk_bytes 2048; compressible values)."""
    return remote_log(tmp_path, [make_batches(random.Random(3), 0, 20)], compression=compression)


def new_cache(log: RemoteLog, slabs: int = 16) -> ChunkCache:
    return ChunkCache(log.store, BufferPool(slabs * SLAB, SLAB), ReadMetrics(), TokenBucket(0))


async def read_chunk(cache: ChunkCache, log: RemoteLog, index: int, *, prefetch: bool = False,
                     timeout: float = 30, segment: int = 0) -> bytes:
    """One chunk's bytes via the cache (pinned while copied, then unpinned)."""
    seg = log.segments[segment]
    loop = asyncio.get_running_loop()
    chunk = await cache.get(seg.segment.data_key, seg.meta.chunks[index], seg.meta.compression, TOPIC,
                            loop.time() + timeout, prefetch=prefetch)
    try:
        return bytes(chunk.data)
    finally:
        cache.unpin(chunk, consumed=not prefetch)  # read whole, as a sequential reader does


def expected_chunk(log: RemoteLog, index: int, segment: int = 0) -> bytes:
    seg = log.segments[segment]
    entry = seg.meta.chunks[index]
    original = b"".join(b.data for b in seg.batches)
    return original[entry.position:entry.end_position]


# -- hydration ------------------------------------------------------------------------


def test_chunks_hydrate_verified_and_exact(one_segment, compression):
    log = one_segment
    meta = log.segments[0].meta
    assert len(meta.chunks) >= 5
    if compression != "none":
        assert any(c.compressed for c in meta.chunks), "expected some compressed chunks"

    async def body():
        cache = new_cache(log)
        for i in range(len(meta.chunks)):
            assert await read_chunk(cache, log, i) == expected_chunk(log, i)
        assert log.store.faults.calls["get"] == len(meta.chunks)
        # All cached now: reading again costs no GET.
        for i in range(len(meta.chunks)):
            assert await read_chunk(cache, log, i) == expected_chunk(log, i)
        assert log.store.faults.calls["get"] == len(meta.chunks)
        # Cached chunks hold their decoded bytes only: one slab each (chunks < 1 slab).
        assert cache.pool.used_slabs == len(meta.chunks)
        assert counter(cache.metrics.get_requests, TOPIC) == len(meta.chunks)
        assert counter(cache.metrics.bytes_read, TOPIC) == meta.object_bytes
        cache.close()
        assert cache.pool.used_slabs == 0
    run(body())


def test_concurrent_reads_of_one_chunk_share_one_get(one_segment):
    log = one_segment

    async def body():
        cache = new_cache(log)
        log.store.faults.delay("get", 0.05)  # keep the flight in the air while the others join
        results = await asyncio.gather(*(read_chunk(cache, log, 2) for _ in range(8)))
        assert results == [expected_chunk(log, 2)] * 8
        assert log.store.faults.calls["get"] == 1
        chunk = cache.cached((log.segments[0].segment.data_key, 2))
        assert chunk is not None and chunk.pins == 0
    run(body())


def test_concurrent_reads_of_a_corrupt_chunk_all_fail_and_nothing_is_cached(one_segment):
    log = one_segment

    async def body():
        cache = new_cache(log)
        log.store.faults.delay("get", 0.05)
        log.store.faults.corrupt_next_get()
        results = await asyncio.gather(*(read_chunk(cache, log, 1) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, CorruptChunkError) for r in results), results
        assert log.store.faults.calls["get"] == 1  # one flight, one failure for all
        assert cache.cached((log.segments[0].segment.data_key, 1)) is None
        assert cache.pool.used_slabs == 0  # its buffers went back
        # The damage was in transit: the next read hydrates a good copy.
        log.store.faults.delay("get", 0)
        assert await read_chunk(cache, log, 1) == expected_chunk(log, 1)
    run(body())


def test_a_chunk_damaged_in_the_bucket_is_never_cached_or_served(one_segment, compression):
    """Flip a byte inside a chunk's stored bytes on disk: every read fails, every time."""
    log = one_segment
    seg = log.segments[0]
    entry = seg.meta.chunks[3]
    path = log.store.root / seg.segment.data_key
    data = bytearray(path.read_bytes())
    data[entry.object_offset + entry.object_length // 2] ^= 0x01
    path.write_bytes(bytes(data))

    async def body():
        cache = new_cache(log)
        for _ in range(3):
            with pytest.raises(CorruptChunkError) as raised:
                await read_chunk(cache, log, 3)
            assert raised.value.chunk_index == 3
            assert cache.cached((seg.segment.data_key, 3)) is None
            assert cache.pool.used_slabs == 0
        # Its neighbours are fine.
        assert await read_chunk(cache, log, 2) == expected_chunk(log, 2)
        assert await read_chunk(cache, log, 4) == expected_chunk(log, 4)
    run(body())


def test_a_failed_get_is_not_cached_and_releases_its_buffers(one_segment):
    log = one_segment

    async def body():
        cache = new_cache(log)
        log.store.faults.fail_next("get", error=StoreError)
        with pytest.raises(StoreError):
            await read_chunk(cache, log, 0)
        assert cache.cached((log.segments[0].segment.data_key, 0)) is None
        assert cache.pool.used_slabs == 0
        assert await read_chunk(cache, log, 0) == expected_chunk(log, 0)
    run(body())


# -- eviction ---------------------------------------------------------------------------


def test_eviction_takes_least_recently_used_unpinned_chunks_only(tmp_path):
    log = remote_log(tmp_path, [make_batches(random.Random(5), 0, 20)], compression="none")
    key = log.segments[0].segment.data_key
    entries = log.segments[0].meta.chunks

    async def body():
        loop = asyncio.get_running_loop()
        cache = new_cache(log, slabs=3)
        for i in (0, 1, 2):
            await read_chunk(cache, log, i)
        await read_chunk(cache, log, 0)  # recency now: 1, 2, 0
        pinned = await cache.get(key, entries[1], "none", TOPIC, loop.time() + 5)  # recency: 2, 0, 1 (pinned)

        await read_chunk(cache, log, 3)  # evicts 2: the least recent unpinned
        assert [cache.cached((key, i)) is not None for i in range(4)] == [True, True, False, True]
        await read_chunk(cache, log, 4)  # evicts 0; 1 is older but pinned
        assert [cache.cached((key, i)) is not None for i in range(5)] == [False, True, False, True, True]
        await read_chunk(cache, log, 5)  # evicts 3
        assert [cache.cached((key, i)) is not None for i in range(6)] == [False, True, False, False, True, True]

        # Only pinned and in-use slabs left: a reservation for more than the rest waits, gives up.
        still_pinned = await cache.get(key, entries[4], "none", TOPIC, loop.time() + 5)
        with pytest.raises(PoolExhausted):
            await cache.pool.reserve(2 * SLAB, loop.time() + 0.02)
        assert cache.cached((key, 1)) is pinned and cache.cached((key, 4)) is still_pinned
        assert bytes(pinned.data) == expected_chunk(log, 1)  # a pinned chunk's bytes are intact
        cache.unpin(pinned)
        cache.unpin(still_pinned)
        assert await cache.pool.reserve(2 * SLAB, loop.time() + 5)  # now they can go
        assert cache.cached((key, 1)) is None
    run(body())


def test_a_chunk_evicted_before_its_waiter_resumes_is_never_read(tmp_path):
    """A hydration lands (unpinned), and in the same loop turn another reservation evicts
    it before the task that asked for it resumes: that task must hydrate again (or fail
    cleanly), never read a released buffer or crash."""
    log = remote_log(tmp_path, [make_batches(random.Random(9), 0, 20)], compression="zstd")
    meta = log.segments[0].meta
    index = next(c.index for c in meta.chunks if c.compressed)

    async def body():
        loop = asyncio.get_running_loop()
        cache = new_cache(log, slabs=2)
        # The compressed chunk takes both slabs while it hydrates (stored + decoded).
        reader = asyncio.create_task(read_chunk(cache, log, index))
        await asyncio.sleep(0)
        # Queued behind it: wants both slabs; it is woken when the stored slab is released
        # and evicts the freshly landed chunk before the reader resumes.
        rival = asyncio.create_task(cache.pool.reserve(2 * SLAB, loop.time() + 30))
        lease = await rival
        lease.release()
        assert await reader == expected_chunk(log, index)
    run(body())


def test_a_reader_cancelled_while_its_chunk_hydrates_leaves_it_unpinned(one_segment):
    """The hydration is shielded from the reader's cancellation (the next Fetch will want
    the chunk) but must not keep a pin for a reader that is gone."""
    log = one_segment
    key = log.segments[0].segment.data_key

    async def body():
        cache = new_cache(log)
        log.store.faults.delay("get", 0.05)
        readers = [asyncio.create_task(read_chunk(cache, log, 6)) for _ in range(2)]
        await asyncio.sleep(0.01)
        readers[0].cancel()
        assert await readers[1] == expected_chunk(log, 6)
        with pytest.raises(asyncio.CancelledError):
            await readers[0]
        chunk = cache.cached((key, 6))
        assert chunk is not None and chunk.pins == 0
        cache.close()
        assert cache.pool.used_slabs == 0
    run(body())


def test_concurrent_hydrations_on_a_tight_pool_do_not_deadlock(tmp_path):
    """Compressed chunks need two buffers each (stored, decoded). On a pool with room
    for one such hydration, several at once must take turns, not each hold a stored
    buffer while waiting for a decoded one (which would stall all until the deadline)."""
    log = remote_log(tmp_path, [make_batches(random.Random(9), 0, 30)], compression="zstd")
    compressed = [c.index for c in log.segments[0].meta.chunks if c.compressed][:4]
    assert len(compressed) == 4

    async def body():
        cache = new_cache(log, slabs=2)
        log.store.faults.delay("get", 0.01)  # all four reserve before any GET returns
        got = await asyncio.gather(*(read_chunk(cache, log, i, timeout=30) for i in compressed))
        assert got == [expected_chunk(log, i) for i in compressed]
        assert cache.pool.exhausted == 0
    run(body())


# -- prefetch counters ------------------------------------------------------------------


def test_prefetch_hits_misses_and_waste_are_counted(tmp_path):
    log = remote_log(tmp_path, [make_batches(random.Random(5), 0, 20)], compression="none")
    key = log.segments[0].segment.data_key

    async def body():
        cache = new_cache(log, slabs=3)
        m = cache.metrics
        await read_chunk(cache, log, 0)  # demand, not cached: a miss
        assert (counter(m.prefetch_hits), counter(m.prefetch_misses), counter(m.prefetch_wasted)) == (0, 1, 0)

        await read_chunk(cache, log, 1, prefetch=True)  # prefetch: neither hit nor miss
        assert [c.chunk_id for c in cache.prefetched_chunks()] == [(key, 1)]
        assert (counter(m.prefetch_hits), counter(m.prefetch_misses)) == (0, 1)
        await read_chunk(cache, log, 1)  # demand finds it: a hit, no GET
        assert (counter(m.prefetch_hits), counter(m.prefetch_misses)) == (1, 1)
        assert cache.prefetched_chunks() == []
        assert log.store.faults.calls["get"] == 2

        await read_chunk(cache, log, 1)  # read again: a cache hit, but not a prefetch hit
        assert counter(m.prefetch_hits) == 1

        await read_chunk(cache, log, 2, prefetch=True)  # pool full now: 0, 1, 2
        await read_chunk(cache, log, 3)  # evicts 0 (read: not wasted)
        assert counter(m.prefetch_wasted) == 0
        await read_chunk(cache, log, 4)  # evicts 1 (read: not wasted)
        await read_chunk(cache, log, 5)  # evicts 3: 2 is older, but unread prefetches go last
        assert cache.cached((key, 2)) is not None
        assert counter(m.prefetch_wasted) == 0
        await read_chunk(cache, log, 6, prefetch=True)  # evicts 4
        await read_chunk(cache, log, 7, prefetch=True)  # evicts 5: now 2, 6, 7, all unread
        await read_chunk(cache, log, 8)  # nothing read is left to evict: the oldest, 2, goes unread
        assert cache.cached((key, 2)) is None
        assert counter(m.prefetch_wasted) == 1
        assert counter(m.prefetch_misses) == 5
    run(body())


def test_a_prefetch_fits_only_in_free_space_or_that_of_chunks_already_read(tmp_path):
    log = remote_log(tmp_path, [make_batches(random.Random(6), 0, 20)], compression="none")
    meta = log.segments[0].meta

    async def body():
        cache = new_cache(log, slabs=3)
        await read_chunk(cache, log, 0)
        await read_chunk(cache, log, 1, prefetch=True)
        assert cache.prefetch_fits(meta.chunks[2])  # one slab still free
        await read_chunk(cache, log, 2, prefetch=True)
        assert cache.prefetch_fits(meta.chunks[3])  # chunk 0 was read: its slab may go
        await read_chunk(cache, log, 3, prefetch=True)  # evicts 0
        assert not cache.prefetch_fits(meta.chunks[4])  # only unread prefetches left
        await read_chunk(cache, log, 1)
        assert cache.prefetch_fits(meta.chunks[4])  # 1 has been read to its end now
        key = log.segments[0].segment.data_key
        loop = asyncio.get_running_loop()
        chunk = await cache.get(key, meta.chunks[2], meta.compression, TOPIC, loop.time() + 30)
        cache.unpin(chunk, consumed=False)  # a reader stopped in the middle of 2
        await read_chunk(cache, log, 4)  # a demand read evicts 1 (read to its end), not 2 or 3
        assert [cache.cached((key, i)) is not None for i in (1, 2, 3, 4)] == [False, True, True, True]
        pinned = await cache.get(key, meta.chunks[4], meta.compression, TOPIC, loop.time() + 30)
        assert not cache.prefetch_fits(meta.chunks[5])  # 2 is read part way, 3 unread, 4 pinned
        cache.unpin(pinned, consumed=True)
        assert cache.prefetch_fits(meta.chunks[5])
    run(body())


def test_a_demand_read_joining_a_prefetch_in_flight_clears_its_prefetch_mark(one_segment):
    log = one_segment
    key = log.segments[0].segment.data_key

    async def body():
        cache = new_cache(log)
        log.store.faults.delay("get", 0.05)
        prefetch = asyncio.create_task(read_chunk(cache, log, 4, prefetch=True))
        await asyncio.sleep(0.01)
        assert await read_chunk(cache, log, 4) == expected_chunk(log, 4)
        await prefetch
        assert log.store.faults.calls["get"] == 1
        assert cache.cached((key, 4)) is not None and not cache.cached((key, 4)).prefetched
        # Evicting it now is not a wasted prefetch: someone read it.
        cache.close()
        assert counter(cache.metrics.prefetch_wasted) == 0
    run(body())


def test_a_hydration_that_fails_after_its_reader_gave_up_is_reported_to_the_next_read(one_segment):
    """A Fetch answered without a partition leaves its GET going. If that hydration
    fails, the next demand read of the chunk gets the error at once (no new GET: a
    read cut short again and again would otherwise never see it); a prefetch does
    not take the report away; the read after the report downloads afresh."""
    log = one_segment

    async def body():
        cache = new_cache(log)
        log.store.faults.delay("get", 0.05)
        log.store.faults.corrupt_next_get()
        gave_up = asyncio.ensure_future(read_chunk(cache, log, 1))
        await asyncio.sleep(0.01)  # its GET is in flight
        gave_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gave_up
        while cache._flights:  # the abandoned hydration lands, failed
            await asyncio.sleep(0.01)
        gets = log.store.faults.calls["get"]
        with pytest.raises(CorruptChunkError):
            await read_chunk(cache, log, 1, prefetch=True)
        with pytest.raises(CorruptChunkError):
            await read_chunk(cache, log, 1)
        assert log.store.faults.calls["get"] == gets  # reported, not downloaded again
        assert await read_chunk(cache, log, 1) == expected_chunk(log, 1)
        assert log.store.faults.calls["get"] == gets + 1
        assert cache.pool.used_slabs == 1  # the failed hydration's buffers went back
    run(body())


def test_a_reader_joining_a_hydration_keeps_its_own_deadline(tmp_path):
    """Two readers want a chunk while the pool is full of a chunk someone is reading.
    The first reader's short deadline passes and its hydration gives up; the second,
    which joined that hydration with more time, keeps waiting, and gets the chunk
    once the pool has room."""
    log = remote_log(tmp_path, [make_batches(random.Random(4), 0, 30)])
    meta = log.segments[0].meta
    assert len(meta.chunks) >= 2

    async def body():
        loop = asyncio.get_running_loop()
        cache = new_cache(log, slabs=1)
        seg = log.segments[0]
        held = await cache.get(seg.segment.data_key, meta.chunks[0], meta.compression, TOPIC, loop.time() + 5)
        hurried = asyncio.create_task(read_chunk(cache, log, 1, timeout=0.05))
        await asyncio.sleep(0)
        patient = asyncio.create_task(read_chunk(cache, log, 1, timeout=30))
        with pytest.raises(PoolExhausted):
            await hurried
        assert not patient.done()
        cache.unpin(held)  # the pool has room now
        assert await patient == expected_chunk(log, 1)
    run(body())
