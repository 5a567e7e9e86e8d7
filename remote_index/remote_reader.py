"""Cold reads: serve a Fetch for offsets the local log no longer has, from the bucket.

    manifest lookup -> segment meta (cached) -> chunk (hydrated into the pool,
    verified) -> the whole record batches from the requested offset up to the
    byte budget, continuing into the next chunks and segments

A read stops before `upper_bound` (the local log start offset), so the caller
continues from the local log with no gap and no duplicate. Reads are bounded:
at most `concurrency` run at once (hot produce and fetch never wait on them), an
optional bytes-per-second limit applies to what they download, and every byte
they hold comes from the pool. A read that runs out of time or pool space
answers with the batches it already has (possibly none): Kafka clients simply
fetch again.

A read that already holds `enough` bytes (the Fetch's min_bytes) stops at the
first chunk that is not in memory yet rather than wait for its GET: the client
gets what is there at once, and the chunk is read-ahead's to fetch (or the
client's next Fetch's, with prefetch off).

Readers are followed per partition and get the next chunks hydrated ahead of
them, across segment boundaries: one chunk after a read at a new position
(Kafka consumers read on from where they start, and with a bucket's first-byte
latency a reader that waited for a second read to prove itself sequential
would catch up with its read-ahead), doubling with each read that starts where
the last one ended (a sequential read) up to `prefetch_chunks`, and never more
than `prefetch_bytes` of not-yet-read prefetched data broker-wide. Each reader reads ahead one GET at a time, nearest
chunk first: the chunk it needs next never shares its bandwidth with chunks it
needs later, and readers take turns at the global bound instead of the first
one filling it. Prefetch only takes pool space that is free or held by chunks
read to their end: it never evicts a chunk a reader is in the middle of, nor
one prefetched for a reader that has not got there yet (eviction takes those
last; see `ChunkCache.evict`).

Remote bytes live in memory only: nothing is written to a file, so cold reads
leave the page cache alone. Not thread-safe: event loop only.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.protocol.record_decoding import record_timestamps
from broker.protocol.records import BATCH_HEADER_SIZE, parse_batch_header

from .buffer_pool import BufferPool, LargerThanPool, PoolExhausted
from .chunk_cache import ChunkCache
from .manifest import PartitionManifest, RemoteSegment, read_segment_meta
from .rate_limit import UNLIMITED, TokenBucket
from .read_metrics import ReadMetrics
from .segment_format import (
    CorruptChunkError,
    CorruptSegmentMetaError,
    SegmentMeta,
    chunk_for_offset,
    chunk_for_timestamp,
)
from .store import ObjectStore, StoreError

log = logging.getLogger("remote_index.read")

MAX_READERS_TRACKED = 1024


class _WouldWait(Exception):
    """A read from memory found something it would have to wait for."""


class RemoteReadError(Exception):
    """A remote read failed; `corrupt` tells bad data (never served) from an unreachable store."""

    def __init__(self, message: str, *, corrupt: bool):
        super().__init__(message)
        self.corrupt = corrupt


@dataclass(frozen=True)
class ReadSettings:
    pool_bytes: int = 64 << 20
    slab_bytes: int = 1 << 20
    concurrency: int = 10
    bytes_per_s: int = UNLIMITED
    prefetch_chunks: int = 4
    prefetch_bytes: int = 32 << 20
    meta_cache_entries: int = 256
    prefetch: bool = True

    @classmethod
    def from_broker_config(cls, config) -> "ReadSettings":
        return cls(
            pool_bytes=config.get("remote.log.reader.buffer.pool.bytes"),
            slab_bytes=config.get("remote.log.reader.buffer.slab.bytes"),
            concurrency=config.get("remote.log.reader.threads"),
            bytes_per_s=config.get("remote.log.manager.fetch.max.bytes.per.second"),
            prefetch_chunks=config.get("remote.log.reader.prefetch.chunks"),
            prefetch_bytes=config.get("remote.log.reader.prefetch.max.bytes"),
            prefetch=config.get("remote.log.reader.prefetch.enable"),
        )


@dataclass(frozen=True)
class RemoteRead:
    records: bytearray  # whole batches, possibly none (copied out of the chunks: no pool memory)
    next_offset: int  # where the next read continues


@dataclass
class _ReaderState:
    """Where a partition's reader is: for sequential detection, and for its read-ahead
    task, which follows `last` as the reader moves on."""

    next_offset: int
    window: int = 0
    manifest: PartitionManifest | None = None
    last: tuple[RemoteSegment, int] | None = None  # (segment, chunk index) the last read touched
    upper_bound: int = 0
    read_ahead: asyncio.Task | None = None


class RemoteLogReader:
    def __init__(self, store: ObjectStore, settings: ReadSettings, metrics: ReadMetrics):
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.pool = BufferPool(settings.pool_bytes, settings.slab_bytes)
        self.cache = ChunkCache(store, self.pool, metrics, TokenBucket(settings.bytes_per_s))
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._metas: collections.OrderedDict[str, SegmentMeta] = collections.OrderedDict()
        self._meta_flights: dict[str, asyncio.Task] = {}
        self._readers: collections.OrderedDict[tuple[str, int], _ReaderState] = collections.OrderedDict()
        self._prefetches: set[asyncio.Task] = set()  # background hydrations (prefetch, warm-up)
        self._warming: set[tuple[str, int, int]] = set()
        self._closed = False

    # -- reads ---------------------------------------------------------------

    async def read(self, topic: str, partition: int, manifest: PartitionManifest, offset: int, max_bytes: int,
                   *, upper_bound: int, min_one_batch: bool, deadline: float, enough: int | None = None,
                   defer: Callable[[Callable[[], None]], None] | None = None) -> RemoteRead:
        """Whole batches from the one holding `offset`, below `upper_bound`, within `max_bytes`
        (but at least one batch when `min_one_batch`). Once it holds `enough` bytes (if given) it
        does not wait for another chunk's GET. Empty when nothing fit in time; then
        the chunks it needs are hydrated in the background for the client's next Fetch.

        The read-ahead this read calls for starts at once, or is handed to `defer` (the
        Fetch passes "after my response is sent"): starting a GET takes botocore a few
        milliseconds of event-loop time, which the answer should not wait behind."""
        return await self._read(topic, partition, manifest, offset, max_bytes, upper_bound, min_one_batch,
                                deadline, enough, defer, wait=True)

    def read_from_memory(self, topic: str, partition: int, manifest: PartitionManifest, offset: int,
                         max_bytes: int, *, upper_bound: int, min_one_batch: bool, enough: int | None = None,
                         defer: Callable[[Callable[[], None]], None] | None = None) -> RemoteRead | None:
        """`read`, answered now if it needs nothing that is not in memory (a reader slot
        free, the segment metas loaded, the chunks hydrated, up to `enough` bytes);
        None when it would have to wait, having taken and started nothing (no slot
        held, no chunk pinned, no GET).

        So a Fetch serves read-ahead chunks in the same step of the event loop: run as
        a task of its own, each cold partition's read would cost the Fetch a few more
        trips round the loop, each as long as whatever else is ready to run (the
        landing of other GETs, for one)."""
        # With wait=False the coroutine never suspends: it finishes in one send, or
        # raises _WouldWait before taking anything it would have to give back.
        coroutine = self._read(topic, partition, manifest, offset, max_bytes, upper_bound, min_one_batch,
                               math.inf, enough, defer, wait=False)
        try:
            coroutine.send(None)
        except StopIteration as finished:
            return finished.value
        except _WouldWait:
            return None
        coroutine.close()
        raise AssertionError("a read from memory suspended")

    async def _read(self, topic, partition, manifest, offset, max_bytes, upper_bound, min_one_batch, deadline,
                    enough, defer, *, wait: bool) -> RemoteRead:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        if not wait and self._slots.locked():
            raise _WouldWait
        try:
            slot = await self._take_slot(deadline)
        except asyncio.CancelledError:  # the Fetch answered without this partition
            self.warm(topic, partition, manifest, offset, max_bytes, upper_bound)
            raise
        if not slot:
            self.warm(topic, partition, manifest, offset, max_bytes, upper_bound)
            return RemoteRead(bytearray(), offset)
        try:
            out, end_offset, last = await self._collect(topic, manifest, offset, max_bytes, upper_bound,
                                                        min_one_batch, deadline, enough, wait)
        except asyncio.CancelledError:  # the Fetch answered without this partition
            self.warm(topic, partition, manifest, offset, max_bytes, upper_bound)
            raise
        except (CorruptChunkError, CorruptSegmentMetaError) as exc:
            self.metrics.corrupt_chunks.labels(topic).inc()
            self.metrics.fetch_errors.labels("corrupt").inc()
            log.error("%s-%d: refusing to serve offset %d: %s", topic, partition, offset, exc)
            raise RemoteReadError(str(exc), corrupt=True) from None
        except StoreError as exc:
            self.metrics.fetch_errors.labels("store").inc()
            raise RemoteReadError(f"remote read of {topic}-{partition} at {offset} failed: {exc}",
                                  corrupt=False) from None
        except LargerThanPool as exc:
            self.metrics.fetch_errors.labels("pool-too-small").inc()
            log.error("%s-%d: cannot read offset %d from the remote tier: %s; raise "
                      "remote.log.reader.buffer.pool.bytes or lower the topic's remote.storage.chunk.bytes",
                      topic, partition, offset, exc)
            raise RemoteReadError(str(exc), corrupt=False) from None
        finally:
            self._slots.release()
            self.metrics.pool_bytes.set(self.pool.bytes_in_use)
        self.metrics.fetch_requests.labels(topic).inc()
        self.metrics.fetch_bytes.labels(topic).inc(len(out))
        self.metrics.fetch_latency.observe(time.monotonic() - started)
        if not out and loop.time() >= deadline:
            self.warm(topic, partition, manifest, offset, max_bytes, upper_bound)
        if out and self.settings.prefetch:
            self._prefetch_after(topic, partition, manifest, offset, end_offset, last, upper_bound, defer)
        return RemoteRead(out, end_offset)

    async def _take_slot(self, deadline: float) -> bool:
        """A reader slot, waiting until `deadline` at most. A free slot is taken even
        when the deadline has passed (a zero wait must still make progress)."""
        if not self._slots.locked():
            await self._slots.acquire()
            return True
        try:
            await asyncio.wait_for(self._slots.acquire(), max(deadline - asyncio.get_running_loop().time(), 0))
        except asyncio.TimeoutError:
            return False
        return True

    def warm(self, topic: str, partition: int, manifest: PartitionManifest, offset: int, max_bytes: int,
             upper_bound: int) -> None:
        """Hydrate in the background what `read` at `offset` would need (bounded by the
        same slots and pool), so the chunks are in memory when the client asks again.
        For a read that ran out of time, or one a Fetch answers without."""
        key = (topic, partition, offset)
        if key in self._warming:
            return
        self._warming.add(key)

        async def warm() -> None:
            loop = asyncio.get_running_loop()
            try:
                async with self._slots:
                    await self._collect(topic, manifest, offset, max_bytes, upper_bound, True, loop.time() + 10)
            except Exception:
                pass  # the client's next read reports real errors
            finally:
                self._warming.discard(key)

        self._track(asyncio.ensure_future(warm()))

    def _track(self, task: asyncio.Task) -> None:
        self._prefetches.add(task)
        task.add_done_callback(self._prefetches.discard)

    async def _collect(self, topic, manifest, offset, max_bytes, upper_bound, min_one_batch, deadline,
                       enough=None, wait=True):
        """(batches, next offset, last chunk touched). With `wait` false, raises _WouldWait
        instead of awaiting a segment meta or a chunk that is not in memory."""
        out = bytearray()
        position = offset
        last = None  # (segment, chunk index) of the last chunk touched
        segment = manifest.segment_for_offset(offset)
        while segment is not None and position < upper_bound:
            if not wait and segment.data_key not in self._metas:
                raise _WouldWait
            try:
                meta = await self._meta(segment, deadline)
            except PoolExhausted:  # the meta did not arrive in time: answer with what we have
                return out, position, last
            index = chunk_for_offset(meta, position)
            while index is not None and index < len(meta.chunks) and position < upper_bound:
                entry = meta.chunks[index]
                in_memory = self.cache.cached((segment.data_key, index)) is not None
                if enough is not None and len(out) >= enough and not in_memory:
                    return out, position, last  # enough to answer: do not wait for a GET
                if not wait and not in_memory:
                    raise _WouldWait
                try:
                    chunk = await self.cache.get(segment.data_key, entry, meta.compression, topic, deadline)
                except LargerThanPool:
                    raise
                except PoolExhausted:
                    self.metrics.pool_exhausted.inc()
                    return out, position, last
                full = True
                try:
                    position, full = _copy_batches(chunk.data, out, position, upper_bound, max_bytes,
                                                   min_one_batch and not out)
                finally:
                    self.cache.unpin(chunk, consumed=not full)  # not full: read to its end
                last = (segment, index)
                if full or len(out) >= max_bytes:
                    # No budget left: do not hydrate the next chunk (a GET, perhaps a wait
                    # for pool space) only to find that its first batch does not fit.
                    return out, position, last
                index += 1
            segment = _next_segment(manifest, segment)
        return out, position, last

    async def _meta(self, segment: RemoteSegment, deadline: float) -> SegmentMeta:
        meta = self._metas.get(segment.data_key)
        if meta is not None:
            self._metas.move_to_end(segment.data_key)
            return meta
        flight = self._meta_flights.get(segment.data_key)
        if flight is None:
            flight = asyncio.ensure_future(self._load_meta(segment))
            self._meta_flights[segment.data_key] = flight
            flight.add_done_callback(lambda t, key=segment.data_key: self._meta_flights.pop(key, None))
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(asyncio.shield(flight), max(deadline - loop.time(), 0.001))
        except asyncio.TimeoutError:
            raise PoolExhausted("segment meta not loaded in time") from None

    async def _load_meta(self, segment: RemoteSegment) -> SegmentMeta:
        meta = await read_segment_meta(self.store, segment)
        self._metas[segment.data_key] = meta
        while len(self._metas) > self.settings.meta_cache_entries:
            self._metas.popitem(last=False)
        return meta

    async def offset_for_timestamp(self, topic: str, manifest: PartitionManifest, timestamp: int,
                                   deadline: float) -> tuple[int, int] | None:
        """(offset, timestamp) of the first remote record with a timestamp >= `timestamp`,
        or None when the remote tier holds none. Uses each segment's max timestamp,
        then the meta's per-chunk max timestamps, then the records of one batch."""
        start = manifest.remote_log_start_offset
        if start is None:
            return None
        try:
            return await self._find_offset_for_timestamp(topic, manifest, timestamp, start, deadline)
        except (CorruptChunkError, CorruptSegmentMetaError) as exc:
            self.metrics.corrupt_chunks.labels(topic).inc()
            raise RemoteReadError(str(exc), corrupt=True) from None
        except (StoreError, PoolExhausted) as exc:
            raise RemoteReadError(f"remote timestamp lookup in {topic} failed: {exc}", corrupt=False) from None

    async def _find_offset_for_timestamp(self, topic, manifest, timestamp, start, deadline):
        for segment in manifest.finished_segments:
            if segment.next_offset <= start or segment.max_timestamp < timestamp:
                continue
            meta = await self._meta(segment, deadline)
            index = chunk_for_timestamp(meta, timestamp)
            while index is not None and index < len(meta.chunks):
                entry = meta.chunks[index]
                chunk = await self.cache.get(segment.data_key, entry, meta.compression, topic, deadline)
                try:
                    found = _find_timestamp(chunk.data, timestamp, start)
                finally:
                    self.cache.unpin(chunk)
                if found is not None:
                    return found
                index += 1
        return None

    def max_timestamp(self, manifest: PartitionManifest) -> int:
        """The largest record timestamp the remote tier holds (-1 when none)."""
        start = manifest.remote_log_start_offset
        return max((s.max_timestamp for s in manifest.finished_segments
                    if start is not None and s.next_offset > start), default=-1)

    # -- prefetch ------------------------------------------------------------

    def _prefetch_after(self, topic, partition, manifest, offset, end_offset, last, upper_bound, defer) -> None:
        key = (topic, partition)
        state = self._readers.get(key)
        if state is not None and state.next_offset == offset:
            state.window = min(max(1, state.window * 2), self.settings.prefetch_chunks)
        else:
            state = _ReaderState(end_offset, window=min(1, self.settings.prefetch_chunks))
        state.next_offset = end_offset
        state.manifest, state.upper_bound = manifest, upper_bound
        if last is not None:
            state.last = last
        self._readers[key] = state
        self._readers.move_to_end(key)
        while len(self._readers) > MAX_READERS_TRACKED:
            self._readers.popitem(last=False)
        if state.window and state.last is not None and (state.read_ahead is None or state.read_ahead.done()):
            def start() -> None:
                # Deferred starts re-check: another read of the partition may have started one.
                if not self._closed and (state.read_ahead is None or state.read_ahead.done()):
                    state.read_ahead = asyncio.ensure_future(self._read_ahead(topic, state))
                    self._track(state.read_ahead)

            if defer is None:
                start()
            else:
                defer(start)

    async def _read_ahead(self, topic: str, state: _ReaderState) -> None:
        """Hydrate the chunks within `state.window` after the reader's position, one at a
        time, nearest first, until all are in memory or the prefetch bound or the pool
        says stop. The position is re-read after each chunk: the reader moves on meanwhile."""
        while True:
            try:
                wanted = await self._next_wanted(state)
            except (PoolExhausted, StoreError, CorruptSegmentMetaError):
                return  # prefetch is an optimisation: the demand read reports real errors
            if wanted is None:
                return
            data_key, entry, compression = wanted
            if self._prefetched_bytes() >= self.settings.prefetch_bytes or not self.cache.prefetch_fits(entry):
                return
            loop = asyncio.get_running_loop()
            try:
                chunk = await self.cache.get(data_key, entry, compression, topic, loop.time(), prefetch=True)
            except (PoolExhausted, StoreError, CorruptChunkError):
                return
            self.cache.unpin(chunk)

    async def _next_wanted(self, state: _ReaderState):
        """(data key, chunk entry, compression) of the nearest chunk within the window
        after the reader's position that is not in memory, or None."""
        segment, index = state.last
        loop = asyncio.get_running_loop()
        meta = await self._meta(segment, loop.time() + 5)
        for _ in range(state.window):
            index += 1
            if index >= len(meta.chunks):
                segment = _next_segment(state.manifest, segment)
                if segment is None:
                    return None
                meta = await self._meta(segment, loop.time() + 5)
                index = 0
            entry = meta.chunks[index]
            if entry.first_offset >= state.upper_bound:
                return None
            if self.cache.cached((segment.data_key, index)) is None:
                return segment.data_key, entry, meta.compression
        return None

    def _prefetched_bytes(self) -> int:
        return sum(c.slabs for c in self.cache.prefetched_chunks()) * self.pool.slab_bytes

    async def close(self) -> None:
        self._closed = True
        for task in list(self._prefetches) + list(self._meta_flights.values()):
            task.cancel()
        self.cache.close()


def _next_segment(manifest: PartitionManifest, segment: RemoteSegment) -> RemoteSegment | None:
    for candidate in manifest.finished_segments:
        if candidate.base_offset > segment.base_offset:
            return candidate
    return None


def _find_timestamp(data: memoryview, timestamp: int, min_offset: int) -> tuple[int, int] | None:
    pos = 0
    while pos + BATCH_HEADER_SIZE <= len(data):
        header = parse_batch_header(data, pos)
        if header.max_timestamp >= timestamp and header.last_offset >= min_offset and not header.is_control:
            for offset, ts in record_timestamps(data, pos, verify_crc=False):
                if offset >= min_offset and ts >= timestamp:
                    return offset, ts
        pos += header.size
    return None


def _copy_batches(data: memoryview, out: bytearray, position: int, upper_bound: int, max_bytes: int,
                  min_one: bool) -> tuple[int, bool]:
    """Append the chunk's batches holding offsets >= `position` and starting below
    `upper_bound` to `out` while they fit in `max_bytes` (the first one always when
    `min_one`). Returns (next offset to read, whether the budget or bound was hit)."""
    pos = 0
    end = len(data)
    while pos + BATCH_HEADER_SIZE <= end:
        header = parse_batch_header(data, pos)
        size = header.size
        if header.base_offset >= upper_bound:
            return position, True
        if header.last_offset >= position:
            if len(out) + size > max_bytes and not (min_one and not out):
                return position, True
            out += data[pos:pos + size]
            position = header.next_offset
        pos += size
    return position, False
