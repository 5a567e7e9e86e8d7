"""Upload one closed local segment to the remote tier.

The protocol of one attempt, each step committed before the next starts:

1. manifest: a COPY_STARTED entry under a fresh segment id, so a crash from here
   on leaves objects that the manifest names and garbage collection can find;
2. data object: the segment's chunks (`remote_index.segment_format`) followed
   by its meta (chunk index plus the segment's offset and time index data) as
   a trailer, in one PUT when it is small, as a multipart upload of
   `part_bytes` parts otherwise (parts in flight in parallel, each retried on
   transient errors);
3. manifest: the entry moves to COPY_FINISHED, recording where the trailer is.
   This is the commit point: only now may local retention delete the local
   segment.

The steps are separate calls (`prepare`, `start`, `send`, `commit_finished`),
so that a partition's run of uploads (upload_run.py) can start several
attempts in one manifest write and commit finished ones behind the next
segment's objects, keeping manifest writes off the data path.

Every byte sent first passes the shared token bucket. An attempt that fails
aborts its multipart upload and tries to mark its entry DELETE_STARTED and
delete what it wrote; whatever it cannot clean up (bucket down, crash) is left
for `cleanup.py`. Nothing committed is ever overwritten: the next attempt
writes under a new segment id.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.log import SegmentInfo
from remote_index.manifest import ManifestStore, RemoteSegment
from remote_index.segment_format import (
    SegmentEncoder,
    SegmentMeta,
    joined_stream,
    meta_size_hint,
    read_segment_indexes,
)
from remote_index.segment_state import RemoteSegmentState as State
from remote_index.store import CompletedPart, ObjectStore, body_size

from .metrics import TieringMetrics
from .policy import TieringSettings, TierPolicy
from remote_index.rate_limit import TokenBucket
from .retry import Backoff, retrying

log = logging.getLogger("tiering.upload")

PARTS_IN_FLIGHT = 4
# A create-only manifest put whose response was lost looks like a conflict with
# ourselves: reload and re-apply (the change is idempotent) a few times.
CONFLICT_RETRIES = 3


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class UploadContext:
    """Who the uploaded segment belongs to (for metrics and logs)."""

    topic: str
    partition: int


class UploadAttempt:
    """One try at uploading one closed local segment, under a fresh segment id.

    It holds the segment file open from creation to `close()`, so the bytes stay
    readable even if retention deletes the file meanwhile. `started` says whether
    its COPY_STARTED entry has been committed."""

    def __init__(self, segment: SegmentInfo, last_offset: int, entry: RemoteSegment, fd: int, index_bytes):
        self.segment = segment
        self.last_offset = last_offset
        self.entry = entry
        self.fd = fd
        self.index_bytes = index_bytes
        self.started = False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SpareStreams:
    """Streams of single-PUT objects already sent, whose buffers the next objects
    take over: a fresh buffer of a segment's size is zero-filled and, on a VM,
    faulted in page by page, which was about half of a 16 MiB segment's encoding
    time here. Holds at most `limit` (the uploads in flight at once, so a backlog
    keeps no more buffers alive than it uses); `clear` drops them all."""

    def __init__(self, limit: int):
        self.limit = limit
        self._streams: list[io.BytesIO] = []

    def __len__(self) -> int:
        return len(self._streams)

    def take(self) -> io.BytesIO | None:
        return self._streams.pop() if self._streams else None

    def give(self, stream: io.BytesIO) -> None:
        """Keep `stream` for a later object, unless the spares are full or it is
        closed or still lent out (a view of its buffer is alive)."""
        if len(self._streams) >= self.limit:
            return
        try:
            stream.seek(0, io.SEEK_END)
            stream.truncate()  # a no-op that raises while a view is alive
        except (BufferError, ValueError):
            return
        self._streams.append(stream)

    def clear(self) -> None:
        self._streams.clear()


class SegmentUploader:
    """Shared by every partition; concurrency is bounded by the caller."""

    def __init__(self, store: ObjectStore, bucket: TokenBucket, settings: TieringSettings,
                 metrics: TieringMetrics, backoff: Backoff = Backoff()):
        self.store = store
        self.bucket = bucket
        self.settings = settings
        self.metrics = metrics
        self.backoff = backoff
        self.spare_streams = SpareStreams(settings.parallel_uploads)
        self._runs = 0

    @contextlib.contextmanager
    def running(self):
        """Bracket a run of uploads: the spare streams are kept while any run is
        on, and dropped when the last ends, so an idle broker holds none."""
        self._runs += 1
        try:
            yield
        finally:
            self._runs -= 1
            if not self._runs:
                self.spare_streams.clear()

    async def prepare(self, manifests: ManifestStore, segment: SegmentInfo, last_offset: int,
                      policy: TierPolicy) -> UploadAttempt:
        """A new attempt at `segment` (closed, holding offsets up to `last_offset`);
        nothing is written yet. `send` closes it; an attempt never sent is closed
        by its owner."""
        fd = await asyncio.to_thread(os.open, segment.path, os.O_RDONLY)
        try:
            index_bytes = await asyncio.to_thread(read_segment_indexes, segment.path)
        except BaseException:
            os.close(fd)
            raise
        entry = RemoteSegment.start_copy(
            manifests.keys, base_offset=segment.base_offset, last_offset=last_offset,
            size_bytes=segment.size_bytes, now_ms=_now_ms(), max_timestamp=segment.max_timestamp_ms,
            compression=policy.chunk_compression)
        return UploadAttempt(segment, last_offset, entry, fd, index_bytes)

    async def start(self, manifests: ManifestStore, attempts: list[UploadAttempt]) -> None:
        """Commit the COPY_STARTED entries of `attempts` in one manifest write."""
        await self._commit_entries(manifests, [attempt.entry for attempt in attempts])
        for attempt in attempts:
            attempt.started = True

    async def send(self, ctx: UploadContext, manifests: ManifestStore, attempt: UploadAttempt,
                   policy: TierPolicy) -> RemoteSegment:
        """Write a started attempt's objects and close it; returns its COPY_FINISHED
        entry, which `commit_finished` makes the truth. An attempt that fails is
        abandoned (counted, cleaned up best effort) and the error raised."""
        entry = attempt.entry
        if not attempt.started:
            raise RuntimeError(f"attempt {entry.segment_id} sends objects before its COPY_STARTED commit")
        try:
            meta, meta_bytes = await self._upload_object(attempt, policy)
        except Exception as exc:
            self.metrics.upload_errors.labels(ctx.topic).inc()
            await self._abandon(manifests, entry, exc)
            raise
        finally:
            attempt.close()
        return entry.finished(meta, meta_bytes, _now_ms())

    async def commit_finished(self, ctx: UploadContext, manifests: ManifestStore,
                              finished: list[tuple[UploadAttempt, RemoteSegment]]) -> None:
        """Commit COPY_FINISHED for sent attempts, in one manifest write: the commit
        point of each upload. Counts them as uploaded only once it lands."""
        try:
            await self._commit_entries(manifests, [entry for _, entry in finished])
        except Exception:
            self.metrics.upload_errors.labels(ctx.topic).inc(len(finished))
            raise
        for attempt, entry in finished:
            segment = attempt.segment
            self.metrics.bytes_uploaded.labels(ctx.topic).inc(segment.size_bytes)
            self.metrics.segments_uploaded.labels(ctx.topic).inc()
            log.info("uploaded %s-%d segment [%d, %d] (%d bytes, %d stored in %d chunks) as %s",
                     ctx.topic, ctx.partition, segment.base_offset, attempt.last_offset, segment.size_bytes,
                     entry.object_bytes, entry.chunk_count, entry.data_key)

    async def _commit_entries(self, manifests: ManifestStore, entries: list[RemoteSegment]) -> None:
        """Put `entries` into the manifest (added or moved to their state) in one write."""
        def change(m):
            for entry in entries:
                m = m.with_segment(entry)
            return m

        await self._retry("manifest", lambda: manifests.commit(change, conflict_retries=CONFLICT_RETRIES))

    async def _upload_object(self, attempt: UploadAttempt, policy: TierPolicy) -> tuple[SegmentMeta, bytes]:
        """The data object: the stored chunks, then the meta as its trailer (one
        object, so one request per segment for a single PUT). Returns the meta and
        its bytes.

        Stored chunks never exceed the original bytes, so the original size picks
        single PUT or multipart. A single-PUT segment is encoded whole into one
        in-memory stream (with no compression the file is read straight into it)
        and the meta is appended there; the stream goes to the store as is, so the
        object is never copied in memory on its way out. A multipart segment is
        read in part-sized windows and its meta, known once the last chunk is cut,
        ends the last part."""
        segment, entry, index_bytes = attempt.segment, attempt.entry, attempt.index_bytes
        multipart = segment.size_bytes > self.settings.multipart_threshold_bytes
        encoder = SegmentEncoder(attempt.fd, segment.size_bytes, compression=policy.chunk_compression,
                                 chunk_bytes=policy.chunk_bytes, base_offset=segment.base_offset,
                                 window_bytes=self.settings.part_bytes if multipart else segment.size_bytes)
        if multipart:
            return await self._multipart(entry.data_key, encoder, finish=lambda: encoder.meta(*index_bytes))

        spare = self.spare_streams.take()

        def encode() -> tuple[SegmentMeta, bytes, io.BytesIO]:
            body = encoder.encode_all(meta_size_hint(segment.size_bytes, policy.chunk_bytes, *index_bytes),
                                      reuse=spare)
            meta = encoder.meta(*index_bytes)
            meta_bytes = meta.to_bytes()
            body.write(meta_bytes)
            return meta, meta_bytes, body

        meta, meta_bytes, body = await asyncio.to_thread(encode)
        await self.bucket.acquire(body_size(body))
        await self._retry("put", lambda: self.store.put(entry.data_key, body))
        self.spare_streams.give(body)  # sent: nothing reads it any more
        return meta, meta_bytes

    async def _multipart(self, key: str, encoder: SegmentEncoder,
                         finish: Callable[[], SegmentMeta]) -> tuple[SegmentMeta, bytes]:
        """Upload the encoder's chunks and then the meta `finish()` gives once they are
        all cut, as one multipart object; returns the meta and its bytes."""
        upload = await self._retry("create_multipart", lambda: self.store.create_multipart(key))
        part_size = max(self.settings.part_bytes, self.store.min_part_size)
        in_flight: set[asyncio.Task] = set()
        parts: list[CompletedPart] = []
        try:
            pieces: list = []  # stored chunks not yet in a part
            pending = 0
            number = 0
            done = False
            while not done:
                item = await asyncio.to_thread(encoder.next_chunk)
                if item is not None:
                    pieces.append(item[0])
                    pending += len(item[0])
                else:
                    done = True
                    meta = finish()
                    meta_bytes = meta.to_bytes()
                    pieces.append(meta_bytes)
                # A part is whole chunks, at least part_size bytes (S3 allows parts of
                # any size above its minimum), so each byte is copied once, here.
                if pending >= part_size or done:
                    number += 1
                    data = await asyncio.to_thread(joined_stream, pieces)
                    pieces, pending = [], 0
                    if len(in_flight) >= PARTS_IN_FLIGHT:
                        finished, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                        parts.extend(t.result() for t in finished)
                    in_flight.add(asyncio.ensure_future(self._upload_part(upload, number, data)))
            if in_flight:
                parts.extend(await asyncio.gather(*in_flight))
                in_flight = set()
            parts.sort(key=lambda p: p.number)
            await self._retry("complete", lambda: self.store.complete_multipart(upload, parts))
        except BaseException:
            for task in in_flight:
                task.cancel()
            with contextlib.suppress(Exception):
                await self.store.abort_multipart(upload)
            raise
        await self._abort_strays(upload)
        return meta, meta_bytes

    async def _abort_strays(self, upload) -> None:
        """Abort other multipart uploads of the same key. A CreateMultipartUpload whose
        response was lost (retried by us or inside botocore) leaves an upload we never
        heard of; the key holds a fresh segment id, so any other upload of it is ours
        and abandoned. Garbage collection only runs after a failed pass, so without
        this a healthy partition would keep such uploads (and their billed parts)."""
        try:
            for stray in await self.store.list_multipart_uploads(upload.key):
                if stray.key == upload.key and stray.upload_id != upload.upload_id:
                    await self.store.abort_multipart(stray)
                    log.info("aborted stray multipart upload %s of %s", stray.upload_id, stray.key)
        except Exception as exc:  # best effort: garbage collection finds them later
            log.info("could not sweep stray multipart uploads of %s: %s", upload.key, exc)

    async def _upload_part(self, upload, number: int, data: io.BytesIO) -> CompletedPart:
        await self.bucket.acquire(body_size(data))
        return await self._retry("upload_part", lambda: self.store.upload_part(upload, number, data))

    async def _retry(self, operation: str, call):
        return await retrying(call, self.backoff,
                              on_retry=lambda attempt, exc: self._on_retry(operation, attempt, exc))

    def _on_retry(self, operation: str, attempt: int, exc: Exception) -> None:
        self.metrics.retries.labels(operation).inc()
        log.warning("object store %s failed (attempt %d), retrying: %s", operation, attempt, exc)

    async def _abandon(self, manifests: ManifestStore, entry: RemoteSegment, cause: BaseException) -> None:
        """Best effort: record the attempt as deleted and remove its objects. Failures
        here are left to garbage collection, which finds the same objects later.

        The state is checked inside the manifest change, against the newest version:
        a commit whose response was lost may have landed after all, and a
        COPY_FINISHED segment is never abandoned."""
        log.warning("upload of segment %d of %s failed (%s); abandoning attempt %s",
                    entry.base_offset, manifests.keys, cause, entry.segment_id)

        def move_to(target):
            def change(m):
                current = m.segment(entry.segment_id)
                if current is None or current.state is State.COPY_FINISHED:
                    return m
                return m.with_state(entry.segment_id, target, _now_ms())
            return change

        try:
            manifest = await manifests.commit(move_to(State.DELETE_STARTED), conflict_retries=CONFLICT_RETRIES)
            current = manifest.segment(entry.segment_id)
            if current is not None and current.state is State.COPY_FINISHED:
                log.info("attempt %s had committed after all; keeping it", entry.segment_id)
                return
            await self.store.delete_many(list(entry.object_keys))
            await manifests.commit(move_to(State.DELETE_FINISHED), conflict_retries=CONFLICT_RETRIES)
        except Exception as exc:  # the bucket may well be down: garbage collection retries later
            log.info("cleanup of abandoned attempt %s deferred: %s", entry.segment_id, exc)

