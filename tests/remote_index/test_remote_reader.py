"""RemoteLogReader: whole batches from the bucket, exact across chunk and segment
boundaries, below the upper bound, within max_bytes (one batch at least when
asked), corrupt data never served, bounded concurrency, prefetch across
segments and warm-up when out of time.

The remote log is real: three segments of record batches encoded in chunks of
about 2 KiB (some batches larger than a chunk) in a LocalDirectoryStore.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from broker.protocol.records import parse_batch_header
from remote_index.read_metrics import ReadMetrics
from remote_index.remote_reader import ReadSettings, RemoteLogReader, RemoteReadError
from remote_index.store import StoreError
from tests.remote_index.test_chunk_cache import (
    TOPIC,
    RemoteLog,
    counter,
    make_batches,
    remote_log,
)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(params=["none", "zstd", "lz4"])
def compression(request):
    return request.param


@pytest.fixture
def log(tmp_path, compression) -> RemoteLog:
    rng = random.Random(11)
    segments, offset = [], 0
    for count in (25, 18, 30):
        batches = make_batches(rng, offset, count, big_every=7)
        segments.append(batches)
        offset = batches[-1].last_offset + 1
    return remote_log(tmp_path, segments, compression=compression)


def new_reader(log: RemoteLog, **settings) -> RemoteLogReader:
    defaults = {"pool_bytes": 1 << 20, "slab_bytes": 8192, "concurrency": 4}
    return RemoteLogReader(log.store, ReadSettings(**(defaults | settings)), ReadMetrics())


async def read(reader: RemoteLogReader, log: RemoteLog, offset: int, max_bytes: int, *,
               upper_bound: int | None = None, min_one_batch: bool = True, timeout: float = 30):
    loop = asyncio.get_running_loop()
    return await reader.read(TOPIC, 0, log.manifest, offset, max_bytes,
                             upper_bound=log.next_offset if upper_bound is None else upper_bound,
                             min_one_batch=min_one_batch, deadline=loop.time() + timeout)


async def settle(reader: RemoteLogReader) -> None:
    """Let background hydrations (prefetch, warm-up) finish."""
    while reader._prefetches:
        await asyncio.gather(*list(reader._prefetches), return_exceptions=True)


def batch_offsets(records: bytes) -> list[tuple[int, int]]:
    out, pos = [], 0
    while pos < len(records):
        header = parse_batch_header(records, pos)
        out.append((header.base_offset, header.last_offset))
        pos += header.size
    return out


async def read_all(reader, log, offset, max_bytes, upper_bound=None) -> tuple[bytes, int, list]:
    """Sequential reads from `offset` until the bound; returns (bytes, end offset, read sizes)."""
    bound = log.next_offset if upper_bound is None else upper_bound
    out, sizes = bytearray(), []
    while offset < bound:
        result = await read(reader, log, offset, max_bytes, upper_bound=bound)
        assert result.records, f"no progress at offset {offset}"
        assert result.next_offset > offset
        sizes.append(len(result.records))
        out += result.records
        offset = result.next_offset
    return bytes(out), offset, sizes


# -- exactness -------------------------------------------------------------------------


@pytest.mark.parametrize("max_bytes", [1, 700, 3000, 9000, 1 << 20])
def test_sequential_reads_are_exact_across_chunks_and_segments(log, max_bytes):
    chunks = sum(len(s.meta.chunks) for s in log.segments)
    assert len(log.segments) == 3 and chunks > 3 * 5

    async def body():
        reader = new_reader(log)
        data, end, sizes = await read_all(reader, log, 0, max_bytes)
        assert data == log.bytes_from(0)
        assert end == log.next_offset
        biggest_batch = max(len(b.data) for b in log.batches)
        assert all(size <= max(max_bytes, biggest_batch) for size in sizes)
        if max_bytes >= 9000:
            assert any(size > 2048 for size in sizes), "a read should span chunks"
        await settle(reader)
        await reader.close()
    run(body())


def test_a_read_from_inside_a_batch_starts_with_that_whole_batch(log):
    multi = next(b for b in log.segments[1].batches if b.last_offset > b.base_offset)

    async def body():
        reader = new_reader(log)
        result = await read(reader, log, multi.base_offset + 1, 1 << 20)
        assert result.records.startswith(multi.data)
        assert result.records == log.bytes_from(multi.base_offset + 1)
        await reader.close()
    run(body())


def test_every_start_offset_reads_from_its_batch(log):
    async def body():
        reader = new_reader(log, prefetch=False)
        for offset in range(0, log.next_offset, 3):
            result = await read(reader, log, offset, 2500)
            got = batch_offsets(result.records)
            assert got and got[0][0] <= offset <= got[0][1]
            assert result.next_offset == got[-1][1] + 1
            assert log.bytes_from(offset).startswith(result.records)
        await reader.close()
    run(body())


# -- bounds ---------------------------------------------------------------------------------


def test_reads_stop_below_the_upper_bound(log):
    """The local log starts at `upper_bound`: nothing at or past it comes from the bucket."""
    middle = log.segments[1].batches
    bounds = [middle[len(middle) // 2].base_offset,  # inside a segment
              log.segments[2].segment.base_offset,  # at a segment boundary
              log.segments[0].batches[1].base_offset]  # early in the first chunk

    async def body():
        for bound in bounds:
            reader = new_reader(log)
            for max_bytes in (900, 1 << 20):
                data, end, _ = await read_all(reader, log, 0, max_bytes, upper_bound=bound)
                assert end == bound
                assert data == log.bytes_from(0, bound)
                assert all(base < bound for base, _ in batch_offsets(data))
            await settle(reader)
            await reader.close()
    run(body())


def test_max_bytes_and_min_one_batch(log):
    big = next(b for b in log.batches if len(b.data) > 6000)

    async def body():
        reader = new_reader(log)
        # The batch alone is bigger than max_bytes: nothing, unless one batch is asked for.
        empty = await read(reader, log, big.base_offset, 100, min_one_batch=False)
        assert (empty.records, empty.next_offset) == (b"", big.base_offset)
        one = await read(reader, log, big.base_offset, 100, min_one_batch=True)
        assert one.records == big.data and one.next_offset == big.last_offset + 1
        # Exactly fitting batches: all of them; one byte less: one fewer.
        after = [b for b in log.batches if b.base_offset > big.last_offset][:3]
        exact = sum(len(b.data) for b in after)
        result = await read(reader, log, after[0].base_offset, exact, min_one_batch=False)
        assert result.records == b"".join(b.data for b in after)
        result = await read(reader, log, after[0].base_offset, exact - 1, min_one_batch=False)
        assert result.records == b"".join(b.data for b in after[:2])
        assert result.next_offset == after[2].base_offset
        await settle(reader)
        await reader.close()
    run(body())


def test_a_read_that_fills_its_budget_at_a_chunk_end_does_not_fetch_the_next_chunk(log):
    first = log.segments[0].meta.chunks[0]

    async def body():
        reader = new_reader(log, prefetch=False)
        result = await read(reader, log, 0, first.length, min_one_batch=False)
        assert result.records == log.bytes_from(0)[:first.length]
        assert result.next_offset == first.last_offset + 1
        assert log.store.faults.calls["get"] == 2  # the meta and chunk 0, nothing more
        await reader.close()
    run(body())


# -- failures -----------------------------------------------------------------------------


def test_a_corrupt_chunk_is_an_error_never_data(log):
    async def body():
        reader = new_reader(log, prefetch=False)
        await read(reader, log, 0, 100)  # meta of segment 0 cached; the next GET is a chunk
        start = log.segments[0].batches[-1].base_offset
        log.store.faults.corrupt_next_get()
        with pytest.raises(RemoteReadError) as raised:
            await read(reader, log, start, 1 << 20)
        assert raised.value.corrupt
        assert counter(reader.metrics.corrupt_chunks, TOPIC) == 1
        assert counter(reader.metrics.fetch_errors, "corrupt") == 1
        # Transit damage: the next read gets good data (nothing bad was cached).
        result = await read(reader, log, start, 1 << 20)
        assert log.bytes_from(start).startswith(result.records) and result.records
        await reader.close()
    run(body())


def test_a_corrupt_segment_meta_is_an_error(log):
    async def body():
        reader = new_reader(log, prefetch=False)
        log.store.faults.corrupt_next_get()  # the first GET is the meta object
        with pytest.raises(RemoteReadError) as raised:
            await read(reader, log, 0, 1 << 20)
        assert raised.value.corrupt
        assert counter(reader.metrics.corrupt_chunks, TOPIC) == 1
        await reader.close()
    run(body())


def test_an_unreachable_store_is_a_retriable_error(log):
    async def body():
        reader = new_reader(log, prefetch=False)
        log.store.faults.fail_next("get", error=StoreError)
        with pytest.raises(RemoteReadError) as raised:
            await read(reader, log, 0, 1 << 20)
        assert not raised.value.corrupt
        assert counter(reader.metrics.fetch_errors, "store") == 1
        assert counter(reader.metrics.corrupt_chunks, TOPIC) == 0
        data, _, _ = await read_all(reader, log, 0, 1 << 20)
        assert data == log.bytes_from(0)
        await reader.close()
    run(body())


# -- limits ---------------------------------------------------------------------------------


def test_at_most_concurrency_reads_touch_the_store_at_once(log):
    in_flight = {"now": 0, "peak": 0}
    store = log.store
    for name in ("get", "get_into"):
        original = getattr(store, name)

        async def counted(*args, _original=original, **kwargs):
            in_flight["now"] += 1
            in_flight["peak"] = max(in_flight["peak"], in_flight["now"])
            try:
                return await _original(*args, **kwargs)
            finally:
                in_flight["now"] -= 1

        setattr(store, name, counted)

    async def body():
        reader = new_reader(log, concurrency=2, prefetch=False)
        store.faults.delay("get", 0.01)
        starts = [b.base_offset for b in log.batches[::6]]
        results = await asyncio.gather(*(read(reader, log, o, 3000) for o in starts))
        for offset, result in zip(starts, results):
            assert result.records and log.bytes_from(offset).startswith(result.records)
        assert in_flight["peak"] <= 2
        await reader.close()
    run(body())


def test_the_bytes_per_second_limit_throttles_downloads(log):
    async def body():
        total = sum(s.meta.object_bytes for s in log.segments)
        reader = new_reader(log, bytes_per_s=total * 4, prefetch=False)  # ~1/4 s of downloads
        data, _, _ = await read_all(reader, log, 0, 1 << 20)
        assert data == log.bytes_from(0)
        assert reader.cache.rate.throttled_seconds > 0
        await reader.close()
    run(body())


def test_a_read_holding_enough_bytes_does_not_wait_for_the_next_chunks_get(log):
    """With `enough` (a Fetch's min_bytes) in hand, a read stops at the first chunk not
    in memory instead of waiting for its GET; with nothing in hand it waits; chunks
    already in memory it reads on through."""
    chunks = log.segments[0].meta.chunks
    first, second = chunks[0], chunks[1]

    async def body():
        reader = new_reader(log, prefetch=False)
        loop = asyncio.get_running_loop()

        async def read_enough(offset):
            return await reader.read(TOPIC, 0, log.manifest, offset, 1 << 20, upper_bound=log.next_offset,
                                     min_one_batch=True, deadline=loop.time() + 30, enough=1)

        result = await read_enough(0)
        assert bytes(result.records) == log.bytes_from(0)[:first.length]  # chunk 0, no more
        assert result.next_offset == first.last_offset + 1
        gets = log.store.faults.calls["get"]
        result = await read_enough(result.next_offset)  # nothing in hand: waits for chunk 1
        assert bytes(result.records) == log.bytes_from(second.first_offset)[:second.length]
        assert log.store.faults.calls["get"] == gets + 1
        result = await read_enough(0)  # chunks 0 and 1 in memory, chunk 2 not
        assert bytes(result.records) == log.bytes_from(0)[:first.length + second.length]
        assert log.store.faults.calls["get"] == gets + 1
        await reader.close()
    run(body())


def test_a_read_from_memory_answers_only_what_needs_no_wait(log):
    """`read_from_memory` serves what is hydrated, exactly as `read` would, and answers
    None, having started no GET and kept no slot, when it would have to wait: for a
    segment meta, for its first chunk, or for a reader slot."""
    chunks = log.segments[0].meta.chunks
    first, second = chunks[0], chunks[1]

    async def body():
        reader = new_reader(log, prefetch=False, concurrency=1)

        def from_memory(offset, enough=1):
            return reader.read_from_memory(TOPIC, 0, log.manifest, offset, 1 << 20, upper_bound=log.next_offset,
                                           min_one_batch=True, enough=enough)

        assert from_memory(0) is None  # the meta is not loaded
        assert log.store.faults.calls["get"] == 0 and not reader._prefetches
        requests = counter(reader.metrics.fetch_requests, TOPIC)
        result = await read(reader, log, 0, first.length)  # meta and chunk 0 into memory
        assert bytes(result.records) == log.bytes_from(0)[:first.length]
        gets = log.store.faults.calls["get"]

        served = from_memory(0)  # chunk 0 in memory, chunk 1 not: what is there, at once
        assert bytes(served.records) == bytes(result.records) and served.next_offset == result.next_offset
        assert from_memory(second.first_offset) is None  # its first chunk is not in memory
        assert from_memory(0, enough=None) is None  # must read on into chunk 1
        assert log.store.faults.calls["get"] == gets
        assert counter(reader.metrics.fetch_requests, TOPIC) == requests + 2

        await reader._slots.acquire()  # every reader slot taken
        assert from_memory(0) is None
        reader._slots.release()
        assert from_memory(0) is not None and not reader._slots.locked()
        await reader.close()
    run(body())


# -- prefetch and warm-up ------------------------------------------------------------------------


def test_read_ahead_downloads_one_chunk_at_a_time_nearest_first(log):
    """A sequential reader's read-ahead keeps one GET in flight, for the nearest chunk
    it lacks: the chunk it needs next never shares its bandwidth with later ones."""
    in_flight = {"now": 0, "peak": 0}
    downloads = []  # (segment number, object offset) in the order the GETs started
    segment_number = {s.segment.data_key: n for n, s in enumerate(log.segments)}
    original = log.store.get_into

    async def counted(key, start, end, buffer):
        downloads.append((segment_number[key], start))
        in_flight["now"] += 1
        in_flight["peak"] = max(in_flight["peak"], in_flight["now"])
        try:
            return await original(key, start, end, buffer)
        finally:
            in_flight["now"] -= 1

    log.store.get_into = counted

    async def body():
        reader = new_reader(log, prefetch_chunks=4)
        log.store.faults.delay("get", 0.005)
        offset, most_ahead = 0, 0
        while offset < log.next_offset:
            result = await read(reader, log, offset, 1)
            assert result.records and log.bytes_from(offset).startswith(result.records)
            offset = result.next_offset
            await settle(reader)
            most_ahead = max(most_ahead, len(reader.cache.prefetched_chunks()))
        assert most_ahead >= 3, "the reader should have had several chunks read ahead"
        assert in_flight["peak"] == 1
        assert downloads == sorted(downloads) and len(set(downloads)) == len(downloads)
        await reader.close()
    run(body())




def test_sequential_reads_prefetch_across_segment_boundaries(log):
    second = log.segments[1]

    async def body():
        reader = new_reader(log, prefetch_chunks=4)
        metrics = reader.metrics
        # Walk segment 0 one batch per read (max_bytes 1, at least one batch): every read
        # continues where the last ended, so the prefetch window grows and reaches past
        # the segment's end into segment 1 before any read gets there.
        offset = 0
        while offset < second.segment.base_offset:
            offset = (await read(reader, log, offset, 1)).next_offset
            await settle(reader)
        assert offset == second.segment.base_offset
        ahead = reader.cache.cached((second.segment.data_key, 0))
        assert ahead is not None and ahead.prefetched
        hits = counter(metrics.prefetch_hits)
        gets = log.store.faults.calls["get"]
        result = await read(reader, log, offset, 1)
        assert result.records == second.batches[0].data
        assert counter(metrics.prefetch_hits) == hits + 1
        assert log.store.faults.calls["get"] == gets  # served from memory
        assert counter(metrics.prefetch_hits) > 3
        await settle(reader)
        await reader.close()
    run(body())


def test_a_deferred_read_ahead_starts_only_when_its_caller_says(log):
    """With `defer` (the Fetch hands over "once my answer is sent"), a read that calls
    for read-ahead starts no GET itself; the handed-over start does. A start handed
    over twice starts one read-ahead, and one run after close starts none."""

    async def body():
        reader = new_reader(log, prefetch_chunks=4)
        deferred = []

        async def read_deferred(offset):
            loop = asyncio.get_running_loop()
            return await reader.read(TOPIC, 0, log.manifest, offset, 1, upper_bound=log.next_offset,
                                     min_one_batch=True, deadline=loop.time() + 30, defer=deferred.append)

        first = await read_deferred(0)
        second = await read_deferred(first.next_offset)  # sequential: read-ahead is called for
        assert second.records and deferred
        gets = log.store.faults.calls["get"]
        await asyncio.sleep(0.05)
        assert not reader._prefetches and log.store.faults.calls["get"] == gets
        assert not reader.cache.prefetched_chunks()
        for start in deferred:
            start()
        assert len(reader._prefetches) == 1, "one read-ahead however often the start was handed over"
        await settle(reader)
        assert reader.cache.prefetched_chunks() and log.store.faults.calls["get"] > gets

        deferred.clear()
        offset = second.next_offset
        while not deferred:
            offset = (await read_deferred(offset)).next_offset
        await reader.close()
        for start in deferred:
            start()
        assert not reader._prefetches
    run(body())


def test_a_read_at_a_new_position_reads_one_chunk_ahead_and_a_sequential_one_more(log):
    """The first read of a reader (a new position) gets the next chunk read ahead at
    once; a read that continues where the last ended widens the window."""
    chunks = log.segments[0].meta.chunks
    key = log.segments[0].segment.data_key

    async def body():
        reader = new_reader(log, prefetch_chunks=4)
        first = await read(reader, log, 0, chunks[0].length)  # chunk 0 exactly
        assert first.next_offset == chunks[1].first_offset
        await settle(reader)
        assert [i for i in range(len(chunks)) if reader.cache.cached((key, i))] == [0, 1]
        assert reader.cache.cached((key, 1)).prefetched
        await read(reader, log, first.next_offset, chunks[1].length)  # sequential: window 2
        await settle(reader)
        assert [i for i in range(len(chunks)) if reader.cache.cached((key, i))] == [0, 1, 2, 3]
        await reader.close()
    run(body())


def test_a_full_sequential_replay_fetches_each_chunk_once(log):
    chunks = sum(len(s.meta.chunks) for s in log.segments)

    async def body():
        reader = new_reader(log, prefetch_chunks=4)
        offset = 0
        while offset < log.next_offset:
            offset = (await read(reader, log, offset, 2000)).next_offset
            await settle(reader)
        # Every chunk and meta downloaded once: prefetch never fetched twice or in vain.
        assert log.store.faults.calls["get"] == chunks + len(log.segments)
        assert counter(reader.metrics.prefetch_wasted) == 0
        assert counter(reader.metrics.prefetch_hits) > 0
        await reader.close()
    run(body())


def test_a_read_out_of_time_warms_the_chunks_for_the_next_one(log):
    async def body():
        reader = new_reader(log)
        loop = asyncio.get_running_loop()
        start = log.segments[1].segment.base_offset
        log.store.faults.delay("get", 0.05)  # no GET can land before the (past) deadline
        late = await reader.read(TOPIC, 0, log.manifest, start, 4000, upper_bound=log.next_offset,
                                 min_one_batch=True, deadline=loop.time() - 1)
        assert (late.records, late.next_offset) == (b"", start)
        await settle(reader)  # the warm-up hydrates in the background
        gets = log.store.faults.calls["get"]
        assert gets > 0
        result = await read(reader, log, start, 4000)
        assert result.records and log.bytes_from(start).startswith(result.records)
        assert log.store.faults.calls["get"] == gets  # all of it was warmed
        await reader.close()
    run(body())
