"""Hydrated chunks in memory: hydrate (bucket -> pool buffer), serve, evict (LRU).

A chunk is hydrated by one ranged GET into a buffer reserved from the pool
before the GET starts, then verified (stored CRC-32C, decompression into a
second reserved buffer, original CRC-32C) in a worker thread. Only a chunk
that passed every check enters the cache, so no byte of a corrupt chunk can
reach a client.

Concurrent requests for one chunk share a single hydration (single flight).
A hydration keeps going when every reader waiting for it gives up (a Fetch
answered without it), so the next read finds the chunk in memory; if such a
hydration fails (corrupt data, an unreachable store), the failure is kept and
raised to the next demand read of that chunk, which would otherwise start a new
GET and could be cut short again, never seeing the error.
Readers *pin* a chunk while they copy batches out of it; eviction (asked for by
the pool when a reservation does not fit) takes least-recently-used unpinned
chunks. A chunk hydrated by prefetch and evicted before anyone read it counts
as a wasted prefetch.

Not thread-safe: event loop only (the worker thread only sees buffers it was
handed).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass

from .buffer_pool import BufferPool, LargerThanPool, Lease, PoolExhausted
from .rate_limit import TokenBucket
from .read_metrics import ReadMetrics
from .segment_format import ChunkEntry, CorruptChunkError, decode_chunk
from .store import ObjectStore, StoreError

log = logging.getLogger("remote_index.cache")

ChunkId = tuple[str, int]  # (data object key, chunk index)

MAX_FAILURES_KEPT = 1024


@dataclass(eq=False)
class HydratedChunk:
    chunk_id: ChunkId
    entry: ChunkEntry
    data: memoryview  # the chunk's original bytes: whole record batches
    leases: list[Lease]
    topic: str
    pins: int = 0
    prefetched: bool = False  # hydrated ahead of demand and not read yet
    consumed: bool = False  # its last reader read it to its end (a sequential reader is done with it)

    @property
    def slabs(self) -> int:
        return sum(lease.slabs for lease in self.leases)


def _eviction_rank(chunk: HydratedChunk) -> int:
    """0: read to its end, 1: read part way, 2: prefetched and not read yet."""
    return 2 if chunk.prefetched else 0 if chunk.consumed else 1


def _sizes(entry: ChunkEntry) -> tuple[int, ...]:
    """The buffers a hydration of `entry` reserves: as stored, and decoded if compressed."""
    return (entry.object_length, entry.length) if entry.compressed else (entry.object_length,)


class _Flight:
    """One hydration in progress and how many tasks wait for it."""

    __slots__ = ("prefetch", "task", "waiters")

    def __init__(self, prefetch: bool = False) -> None:
        self.task: asyncio.Task | None = None
        self.waiters = 0
        self.prefetch = prefetch  # started by a prefetch: it gives up rather than evict


class ChunkCache:
    def __init__(self, store: ObjectStore, pool: BufferPool, metrics: ReadMetrics, rate: TokenBucket):
        self.store = store
        self.pool = pool
        self.metrics = metrics
        self.rate = rate
        self._chunks: collections.OrderedDict[ChunkId, HydratedChunk] = collections.OrderedDict()
        self._flights: dict[ChunkId, _Flight] = {}
        # Failures of demand hydrations that nobody was waiting for any more, oldest first.
        self._failures: collections.OrderedDict[ChunkId, Exception] = collections.OrderedDict()
        pool.reclaim = self.evict

    def cached(self, chunk_id: ChunkId) -> HydratedChunk | None:
        return self._chunks.get(chunk_id)

    def prefetched_chunks(self) -> list[HydratedChunk]:
        """Chunks hydrated ahead of demand that nobody has read yet."""
        return [c for c in self._chunks.values() if c.prefetched]

    async def get(self, data_key: str, entry: ChunkEntry, compression: str, topic: str, deadline: float,
                  *, prefetch: bool = False) -> HydratedChunk:
        """The verified chunk, pinned (call `unpin`), hydrating it if needed.
        Raises PoolExhausted past `deadline`, CorruptChunkError, StoreError."""
        chunk_id = (data_key, entry.index)
        chunk = self._chunks.get(chunk_id)
        if chunk is not None:
            self._chunks.move_to_end(chunk_id)
            if not prefetch:
                if chunk.prefetched:
                    self.metrics.prefetch_hits.inc()
                chunk.prefetched = chunk.consumed = False
            chunk.pins += 1
            return chunk
        if prefetch and chunk_id in self._failures:
            raise self._failures[chunk_id]  # left for the demand read to report
        failure = self._failures.pop(chunk_id, None)
        if failure is not None:
            raise failure
        if not prefetch:
            self.metrics.prefetch_misses.inc()
        while True:
            flight = self._flights.get(chunk_id)
            if flight is None or flight.task.done():  # a done one landed without us (or failed)
                if prefetch:
                    self._make_room_for_prefetch(_sizes(entry))  # PoolExhausted: no room, no flight
                flight = _Flight(prefetch)
                flight.task = asyncio.ensure_future(
                    self._hydrate(data_key, entry, compression, topic, deadline, prefetch, flight))
                self._flights[chunk_id] = flight
                flight.task.add_done_callback(lambda t, cid=chunk_id: self._landed(cid, t))
            # The chunk lands pinned once for each task waiting on it, so that nothing can
            # evict it between landing and the waiters resuming.
            flight.waiters += 1
            try:
                chunk = await asyncio.shield(flight.task)
            except LargerThanPool:
                flight.waiters -= 1
                raise
            except PoolExhausted:
                flight.waiters -= 1
                if prefetch or (not flight.prefetch and asyncio.get_running_loop().time() >= deadline):
                    raise
                # The flight gave up on pool room before our own deadline: it was a
                # prefetch (which never waits) or a reader with less time. Hydrate again,
                # waiting as long as we may.
                continue
            except BaseException:
                task = flight.task
                if task.done() and not task.cancelled() and task.exception() is None:
                    self.unpin(task.result())  # landed with a pin for us, but we are cancelled
                else:
                    flight.waiters -= 1
                raise
            break
        if not prefetch:
            chunk.prefetched = False
        self._chunks.move_to_end(chunk_id)
        return chunk

    def _landed(self, chunk_id: ChunkId, task: asyncio.Task) -> None:
        """A hydration ended; its outcome may have no waiter left (prefetch, timed-out read)."""
        flight = self._flights.get(chunk_id)
        if flight is not None and flight.task is task:
            del self._flights[chunk_id]
        else:
            flight = None  # already replaced by a newer hydration
        if task.cancelled() or (error := task.exception()) is None:
            return
        log.debug("hydrating %s chunk %d failed: %s", chunk_id[0], chunk_id[1], error)
        if (flight is not None and not flight.waiters and not flight.prefetch
                and isinstance(error, (CorruptChunkError, StoreError))):
            self._failures[chunk_id] = error
            while len(self._failures) > MAX_FAILURES_KEPT:
                self._failures.popitem(last=False)

    def unpin(self, chunk: HydratedChunk, *, consumed: bool | None = None) -> None:
        """Release a pin; `consumed` tells whether the reader read the chunk to its end."""
        chunk.pins -= 1
        if consumed is not None:
            chunk.consumed = consumed
        if not chunk.pins:
            self.pool.wake_waiters()  # it can be evicted now: a waiting reservation may fit

    async def _hydrate(self, data_key: str, entry: ChunkEntry, compression: str, topic: str,
                       deadline: float, prefetch: bool, flight: _Flight) -> HydratedChunk:
        # Both buffers in one reservation: holding the stored one while queueing for
        # the decoded one could deadlock against a waiter that needs the held slab.
        sizes = _sizes(entry)
        if prefetch:
            self._make_room_for_prefetch(sizes)  # the room `get` made may have been taken since
        leases = await self.pool.reserve_all(sizes, deadline)
        stored = leases[0]
        try:
            await self.rate.acquire(entry.object_length)
            await self.store.get_into(data_key, entry.object_offset, entry.object_end, stored.view)
            self.metrics.get_requests.labels(topic).inc()
            self.metrics.bytes_read.labels(topic).inc(entry.object_length)
            out = leases[1].view if entry.compressed else None
            data = await asyncio.to_thread(decode_chunk, stored.view, entry, compression, key=data_key, out=out)
            if entry.compressed:
                stored.release()
                leases.remove(stored)
        except BaseException:
            for lease in leases:
                lease.release()
            raise
        chunk = HydratedChunk((data_key, entry.index), entry, data, leases, topic, pins=flight.waiters,
                              prefetched=prefetch)
        self._chunks[chunk.chunk_id] = chunk
        return chunk

    def evict(self, slabs_wanted: int) -> int:
        """Drop unpinned chunks until `slabs_wanted` slabs are free, least recently used
        first within each class, the classes in this order: chunks read to their end,
        chunks read part way (a reader is in the middle of them), prefetched chunks
        nobody has read yet. (Plain LRU does the opposite for sequential readers: the
        chunk a reader has just finished was touched after the chunks prefetched ahead
        of it, so those went first and were downloaded twice.)"""
        return self._evict(slabs_wanted, max_rank=2)

    def _evict(self, slabs_wanted: int, max_rank: int) -> int:
        freed = 0
        for rank in range(max_rank + 1):
            for chunk_id, chunk in list(self._chunks.items()):
                if freed >= slabs_wanted:
                    return freed
                if chunk.pins or _eviction_rank(chunk) != rank:
                    continue
                del self._chunks[chunk_id]
                if chunk.prefetched:
                    self.metrics.prefetch_wasted.inc()
                freed += chunk.slabs
                for lease in chunk.leases:
                    lease.release()
        return freed

    def _make_room_for_prefetch(self, sizes) -> None:
        """Evict chunks read to their end, and nothing else, until `sizes` fit; raise
        PoolExhausted if they still do not. The reservation that follows (no await in
        between) then finds its room free and never asks for a wider eviction."""
        wanted = sum(self.pool.slabs_for(n) for n in sizes)
        missing = wanted - (self.pool.capacity_slabs - self.pool.used_slabs)
        if missing > 0:
            self._evict(missing, max_rank=0)
        if self.pool.capacity_slabs - self.pool.used_slabs < wanted:
            raise PoolExhausted("no room for a prefetch without evicting a chunk still in use")

    def prefetch_fits(self, entry: ChunkEntry) -> bool:
        """Whether hydrating `entry` ahead of demand fits in the pool's free space plus
        that of unpinned chunks read to their end: a prefetch never evicts a chunk a
        reader is in the middle of, nor another prefetch."""
        wanted = sum(self.pool.slabs_for(n) for n in _sizes(entry))
        free = self.pool.capacity_slabs - self.pool.used_slabs
        if free >= wanted:
            return True
        return free + sum(c.slabs for c in self._chunks.values() if not c.pins and _eviction_rank(c) == 0) >= wanted

    def close(self) -> None:
        """Cancel hydrations in flight and release every unpinned chunk."""
        for flight in list(self._flights.values()):
            flight.task.cancel()
        self.evict(1 << 62)
